"""`CachedEmbedding`: what the cache stores for one image, and the two predictor helpers that
make one (`encode`) and use one (`restore`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch

from segany.errors import ImageError
from segany.validation import check_original_size

if TYPE_CHECKING:  # the predictor pulls in PIL and the transforms; the cache does not need them
    from segany.predictor import SamPredictor

# The stride-16 embedding's name among a predictor's image features (SAM's only one).
IMAGE_EMBED = "image_embed"


# eq=False: dataclass equality would compare tensors with `==` and fail on the truth value.
@dataclass(frozen=True, eq=False)
class CachedEmbedding:
    """One image's encoder output.

    features: name -> (1, C, h, w) float32 CPU tensor, as the predictor's
        `get_image_features()` returns them: {"image_embed": (1, 256, 64, 64)} for the SAM
        ViTs; a SAM 2 model adds its high-resolution levels ("high_res_feat_s0" (1, 32, 256,
        256), "high_res_feat_s1" (1, 64, 128, 128)). A bare tensor is taken as the
        "image_embed" alone. Shared by every caller that gets it from a cache: treat them as
        read-only.
    original_size: (H, W) pixels of the image it was computed from, needed to map prompts and
        masks between the original frame and the model-input frame.
    """

    features: Mapping[str, torch.Tensor]
    original_size: tuple[int, int]

    def __post_init__(self) -> None:
        features = self.features
        if isinstance(features, torch.Tensor):
            features = {IMAGE_EMBED: features}
        if not isinstance(features, Mapping) or not features:
            raise ImageError(
                "features must be a non-empty dict of name -> tensor (get_image_features()), "
                f"got {type(features).__name__}"
            )
        checked = {}
        for name, tensor in sorted(features.items()):
            if not isinstance(name, str) or not isinstance(tensor, torch.Tensor):
                raise ImageError(
                    f"features must map names to torch.Tensors, got {name!r}: "
                    f"{type(tensor).__name__}"
                )
            if tensor.ndim != 4 or tensor.shape[0] != 1:
                raise ImageError(
                    f"feature {name!r} must be (1, C, h, w), got shape {tuple(tensor.shape)}"
                )
            if tensor.dtype != torch.float32 or tensor.device.type != "cpu":
                raise ImageError(
                    f"feature {name!r} must be a float32 CPU tensor, got {tensor.dtype} on "
                    f"{tensor.device} (use segany.cache.encode, or .to('cpu', torch.float32))"
                )
            # The disk store hashes and writes raw buffers, which need one contiguous block.
            checked[name] = tensor.contiguous()
        h, w = check_original_size(self.original_size)
        object.__setattr__(self, "features", MappingProxyType(checked))
        object.__setattr__(self, "original_size", (h, w))

    @property
    def embedding(self) -> torch.Tensor:
        """The stride-16 image embedding, (1, C, h, w) ("image_embed"; the only feature there
        is, for a cache entry made of another name)."""
        if IMAGE_EMBED in self.features:
            return self.features[IMAGE_EMBED]
        if len(self.features) == 1:
            return next(iter(self.features.values()))
        raise ImageError(f"no {IMAGE_EMBED!r} among the features {sorted(self.features)}")

    @property
    def nbytes(self) -> int:
        """Bytes held by the tensors (4 MiB for a (1, 256, 64, 64) SAM embedding; 16 MiB for
        a SAM 2 model's three levels at 1024 px)."""
        return sum(t.numel() * t.element_size() for t in self.features.values())


def encode(predictor: SamPredictor, image: Any, image_format: str = "RGB") -> CachedEmbedding:
    """Run the image encoder on `image` ((H, W, 3) uint8 array or PIL image) and return its
    features. The predictor is left set to that image, ready for `predict`."""
    predictor.set_image(image, image_format)
    features = predictor.get_image_features()  # name -> (1, C, h, w), on the model's device
    # clone: independent, ordinary tensors (the predictor's are inference-mode tensors on its
    # device), so the cache never aliases predictor state.
    copies = {n: f.detach().to("cpu", torch.float32).clone() for n, f in features.items()}
    assert predictor.original_size is not None  # set by set_image
    return CachedEmbedding(copies, predictor.original_size)


def restore(predictor: SamPredictor, cached: CachedEmbedding, image: Any = None) -> None:
    """Set `predictor` to the image `cached` was computed from, without an encoder pass;
    `image`, that image's pixels, lets the predictor refine mask edges (`SamPredictor`).

    `set_image_features` rebuilds all the per-image state `set_image` makes (the input size
    from the original size, and drops the decoder's per-image work), so the predictor then
    gives the same masks as after `set_image` on the original image. `ImageError` when the
    features are not this model's (names or shapes).
    """
    predictor.set_image_features(dict(cached.features), cached.original_size, image)
