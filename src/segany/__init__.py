"""segany: Segment Anything — exact, fast SAM models, predictor and tools."""

from segany.errors import (
    CheckpointError,
    ConfigError,
    DownloadError,
    ImageError,
    ModelNotFoundError,
    PromptError,
    SeganyError,
)
from segany.registry import ModelSpec, build_sam, get_spec, list_models

__version__ = "0.1.0"

__all__ = [
    "AmgConfig",
    "AutomaticMaskGenerator",
    "CheckpointError",
    "ConfigError",
    "DownloadError",
    "ImageError",
    "ModelNotFoundError",
    "ModelSpec",
    "PromptError",
    "SamPredictor",
    "SeganyError",
    "VideoPredictor",
    "build_sam",
    "get_spec",
    "list_models",
]


def __getattr__(name: str):
    # The predictor imports PIL and the transforms; keep `import segany` light.
    if name == "SamPredictor":
        from segany.predictor import SamPredictor

        return SamPredictor
    if name == "AmgConfig":
        from segany.masks.config import AmgConfig

        return AmgConfig
    if name == "AutomaticMaskGenerator":
        from segany.masks.generator import AutomaticMaskGenerator

        return AutomaticMaskGenerator
    if name == "VideoPredictor":
        from segany.video.predictor import VideoPredictor

        return VideoPredictor
    raise AttributeError(f"module 'segany' has no attribute {name!r}")
