"""SAM 2's tracking step against the reference `SAM2Base.track_step` (sam2 1.1.0).

Both run the same frame sequences, each with its own memory bank, on the same random weights
(the reference's, perturbed, loaded strictly into ours): conditioning frames with clicks, a
box, a mask; frames tracked from memory; tracking in reverse; several objects; objects absent.
The tracking tests feed both the reference encoder's features, so that they measure the
tracking alone; `test_end_to_end_with_our_encoder` runs each side's own encoder too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from sam2.build_sam import build_sam2

import segany
from segany.errors import ConfigError
from segany.modeling.sam2.memory_bank import FrameOutput, MemoryBank, PointInputs
from segany.modeling.sam2.sine_position import SinePositionEncoding
from segany.modeling.sam2.tracking import FrameFeatures, Sam2Tracker, non_overlapping_logits

SIZE = 256
CONFIGS = {
    "sam2_hiera_t": "configs/sam2/sam2_hiera_t.yaml",
    "sam2.1_hiera_t": "configs/sam2.1/sam2.1_hiera_t.yaml",
}
TOL_STEP = 1e-4  # tracking alone, same features in
TOL_END = 1e-3  # with each side's own image encoder


def reference_model(config: str, seed: int = 0, object_bias: float = 1.0) -> torch.nn.Module:
    """The reference SAM2Base at SIZE px, random weights perturbed so that no layer is near
    its identity init. The object-score head's last bias is set to `object_bias`: random
    weights give scores near 0 whose sign the bias decides, so 1.0 makes the object clearly
    present on every frame the decoder sees (absent frames come from empty mask prompts) and
    -50 clearly absent."""
    torch.manual_seed(seed)
    size = [f"++model.image_size={SIZE}"]
    ref = build_sam2(config, None, device="cpu", hydra_overrides_extra=size)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.02 * torch.randn_like(p))
        ref.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(object_bias)
    return ref.eval()


def our_model(ref: torch.nn.Module, name: str) -> torch.nn.Module:
    """Our Sam2 at SIZE px with the reference's state dict, through the public loader."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.pt"
        torch.save({"model": ref.state_dict()}, path)
        return segany.build_sam(name, checkpoint=path, image_size=SIZE).eval()


@dataclass
class Prompt:
    """A frame's prompt for B objects: clicks (coords (B, P, 2), labels (B, P)) or a mask."""

    coords: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    mask: torch.Tensor | None = None


def clicks(batch: int, count: int, seed: int, box: bool = False) -> Prompt:
    g = torch.Generator().manual_seed(seed)
    coords = torch.rand(batch, count, 2, generator=g) * (SIZE - 1)
    labels = torch.randint(0, 2, (batch, count), generator=g, dtype=torch.int32)
    labels[:, 0] = 1
    if box:  # SAM 2 takes a box as two corner points labelled 2 and 3
        corners = torch.sort(torch.rand(batch, 2, 2, generator=g) * (SIZE - 1), dim=1).values
        coords = torch.cat([corners, coords], dim=1)
        box_labels = torch.tensor([[2, 3]], dtype=torch.int32).expand(batch, 2)
        labels = torch.cat([box_labels, labels], dim=1)
    return Prompt(coords, labels)


def disc_mask(batch: int, seed: int, empty: bool = False) -> Prompt:
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    masks = []
    for k in range(batch):
        cy, cx = 60 + 40 * k + seed, 100 + 30 * k
        masks.append(((yy - cy) ** 2 + (xx - cx) ** 2 < 40**2) & (not empty))
    return Prompt(mask=torch.stack(masks)[:, None].float())


def frame_features(count: int, seed: int = 0) -> list[dict]:
    """`count` frames' worth of random backbone outputs in the reference's `forward_image`
    layout: "backbone_fpn" (1, 32, S/4, S/4), (1, 64, S/8, S/8) (after conv_s0 / conv_s1) and
    (1, 256, S/16, S/16), and their sine position encodings ("vision_pos_enc")."""
    g = torch.Generator().manual_seed(seed)
    sine = SinePositionEncoding(256)
    frames = []
    for _ in range(count):
        fpn = [
            torch.randn(1, c, SIZE // stride, SIZE // stride, generator=g)
            for c, stride in ((32, 4), (64, 8), (256, 16))
        ]
        frames.append({"backbone_fpn": fpn, "vision_pos_enc": [sine(x) for x in fpn]})
    return frames


def expanded(backbone_out: dict, batch: int) -> dict:
    return {
        key: [x.expand(batch, -1, -1, -1) for x in backbone_out[key]]
        for key in ("backbone_fpn", "vision_pos_enc")
    }


def as_frame_features(backbone_out: dict) -> FrameFeatures:
    fpn, pos = backbone_out["backbone_fpn"], backbone_out["vision_pos_enc"]
    return FrameFeatures(fpn[2], pos[2], (fpn[0], fpn[1]))


@dataclass
class Step:
    """One track_step call: the frame, its prompt (None: tracked) and call options."""

    frame: int
    prompt: Prompt | None = None
    run_mem_encoder: bool = True
    reuse_previous_logits: bool = False  # feed this frame's previous logits with the clicks
    store: bool = True


def run_reference(ref, features, steps, batch, num_frames, reverse) -> Iterator[dict]:
    output_dict: dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    last: dict[int, torch.Tensor] = {}
    for step in steps:
        _, feats, pos, sizes = ref._prepare_backbone_features(expanded(features[step.frame], batch))
        prompt = step.prompt
        points = None
        if prompt is not None and prompt.coords is not None:
            points = {"point_coords": prompt.coords, "point_labels": prompt.labels}
        is_cond = prompt is not None
        out = ref.track_step(
            frame_idx=step.frame,
            is_init_cond_frame=is_cond and not output_dict["cond_frame_outputs"],
            current_vision_feats=feats,
            current_vision_pos_embeds=pos,
            feat_sizes=sizes,
            point_inputs=points,
            mask_inputs=None if prompt is None else prompt.mask,
            output_dict=output_dict,
            num_frames=num_frames,
            track_in_reverse=reverse,
            run_mem_encoder=step.run_mem_encoder,
            prev_sam_mask_logits=last.get(step.frame) if step.reuse_previous_logits else None,
        )
        last[step.frame] = out["pred_masks"]
        if step.store:
            kind = "cond_frame_outputs" if is_cond else "non_cond_frame_outputs"
            output_dict[kind][step.frame] = out
        yield out


def run_ours(tracker, features, steps, batch, num_frames, reverse) -> Iterator[FrameOutput]:
    bank = MemoryBank()
    last: dict[int, torch.Tensor] = {}
    for step in steps:
        frame = as_frame_features(expanded(features[step.frame], batch))
        prompt = step.prompt
        points = None
        if prompt is not None and prompt.coords is not None:
            points = PointInputs(prompt.coords, prompt.labels)
        is_cond = prompt is not None
        out = tracker.track_step(
            step.frame,
            is_init_cond_frame=is_cond and not bank.conditioning,
            features=frame,
            points=points,
            mask_inputs=None if prompt is None else prompt.mask,
            bank=bank,
            num_frames=num_frames,
            reverse=reverse,
            run_mem_encoder=step.run_mem_encoder,
            prev_sam_mask_logits=last.get(step.frame) if step.reuse_previous_logits else None,
        )
        last[step.frame] = out.pred_masks
        if step.store:
            (bank.conditioning if is_cond else bank.non_conditioning)[step.frame] = out
        yield out


def compare(expected: dict, got: FrameOutput, tol: float, where: str) -> dict[str, float]:
    pairs = {
        "pred_masks": (expected["pred_masks"], got.pred_masks),
        "pred_masks_high_res": (expected["pred_masks_high_res"], got.pred_masks_high_res),
        "obj_ptr": (expected["obj_ptr"], got.obj_ptr),
        "object_score_logits": (expected["object_score_logits"], got.object_score_logits),
    }
    if expected["maskmem_features"] is None:
        assert got.maskmem_features is None, where
    else:
        pairs["maskmem_features"] = (expected["maskmem_features"], got.maskmem_features)
        pairs["maskmem_pos_enc"] = (expected["maskmem_pos_enc"][0], got.maskmem_pos_enc)
    diffs = {}
    for key, (a, b) in pairs.items():
        assert a.shape == b.shape, f"{where} {key}: {tuple(a.shape)} vs {tuple(b.shape)}"
        diffs[key] = (a - b).abs().max().item()
        assert diffs[key] <= tol, f"{where} {key}: max |diff| {diffs[key]:.2e}"
    return diffs


def check(ref, tracker, steps, batch, num_frames, reverse=False, tol=TOL_STEP) -> list[dict]:
    features = frame_features(max(s.frame for s in steps) + 1)
    with torch.inference_mode():
        expected = list(run_reference(ref, features, steps, batch, num_frames, reverse))
        got = list(run_ours(tracker, features, steps, batch, num_frames, reverse))
    return [
        compare(e, g, tol, f"step {i} (frame {s.frame})")
        for i, (s, e, g) in enumerate(zip(steps, expected, got, strict=True))
    ]


@pytest.fixture(scope="module", params=list(CONFIGS))
def models(request):
    ref = reference_model(CONFIGS[request.param])
    return ref, our_model(ref, request.param)


def test_forward_tracking_matches_reference(models) -> None:
    """One object over 20 frames: clicks on frame 0 (first without encoding the memory, then
    refined with the previous logits), an empty mask on frame 5 (object absent: no-object
    pointer and spatial embedding in the bank), a mask on frame 9, a box and clicks on frame
    14; the other frames tracked (more than num_maskmem memories and max_obj_ptrs pointers)."""
    ref, ours = models
    steps = [Step(0, clicks(1, 1, seed=1), run_mem_encoder=False, store=False)]
    steps.append(Step(0, clicks(1, 2, seed=2), reuse_previous_logits=True))
    for t in range(1, 20):
        prompt = {
            5: disc_mask(1, seed=0, empty=True),
            9: disc_mask(1, seed=3),
            14: clicks(1, 2, seed=4, box=True),
        }.get(t)
        steps.append(Step(t, prompt))
    check(ref, Sam2Tracker(ours), steps, batch=1, num_frames=24)


def test_reverse_tracking_with_options_matches_reference(models) -> None:
    """Two objects tracked backwards from frame 11 with three conditioning frames (at most two
    attended to), memories every 2nd frame, binarised click masks."""
    ref, ours = models
    ref.binarize_mask_from_pts_for_mem_enc = True
    ref.max_cond_frames_in_attn = 2
    ref.memory_temporal_stride_for_eval = 2
    tracker = Sam2Tracker(
        ours,
        binarize_mask_from_points=True,
        max_cond_frames=2,
        memory_stride=2,
    )
    try:
        prompts = {11: clicks(2, 1, seed=5), 8: disc_mask(2, seed=6), 4: clicks(2, 3, seed=7)}
        steps = [Step(t, prompts.get(t)) for t in range(11, -1, -1)]
        check(ref, tracker, steps, batch=2, num_frames=12, reverse=True)
    finally:
        ref.binarize_mask_from_pts_for_mem_enc = False
        ref.max_cond_frames_in_attn = -1
        ref.memory_temporal_stride_for_eval = 1


@pytest.mark.parametrize("name", list(CONFIGS))
def test_absent_object_matches_reference(name: str) -> None:
    """An empty mask on frame 0, a negative object score everywhere after: -1024 logits, the
    no-object pointer, the no-object spatial embedding (2.1) in every memory."""
    ref = reference_model(CONFIGS[name], object_bias=-50.0)
    tracker = Sam2Tracker(our_model(ref, name))
    steps = [Step(0, disc_mask(1, seed=0, empty=True))] + [Step(t) for t in range(1, 5)]
    steps.append(Step(5, clicks(1, 1, seed=8)))
    check(ref, tracker, steps, batch=1, num_frames=6)
    features = frame_features(2)
    with torch.inference_mode():
        *_, out = run_ours(tracker, features, [Step(0, clicks(1, 1, seed=9))], 1, 2, False)
    assert (out.pred_masks == -1024.0).all()
    assert torch.allclose(out.obj_ptr, tracker.model.no_obj_ptr)


def test_end_to_end_with_our_encoder(models) -> None:
    """Each side's own image encoder on 4 random frames, then clicks on frame 0 and tracking."""
    ref, ours = models
    tracker = Sam2Tracker(ours)
    g = torch.Generator().manual_seed(11)
    images = [torch.randn(1, 3, SIZE, SIZE, generator=g) for _ in range(4)]
    steps = [Step(0, clicks(1, 1, seed=10))] + [Step(t) for t in range(1, 4)]
    with torch.inference_mode():
        features = [ref.forward_image(image) for image in images]
        expected = list(run_reference(ref, features, steps, 1, 4, False))
        bank = MemoryBank()
        for i, step in enumerate(steps):
            points = None
            if step.prompt is not None:
                points = PointInputs(step.prompt.coords, step.prompt.labels)
            frame = tracker.encode_frames(images[step.frame])
            out = tracker.track_step(step.frame, i == 0, frame, points, None, bank, 4)
            (bank.conditioning if i == 0 else bank.non_conditioning)[step.frame] = out
            compare(expected[i], out, TOL_END, f"frame {step.frame}")


def test_non_overlapping_memory_matches_reference(models) -> None:
    """Two objects' memories with each pixel kept by the object of highest logit."""
    ref, ours = models
    ref.non_overlap_masks_for_mem_enc = True
    tracker = Sam2Tracker(ours, non_overlapping_memory=True)
    g = torch.Generator().manual_seed(12)
    logits = 5 * torch.randn(2, 1, SIZE, SIZE, generator=g)
    scores = torch.tensor([[0.5], [-0.3]])
    backbone = expanded(frame_features(1)[0], 2)
    try:
        with torch.inference_mode():
            _, feats, _, sizes = ref._prepare_backbone_features(backbone)
            expected, expected_pos = ref._encode_new_memory(feats, sizes, logits, scores, False)
            got, got_pos = tracker.encode_memory(as_frame_features(backbone), logits, scores, False)
    finally:
        ref.non_overlap_masks_for_mem_enc = False
    assert (got - expected).abs().max().item() <= TOL_STEP
    assert (got_pos - expected_pos[0]).abs().max().item() == 0.0


def test_non_overlapping_logits_keeps_the_winner() -> None:
    logits = torch.tensor([[[[3.0, -1.0]]], [[[1.0, 2.0]]]])  # (2, 1, 1, 2)
    out = non_overlapping_logits(logits)
    assert out[:, 0, 0].tolist() == [[3.0, -10.0], [-10.0, 2.0]]
    single = logits[:1]
    assert non_overlapping_logits(single) is single


@pytest.mark.parametrize("options", [{"memory_stride": 0}, {"max_cond_frames": 1}])
def test_tracker_options_are_checked(models, options: dict) -> None:
    with pytest.raises(ConfigError):
        Sam2Tracker(models[1], **options)
