"""The low-resolution logits of earlier answers, by token, so that a next click can feed them
back as the mask prompt (SAM's iterative refinement) without the browser holding them.

Kept in memory (an LRU) and on disk (shared by the worker processes: the next click of a person
may reach another worker). Tokens are random; a lost one (expired, another server) is a 4xx that
says to click again.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from segany.errors import PromptError

_TOKEN = re.compile(r"^([A-Za-z0-9_-]{16,64})(?:\.(\d))?$")
MAX_IN_MEMORY = 4096
MAX_AGE_SECONDS = 24 * 3600


class PreviousLogits:
    """Store (C, h, w) logits under a new token; look up one candidate by "TOKEN" (the best, index
    0) or "TOKEN.i"."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._prune()

    def put(self, logits: np.ndarray) -> str:
        """logits: (C, h, w) float, best candidate first. Returns the token."""
        token = secrets.token_urlsafe(18)
        stored = np.ascontiguousarray(logits, dtype=np.float16)
        with self._lock:
            self._memory[token] = stored
            while len(self._memory) > MAX_IN_MEMORY:
                self._memory.popitem(last=False)
        # Not fsynced: a lost entry after a power cut only costs the person one more click.
        temporary = self.directory / f".{token}.tmp.npy"
        np.save(temporary, stored)
        os.replace(temporary, self.directory / f"{token}.npy")
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
                "previous names no stored answer (expired, or from another server); "
                "send the clicks without it"
            )
        if index >= len(logits):
            raise PromptError(f"previous {reference!r}: the answer has {len(logits)} masks")
        if tuple(logits.shape[1:]) != tuple(low_res_size):
            raise PromptError("previous belongs to another model; send the clicks without it")
        return logits[index : index + 1].astype(np.float32)

    def _read(self, token: str) -> np.ndarray | None:
        try:
            return np.load(self.directory / f"{token}.npy", allow_pickle=False)
        except (OSError, ValueError):
            return None

    def _prune(self) -> None:
        """Drop files older than MAX_AGE_SECONDS (tokens of long-finished sessions)."""
        cutoff = time.time() - MAX_AGE_SECONDS
        for path in self.directory.glob("*.npy"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass  # another worker pruned it first
