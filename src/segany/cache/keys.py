"""Cache keys: a content hash of the image, the model and its weights, so that the same pixels
through the same network always find the same embedding, and anything else never does."""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path

from segany.errors import CheckpointError, ConfigError

# Bumped when the key scheme changes, so that old disk entries are never taken for new ones.
_KEY_SCHEME = b"segany-embedding-key-v1"
_CHUNK = 1 << 20
_KEY_PATTERN = re.compile(r"[0-9a-f]{2,128}")

# resolved path -> (size, mtime_ns, sha256). One entry per weights file, replaced when the file
# changes; process-wide on purpose: hashing a 2.5 GB checkpoint takes seconds.
_weights_ids: dict[Path, tuple[int, int, str]] = {}
_weights_lock = threading.Lock()


def image_key(image_bytes: bytes, model_name: str, weights_id: str) -> str:
    """64-char sha256 hex key of an image for one model and one set of weights.

    image_bytes: the image as the caller has it (the uploaded file, or raw pixels); the same
        pixels encoded differently are a different key (a miss, never a wrong hit).
    model_name: the registry name (`model.spec.name`); weights_id: from `weights_id(path)`.
    Each part is length-prefixed, so ("ab", "c") and ("a", "bc") never collide.
    """
    digest = hashlib.sha256()
    for part in (_KEY_SCHEME, bytes(image_bytes), model_name.encode(), weights_id.encode()):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def weights_id(path: Path | str | None) -> str:
    """sha256 hex of the weights file at `path`, or "random" for `None`.

    Memoized per (resolved path, size, mtime_ns): each version of a file is hashed once per
    process. Random weights are not identified by this function: a caller that builds them from
    a seed should pass its own id (e.g. "random-SEED") to `image_key`.
    """
    if path is None:
        return "random"
    resolved = Path(path).resolve()
    try:
        stat = resolved.stat()
    except OSError as exc:
        raise CheckpointError(f"cannot read weights file {resolved}: {exc}") from exc
    version = (stat.st_size, stat.st_mtime_ns)
    # Held while hashing: concurrent first requests wait for one hash instead of doing N.
    with _weights_lock:
        known = _weights_ids.get(resolved)
        if known is not None and known[:2] == version:
            return known[2]
        digest = _sha256_file(resolved)
        after = resolved.stat()
        # A file rewritten while it was read has no single digest: answer, but remember nothing.
        if (after.st_size, after.st_mtime_ns) == version:
            _weights_ids[resolved] = (*version, digest)
        return digest


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise CheckpointError(f"cannot read weights file {path}: {exc}") from exc
    return digest.hexdigest()


def check_key(key: str) -> str:
    """`key` if it is a lowercase hex digest like `image_key`'s; else `ConfigError`. Keys name
    files, so nothing else (no '/', no '..') may get through."""
    if not isinstance(key, str) or not _KEY_PATTERN.fullmatch(key):
        raise ConfigError(
            f"an embedding cache key must be a lowercase hex digest (segany.cache.image_key), "
            f"got {key!r}"
        )
    return key
