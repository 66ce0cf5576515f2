"""AutomaticMaskGenerator with a SAM 2 model against the reference SAM2AutomaticMaskGenerator
(sam2 1.1.0) on the same random weights, at 256 px.

Random weights predict speckled masks that span the image, so the real-weight cases use a
small stability offset and thresholds near the middle of the scores, and disable NMS; they
cannot exercise crops (every crop's masks touch its edges). The engineered cases put one
deterministic function of the prompt point (and of the mask input, for m2m) in both models'
prompt encoder and mask decoder: nested discs, inside crops, with NMS on.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from conftest import synthetic_image
from segany import AutomaticMaskGenerator, build_sam
from segany.modeling.sam2.mask_decoder import DecoderOutput

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SIZE = 256


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A {"model": sd} file of the reference sam2.1_hiera_t at 256 px, random weights."""
    path = tmp_path_factory.mktemp("sam2_amg") / "sam2.1_hiera_t_256.pt"
    torch.save({"model": _reference_model().state_dict()}, path)
    return path


def _reference_model():
    from sam2.build_sam import build_sam2

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_sam2(
            CONFIG, None, device="cpu", hydra_overrides_extra=[f"++model.image_size={SIZE}"]
        )
    return model.eval()


def _models(checkpoint):
    reference = _reference_model()
    reference.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    return reference, build_sam("sam2.1_hiera_t", checkpoint=checkpoint, image_size=SIZE)


def _reference_masks(model, image, **options):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    generator = SAM2AutomaticMaskGenerator(model, **options)
    # The reference predictor's feature grids are written for 1024 px inputs.
    generator.predictor._bb_feat_sizes = [(SIZE // 4,) * 2, (SIZE // 8,) * 2, (SIZE // 16,) * 2]
    with torch.no_grad():
        return generator.generate(image)


def assert_same_masks(expected, got):
    """One-to-one: each reference mask has its own match with IoU >= 0.99 and the same scores,
    point and crop box."""
    assert len(got) == len(expected), (len(got), len(expected))
    free = list(range(len(got)))
    for ref in expected:
        ref_mask = np.asarray(ref["segmentation"], dtype=bool)

        def iou(j, ref_mask=ref_mask):
            mask = np.asarray(got[j]["segmentation"], dtype=bool)
            union = np.logical_or(mask, ref_mask).sum()
            return np.logical_and(mask, ref_mask).sum() / union if union else 1.0

        best = max(free, key=iou)
        assert iou(best) >= 0.99, iou(best)
        free.remove(best)
        rec = got[best]
        assert abs(rec["predicted_iou"] - ref["predicted_iou"]) <= 1e-4
        assert abs(rec["stability_score"] - ref["stability_score"]) <= 1e-3
        assert rec["crop_box"] == list(ref["crop_box"])
        np.testing.assert_allclose(rec["point_coords"], ref["point_coords"], atol=1e-4)


# --- real random-weight models -----------------------------------------------------------------

REAL_CASES = {
    "multimask": dict(stability_score_thresh=0.4),
    "m2m": dict(use_m2m=True, stability_score_thresh=0.69),
    "single": dict(multimask_output=False, stability_score_thresh=0.4),
}


@pytest.mark.parametrize("case", list(REAL_CASES))
def test_random_weights_match_reference(case, checkpoint):
    reference, model = _models(checkpoint)
    image = synthetic_image(96, 128, seed=3)
    options = dict(
        points_per_side=4,
        pred_iou_thresh=0.51,
        stability_score_offset=0.05,
        box_nms_thresh=1.0,
        **REAL_CASES[case],
    )
    expected = _reference_masks(reference, image, **options)
    got = AutomaticMaskGenerator(model, **options).generate(image)
    assert len(expected) >= 8
    assert_same_masks(expected, got)


# --- engineered decoder: structured masks -------------------------------------------------------


def _nested_discs(xy, dense, multimask_output):
    """Logits (B, T, S/4, S/4) and IoUs (B, T) from the input-frame points xy (B, 2) and the
    mask input `dense` (B, 1, S/4, S/4) or None: nested discs around each point (the single
    output first), the largest with a detached island; a mask input adds itself, damped."""
    low = SIZE // 4
    centres = (torch.arange(low, dtype=torch.float32) + 0.5) * 4
    x, y = xy[:, 0, None, None], xy[:, 1, None, None]
    dist = torch.sqrt((centres[None, None, :] - x) ** 2 + (centres[None, :, None] - y) ** 2)
    size = 0.6 + 0.8 * torch.frac(torch.sin(xy[:, 0] * 0.37 + xy[:, 1] * 0.11) * 43.7).abs()
    radii = torch.tensor([14.0, 7.0, 15.0, 30.0])[None, :] * size[:, None]  # (B, 4)
    logits = (radii[:, :, None, None] - dist[:, None]) / 3.0  # (B, 4, low, low)
    island = torch.sqrt(
        (centres[None, None, :] - x - 40.0) ** 2 + (centres[None, :, None] - y) ** 2
    )
    logits[:, 3] = torch.maximum(logits[:, 3], (4.0 - island) / 3.0)
    iou = torch.frac(torch.cos(xy[:, :1] * 0.05 + torch.arange(4.0) * 1.3) * 17.0).abs()
    if dense is not None:
        logits = logits + 0.25 * dense
        iou = torch.frac(iou + dense.mean(dim=(1, 2, 3))[:, None].abs())
    chosen = slice(1, None) if multimask_output else slice(0, 1)
    return logits[:, chosen], iou[:, chosen]


def _engineer(model, ours: bool):
    """Patch `model`'s prompt encoder and mask decoder with `_nested_discs`; the image
    encoder, the predictors and the generators stay real."""

    def prompt_forward(points, boxes, masks):
        # The points (B, 1, 2) stand for the sparse embedding, the mask input for the dense one.
        return (None if points is None else points[0].float()), masks

    def decode(sparse, dense, multimask_output, skip_below_iou=None):
        logits, iou = _nested_discs(sparse[:, 0], dense, multimask_output)
        if skip_below_iou is not None:  # as the real decoder: no masks for hopeless prompts
            logits[~(iou > skip_below_iou).any(dim=1)] = -torch.inf
        tokens, scores = torch.zeros(len(iou), 1, 8), torch.ones(len(iou), 1)
        return logits, iou, tokens, scores

    if ours:

        def decoder_forward(embed, pe, sparse, dense, multimask, high_res, side=None, skip=None):
            return DecoderOutput(*decode(sparse, dense, multimask, skip))

        model.sam_mask_decoder.image_side = lambda *args: None
    else:

        def decoder_forward(**kwargs):
            return decode(
                kwargs["sparse_prompt_embeddings"],
                kwargs["dense_prompt_embeddings"],
                kwargs["multimask_output"],
            )

    model.sam_prompt_encoder.forward = prompt_forward
    model.sam_mask_decoder.forward = decoder_forward
    return model


@pytest.mark.parametrize("m2m", [False, True], ids=["plain", "m2m"])
@pytest.mark.parametrize("crop_n_layers", [0, 1])
def test_structured_masks_match_reference(crop_n_layers, m2m, checkpoint):
    reference, model = _models(checkpoint)
    reference, model = _engineer(reference, ours=False), _engineer(model, ours=True)
    image = synthetic_image(180, 240, seed=7)
    options = dict(
        points_per_side=8,
        points_per_batch=32,
        pred_iou_thresh=0.3,
        stability_score_thresh=0.6,
        crop_n_layers=crop_n_layers,
        crop_n_points_downscale_factor=2,
        use_m2m=m2m,
    )
    expected = _reference_masks(reference, image, **options)
    got = AutomaticMaskGenerator(model, **options).generate(image)
    assert len(expected) >= 10
    if crop_n_layers:
        assert len({tuple(r["crop_box"]) for r in expected}) > 1  # crops' masks survive
    assert_same_masks(expected, got)


def test_sam2_defaults_are_the_references(checkpoint):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    _, model = _models(checkpoint)
    config = AutomaticMaskGenerator(model).config
    compared = 0
    for name, parameter in inspect.signature(SAM2AutomaticMaskGenerator).parameters.items():
        if hasattr(config, name):
            assert getattr(config, name) == parameter.default, name
            compared += 1
    assert compared >= 15
