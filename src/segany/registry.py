"""The model registry: a name maps to a `ModelSpec`; every variant is built the same way."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import torch

from segany.checkpoints import detect_variant as _detect_among
from segany.checkpoints import load_checkpoint_into
from segany.edge_refinement import EdgeRefinement
from segany.errors import CheckpointError, ModelNotFoundError
from segany.model_spec import ModelSpec
from segany.modeling.build import build_model
from segany.modeling.config import (
    ConvEncoderConfig,
    DecoderConfig,
    PyramidEncoderConfig,
    TinyViTConfig,
    ViTConfig,
)
from segany.modeling.sam2.config import HieraConfig, TrackingConfig

if TYPE_CHECKING:
    from segany.modeling.sam import Sam

_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"

_SPECS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a spec to the registry (a name may be registered once)."""
    if spec.name in _SPECS:
        raise ValueError(f"model {spec.name!r} is already registered")
    _SPECS[spec.name] = spec
    return spec


register(
    ModelSpec(
        name="vit_h",
        encoder=ViTConfig(
            embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)
        ),
        checkpoint_name="sam_vit_h_4b8939.pth",
        url=_SAM_URL + "sam_vit_h_4b8939.pth",
        sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        size_bytes=2564550879,
        description="SAM ViT-H (641 M parameters), Meta AI",
    )
)
register(
    ModelSpec(
        name="vit_l",
        encoder=ViTConfig(
            embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)
        ),
        checkpoint_name="sam_vit_l_0b3195.pth",
        url=_SAM_URL + "sam_vit_l_0b3195.pth",
        sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        size_bytes=1249524607,
        description="SAM ViT-L (312 M parameters), Meta AI",
    )
)
register(
    ModelSpec(
        name="vit_b",
        encoder=ViTConfig(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
        checkpoint_name="sam_vit_b_01ec64.pth",
        url=_SAM_URL + "sam_vit_b_01ec64.pth",
        sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        size_bytes=375042383,
        description="SAM ViT-B (94 M parameters), Meta AI",
    )
)
register(
    ModelSpec(
        name="vit_t",
        encoder=TinyViTConfig(),
        checkpoint_name="mobile_sam.pt",
        url="https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
        sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        size_bytes=40728226,
        licence="Apache-2.0",
        description="MobileSAM TinyViT-5M encoder with SAM's decoder (Zhang et al., 2023)",
    )
)
# SAM 2 (July 2024) and SAM 2.1 (September 2024), Meta AI: Hiera encoders of four sizes, one
# decoder; 2.1 differs in its memory options (`TrackingConfig.for_version`).
_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/"
_HIERA = {
    "t": ("tiny", HieraConfig(), "39"),
    "s": (
        "small",
        HieraConfig(stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13)),
        "46",
    ),
    "b+": (
        "base_plus",
        HieraConfig(
            embed_dim=112,
            num_heads=2,
            stages=(2, 3, 16, 3),
            global_att_blocks=(12, 16, 20),
            window_pos_embed_bkg_spatial_size=(14, 14),
        ),
        "81",
    ),
    "l": (
        "large",
        HieraConfig(
            embed_dim=144,
            num_heads=2,
            stages=(2, 6, 36, 4),
            global_att_blocks=(23, 33, 43),
            window_spec=(8, 4, 16, 8),
        ),
        "224",
    ),
}
# Long names, as the official files and the reference's configs spell them, to short ones.
ALIASES: dict[str, str] = {}
for _version, _folder in (("2", "072824"), ("2.1", "092824")):
    for _short, (_long, _hiera, _millions) in _HIERA.items():
        _file = f"sam{_version}_hiera_{_long}.pt"
        register(
            ModelSpec(
                name=f"sam{_version}_hiera_{_short}",
                encoder=_hiera,
                tracking=TrackingConfig.for_version("2.1" if _version == "2.1" else "2.0"),
                pixel_mean=(123.675, 116.28, 103.53),
                pixel_std=(58.395, 57.12, 57.375),
                checkpoint_name=_file,
                url=f"{_SAM2_URL}{_folder}/{_file}",
                # SAM2AutomaticMaskGenerator's default; its other options are SAM's.
                amg_defaults=MappingProxyType({"pred_iou_thresh": 0.8}),
                description=f"SAM {_version} Hiera-{_long.replace('_', '+').replace('+plus', '+')} "
                f"({_millions} M parameters), Meta AI; images and video",
            )
        )
        ALIASES[f"sam{_version}_hiera_{_long}"] = f"sam{_version}_hiera_{_short}"
# segany's own models use SAM's decoder at width 128.
SEGANY_DECODER = DecoderConfig(
    transformer_dim=128, num_heads=4, mlp_dim=512, iou_head_hidden_dim=128
)
# segany's own models, trained by `segany train` on synthetic scenes; their weights ship in
# the package (see `bundled`), so they work without a download.
# The first built-in model (issue 4): 256 px, a stride-8 conv encoder.
register(
    ModelSpec(
        name="segany-tiny",
        encoder=ConvEncoderConfig(),
        decoder=SEGANY_DECODER,
        bundled="segany_tiny.safetensors",
        # Measured by training/segany-tiny/amg_defaults.py (AR@100 on held-out scenes): with
        # SAM's 0.88 / 0.95 this model keeps almost nothing (0.02), with these 0.26.
        amg_defaults=MappingProxyType(
            {"points_per_side": 32, "pred_iou_thresh": 0.3, "stability_score_thresh": 0.6}
        ),
        licence="Apache-2.0 (trained by segany on its synthetic scenes)",
        description="segany's first built-in model: small conv encoder + SAM decoder, 256 px input",
    )
)
# The built-in model, the default (issue 13): 512 px input, a stride-8 embedding from the
# pyramid encoder, trained by training/segany-tiny-v2/train.sh on procedural and photo-texture
# scenes.
register(
    ModelSpec(
        name="segany-tiny-v2",
        encoder=PyramidEncoderConfig(),
        decoder=SEGANY_DECODER,
        bundled="segany_tiny_v2.safetensors",
        # Measured by training/segany-tiny/amg_defaults.py (AR@100 on held-out v2 scenes and
        # photo scenes): SAM's 0.88 / 0.95 keep almost nothing (0.03), these 0.38.
        amg_defaults=MappingProxyType(
            {"points_per_side": 32, "pred_iou_thresh": 0.35, "stability_score_thresh": 0.6}
        ),
        # bfloat16 encoder: 44 ms instead of 60 ms for a 512 px input on this project's 2-core
        # CPU (AVX512-BF16), embedding within 0.4 %, 1-point mIoU on 16 validation scenes
        # 0.674 against 0.673 (README, "segany-tiny v2").
        encoder_autocast=torch.bfloat16,
        # Its logits lie on a stride-4 grid: a guided filter (radius 16 input pixels) snaps the
        # outlines to the image's colour edges. On 12 validation scenes (136 masks, stage 9's
        # weights): 1-point mIoU 0.665 -> 0.713, oracle 0.760 -> 0.820, NoC@85 9.2 -> 5.4,
        # boundary F 0.600 -> 0.675 (the fast filter: 0.673); radius 8 and 32 did less on both the
        # scenes and the photo scenes (training/segany-tiny/experiments/edges.py).
        edge_refinement=EdgeRefinement(radius=16, eps=3e-4),
        licence="Apache-2.0 (trained by segany on its synthetic scenes)",
        description="segany's built-in model (the default): pyramid encoder + SAM decoder, "
        "512 px input",
    )
)
# A tiny variant of the same architecture for fast tests: 256 px input, 16x16 embedding.
register(
    ModelSpec(
        name="test_tiny",
        encoder=ViTConfig(
            img_size=256,
            embed_dim=64,
            depth=2,
            num_heads=2,
            out_chans=32,
            window_size=4,
            global_attn_indexes=(1,),
        ),
        decoder=DecoderConfig(
            transformer_dim=32, num_heads=2, mlp_dim=64, iou_head_hidden_dim=32, mask_in_chans=8
        ),
        description="tiny random-weight SAM for tests (no official weights)",
    )
)

DEFAULT_MODEL = "segany-tiny-v2"


def list_models() -> list[str]:
    """Names of every registered model, in registration order."""
    return list(_SPECS)


def get_spec(name: str) -> ModelSpec:
    """The `ModelSpec` registered under `name`; `ModelNotFoundError` names the closest known
    names and lists them all."""
    try:
        return _SPECS[ALIASES.get(name, name)]
    except (KeyError, TypeError):
        known = ", ".join(_SPECS)
        close = difflib.get_close_matches(str(name), list(_SPECS), n=2, cutoff=0.5)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        raise ModelNotFoundError(f"unknown model {name!r}{hint}; known models: {known}") from None


def detect_variant(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Name of the first registered model whose shapes this state dict shows, else None
    (see `segany.checkpoints.detect_variant`); a model is recognised once registered."""
    return _detect_among(state_dict, _SPECS.values())


class WeightsNotFoundError(CheckpointError):
    """No trained weights are available for a model, and random ones were not asked for.

    reason: "not_downloaded" (official weights exist but are not in the cache), "missing"
    (the weights shipped with segany are gone: a broken install) or "none" (the model has no
    trained weights anywhere); `path` is where they were looked for, if anywhere.
    """

    def __init__(self, message: str, spec: ModelSpec, reason: str, path: Path | None) -> None:
        super().__init__(message)
        self.spec, self.reason, self.path = spec, reason, path


def resolve_weights(
    spec: ModelSpec, checkpoint: str | Path | None = None, pretrained: bool = True
) -> Path | None:
    """The weights file a model is built with; None means random weights.

    The one rule for every entry point (`build_sam`, the engine's `ModelSource`, the CLI):
    `checkpoint` if given; else, with `pretrained`, the weights shipped with segany
    (segany-tiny-v2, segany-tiny) or the downloaded official file (vit_b, ...), and
    `WeightsNotFoundError` when there are none; without `pretrained`, random weights. A model
    never silently gets random weights.
    """
    if checkpoint is not None:
        return Path(checkpoint).expanduser()
    if not pretrained:
        return None
    if spec.bundled_path is not None:
        if not spec.bundled_path.is_file():
            raise WeightsNotFoundError(
                f"the weights of {spec.name} that ship with segany are missing "
                f"({spec.bundled_path}); reinstall segany, or give a checkpoint",
                spec,
                "missing",
                spec.bundled_path,
            )
        return spec.bundled_path
    downloaded = spec.downloaded_path
    if downloaded is None:
        raise WeightsNotFoundError(
            f"model {spec.name} has no trained weights: give a checkpoint, or build it with "
            "pretrained=False for random weights (meaningless masks, for tests)",
            spec,
            "none",
            None,
        )
    if not downloaded.is_file():
        raise WeightsNotFoundError(
            f"the official weights of {spec.name} are not downloaded (looked for {downloaded}): "
            f"fetch them with segany.download.download_checkpoint({spec.name!r}), give a "
            "checkpoint, or build with pretrained=False for random weights",
            spec,
            "not_downloaded",
            downloaded,
        )
    return downloaded


def build_sam(
    name: str = DEFAULT_MODEL,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    pretrained: bool = True,
    seed: int | None = None,
    image_size: int | None = None,
    edge_refinement: bool = True,
) -> Sam:
    """Build model `name` with the weights `resolve_weights` picks, in eval mode on `device`.

    checkpoint: an official .pth/.pt or a .safetensors file; without one, `pretrained` loads
        the weights shipped with segany (segany-tiny-v2, segany-tiny) or the downloaded
        official file, and raises `WeightsNotFoundError` if there are none.
    pretrained=False (and no checkpoint): random weights, drawn from torch's global RNG, or
        from `seed` when given (the global RNG is then left untouched).
    image_size: run the model at this input size instead of its own (`ModelSpec.at_image_size`;
        the same weights load).
    edge_refinement=False: its predictor's masks are the plain thresholded logits even where
        the spec sets an edge refinement (segany-tiny-v2's; `ModelSpec.edge_refinement`).
    The model's `spec` attribute is the `ModelSpec` it was built from.
    """
    spec = get_spec(name)
    weights = resolve_weights(spec, checkpoint, pretrained)
    if image_size is not None:
        spec = spec.at_image_size(image_size)
    if not edge_refinement:
        spec = dataclasses.replace(spec, edge_refinement=None)
    if weights is None and seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(spec)
    else:
        model = build_model(spec)
    if weights is not None:
        # Drop the random initial weights before reading the file: loading then holds one
        # copy of the weights, not two (2.5 GB less at the peak for vit_h).
        _release_state(model)
        load_checkpoint_into(model, weights, spec, list(_SPECS.values()))
    model.spec = spec
    return model.to(device).eval()


def _release_state(model: torch.nn.Module) -> None:
    """Replace every parameter and persistent buffer by a storage-less meta tensor of the
    same shape (kept for the key and shape checks); the checkpoint then assigns real ones."""
    for module in model.modules():
        own = {key for key in module.state_dict(keep_vars=True) if "." not in key}
        for key, param in list(module.named_parameters(recurse=False)):
            setattr(module, key, torch.nn.Parameter(param.to("meta"), param.requires_grad))
        for key, buffer in list(module.named_buffers(recurse=False)):
            if key in own:  # persistent: the checkpoint has it
                module.register_buffer(key, buffer.to("meta"))
