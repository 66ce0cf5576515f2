"""SAM 2 on videos: `VideoPredictor` (the reference `SAM2VideoPredictor`'s API, in bounded
memory) and the frame sources it reads videos through."""

from segany.video.frames import FolderFrames, FrameSource, open_frames
from segany.video.predictor import VideoPredictor
from segany.video.state import VideoState

__all__ = ["FolderFrames", "FrameSource", "VideoPredictor", "VideoState", "open_frames"]
