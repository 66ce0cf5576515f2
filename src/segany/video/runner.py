"""`FrameRunner`: one object on one frame through the tracker, and the masks a video
predictor returns (the model-facing half of `VideoPredictor`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segany.modeling.sam2.memory_bank import FrameOutput, PointInputs
from segany.modeling.sam2.tracking import FrameFeatures, Sam2Tracker
from segany.video.postprocess import NO_OBJECT_SCORE, fill_holes, non_overlapping, to_size
from segany.video.state import ObjectTrack, VideoState


class FrameRunner:
    """Runs `Sam2Tracker` steps on a session's frames and files what they leave.

    fill_hole_area: > 0 fills background holes of at most that many pixels in the masks
    (kept and returned); non_overlap_masks: each returned pixel to the top-scoring object.
    """

    def __init__(self, tracker: Sam2Tracker, fill_hole_area: int, non_overlap_masks: bool):
        self.tracker = tracker
        self.fill_hole_area = fill_hole_area
        self.non_overlap_masks = non_overlap_masks

    @property
    def image_size(self) -> int:
        return self.tracker.image_size

    def features(self, state: VideoState, frame_idx: int) -> FrameFeatures:
        """The frame's image features; the last frame's are cached (clicks on one frame)."""
        if state.cached_features is not None and state.cached_features[0] == frame_idx:
            return state.cached_features[1]
        image = state.frames[frame_idx].to(state.device).float()[None]  # (1, 3, S, S)
        features = self.tracker.encode_frames(image)
        state.cached_features = (frame_idx, features)
        return features

    def run(
        self,
        state: VideoState,
        track: ObjectTrack,
        frame_idx: int,
        is_init: bool,
        reverse: bool,
        points: PointInputs | None = None,
        mask: torch.Tensor | None = None,
        run_mem_encoder: bool = False,
        prev_logits: torch.Tensor | None = None,
    ) -> tuple[FrameOutput, torch.Tensor]:
        """Segment one object on one frame -> (its output as kept, (1, 1, S/4, S/4) logits on
        the compute device)."""
        out = self.tracker.track_step(
            frame_idx,
            is_init,
            self.features(state, frame_idx),
            points,
            mask,
            track.bank,
            state.num_frames,
            reverse=reverse,
            run_mem_encoder=run_mem_encoder,
            prev_sam_mask_logits=prev_logits,
        )
        logits = out.pred_masks
        if self.fill_hole_area > 0:
            logits = fill_holes(logits, self.fill_hole_area)
        kept = FrameOutput(
            pred_masks=logits.to(state.storage_device),
            obj_ptr=out.obj_ptr,
            object_score_logits=out.object_score_logits,
        )
        if out.maskmem_features is not None:
            self.file_memory(state, kept, out.maskmem_features, out.maskmem_pos_enc)
        return kept, logits

    def encode_memory(self, state: VideoState, frame_idx: int, out: FrameOutput) -> None:
        """Encode the memory of a prompted frame from its (final) low-resolution logits."""
        size = (self.image_size, self.image_size)
        high_res = F.interpolate(
            out.pred_masks.to(state.device), size=size, mode="bilinear", align_corners=False
        )
        memory, pos = self.tracker.encode_memory(
            self.features(state, frame_idx), high_res, out.object_score_logits, True
        )
        self.file_memory(state, out, memory, pos)

    def file_memory(
        self, state: VideoState, out: FrameOutput, memory: torch.Tensor, pos: torch.Tensor
    ) -> None:
        # bfloat16 as the reference keeps it (the memory attention reads the rounded values);
        # the position encoding is the same for every frame: one copy shared by all outputs.
        out.maskmem_features = memory.to(torch.bfloat16).to(state.storage_device)
        if state.maskmem_pos_enc is None:
            state.maskmem_pos_enc = pos[:1].clone()
        out.maskmem_pos_enc = state.maskmem_pos_enc.expand(pos.shape[0], -1, -1, -1)

    def frame_masks(self, state: VideoState, frame_idx: int, is_cond: bool) -> torch.Tensor:
        """Every object's latest logits on the frame at the video's resolution (the
        reference's consolidation of its temporary outputs): (objects, 1, H, W), -1024 for
        objects without a result there."""
        size = (state.video_height, state.video_width)
        masks = torch.full(
            (len(state.objects), 1, *size), NO_OBJECT_SCORE, device=state.storage_device
        )
        for i, track in enumerate(state.objects):
            out = track.stored(frame_idx, is_cond)
            if out is not None:
                masks[i : i + 1] = to_size(out.pred_masks, size)
        return self.to_video(state, masks)

    def to_video(self, state: VideoState, logits: torch.Tensor) -> torch.Tensor:
        """(objects, 1, h, w) logits -> (objects, 1, H, W) on the compute device."""
        masks = to_size(logits.to(state.device), (state.video_height, state.video_width))
        return non_overlapping(masks) if self.non_overlap_masks else masks
