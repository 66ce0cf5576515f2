"""Every registered model family, at a tiny size: shapes, finite outputs, gradients reaching
every parameter, and a state-dict round trip through a checkpoint file. SAM 2 families (their
own model class) get the forward and round trip here; their gradients, keys and outputs against
the reference are in tests/test_sam2_*.py."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from reference_models import randomise
from segany.checkpoints import load_checkpoint_into
from segany.modeling.build import build_model
from segany.modeling.config import (
    ConvEncoderConfig,
    DecoderConfig,
    PyramidEncoderConfig,
    TinyViTConfig,
    ViTConfig,
)
from segany.registry import ModelSpec, get_spec, list_models

# Parameters that exist only so official checkpoints load unchanged and that SAM never uses:
# TinyViT's ImageNet classifier.
UNUSED_PREFIXES = ("image_encoder.norm_head.", "image_encoder.head.")
# A key bias adds the same constant to all of a query's attention scores, which the softmax
# removes: its true gradient is zero (the reference's numerics only give it rounding noise,
# segany's token->image attention never adds it).
ZERO_GRADIENT_SUFFIXES = ("token_to_image.k_proj.bias",)

# SAM's model class (`Sam`); the SAM 2 families build a `Sam2`.
SAM1_FAMILIES = [name for name in list_models() if get_spec(name).tracking is None]
SAM2_FAMILIES = [name for name in list_models() if get_spec(name).tracking is not None]

SMALL_DECODER = DecoderConfig(
    transformer_dim=32, num_heads=2, mlp_dim=64, iou_head_hidden_dim=32, mask_in_chans=8
)


def small_spec(name: str) -> ModelSpec:
    """The same architecture family as `name`, shrunk to run in milliseconds."""
    spec = get_spec(name)
    enc = spec.encoder
    if isinstance(enc, ViTConfig):
        # Keep the family's mix of windowed and global blocks (window does not divide the grid).
        small = dataclasses.replace(
            enc,
            img_size=128,
            embed_dim=32,
            depth=3,
            num_heads=2,
            out_chans=32,
            window_size=3,
            global_attn_indexes=(1,),
        )
    elif isinstance(enc, ConvEncoderConfig):
        small = dataclasses.replace(
            enc, img_size=64, dims=(8, 16), depths=(1, 2), num_heads=2, out_chans=32
        )
    elif isinstance(enc, PyramidEncoderConfig):
        small = dataclasses.replace(
            enc, img_size=64, dims=(8, 16, 24), depths=(1, 2, 1), num_heads=2, out_chans=32
        )
    else:
        assert isinstance(enc, TinyViTConfig)
        small = dataclasses.replace(
            enc,
            img_size=128,
            embed_dims=(8, 16, 24, 32),
            depths=(1, 1, 2, 1),
            num_heads=(1, 2, 2, 4),
            out_chans=32,
            num_classes=10,
        )
    return dataclasses.replace(spec, name=f"small_{name}", encoder=small, decoder=SMALL_DECODER)


def _inputs(spec: ModelSpec, batch: int = 2):
    torch.manual_seed(0)
    size = spec.image_size
    images = torch.rand(batch, 3, size, size) * 255
    points = torch.rand(batch, 3, 2) * size
    labels = torch.tensor([[1, 0, -1]] * batch)
    boxes = torch.tensor([[10.0, 20.0, 90.0, 100.0]] * batch)
    low = 4 * spec.embedding_size
    masks = torch.randn(batch, 1, low, low)
    return images, points, labels, boxes, masks


@pytest.mark.parametrize("name", SAM1_FAMILIES)
def test_forward_shapes_and_finite(name):
    spec = small_spec(name)
    model = build_model(spec).eval()
    images, points, labels, boxes, masks = _inputs(spec)
    grid = spec.embedding_size
    with torch.no_grad():
        embeddings = model.image_encoder(model.preprocess(images))
        assert embeddings.shape == (2, 32, grid, grid)
        sparse, dense = model.prompt_encoder((points, labels), boxes, masks)
        assert sparse.shape == (2, 5, 32) and dense.shape == (2, 32, grid, grid)
        answers = {}
        for multimask, outputs in ((True, 3), (False, 1), ("all", 4)):
            low, iou = model.mask_decoder(
                embeddings[:1], model.prompt_encoder.get_dense_pe(), sparse, dense, multimask
            )
            assert low.shape == (2, outputs, 4 * grid, 4 * grid)
            assert iou.shape == (2, outputs)
            assert torch.isfinite(low).all() and torch.isfinite(iou).all()
            answers[multimask] = low, iou
        single, multi = answers[False], answers[True]
        for k in range(2):  # logits, IoUs: the single output first, from one pass
            torch.testing.assert_close(answers["all"][k], torch.cat([single[k], multi[k]], dim=1))
        records = [
            {
                "image": images[0, :, :100, :],
                "original_size": (50, 64),
                "point_coords": points[:1],
                "point_labels": labels[:1],
            }
        ]
        (out,) = model(records, multimask_output=True)
    assert out["masks"].shape == (1, 3, 50, 64) and out["masks"].dtype == torch.bool


@pytest.mark.parametrize("name", SAM1_FAMILIES)
def test_gradient_reaches_every_parameter(name):
    spec = small_spec(name)
    # Perturbed so that zero-initialised scales (TinyViT's last MBConv batch norm) pass
    # gradients on; a default-initialised model would block them by design.
    model = randomise(build_model(spec), seed=0).train()
    images, points, labels, boxes, masks = _inputs(spec)
    embeddings = model.image_encoder(model.preprocess(images))
    image_pe = model.prompt_encoder.get_dense_pe()
    loss = 0.0
    # Points alone (padding point), then points + box + mask prompt: every prompt embedding.
    for prompts in (((points, labels), None, None), ((points, labels), boxes, masks)):
        sparse, dense = model.prompt_encoder(*prompts)
        low, iou = model.mask_decoder.predict_masks(embeddings, image_pe, sparse, dense)
        loss = loss + low.pow(2).mean() + iou.pow(2).mean()
    loss.backward()
    missing = [
        key
        for key, p in model.named_parameters()
        if not key.startswith(UNUSED_PREFIXES)
        and not key.endswith(ZERO_GRADIENT_SUFFIXES)
        and (p.grad is None or p.grad.abs().sum() == 0)
    ]
    assert not missing, f"no gradient reached: {missing}"


@pytest.mark.parametrize("name", SAM1_FAMILIES)
def test_state_dict_round_trip(name, tmp_path):
    spec = small_spec(name)
    torch.manual_seed(1)
    source = build_model(spec)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    torch.manual_seed(2)
    target = build_model(spec)
    load_checkpoint_into(target, path, spec)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def small_sam2_spec(name: str) -> ModelSpec:
    """SAM 2 model `name` with a Hiera of one block per stage at 64 px (decoder and memory
    at their official widths, which the Hiera's neck feeds)."""
    spec = get_spec(name)
    hiera = dataclasses.replace(
        spec.encoder,
        img_size=64,
        embed_dim=8,
        num_heads=1,
        stages=(1, 1, 1, 1),
        global_att_blocks=(3,),
        window_spec=(4, 2, 2, 2),
        window_pos_embed_bkg_spatial_size=(2, 2),
    )
    return dataclasses.replace(spec, name=f"small_{name}", encoder=hiera)


@pytest.mark.parametrize("name", SAM2_FAMILIES)
def test_sam2_families_predict_and_round_trip(name, tmp_path):
    import numpy as np

    from segany.predictor import SamPredictor

    spec = small_sam2_spec(name)
    torch.manual_seed(1)
    source = build_model(spec).eval()
    source.spec = spec
    predictor = SamPredictor(source)
    image = (np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8)
    predictor.set_image(image)
    masks, scores, low = predictor.predict(
        point_coords=np.array([[20.0, 30.0]]), point_labels=np.array([1])
    )
    assert masks.shape == (3, 48, 80) and masks.dtype == bool
    assert scores.shape == (3,) and np.isfinite(scores).all() and np.isfinite(low).all()
    path = tmp_path / "weights.pt"
    torch.save({"model": source.state_dict()}, path)
    torch.manual_seed(2)
    target = build_model(spec)
    load_checkpoint_into(target, path, spec)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_pe_scale_sets_the_frequencies_and_a_checkpoint_keeps_its_own(tmp_path):
    spec = small_spec("segany-tiny")
    key = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
    torch.manual_seed(3)
    plain = build_model(spec).state_dict()[key]
    torch.manual_seed(3)
    wide = dataclasses.replace(spec, decoder=dataclasses.replace(spec.decoder, pe_scale=4.0))
    scaled = build_model(wide)
    assert torch.allclose(scaled.state_dict()[key], 4.0 * plain)
    path = tmp_path / "weights.pth"
    torch.save(scaled.state_dict(), path)
    target = build_model(spec)  # pe_scale 1: the checkpoint's frequencies replace its own
    load_checkpoint_into(target, path, spec)
    assert torch.equal(target.state_dict()[key], scaled.state_dict()[key])


# Parameter counts of the official checkpoints (SAM paper / MobileSAM, whole model).
OFFICIAL_PARAMETERS = {"vit_b": 93_735_472, "vit_l": 312_342_832, "vit_h": 641_090_608}


def test_dense_pe_is_kept_for_inference_and_follows_the_weights():
    """Under inference mode the dense positional encoding is computed once; loading other
    frequencies or moving the model to another dtype gives the new encoding, and training
    (grad mode) always gets a fresh tensor autograd can use."""
    model = randomise(build_model(get_spec("test_tiny")), seed=0)
    encoder = model.prompt_encoder
    fresh = encoder.pe_layer(encoder.image_embedding_size).unsqueeze(0)
    with torch.inference_mode():
        first = encoder.get_dense_pe()
        assert encoder.get_dense_pe() is first
    torch.testing.assert_close(first, fresh, rtol=0, atol=0)
    state = model.state_dict()
    key = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
    state[key] = state[key] * 2
    model.load_state_dict(state)
    with torch.inference_mode():
        reloaded = encoder.get_dense_pe()
    assert reloaded is not first
    torch.testing.assert_close(
        reloaded, encoder.pe_layer(encoder.image_embedding_size).unsqueeze(0), rtol=0, atol=0
    )
    assert not torch.equal(reloaded, first)
    model.double()
    with torch.inference_mode():
        assert encoder.get_dense_pe().dtype == torch.float64
    training = encoder.get_dense_pe()
    assert not training.is_inference() and training is not encoder.get_dense_pe()


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMETERS))
def test_full_size_parameter_counts(name):
    with torch.device("meta"):
        model = build_model(get_spec(name))
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMETERS[name]


def test_registry_lists_every_variant():
    assert {"vit_h", "vit_l", "vit_b", "vit_t", "segany-tiny", "test_tiny"} <= set(list_models())
    for name in ("vit_h", "vit_l", "vit_b", "vit_t"):
        spec = get_spec(name)
        assert spec.checkpoint_name and spec.url and spec.sha256 and len(spec.sha256) == 64
