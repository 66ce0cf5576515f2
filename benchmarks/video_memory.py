"""Memory of `segany.VideoPredictor` along a long video: resident set size every few frames.

    python benchmarks/video_memory.py [--frames 1000] [--model sam2.1_hiera_t]
        [--image-size 1024] [--every 50] [--threads 2] [--video FOLDER_OR_FILE]

Writes `--frames` synthetic 640 x 480 JPEG frames (a disc drifting over a gradient), unless
`--video` is given, clicks one object on frame 0 and propagates to the end with random
weights, printing the current RSS (/proc/self/statm), the peak RSS so far (ru_maxrss) and the
outputs the memory bank holds. Flat current RSS after the first few dozen frames is the
point: frames are read when needed and only the memories attention can reach are kept.
Not a test; `benchmarks/bench_sam2.py` compares with the reference.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import segany


def write_frames(folder: Path, count: int, height: int = 480, width: int = 640) -> None:
    yy, xx = np.mgrid[0:height, 0:width]
    background = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256], axis=-1)
    for t in range(count):
        frame = background.astype(np.uint8)
        cx, cy = 320 + 200 * np.sin(t / 40), 240 + 120 * np.cos(t / 55)
        frame[(xx - cx) ** 2 + (yy - cy) ** 2 < 50**2] = (230, 40, 40)
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=90)


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--model", default="sam2.1_hiera_t")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--video", help="a folder of frames or a video file instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video
        if video is None:
            video = Path(tmp) / "frames"
            video.mkdir()
            write_frames(video, args.frames)
        print(f"after writing frames: rss {rss_mb():.0f} MB, peak {peak_mb():.0f} MB")
        model = segany.build_sam(args.model, pretrained=False, image_size=args.image_size)
        predictor = segany.VideoPredictor(model.eval())
        with torch.inference_mode():
            state = predictor.init_state(video_path=str(video))
            print(f"model and session ready: rss {rss_mb():.0f} MB, peak {peak_mb():.0f} MB")
            scale = state.video_width / 640
            predictor.add_new_points_or_box(state, 0, 1, [[320 * scale, 360 * scale]], [1])
            start = time.perf_counter()
            print("frame  rss_MB  peak_MB  kept_outputs  s/frame")
            for frame_idx, _, logits in predictor.propagate_in_video(state):
                del logits
                if frame_idx % args.every == 0 or frame_idx == state.num_frames - 1:
                    kept = sum(len(t.non_cond) + len(t.cond) for t in state.objects)
                    per_frame = (time.perf_counter() - start) / (frame_idx + 1)
                    print(
                        f"{frame_idx:5d}  {rss_mb():6.0f}  {peak_mb():7.0f}  {kept:12d}  "
                        f"{per_frame:7.2f}",
                        flush=True,
                    )
    print(f"peak RSS {peak_mb():.0f} MB over {state.num_frames} frames")


if __name__ == "__main__":
    main()
