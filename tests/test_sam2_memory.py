"""SAM 2's memory attention and memory encoder against the reference `sam2` package: the
reference modules are built from each official config, given random weights, and their state
dicts loaded strictly into ours."""

from __future__ import annotations

import pytest
import sam2  # noqa: F401  (registers its config module with Hydra)
import torch
from hydra import compose
from hydra.utils import instantiate

from segany.modeling.sam2.config import TrackingConfig
from segany.modeling.sam2.memory_attention import MemoryAttention, axial_rope_angles
from segany.modeling.sam2.memory_encoder import MemoryEncoder

CONFIGS = [
    f"configs/{family}/{family}_hiera_{size}.yaml"
    for family in ("sam2", "sam2.1")
    for size in ("t", "s", "b+", "l")
]
GRID = (16, 16)


def _reference(config: str, part: str) -> torch.nn.Module:
    module = instantiate(compose(config_name=config).model[part], _recursive_=True)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():  # random weights, away from the identity-ish init
            p.add_(0.1 * torch.randn_like(p))
    return module.eval()


def _ours_memory_attention(config: str) -> MemoryAttention:
    tracking = TrackingConfig.for_version("2.1" if "sam2.1" in config else "2.0")
    return MemoryAttention(
        d_model=256,
        mem_dim=tracking.mem_dim,
        num_layers=tracking.memory_attention_layers,
        dim_feedforward=tracking.memory_attention_ff,
        rope_theta=tracking.rope_theta,
    ).eval()


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("num_ptr_tokens", [0, 16])
def test_memory_attention_matches_reference(config: str, num_ptr_tokens: int) -> None:
    ref = _reference(config, "memory_attention")
    ours = _ours_memory_attention(config)
    ours.load_state_dict(ref.state_dict(), strict=True)
    torch.manual_seed(1)
    b, n, frames = 2, GRID[0] * GRID[1], 3
    curr = torch.randn(b, n, 256)
    curr_pos = torch.randn(b, n, 256)
    memory = torch.randn(b, frames * n + num_ptr_tokens, 64)
    memory_pos = torch.randn_like(memory)
    with torch.no_grad():
        # the reference is sequence-first: (N, B, C)
        expected = ref(
            curr=[curr.transpose(0, 1)],
            curr_pos=[curr_pos.transpose(0, 1)],
            memory=memory.transpose(0, 1),
            memory_pos=memory_pos.transpose(0, 1),
            num_obj_ptr_tokens=num_ptr_tokens,
        ).transpose(0, 1)
        got = ours(curr, curr_pos, memory, memory_pos, GRID, num_obj_ptr_tokens=num_ptr_tokens)
    assert got.shape == (b, n, 256)
    assert (got - expected).abs().max().item() < 1e-4


def test_rope_angles_match_reference_frequencies() -> None:
    from sam2.modeling.position_encoding import compute_axial_cis

    cis = compute_axial_cis(dim=256, end_x=8, end_y=8, theta=10000.0)  # (64, 128) complex
    cos, sin = axial_rope_angles(256, (8, 8), 10000.0, torch.device("cpu"))
    assert torch.allclose(cos, cis.real, atol=1e-5)
    assert torch.allclose(sin, cis.imag, atol=1e-5)


def test_memory_attention_rejects_partial_grid() -> None:
    ours = MemoryAttention(num_layers=1).eval()
    curr = torch.randn(1, 16, 256)
    with pytest.raises(ValueError, match="whole copies"):
        ours(curr, curr, torch.randn(1, 20, 64), torch.randn(1, 20, 64), (4, 4))


@pytest.mark.parametrize("config", CONFIGS)
def test_memory_encoder_matches_reference(config: str) -> None:
    ref = _reference(config, "memory_encoder")
    tracking = TrackingConfig.for_version("2.1" if "sam2.1" in config else "2.0")
    ours = MemoryEncoder(in_dim=256, out_dim=tracking.mem_dim, fuser_layers=tracking.fuser_layers)
    ours.eval().load_state_dict(ref.state_dict(), strict=True)
    torch.manual_seed(2)
    pix_feat = torch.randn(2, 256, *GRID)
    mask = 20 * torch.rand(2, 1, 16 * GRID[0], 16 * GRID[1]) - 10
    with torch.no_grad():
        expected = ref(pix_feat, mask, skip_mask_sigmoid=True)
        features, positions = ours(pix_feat, mask)
    assert features.shape == (2, 64, *GRID)
    assert (features - expected["vision_features"]).abs().max().item() < 1e-4
    assert (positions - expected["vision_pos_enc"][0]).abs().max().item() == 0.0


def test_state_dict_keys_are_official() -> None:
    ref = _reference(CONFIGS[0], "memory_attention")
    assert set(_ours_memory_attention(CONFIGS[0]).state_dict()) == set(ref.state_dict())
    ref_enc = _reference(CONFIGS[0], "memory_encoder")
    assert set(MemoryEncoder().state_dict()) == set(ref_enc.state_dict())
