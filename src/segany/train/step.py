"""The loss of one micro-batch, as one `nn.Module` forward so DistributedDataParallel can wrap
it: image embeddings once per image (cached when the encoder is frozen), then every image's
interactive episodes on its embedding."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from segany.modeling.sam import Sam
from segany.train.config import LossConfig
from segany.train.episode import episode_loss


class EmbeddingCache:
    """In-memory LRU of image embeddings keyed by dataset index. Valid only while the image
    encoder is frozen (its output for an image never changes)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[int, torch.Tensor] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: int) -> torch.Tensor | None:
        value = self._items.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return value

    def put(self, key: int, value: torch.Tensor) -> None:
        if self.capacity <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class TrainStep(nn.Module):
    """forward(images, masks, keys, generators, schedule_seed) -> the micro-batch's mean loss
    parts.

    Args:
        model: the Sam being trained (its frozen parts have requires_grad False).
        iterations: (point steps, mask-only steps) of each episode.
        cache: embedding cache, used only when the image encoder is frozen.
        loss: the weights of the loss's IoU terms (None: the defaults).
    """

    def __init__(
        self,
        model: Sam,
        iterations: tuple[int, int],
        cache: EmbeddingCache | None,
        loss: LossConfig | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.iterations = iterations
        self.cache = cache
        self.loss = loss or LossConfig()
        self.encoder_trainable = any(p.requires_grad for p in model.image_encoder.parameters())

    def embed(self, images: torch.Tensor, keys: list[int]) -> torch.Tensor:
        """(B, 3, S, S) normalised inputs -> (B, C, h, w) embeddings."""
        if self.encoder_trainable or self.cache is None:
            return self.model.image_encoder(images)
        found = [self.cache.get(key) for key in keys]
        missing = [i for i, value in enumerate(found) if value is None]
        if missing:
            with torch.no_grad():
                fresh = self.model.image_encoder(images[missing]).float()
            for i, embedding in zip(missing, fresh, strict=True):
                found[i] = embedding
                self.cache.put(keys[i], embedding)
        return torch.stack(found)  # type: ignore[arg-type]

    def forward(
        self,
        images: torch.Tensor,
        masks: list[torch.Tensor],
        keys: list[int],
        generators: list[torch.Generator],
        schedule_seed: int,
    ) -> dict[str, torch.Tensor]:
        """images (B, 3, S, S); masks[i] (M_i, S, S) bool input-frame ground truths of image i;
        keys: dataset indices (the cache's keys); one generator per image; schedule_seed: the
        seed of the episodes' step schedule (the same in every process of a micro-batch)."""
        embeddings = self.embed(images, keys)
        schedule_generator = torch.Generator().manual_seed(schedule_seed)
        return episode_loss(
            self.model,
            embeddings,
            masks,
            self.iterations,
            generators,
            schedule_generator,
            loss=self.loss,
        )
