"""The inference state of a video: frames, objects, their prompts and the memory bank.

What is kept, per object (the reference keeps every frame's output for the whole session):

- prompts: the points of each prompted frame ((1, N, 2) in the model-input frame) and the set
  of frames prompted with a mask (the mask itself is only needed on the call that gives it);
- conditioning outputs: one `FrameOutput` per prompted frame, kept until its prompts are
  cleared;
- non-conditioning outputs (tracked frames): only those within `radius` frames of an anchor
  (a frame where any object has a prompt, or where propagation last stopped), see
  `Retention`; `radius` is how far back the memory attention reaches,
  max(stride * (num_maskmem - 2) + 1, max_obj_ptrs_in_encoder - 1): 15 frames for the
  official configs (6 spatial memories, 15 object pointers);
- pending outputs: a prompted frame's output between the prompt and the next propagation
  (the reference's `temp_output_dict_per_obj`);
- which frames were tracked and in which direction: one byte per frame.

Shared by all: the video's `FrameSource` (a small LRU of frames, not the video), the image
features of the last frame the model saw, and the memory position encoding (the same for
every frame). Masks given to the user are not kept beyond the outputs above.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from segany.modeling.sam2.memory_bank import FrameOutput, MemoryBank, PointInputs
from segany.video.frames import FrameSource

# tracked[frame]: not tracked yet, tracked forward in time, tracked in reverse
UNTRACKED, FORWARD, REVERSE = 0, 1, 2


@dataclass
class ObjectTrack:
    """One object's prompts and memory bank (the reference's `output_dict`: `bank.conditioning`
    and `bank.non_conditioning`, {frame: output}); `pending_*` its `temp_output_dict`."""

    obj_id: Hashable
    num_frames: int
    points: dict[int, PointInputs] = field(default_factory=dict)
    mask_frames: set[int] = field(default_factory=set)
    bank: MemoryBank = field(default_factory=MemoryBank)
    pending_cond: dict[int, FrameOutput] = field(default_factory=dict)
    pending_non_cond: dict[int, FrameOutput] = field(default_factory=dict)
    tracked: bytearray = field(init=False)

    def __post_init__(self) -> None:
        self.tracked = bytearray(self.num_frames)

    @property
    def cond(self) -> dict[int, FrameOutput]:
        return self.bank.conditioning

    @property
    def non_cond(self) -> dict[int, FrameOutput]:
        return self.bank.non_conditioning

    def pending(self, is_cond: bool) -> dict[int, FrameOutput]:
        return self.pending_cond if is_cond else self.pending_non_cond

    def stored(self, frame_idx: int, is_cond: bool) -> FrameOutput | None:
        """The latest output on `frame_idx`: pending of its kind first, then the bank's."""
        out = self.pending(is_cond).get(frame_idx)
        if out is None:
            out = self.cond.get(frame_idx)
        if out is None:
            out = self.non_cond.get(frame_idx)
        return out

    def prompted_frames(self) -> set[int]:
        return set(self.points) | self.mask_frames

    def clear(self) -> None:
        """Forget every prompt and output (the object stays)."""
        self.points.clear()
        self.mask_frames.clear()
        self.cond.clear()
        self.non_cond.clear()
        self.pending_cond.clear()
        self.pending_non_cond.clear()
        self.tracked = bytearray(self.num_frames)


@dataclass
class Retention:
    """The eviction rule of non-conditioning outputs.

    An output is kept while it is within `radius` frames of an anchor: a frame where any
    object has a prompt or a conditioning output (a later propagation may start there, for
    all objects, in either direction) or the frame propagation last reached (so that tracking
    resumes exactly there). Outputs elsewhere were needed only while propagation passed by.
    `radius=None` keeps every output, as the reference does.
    """

    radius: int | None

    def anchors(self, state: VideoState) -> list[int]:
        anchors = set()
        for track in state.objects:
            anchors |= track.prompted_frames()
            anchors.update(track.cond)
        if state.head is not None:
            anchors.add(state.head)
        return sorted(anchors)

    def evict(self, state: VideoState) -> None:
        """Drop every output farther than `radius` from all anchors."""
        if self.radius is None:
            return
        anchors = self.anchors(state)
        for track in state.objects:
            for t in [t for t in track.non_cond if not _near(t, anchors, self.radius)]:
                del track.non_cond[t]

    def evict_behind(self, state: VideoState, frame_idx: int, reverse: bool) -> None:
        """Once propagation has filed `frame_idx`: drop the outputs that just fell out of reach
        behind it, unless another anchor holds them."""
        if self.radius is None:
            return
        t = frame_idx + (self.radius + 1) * (1 if reverse else -1)
        if not _near(t, self.anchors(state), self.radius):
            for track in state.objects:
                track.non_cond.pop(t, None)


def _near(t: int, anchors: list[int], radius: int) -> bool:
    return any(abs(t - a) <= radius for a in anchors)


@dataclass
class VideoState:
    """An inference session on one video (the reference's `inference_state` dict).

    Read the reference's keys with `state["num_frames"]`, `state["video_height"]`,
    `state["video_width"]`, `state["obj_ids"]`, `state["device"]`, ... Coordinates given to
    the predictor are xy pixels of the video (`video_width` x `video_height`) unless
    `normalize_coords=False`.
    """

    frames: FrameSource
    device: torch.device
    storage_device: torch.device
    offload_video_to_cpu: bool
    offload_state_to_cpu: bool
    objects: list[ObjectTrack] = field(default_factory=list)
    obj_id_to_idx: dict[Hashable, int] = field(default_factory=dict)
    # (frame_idx, features) of the last frame run through the image encoder
    cached_features: tuple[int, Any] | None = None
    # the last frame propagation reached (it anchors the memories behind it), None before
    head: int | None = None
    # the memory encoder's position encoding, the same for every frame: one copy
    maskmem_pos_enc: torch.Tensor | None = None  # (1, mem_dim, S/16, S/16)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def video_height(self) -> int:
        return self.frames.height

    @property
    def video_width(self) -> int:
        return self.frames.width

    @property
    def obj_ids(self) -> list[Hashable]:
        return [track.obj_id for track in self.objects]

    @property
    def images(self) -> FrameSource:
        return self.frames

    def __getitem__(self, key: str) -> Any:
        if key not in _STATE_KEYS:
            raise KeyError(f"{key!r}: a VideoState exposes {sorted(_STATE_KEYS)}")
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(_STATE_KEYS)

    def close(self) -> None:
        """Release the video file and the cached frames and features."""
        self.frames.close()
        self.cached_features = None


_STATE_KEYS = frozenset(
    {
        "num_frames",
        "video_height",
        "video_width",
        "obj_ids",
        "device",
        "storage_device",
        "offload_video_to_cpu",
        "offload_state_to_cpu",
        "images",
    }
)
