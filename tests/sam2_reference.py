"""Reference SAM 2 models (sam2 1.1.0) with seeded random weights, saved as Meta's
`{"model": state_dict}` files, for the equivalence tests of segany's SAM 2 image path."""

from __future__ import annotations

from pathlib import Path

import torch
from sam2.build_sam import build_sam2
from sam2.sam2_image_predictor import SAM2ImagePredictor
from torch import nn

NAMES = [f"sam{v}_hiera_{s}" for v in ("2", "2.1") for s in ("t", "s", "b+", "l")]


def reference_config(name: str) -> str:
    """The official Hydra config of a registry name, e.g. configs/sam2.1/sam2.1_hiera_t.yaml."""
    version, size = name.split("_hiera_")
    return f"configs/{version}/{version}_hiera_{size}.yaml"


def build_reference(name: str, image_size: int = 256, seed: int = 0) -> nn.Module:
    """The reference `SAM2Base` of `name` at `image_size`, in eval mode, with every weight
    drawn at a scale that keeps activations alive through the network (the reference's own
    initialisation zeroes the position embeddings and gives near-constant masks)."""
    model = build_sam2(
        reference_config(name),
        None,
        device="cpu",
        hydra_overrides_extra=[f"++model.image_size={image_size}"],
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if "pos_embed" in key:
                p.copy_(noise)
            elif p.ndim > 1:
                p.copy_(noise * p[0].numel() ** -0.5)
            elif key.endswith("weight"):  # norms' scales
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)
    return model.eval()


def save_checkpoint(model: nn.Module, path: Path) -> Path:
    """Save `model` as an official SAM 2 checkpoint file: {"model": state_dict}."""
    torch.save({"model": model.state_dict()}, path)
    return path


def reference_predictor(model: nn.Module) -> SAM2ImagePredictor:
    """`SAM2ImagePredictor` for a model of any input size (it hard-codes the 1024 px grids)."""
    predictor = SAM2ImagePredictor(model)
    size = model.image_size
    predictor._bb_feat_sizes = [(size // 4,) * 2, (size // 8,) * 2, (size // 16,) * 2]
    return predictor
