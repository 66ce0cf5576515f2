"""SAM 2's per-frame tracking step (the reference `SAM2Base`'s inference logic), over a `Sam2`.

One step on frame t for B objects:
1. the frame's stride-16 embedding is conditioned on memory: on an initial conditioning frame
   the learned `no_mem_embed` is simply added; otherwise memory attention cross-attends to the
   memory bank (see `memory_bank`);
2. the prompt encoder and mask decoder predict the mask from the frame's prompt (clicks, box
   corners, a previous mask) or from none; with 3 candidates the one of highest predicted IoU
   is kept; where the object score is <= 0 the masks become -1024 and the pointer
   `no_obj_ptr`;
3. a mask given as input is taken as the output itself (logits -10 / +10), the decoder only
   producing its object pointer;
4. the memory encoder turns the frame's embedding and the (scaled sigmoid or binarised) mask
   into its spatial memory, tagged with `no_obj_embed_spatial` (SAM 2.1) if the object is
   absent.

The options every official config fixes (high-resolution decoder features, multimask tracking,
the multimask token as pointer, fixed no-object pointer, object pointers through a 3-layer MLP,
mask input used as output) are built in; the numeric ones come from `TrackingConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from segany.errors import ConfigError
from segany.modeling.sam2.config import TrackingConfig
from segany.modeling.sam2.memory_bank import (
    FrameOutput,
    MemoryBank,
    PointInputs,
    non_overlapping_logits,
    object_pointer_frames,
    select_closest_conditioning,
    sine_encoding_1d,
    spatial_memory_frames,
    split_pointers,
)

NO_OBJECT_SCORE = -1024.0  # mask logits where the object is judged absent
INPUT_MASK_LOGIT = 10.0  # a mask given as output: logits +10 inside, -10 outside


@dataclass
class FrameFeatures:
    """One frame's image-encoder outputs as the tracker reads them.

    image_embed: (B, C, h, w) stride-16 features (memory-free); image_pos: (B, C, h, w) their
    sine position encoding; high_res: (B, C/8, 4h, 4w) and (B, C/4, 2h, 2w) stride-4 and
    stride-8 features already projected by the decoder's conv_s0 / conv_s1.
    """

    image_embed: torch.Tensor
    image_pos: torch.Tensor
    high_res: tuple[torch.Tensor, torch.Tensor]

    @property
    def grid_size(self) -> tuple[int, int]:
        return (self.image_embed.shape[-2], self.image_embed.shape[-1])

    def expand(self, batch_size: int) -> FrameFeatures:
        """The features of a single frame (B = 1) as views for `batch_size` objects."""

        def grow(x: torch.Tensor) -> torch.Tensor:
            return x.expand(batch_size, -1, -1, -1)

        s0, s1 = self.high_res
        return FrameFeatures(grow(self.image_embed), grow(self.image_pos), (grow(s0), grow(s1)))


@dataclass
class SamHeadOutput:
    """The prompt encoder + mask decoder's result for B objects (M = 3 or 1 candidates).

    low_res_multimasks (B, M, 4h, 4w) and high_res_multimasks (B, M, S, S) logits; ious (B, M);
    low_res_masks (B, 1, 4h, 4w) and high_res_masks (B, 1, S, S): the candidate of highest
    predicted IoU; obj_ptr (B, C); object_score_logits (B, 1).
    """

    low_res_multimasks: torch.Tensor
    high_res_multimasks: torch.Tensor
    ious: torch.Tensor
    low_res_masks: torch.Tensor
    high_res_masks: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor


class Sam2Tracker:
    """Tracking logic over a `Sam2` model (composition: the tracker holds no weights).

    Args:
        model: a `Sam2` (official parameter names: image_encoder, sam_prompt_encoder,
            sam_mask_decoder, memory_attention, memory_encoder, maskmem_tpos_enc, ...).
        binarize_mask_from_points: encode the memory of frames with clicks from the
            thresholded mask instead of its sigmoid (the reference video predictor: True).
        max_cond_frames: attend to at most this many conditioning frames, the closest (-1: all).
        memory_stride: take the older memories from every `memory_stride`-th frame.
        non_overlapping_memory: before encoding memories of several objects, keep each pixel
            only for the object of highest logit (`non_overlapping_logits`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        binarize_mask_from_points: bool = False,
        max_cond_frames: int = -1,
        memory_stride: int = 1,
        non_overlapping_memory: bool = False,
    ) -> None:
        if memory_stride < 1 or (max_cond_frames != -1 and max_cond_frames < 2):
            raise ConfigError(
                f"memory_stride must be >= 1 (got {memory_stride}) and max_cond_frames -1 or"
                f" >= 2 (got {max_cond_frames})"
            )
        self.model = model
        self.config: TrackingConfig = model.tracking
        self.binarize_mask_from_points = binarize_mask_from_points
        self.max_cond_frames = max_cond_frames
        self.memory_stride = memory_stride
        self.non_overlapping_memory = non_overlapping_memory

    @property
    def image_size(self) -> int:
        """Side S of the square model input, the frame of point coordinates."""
        return self.model.image_size

    @property
    def num_maskmem(self) -> int:
        return self.config.num_maskmem

    # -- image features -------------------------------------------------------------------

    def encode_frames(self, images: torch.Tensor) -> FrameFeatures:
        """(B, 3, S, S) normalised images -> their `FrameFeatures` (the reference's
        forward_image followed by _prepare_backbone_features)."""
        (s0, s1, embed), positions = self.model.backbone_features(images)
        return FrameFeatures(embed, positions[-1], (s0, s1))

    # -- prompt encoder and mask decoder --------------------------------------------------

    def forward_sam_heads(
        self,
        image_embed: torch.Tensor,
        points: PointInputs | None = None,
        mask_inputs: torch.Tensor | None = None,
        high_res: tuple[torch.Tensor, torch.Tensor] | None = None,
        multimask_output: bool = False,
    ) -> SamHeadOutput:
        """Predict B objects' masks on one frame.

        image_embed: (B, C, h, w) (memory-conditioned) embedding; points: clicks in the
        model-input frame, or None (a single padding point); mask_inputs: (B, 1, H', W') mask
        logits or probabilities, resized to the decoder's (4h, 4w) mask input if needed;
        high_res: the frame's projected stride-4 / stride-8 features.
        """
        model = self.model
        b, device = image_embed.shape[0], image_embed.device
        if points is None:
            coords = torch.zeros(b, 1, 2, device=device)
            labels = -torch.ones(b, 1, dtype=torch.int32, device=device)
        else:
            coords, labels = points.coords, points.labels
        prompt_encoder = model.sam_prompt_encoder
        mask_prompt = None
        if mask_inputs is not None:
            mask_prompt = mask_inputs
            if tuple(mask_inputs.shape[-2:]) != tuple(prompt_encoder.mask_input_size):
                mask_prompt = F.interpolate(
                    mask_inputs.float(),
                    size=prompt_encoder.mask_input_size,
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )
        sparse, dense = prompt_encoder(points=(coords, labels), boxes=None, masks=mask_prompt)
        decoded = model.sam_mask_decoder(
            image_embeddings=image_embed,
            image_pe=prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            high_res_features=high_res,
        )
        present = decoded.object_score_logits > 0  # (B, 1)
        # the mask memorised is a hard choice between object and no object, as shown
        low_multi = torch.where(present[:, :, None, None], decoded.masks, NO_OBJECT_SCORE).float()
        size = (self.image_size, self.image_size)
        high_multi = F.interpolate(low_multi, size=size, mode="bilinear", align_corners=False)
        token = decoded.sam_tokens[:, 0]  # (B, C)
        if multimask_output:
            best = decoded.iou.argmax(dim=-1)  # (B,)
            rows = torch.arange(b, device=device)
            low, high = low_multi[rows, best][:, None], high_multi[rows, best][:, None]
            if decoded.sam_tokens.shape[1] > 1:
                token = decoded.sam_tokens[rows, best]
        else:
            low, high = low_multi, high_multi
        obj_ptr = self._gate_pointer(model.obj_ptr_proj(token), present.to(token.dtype))
        return SamHeadOutput(
            low_multi, high_multi, decoded.iou, low, high, obj_ptr, decoded.object_score_logits
        )

    def _gate_pointer(self, obj_ptr: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(B, C) pointers, (B, 1) 1.0 / 0.0 presence -> the pointer, or `no_obj_ptr` where
        the object is absent."""
        return present * obj_ptr + (1 - present) * self.model.no_obj_ptr

    def use_mask_as_output(
        self,
        image_embed: torch.Tensor,
        high_res: tuple[torch.Tensor, torch.Tensor],
        mask_inputs: torch.Tensor,
    ) -> SamHeadOutput:
        """Take a given (B, 1, S, S) mask (bool or [0, 1]) as the output: logits +10 / -10,
        the low-resolution ones by antialiased downsampling, IoU 1; the object pointer comes
        from the decoder prompted with the mask (through `mask_downsample`) on the memory-free
        embedding (B, C, h, w); the object is present where the mask has any pixel > 0."""
        mask = mask_inputs.float()
        high = mask * (2 * INPUT_MASK_LOGIT) - INPUT_MASK_LOGIT
        low = F.interpolate(
            high,
            size=(high.shape[-2] // 4, high.shape[-1] // 4),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
        ious = mask.new_ones(mask.shape[0], 1)
        decoded = self.forward_sam_heads(
            image_embed, mask_inputs=self.model.mask_downsample(mask), high_res=high_res
        )
        present = (mask.flatten(1) > 0).any(dim=1, keepdim=True).float()  # (B, 1)
        scores = present * (2 * INPUT_MASK_LOGIT) - INPUT_MASK_LOGIT
        obj_ptr = self._gate_pointer(decoded.obj_ptr, present)
        return SamHeadOutput(low, high, ious, low, high, obj_ptr, scores)

    def use_multimask(self, is_init_cond_frame: bool, points: PointInputs | None) -> bool:
        """3 candidates when the frame has between multimask_min_pt_num and
        multimask_max_pt_num points (official: 0 or 1, so also while tracking)."""
        count = 0 if points is None else points.labels.shape[1]
        return self.config.multimask_min_pt_num <= count <= self.config.multimask_max_pt_num

    # -- memory -----------------------------------------------------------------------------

    def memory_conditioned_features(
        self,
        frame_idx: int,
        is_init_cond_frame: bool,
        features: FrameFeatures,
        bank: MemoryBank,
        num_frames: int,
        reverse: bool = False,
    ) -> torch.Tensor:
        """The frame's (B, C, h, w) embedding conditioned on the memory bank (see
        `memory_bank` for which memories), or plus `no_mem_embed` on an initial
        conditioning frame."""
        model, cfg = self.model, self.config
        embed = features.image_embed
        b, c, h, w = embed.shape
        if cfg.num_maskmem == 0:
            return embed
        if is_init_cond_frame:
            return embed + model.no_mem_embed.view(1, c, 1, 1)
        if not bank.conditioning:
            raise ValueError(f"frame {frame_idx}: tracking needs at least one conditioning frame")
        selected, unselected = select_closest_conditioning(
            frame_idx, bank.conditioning, self.max_cond_frames
        )
        memories, positions = [], []
        frames = spatial_memory_frames(
            frame_idx, bank, selected, unselected, cfg.num_maskmem, self.memory_stride, reverse
        )
        for t_pos, out in frames:
            if out.maskmem_features is None or out.maskmem_pos_enc is None:
                raise ValueError("a frame in the memory bank has no encoded memory")
            tokens = out.maskmem_features.to(embed).flatten(2).transpose(1, 2)  # (B, hw, mem)
            pos = out.maskmem_pos_enc.to(embed).flatten(2).transpose(1, 2)
            memories.append(tokens)
            positions.append(pos + model.maskmem_tpos_enc[cfg.num_maskmem - t_pos - 1])
        num_ptr_tokens = 0
        max_ptrs = min(num_frames, cfg.max_obj_ptrs_in_encoder)
        pointers = object_pointer_frames(
            frame_idx,
            bank,
            selected,
            unselected,
            max_ptrs,
            num_frames,
            reverse,
            signed_distance=cfg.use_signed_tpos_enc_to_obj_ptrs,
        )
        if pointers:
            distances, ptrs = zip(*pointers, strict=True)
            stacked = torch.stack([p.to(embed) for p in ptrs], dim=1)  # (B, P, C)
            mem_dim = model.maskmem_tpos_enc.shape[-1]
            if cfg.add_tpos_enc_to_obj_ptrs:
                scaled = torch.tensor(distances, device=embed.device) / max(max_ptrs - 1, 1)
                enc_dim = c if cfg.proj_tpos_enc_in_obj_ptrs else mem_dim
                enc = model.obj_ptr_tpos_proj(sine_encoding_1d(scaled, enc_dim).to(embed))
                enc = enc[None].expand(b, -1, -1)  # (B, P, mem_dim)
            else:
                enc = stacked.new_zeros(b, len(distances), mem_dim)
            tokens, enc = split_pointers(stacked, enc, mem_dim)
            memories.append(tokens)
            positions.append(enc)
            num_ptr_tokens = tokens.shape[1]
        conditioned = model.memory_attention(
            embed.flatten(2).transpose(1, 2),  # (B, hw, C)
            features.image_pos.flatten(2).transpose(1, 2).to(embed),
            torch.cat(memories, dim=1),
            torch.cat(positions, dim=1),
            (h, w),
            num_obj_ptr_tokens=num_ptr_tokens,
        )
        return conditioned.transpose(1, 2).reshape(b, c, h, w)

    def encode_memory(
        self,
        features: FrameFeatures,
        pred_masks_high_res: torch.Tensor,
        object_score_logits: torch.Tensor,
        is_mask_from_points: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The frame's spatial memory and its position encoding, both (B, mem_dim, h, w),
        from its (B, 1, S, S) mask logits and (B, 1) object scores (the reference's
        _encode_new_memory)."""
        model, cfg = self.model, self.config
        masks = pred_masks_high_res
        if self.non_overlapping_memory:
            masks = non_overlapping_logits(masks)
        if self.binarize_mask_from_points and is_mask_from_points:
            probs = (masks > 0).to(masks.dtype)
        else:
            probs = torch.sigmoid(masks)
        scaled = probs * cfg.sigmoid_scale_for_mem_enc + cfg.sigmoid_bias_for_mem_enc
        memory, pos = model.memory_encoder(features.image_embed, scaled)
        no_obj = getattr(model, "no_obj_embed_spatial", None)
        if no_obj is not None:
            absent = (object_score_logits <= 0).to(memory.dtype)  # (B, 1)
            memory = memory + absent[..., None, None] * no_obj[..., None, None]
        return memory, pos

    # -- one frame --------------------------------------------------------------------------

    def track_step(
        self,
        frame_idx: int,
        is_init_cond_frame: bool,
        features: FrameFeatures,
        points: PointInputs | None,
        mask_inputs: torch.Tensor | None,
        bank: MemoryBank,
        num_frames: int,
        reverse: bool = False,
        run_mem_encoder: bool = True,
        prev_sam_mask_logits: torch.Tensor | None = None,
    ) -> FrameOutput:
        """Segment B objects on frame `frame_idx` of a `num_frames`-frame video.

        features: the frame's `FrameFeatures` (B objects); points / mask_inputs: the frame's
        prompt (at most one of them), mask_inputs (B, 1, S, S); bank: the frames tracked so
        far (not modified: the caller files the returned output); reverse: tracking backwards
        in time; run_mem_encoder: also encode the frame's memory (off while a user is still
        clicking); prev_sam_mask_logits: (B, 1, 4h, 4w) earlier logits of this frame, fed to
        the decoder with new clicks.
        """
        if mask_inputs is not None:
            if points is not None:
                raise ValueError("give a frame points or a mask, not both")
            heads = self.use_mask_as_output(features.image_embed, features.high_res, mask_inputs)
        else:
            embed = self.memory_conditioned_features(
                frame_idx, is_init_cond_frame, features, bank, num_frames, reverse
            )
            if prev_sam_mask_logits is not None and points is None:
                raise ValueError("prev_sam_mask_logits needs points to go with it")
            heads = self.forward_sam_heads(
                embed,
                points=points,
                mask_inputs=prev_sam_mask_logits,
                high_res=features.high_res,
                multimask_output=self.use_multimask(is_init_cond_frame, points),
            )
        out = FrameOutput(
            pred_masks=heads.low_res_masks,
            obj_ptr=heads.obj_ptr,
            object_score_logits=heads.object_score_logits,
            pred_masks_high_res=heads.high_res_masks,
        )
        if run_mem_encoder and self.num_maskmem > 0:
            out.maskmem_features, out.maskmem_pos_enc = self.encode_memory(
                features, heads.high_res_masks, heads.object_score_logits, points is not None
            )
        return out
