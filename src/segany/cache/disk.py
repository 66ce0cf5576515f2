"""The cache's disk half: one safetensors file per key, `directory/ab/abcdef....safetensors`
(two-character shards keep folders small; each image feature a named tensor), written
atomically and checked on every read, in a `BoundedFolder` (least recently used files deleted
beyond its byte bound)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from segany.cache.embedding import CachedEmbedding
from segany.cache.folder import BoundedFolder
from segany.errors import ConfigError

logger = logging.getLogger(__name__)

FORMAT = "segany-embedding"
# Bumped when the file layout changes; files of another version are dropped as stale.
# 2: every image feature under its own name (SAM 2's three levels), one sha256 over them all.
FORMAT_VERSION = "2"


class _CorruptEntry(Exception):
    """A file that is not a complete, self-consistent entry for its key (internal only)."""


def features_sha256(features: Mapping[str, torch.Tensor]) -> str:
    """sha256 hex over named contiguous CPU tensors: each name, shape and raw bytes, in name
    order, length-prefixed (so that no two different sets hash alike)."""
    digest = hashlib.sha256()
    for name in sorted(features):
        tensor = features[name].detach()
        for part in (name.encode(), json.dumps(list(tensor.shape)).encode()):
            digest.update(len(part).to_bytes(8, "big") + part)
        data = tensor.numpy().data
        digest.update(data.nbytes.to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


class DiskStore:
    """Embeddings on disk under `directory`, created if missing, at most `max_bytes` of files
    (None: no bound).

    Raises `ConfigError` if `directory` is a file, cannot be created, or is not writable.
    """

    def __init__(self, directory: Path | str, max_bytes: int | None = None) -> None:
        self.directory = _prepare_directory(Path(directory).expanduser())
        self.folder = BoundedFolder(self.directory, max_bytes, durable=True)

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.safetensors"

    def lock_path(self, key: str) -> Path:
        """The file lock of `key`'s computation: one of 256 by the key's first two characters,
        so that lock files do not pile up beside evicted entries (two keys of one stripe
        computed at once by two processes take turns, rarely and harmlessly)."""
        return self.directory / ".locks" / f"{key[:2]}.lock"

    def exists(self, key: str) -> bool:
        """Whether a file is there for `key` (its content is checked only by `read`)."""
        return self.path(key).is_file()

    def read(self, key: str) -> CachedEmbedding | None:
        """The entry for `key`, or None if there is none. A corrupt, truncated, stale or
        mismatching file is deleted and reported as None, never served."""
        path = self.path(key)
        try:
            with open(path, "rb") as f:
                inode = os.fstat(f.fileno()).st_ino
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:  # unreadable but not shown corrupt: leave it for a person
            logger.warning("cannot read cached embedding %s (%s); recomputing", path, exc)
            return None
        try:
            value = _decode(data, key)
        except _CorruptEntry as exc:
            logger.warning("dropping cached embedding %s: %s", path, exc)
            # Only that file: another writer may have put a good one there since it was read.
            self.folder.remove(path, inode)
            return None
        self.folder.touch(path)
        return value

    def write(self, key: str, value: CachedEmbedding) -> bool:
        """Store `value` under `key`: readers see the old file or the complete new one. False
        when it could not be kept (larger than the bound, disk full: logged)."""
        metadata = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "key": key,
            "original_size": json.dumps(list(value.original_size)),
            "sha256": features_sha256(value.features),
        }
        tensors = dict(value.features)
        return self.folder.write(
            self.path(key), lambda temporary: save_file(tensors, str(temporary), metadata=metadata)
        )

    def remove(self, key: str) -> None:
        """Delete `key`'s file if there is one."""
        self.folder.remove(self.path(key))


def _decode(data: bytes, key: str) -> CachedEmbedding:
    """Parse and verify a file's bytes; raise `_CorruptEntry` saying what is wrong."""
    try:
        tensors = load_safetensors(data)  # checks the header and that the data is all there
    except SafetensorError as exc:
        raise _CorruptEntry(f"not a readable safetensors file ({exc})") from exc
    metadata = _metadata(data)
    if metadata.get("format") != FORMAT or metadata.get("version") != FORMAT_VERSION:
        raise _CorruptEntry(
            f"format {metadata.get('format')!r} version {metadata.get('version')!r}, "
            f"expected {FORMAT!r} version {FORMAT_VERSION!r}"
        )
    if metadata.get("key") != key:
        raise _CorruptEntry(f"it holds key {metadata.get('key')!r}")
    if not tensors:
        raise _CorruptEntry("it holds no tensors")
    for name, tensor in tensors.items():
        if tensor.dtype != torch.float32:
            raise _CorruptEntry(f"feature {name!r} has dtype {tensor.dtype}, expected float32")
    if features_sha256(tensors) != metadata.get("sha256"):
        raise _CorruptEntry("the features' bytes do not match their sha256")
    try:
        original_size = tuple(json.loads(metadata.get("original_size", "")))
        return CachedEmbedding(tensors, original_size)
    except (TypeError, ValueError) as exc:  # ImageError is a ValueError
        raise _CorruptEntry(str(exc)) from exc


def _metadata(data: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors file already validated by `load`: an 8-byte
    little-endian header length, then the JSON header."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    metadata = header.get("__metadata__") or {}
    return metadata if isinstance(metadata, dict) else {}


def _prepare_directory(directory: Path) -> Path:
    if directory.exists() and not directory.is_dir():
        raise ConfigError(
            f"embedding cache directory {directory} is a file; give a folder path "
            "(it is created if missing)"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create embedding cache directory {directory}: {exc.strerror or exc}"
        ) from exc
    # Writing a real file catches what permission bits do not (read-only mounts, ACLs, quotas).
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise ConfigError(
            f"embedding cache directory {directory} is not writable ({exc.strerror or exc}); "
            "fix its permissions or choose another folder"
        ) from exc
    return directory
