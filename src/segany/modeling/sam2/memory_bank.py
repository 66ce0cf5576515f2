"""What SAM 2's tracker keeps per frame, and which of those memories a new frame attends to.

Frames are indexed by their position in the video. A frame with a user prompt (points, a box
or a mask) is a *conditioning* frame; the others are tracked from memory. A frame being
tracked attends to

- the spatial memories of every conditioning frame (or of the `max_cond_frames` closest ones)
  and of the `num_maskmem - 1` frames tracked just before it (every `stride`-th frame, plus the
  immediately preceding one), each tagged with a learned temporal embedding;
- the object pointers (one vector per frame, from the mask decoder's output token) of the
  conditioning frames that are not in its future and of up to `max_obj_ptrs - 1` frames before
  it, each tagged with a sine encoding of its temporal distance.

"Before" means earlier in the video when tracking forward, later when tracking in reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class PointInputs:
    """Clicks and box corners of B objects on one frame.

    coords: (B, P, 2) float xy pixels in the model-input frame (image_size x image_size).
    labels: (B, P) int32: 1 positive, 0 negative, 2 / 3 box top-left / bottom-right, -1 padding.
    """

    coords: torch.Tensor
    labels: torch.Tensor


@dataclass
class FrameOutput:
    """The tracker's result for B objects on one frame (the reference's per-frame output dict).

    pred_masks: (B, 1, 4h, 4w) low-resolution mask logits (h, w: the stride-16 grid), -1024
        where the object is judged absent.
    obj_ptr: (B, C) object pointer (C = d_model).
    object_score_logits: (B, 1), > 0 where the object is judged present.
    maskmem_features: (B, mem_dim, h, w) spatial memory, or None when the memory encoder was
        not run; any dtype (a bank may keep it in bfloat16), it is cast when read.
    maskmem_pos_enc: (B, mem_dim, h, w) its sine position encoding, or None likewise.
    pred_masks_high_res: (B, 1, S, S) mask logits at the model input size; may be dropped
        (None) once the memory has been encoded.
    """

    pred_masks: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor
    maskmem_features: torch.Tensor | None = None
    maskmem_pos_enc: torch.Tensor | None = None
    pred_masks_high_res: torch.Tensor | None = None


@dataclass
class MemoryBank:
    """The outputs of the frames tracked so far, by frame index (the reference's
    `output_dict` with "cond_frame_outputs" and "non_cond_frame_outputs"). Insertion order of
    `conditioning` is the order its memories are concatenated in."""

    conditioning: dict[int, FrameOutput] = field(default_factory=dict)
    non_conditioning: dict[int, FrameOutput] = field(default_factory=dict)


def select_closest_conditioning(
    frame_idx: int, conditioning: dict[int, FrameOutput], max_frames: int
) -> tuple[dict[int, FrameOutput], dict[int, FrameOutput]]:
    """Split the conditioning frames into (selected, unselected): all of them when
    `max_frames` is -1 or not exceeded; else the closest one before `frame_idx`, the closest at
    or after it, then the temporally closest others up to `max_frames` (>= 2)."""
    if max_frames == -1 or len(conditioning) <= max_frames:
        return conditioning, {}
    if max_frames < 2:
        raise ValueError(f"max_cond_frames must be -1 or at least 2, got {max_frames}")
    chosen: list[int] = []
    before = [t for t in conditioning if t < frame_idx]
    after = [t for t in conditioning if t >= frame_idx]
    if before:
        chosen.append(max(before))
    if after:
        chosen.append(min(after))
    rest = sorted((t for t in conditioning if t not in chosen), key=lambda t: abs(t - frame_idx))
    chosen += rest[: max_frames - len(chosen)]
    selected = {t: conditioning[t] for t in chosen}
    unselected = {t: out for t, out in conditioning.items() if t not in selected}
    return selected, unselected


def spatial_memory_frames(
    frame_idx: int,
    bank: MemoryBank,
    selected: dict[int, FrameOutput],
    unselected: dict[int, FrameOutput],
    num_maskmem: int,
    stride: int = 1,
    reverse: bool = False,
) -> list[tuple[int, FrameOutput]]:
    """The frames whose spatial memory `frame_idx` attends to, as (t_pos, output) pairs:
    t_pos 0 for the selected conditioning frames, then t_pos 1 .. num_maskmem - 1 for the
    earlier frames, the oldest first (t_pos num_maskmem - 1 is the frame just before).
    Frames without an output are skipped; an unselected conditioning frame stands in for a
    missing tracked one."""
    frames = [(0, out) for out in selected.values()]
    step = -1 if reverse else 1  # "before" is frame_idx - step * distance
    for t_pos in range(1, num_maskmem):
        distance = num_maskmem - t_pos  # frames before the current one
        if distance == 1:
            prev = frame_idx - step
        elif not reverse:
            # the nearest multiple of `stride` at least 2 frames before, then further back
            prev = (frame_idx - 2) // stride * stride - (distance - 2) * stride
        else:
            prev = -(-(frame_idx + 2) // stride) * stride + (distance - 2) * stride
        out = bank.non_conditioning.get(prev, unselected.get(prev))
        if out is not None:
            frames.append((t_pos, out))
    return frames


def object_pointer_frames(
    frame_idx: int,
    bank: MemoryBank,
    selected: dict[int, FrameOutput],
    unselected: dict[int, FrameOutput],
    max_obj_ptrs: int,
    num_frames: int,
    reverse: bool = False,
    signed_distance: bool = True,
    only_past: bool = True,
) -> list[tuple[int, torch.Tensor]]:
    """The object pointers `frame_idx` attends to, as (temporal distance, (B, C) pointer):
    first the selected conditioning frames (only those not in its future when `only_past`),
    at their distance from it (signed: negative for a conditioning frame ahead of it, when
    `signed_distance`), then the frames 1 .. max_obj_ptrs - 1 before it, nearest first."""
    sign = -1 if reverse else 1
    pointers = []
    for t, out in selected.items():
        ahead = t < frame_idx if reverse else t > frame_idx
        if only_past and ahead:
            continue
        distance = (frame_idx - t) * sign if signed_distance else abs(frame_idx - t)
        pointers.append((distance, out.obj_ptr))
    for distance in range(1, max_obj_ptrs):
        t = frame_idx - sign * distance
        if t < 0 or t >= num_frames:
            break
        out = bank.non_conditioning.get(t, unselected.get(t))
        if out is not None:
            pointers.append((distance, out.obj_ptr))
    return pointers


def sine_encoding_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0):
    """(N,) positions -> (N, dim) encoding: dim / 2 sines then dim / 2 cosines of the
    positions over geometric frequencies (Vaswani et al. 2017), frequencies paired."""
    half = dim // 2
    steps = torch.arange(half, dtype=torch.float32, device=positions.device)
    freqs = temperature ** (2 * torch.div(steps, 2, rounding_mode="floor") / half)
    angles = positions[:, None] / freqs
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


def split_pointers(
    pointers: torch.Tensor, distances: torch.Tensor, mem_dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P, C) pointers and their (B, P, mem_dim) encodings -> (B, P * C / mem_dim, mem_dim)
    memory tokens: each pointer cut into C / mem_dim consecutive chunks, each chunk carrying its
    pointer's encoding."""
    b, p, c = pointers.shape
    if c % mem_dim:
        raise ValueError(f"pointer width {c} is not a multiple of mem_dim {mem_dim}")
    chunks = c // mem_dim
    tokens = pointers.reshape(b, p * chunks, mem_dim)  # (B, P * chunks, mem_dim), pointer-major
    return tokens, distances.repeat_interleave(chunks, dim=1)


def non_overlapping_logits(pred_masks: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) logits of B objects on one frame -> the same with each pixel kept only by
    the object of highest logit, the others' clamped to at most -10."""
    if pred_masks.shape[0] == 1:
        return pred_masks
    winner = pred_masks.argmax(dim=0, keepdim=True)  # (1, 1, H, W)
    objects = torch.arange(pred_masks.shape[0], device=pred_masks.device)[:, None, None, None]
    return torch.where(winner == objects, pred_masks, pred_masks.clamp(max=-10.0))
