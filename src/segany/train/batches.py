"""From dataset `Sample`s to model-input tensors, and the order images are drawn in.

The order is a pure function of the seed and the position in the stream of images (epoch e is
permutation e of the dataset), so a resumed run and a run split over W processes draw the same
images, and every image's random choices come from its own generator seeded by its position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from segany.data.sample import Sample
from segany.errors import DataError
from segany.transforms import preprocess_shape, resize_image


def stream_indices(seed: int, length: int, start: int, count: int) -> list[int]:
    """Dataset indices at positions start .. start + count - 1 of the image stream: position
    p is element p % length of the permutation of epoch p // length."""
    out: list[int] = []
    perms: dict[int, torch.Tensor] = {}
    for position in range(start, start + count):
        epoch = position // length
        if epoch not in perms:
            g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            perms[epoch] = torch.randperm(length, generator=g)
        out.append(int(perms[epoch][position % length]))
    return out


def item_generator(seed: int, position: int, device: torch.device) -> torch.Generator:
    """The generator of one image's random choices (masks drawn, prompts, schedule)."""
    return torch.Generator(device=device).manual_seed(seed * 7_919 + 104_729 * (position + 1))


@dataclass
class Prepared:
    """One image ready for the model.

    image: (3, S, S) float32 normalised and zero-padded input (S the model's image size).
    masks: (M, S, S) bool ground truths in the input frame (zero in the padding).
    input_size: (h', w') of the resized image inside the padded input.
    """

    image: torch.Tensor
    masks: torch.Tensor
    input_size: tuple[int, int]


def prepare(
    sample: Sample, model: torch.nn.Module, indices: Sequence[int] | None = None
) -> Prepared:
    """Resize `sample` to the model's input frame (longest side S, padded to S x S).

    Only the masks at `indices` (all if None) are decoded and resized, so a sample with
    hundreds of encoded masks costs only the few drawn. Masks empty at the input size are
    dropped; `DataError` if none is left.
    """
    size = model.image_size
    h, w = sample.image.shape[:2]
    resized = resize_image(sample.image, size)
    input_size = resized.shape[:2]
    pixels = torch.from_numpy(resized).permute(2, 0, 1).float()[None]  # (1, 3, h', w')
    image = model.preprocess(pixels.to(model.device))[0]

    chosen = range(len(sample.masks)) if indices is None else indices
    masks = torch.from_numpy(np.ascontiguousarray(sample.masks.take(chosen))).to(model.device)
    if preprocess_shape(h, w, size) != (h, w):
        masks = F.interpolate(masks[:, None].float(), size=input_size, mode="nearest")[:, 0] > 0
    masks = masks[masks.flatten(1).any(dim=1)]
    if len(masks) == 0:
        raise DataError(
            f"sample {sample.name!r} has no non-empty mask among those drawn at the model's "
            "input size; drop images without masks (or with only tiny ones) from the dataset"
        )
    padded = torch.zeros((len(masks), size, size), dtype=torch.bool, device=masks.device)
    padded[:, : input_size[0], : input_size[1]] = masks
    return Prepared(image=image, masks=padded, input_size=tuple(input_size))


def low_res_targets(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, S, S) bool input-frame masks -> (B, h, w) bool at the decoder's logit resolution
    (a low-resolution pixel is in the mask when at least half of the pixels it covers are)."""
    pooled = F.adaptive_avg_pool2d(masks[:, None].float(), size)[:, 0]
    return pooled >= 0.5
