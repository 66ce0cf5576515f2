"""TinyViT (MobileSAM's vit_t encoder) against the reference `mobile_sam`, on shared weights."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from segany.errors import ImageError
from segany.modeling import tiny_vit
from segany.modeling.config import TinyViTConfig
from segany.modeling.tiny_vit import TinyViT

with warnings.catch_warnings():  # timm's deprecation notices on import
    warnings.simplefilter("ignore")
    from mobile_sam.modeling import tiny_vit_sam


def randomise(model: nn.Module) -> None:
    """Replace every weight and batch-norm statistic with seeded noise, so equivalence is not
    satisfied trivially by the zero-initialised parts (attention biases, MBConv's last norm).

    Kernels get std 1/sqrt(fan_in) so activations keep their scale through the stages; with a
    flat small std the first stages' contribution fades below float32 resolution at the output
    and a mistake there would go unseen.
    """
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("attention_biases"):
                p.normal_(0, 1.0)  # large enough that a wrong offset index would show
            elif p.ndim > 1:
                p.normal_(0, p[0].numel() ** -0.5)
            elif name.endswith("weight"):  # every 1-d weight is a norm's scale
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.1)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 0.1)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 1.5)


@pytest.fixture(scope="module")
def reference() -> nn.Module:
    """The encoder exactly as `mobile_sam.build_sam.build_sam_vit_t` builds it, randomised."""
    torch.manual_seed(0)
    model = tiny_vit_sam.TinyViT(
        img_size=1024,
        in_chans=3,
        num_classes=1000,
        embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2],
        num_heads=[2, 4, 5, 10],
        window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0,
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=4.0,
        local_conv_size=3,
        layer_lr_decay=0.8,
    )
    randomise(model)
    return model.eval()


def test_state_dict_matches_reference(reference: nn.Module) -> None:
    ours = TinyViT(TinyViTConfig()).state_dict()
    theirs = reference.state_dict()
    assert [(k, v.shape) for k, v in ours.items()] == [(k, v.shape) for k, v in theirs.items()]


def test_offset_index_buffers_match_reference(reference: nn.Module) -> None:
    """The bias index is derived, not saved: same values, and non-persistent in both."""
    ours = dict(TinyViT(TinyViTConfig()).named_buffers())
    theirs = {k: v for k, v in reference.named_buffers() if k.endswith("attention_bias_idxs")}
    assert theirs
    for name, idxs in theirs.items():
        assert torch.equal(ours[name], idxs), name
    assert not any(k.endswith("attention_bias_idxs") for k in reference.state_dict())


def test_embedding_matches_reference(reference: nn.Module) -> None:
    ours = TinyViT(TinyViTConfig())
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    torch.manual_seed(1)
    image = torch.randn(1, 3, 1024, 1024)
    with torch.inference_mode():
        expected = reference(image)
        got = ours(image)
    assert got.shape == (1, 256, 64, 64)
    assert got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


SMALL = TinyViTConfig(
    img_size=64, embed_dims=(8, 16, 20, 40), num_heads=(1, 2, 2, 4), out_chans=16, num_classes=5
)


def test_small_config_trains() -> None:
    """Train mode: batch-norm statistics are used and a gradient reaches every used parameter."""
    model = TinyViT(SMALL)
    randomise(model)  # MBConv's zero-initialised last norm would block gradients at init
    model.train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 16, 4, 4)
    out.square().mean().backward()
    assert model.patch_embed.seq[0].bn.num_batches_tracked.item() == 1
    unused = ("norm_head.", "head.")
    no_grad = [
        name
        for name, p in model.named_parameters()
        if not name.startswith(unused) and (p.grad is None or not p.grad.any())
    ]
    assert no_grad == []


def test_inference_paths_agree() -> None:
    """The in-place, folded-batch-norm path (no grad) equals the autograd path in eval mode."""
    torch.manual_seed(0)
    model = TinyViT(SMALL)
    randomise(model)
    model.eval()
    image = torch.randn(1, 3, 96, 64)  # not square and not a multiple of the windows
    with_grad = model(image)
    with torch.no_grad():
        without = model(image)
    assert with_grad.shape == (1, 16, 6, 4)
    torch.testing.assert_close(without, with_grad.detach(), rtol=0, atol=1e-5)


def test_row_bands_are_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """MBConv's banded CPU path (forced down to 8-row bands here) equals one whole-map pass."""
    torch.manual_seed(0)
    model = TinyViT(SMALL)
    randomise(model)
    model.eval()
    image = torch.randn(2, 3, 112, 64)  # a 28-row first stage: 3 full bands and a short one
    with torch.inference_mode():
        whole = model(image)
        monkeypatch.setattr(tiny_vit, "_BAND_ELEMENTS", 1)
        banded = model(image)
    torch.testing.assert_close(banded, whole, rtol=0, atol=1e-6)


def test_rejects_wrong_shapes() -> None:
    model = TinyViT(SMALL)
    with pytest.raises(ImageError, match="multiples of 16"):
        model(torch.zeros(1, 3, 64, 60))
    with pytest.raises(ImageError, match="B, 3, H, W"):
        model(torch.zeros(3, 64, 64))


def test_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="exactly 4 entries"):
        TinyViT(TinyViTConfig(depths=(2, 2, 6)))
    with pytest.raises(ValueError, match="not divisible"):
        TinyViT(TinyViTConfig(num_heads=(2, 3, 5, 10)))
