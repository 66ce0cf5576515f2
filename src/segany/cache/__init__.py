"""Embedding cache: the image encoder costs seconds per image, the prompt decoder
milliseconds, so an image seen before is answered from its stored embedding.

    cache = EmbeddingCache(Path("~/.cache/segany/embeddings"))
    key = image_key(image_bytes, model.spec.name, weights_id(checkpoint))
    cached, hit = cache.get_or_compute(key, lambda: encode(predictor, image))
    restore(predictor, cached)  # the predictor now answers prompts for this image

Shared by the annotation server, the CLI and the geo service.
"""

from segany.cache.embedding import CachedEmbedding, encode, restore
from segany.cache.keys import image_key, weights_id
from segany.cache.pixels import PixelCache
from segany.cache.store import CacheStats, EmbeddingCache

__all__ = [
    "CacheStats",
    "CachedEmbedding",
    "EmbeddingCache",
    "PixelCache",
    "encode",
    "image_key",
    "restore",
    "weights_id",
]
