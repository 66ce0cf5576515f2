"""Byte counts as people write them ("512M", "2G", "1.5GiB", "1000000") and as segany prints
them ("512 MiB", "1.5 GiB"), for the cache bounds of `segany serve` and the model table.

Suffixes are binary whatever their spelling: "2G", "2GB" and "2GiB" are all 2 * 1024**3 bytes,
as in `du -h` and Docker's memory flags; a size without a suffix is bytes.
"""

from __future__ import annotations

import math
import re

from segany.errors import ConfigError

_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)
SIZE_FORM = 'a byte count with an optional K, M, G or T suffix, e.g. "512M", "2G", "1.5GiB"'


def parse_byte_size(text: str) -> int:
    """The number of bytes `text` names: digits with an optional fraction, then an optional
    unit K, M, G or T (powers of 1024), optionally followed by B or iB, any case.

    Raises `ConfigError` quoting `text` when it is not such a size (negative, empty, "abc",
    "1.5" without a unit that makes it a whole number of bytes).
    """
    match = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f"{text!r} is not a size: expected {SIZE_FORM}")
    number, unit = match.groups()
    value = float(number) * 1024 ** _UNITS[unit.upper()]
    if not math.isfinite(value) or (unit == "" and value != int(value)):
        raise ConfigError(f"{text!r} is not a whole number of bytes: expected {SIZE_FORM}")
    return int(value)


def format_bytes(count: int) -> str:
    """`count` bytes for people: "512 B", "48 KiB", "256 MiB", "1.5 GiB" (whole numbers up to
    MiB, one decimal beyond)."""
    size = float(count)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
