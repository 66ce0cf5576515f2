"""`CachedEmbedding`: what the cache stores for one image, and the two predictor helpers that
make one (`encode`) and use one (`restore`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from segany.errors import ImageError
from segany.validation import check_original_size

if TYPE_CHECKING:  # the predictor pulls in PIL and the transforms; the cache does not need them
    from segany.predictor import SamPredictor


# eq=False: dataclass equality would compare tensors with `==` and fail on the truth value.
@dataclass(frozen=True, eq=False)
class CachedEmbedding:
    """One image's encoder output.

    embedding: (1, C, h, w) float32 CPU tensor, as `SamPredictor.get_image_embedding()` returns
        it (C=256, h=w=64 for the SAM ViTs). Shared by every caller that gets it from a cache:
        treat it as read-only.
    original_size: (H, W) pixels of the image it was computed from, needed to map prompts and
        masks between the original frame and the model-input frame.
    """

    embedding: torch.Tensor
    original_size: tuple[int, int]

    def __post_init__(self) -> None:
        emb = self.embedding
        if not isinstance(emb, torch.Tensor):
            raise ImageError(f"embedding must be a torch.Tensor, got {type(emb).__name__}")
        if emb.ndim != 4 or emb.shape[0] != 1:
            raise ImageError(f"embedding must be (1, C, h, w), got shape {tuple(emb.shape)}")
        if emb.dtype != torch.float32 or emb.device.type != "cpu":
            raise ImageError(
                f"embedding must be a float32 CPU tensor, got {emb.dtype} on {emb.device} "
                "(use segany.cache.encode, or .to('cpu', torch.float32))"
            )
        h, w = check_original_size(self.original_size)
        # The disk store hashes and writes the raw buffer, which needs one contiguous block.
        object.__setattr__(self, "embedding", emb.contiguous())
        object.__setattr__(self, "original_size", (h, w))

    @property
    def nbytes(self) -> int:
        """Bytes held by the tensor (4 MiB for a (1, 256, 64, 64) SAM embedding)."""
        return self.embedding.numel() * self.embedding.element_size()


def encode(predictor: SamPredictor, image: Any, image_format: str = "RGB") -> CachedEmbedding:
    """Run the image encoder on `image` ((H, W, 3) uint8 array or PIL image) and return its
    embedding. The predictor is left set to that image, ready for `predict`."""
    predictor.set_image(image, image_format)
    features = predictor.get_image_embedding()  # (1, C, h, w), on the model's device
    # clone: an independent, ordinary tensor (the predictor's is an inference-mode tensor on
    # its device), so the cache never aliases predictor state.
    embedding = features.detach().to("cpu", torch.float32).clone()
    assert predictor.original_size is not None  # set by set_image
    return CachedEmbedding(embedding, predictor.original_size)


def restore(predictor: SamPredictor, cached: CachedEmbedding, image: Any = None) -> None:
    """Set `predictor` to the image `cached` was computed from, without an encoder pass;
    `image`, that image's pixels, lets the predictor refine mask edges (`SamPredictor`).

    `set_embedding` rebuilds all the per-image state `set_image` makes (the input size from the
    original size, and drops the decoder's per-image work), so the predictor then gives the same
    masks as after `set_image` on the original image.
    """
    predictor.set_embedding(cached.embedding, cached.original_size, image)
