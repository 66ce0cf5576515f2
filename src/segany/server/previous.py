"""The low-resolution logits of earlier answers, by token, so that a next click can feed them
back as the mask prompt (SAM's iterative refinement) without the browser holding them.

Kept in memory and on disk (shared by the worker processes: the next click of a person may
reach another worker), each bounded in bytes, least recently used first out: one answer is
(C, h, w) float16, 512 KiB for a 256 x 256 low-res mask and four candidates, and every click
makes one. Tokens are random; a lost one (evicted, another server) is a 4xx that says to click
again without it.
"""

from __future__ import annotations

import io
import re
import secrets
import threading
from pathlib import Path

import numpy as np

from segany.cache.folder import BoundedFolder
from segany.cache.memory import ByteLRU
from segany.errors import PromptError

_TOKEN = re.compile(r"^([A-Za-z0-9_-]{16,64})(?:\.(\d))?$")
MiB = 1 << 20


class PreviousLogits:
    """Store (C, h, w) logits under a new token; look up one candidate by "TOKEN" (the best, index
    0) or "TOKEN.i".

    directory: the answers' files (`TOKEN.npy`), at most `max_disk_bytes` of them (None: no
        bound); max_memory_bytes: the answers kept in this process's memory.
    Thread-safe; processes may share `directory`.
    """

    def __init__(
        self,
        directory: Path,
        max_memory_bytes: int = 256 * MiB,
        max_disk_bytes: int | None = 1024 * MiB,
    ) -> None:
        self._memory: ByteLRU[np.ndarray] = ByteLRU(max_memory_bytes)
        self._disk = BoundedFolder(directory, max_disk_bytes)
        self._lock = threading.Lock()

    @property
    def directory(self) -> Path:
        return self._disk.directory

    def put(self, logits: np.ndarray) -> str:
        """logits: (C, h, w) float, best candidate first. Returns the token."""
        token = secrets.token_urlsafe(18)
        stored = np.ascontiguousarray(logits, dtype=np.float16)
        with self._lock:
            self._memory.put(token, stored)
        # Not fsynced: a lost entry after a power cut only costs the person one more click.
        self._disk.write(self._path(token), lambda temporary: np.save(temporary, stored))
        return token

    def get(self, reference: str, low_res_size: tuple[int, int]) -> np.ndarray:
        """The (1, h, w) float32 logits `reference` names, as predict's mask_input.

        Raises `PromptError` for a malformed or unknown token or a candidate index out of range.
        """
        match = _TOKEN.match(reference) if isinstance(reference, str) else None
        if match is None:
            raise PromptError("previous must be a token from an earlier answer (TOKEN or TOKEN.i)")
        token, index = match.group(1), int(match.group(2) or 0)
        with self._lock:
            logits = self._memory.get(token)
        if logits is None:
            logits = self._read(token)
        if logits is None:
            raise PromptError(
                "previous names no stored answer (an old one, since forgotten, or from another "
                "server): click again without it"
            )
        if index >= len(logits):
            raise PromptError(f"previous {reference!r}: the answer has {len(logits)} masks")
        if tuple(logits.shape[1:]) != tuple(low_res_size):
            raise PromptError("previous belongs to another model; send the clicks without it")
        return logits[index : index + 1].astype(np.float32)

    def _path(self, token: str) -> Path:
        return self._disk.directory / f"{token}.npy"

    def _read(self, token: str) -> np.ndarray | None:
        """The answer's file, or None when it is gone (evicted) or damaged (then deleted)."""
        path = self._path(token)
        data = self._disk.read_bytes(path)
        if data is None:
            return None
        try:
            logits = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, ValueError, EOFError):  # cut short by a crash or a full disk
            self._disk.remove(path)
            return None
        return logits if logits.ndim == 3 else None
