"""SAM 2's image encoder (Hiera trunk + FPN neck) against the reference `sam2` package, on
shared random weights, for all eight SAM 2 / 2.1 configs."""

from __future__ import annotations

import dataclasses

import pytest
import sam2  # noqa: F401  (initialises Hydra with the reference's configs)
import torch
from hydra import compose
from hydra.utils import instantiate
from torch import nn

from segany.errors import ImageError
from segany.modeling.build import build_image_encoder
from segany.modeling.sam2.image_encoder import BackboneOutput, Sam2ImageEncoder
from segany.registry import get_spec

NAMES = [f"sam{v}_hiera_{s}" for v in ("2", "2.1") for s in ("t", "s", "b+", "l")]


def reference_encoder(name: str) -> nn.Module:
    """The reference `ImageEncoder`, instantiated from the `image_encoder` node of the official
    Hydra config of `name` (as `build_sam2` does; it does not depend on the input size), with
    seeded random weights (the zero-initialised position embeddings too)."""
    version = "sam2.1" if name.startswith("sam2.1") else "sam2"
    config = compose(config_name=f"configs/{version}/{version}_hiera_{name.rsplit('_', 1)[1]}")
    encoder = instantiate(config.model.image_encoder, _recursive_=True).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for key, p in encoder.named_parameters():
            if key.startswith("trunk.pos_embed"):
                p.normal_(0, 1.0)
            elif p.ndim > 1:  # keep activations at scale through 12-48 blocks
                p.normal_(0, p[0].numel() ** -0.5)
            elif key.endswith("weight"):  # the norms' scales
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.1)
    return encoder


def ours_like(reference: nn.Module, name: str, size: int) -> Sam2ImageEncoder:
    config = dataclasses.replace(get_spec(name).encoder, img_size=size)
    ours = Sam2ImageEncoder(config).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    return ours


def assert_same(ref_out: dict, ours: BackboneOutput, size: int) -> None:
    assert len(ours.features) == len(ours.positions) == 3
    pairs = zip(ref_out["backbone_fpn"], ours.features, strict=True)
    for level, (expected, got) in enumerate(pairs):
        side = size // (4 * 2**level)
        assert got.shape == expected.shape == (1, 256, side, side)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    for expected, got in zip(ref_out["vision_pos_enc"], ours.positions, strict=True):
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_matches_reference(name: str) -> None:
    size = 256
    reference = reference_encoder(name)
    ours = ours_like(reference, name, size)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert_same(reference(x), ours(x), size)


def test_matches_reference_at_1024() -> None:
    name, size = "sam2.1_hiera_t", 1024
    reference = reference_encoder(name)
    ours = ours_like(reference, name, size)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert_same(reference(x), ours(x), size)


def test_state_dict_keys_are_the_reference_ones() -> None:
    reference = reference_encoder("sam2_hiera_b+")
    ours = build_image_encoder(get_spec("sam2_hiera_b+").encoder)
    assert isinstance(ours, Sam2ImageEncoder) and ours.img_size == 1024
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_batch_and_position_cache_follow_the_weights() -> None:
    """A batch gives each image's own result; the cached position embedding is rebuilt when
    the weights change in place (as `load_state_dict` does)."""
    name, size = "sam2.1_hiera_t", 128
    reference = reference_encoder(name)
    ours = ours_like(reference, name, size)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        both = ours(x)
        second = ours(x[1:])
    for a, b in zip(both.features, second.features, strict=True):
        torch.testing.assert_close(a[1:], b, atol=1e-5, rtol=0)
    with torch.no_grad():
        reference.trunk.pos_embed.mul_(-1)
        reference.trunk.pos_embed_window.add_(1)
        ours.load_state_dict(reference.state_dict())
    with torch.inference_mode():
        assert_same(reference(x[:1]), ours(x[:1]), size)


def test_gradient_reaches_every_parameter() -> None:
    ours = Sam2ImageEncoder(dataclasses.replace(get_spec("sam2_hiera_t").encoder, img_size=64))
    out = ours(torch.randn(1, 3, 64, 64))
    sum(f.square().mean() for f in out.features).backward()
    missing = [k for k, p in ours.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


@pytest.mark.parametrize("shape", [(1, 4, 256, 256), (1, 3, 256, 240), (3, 256, 256)])
def test_bad_input_is_a_clear_error(shape: tuple[int, ...]) -> None:
    ours = Sam2ImageEncoder(dataclasses.replace(get_spec("sam2_hiera_t").encoder, img_size=256))
    with pytest.raises(ImageError, match="multiples of 32"):
        ours(torch.zeros(shape))


def test_config_rejects_size_not_multiple_of_32() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        dataclasses.replace(get_spec("sam2_hiera_t").encoder, img_size=1000)
