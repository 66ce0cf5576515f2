"""Checks a COCO compressed RLE before it is stored, and derives its area and box.

Masks reach the storage from the browser, so the counts string is untrusted: pycocotools'
decoder does not check that the runs add up to H * W (it writes past its buffer when they do
not), so the string is parsed here first and refused unless it describes exactly one H x W mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from segany.errors import InvalidValueError


@dataclass(frozen=True)
class CheckedRle:
    """A validated compressed RLE with the fields derived from it."""

    counts: str
    height: int
    width: int
    area: int
    bbox: tuple[float, float, float, float]  # (x, y, w, h) pixels, COCO's XYWH


def parse_counts(counts: str) -> np.ndarray:
    """pycocotools' compressed counts string -> (R,) int64 run lengths (0s first, column-major).

    Each run is a signed integer in 5-bit groups, least significant first, one character per
    group (value + 48); bit 0x20 of a character says another group follows, and bit 0x10 of the
    last group is the sign. From the fourth run on, the stored value is the difference to the
    run two places before (pycocotools' own delta coding). Vectorised: a browser may send a
    mask of millions of runs, which a character loop in Python takes seconds to read.
    """
    try:
        codes = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    except UnicodeEncodeError as error:
        raise InvalidValueError("the RLE counts string has a non-ASCII character") from error
    if codes.size == 0:
        return codes
    if codes.min() < 0 or codes.max() >= 64:
        raise InvalidValueError("the RLE counts string has a character outside '0'..'o'")
    last = (codes & 0x20) == 0  # (C,) the character ends a number
    if not last[-1]:
        raise InvalidValueError("the RLE counts string ends in the middle of a number")
    ends = np.flatnonzero(last)  # (R,)
    starts = np.concatenate(([0], ends[:-1] + 1))  # (R,)
    digit = np.arange(codes.size) - np.repeat(starts, ends - starts + 1)  # (C,) group index
    # 7 groups hold 35 bits, ample for any run of a 2^31-pixel image, and keep the sums below
    # from overflowing int64 whatever the string.
    if digit.max() >= 7:
        raise InvalidValueError("the RLE counts string has a number longer than 7 characters")
    values = np.add.reduceat((codes & 0x1F) << (5 * digit), starts)  # (R,)
    negative = (codes[ends] & 0x10) != 0
    values -= np.where(negative, np.left_shift(1, 5 * (digit[ends] + 1)), 0)
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])  # runs 3, 5, ... are deltas to the run before last
    runs[2::2] = np.cumsum(values[2::2])  # runs 4, 6, ... likewise; run 0 stands alone
    return runs


def check_rle(rle: Mapping[str, Any]) -> CheckedRle:
    """``{"size": [H, W], "counts": str | bytes}`` (COCO compressed RLE) -> `CheckedRle`.

    Raises InvalidValueError unless the size is two positive integers and the runs are
    non-negative and add up to H * W.
    """
    try:
        height, width = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidValueError(
            'a mask must be a COCO compressed RLE {"size": [H, W], "counts": str}'
        ) from error
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if not isinstance(counts, str):
        raise InvalidValueError(
            "RLE counts must be the compressed string (pycocotools.mask.encode's), "
            f"got {type(counts).__name__}; compress a list of counts with frPyObjects first"
        )
    if height <= 0 or width <= 0:
        raise InvalidValueError(f"the RLE size must be positive, got [{height}, {width}]")
    runs = parse_counts(counts)
    if (runs < 0).any():
        raise InvalidValueError("the RLE has a run of negative length")
    covered = int(runs.sum())
    if covered != height * width:
        raise InvalidValueError(
            f"the RLE runs cover {covered} pixels, not the {height} x {width} = "
            f"{height * width} of its size"
        )
    coco = {"size": [height, width], "counts": counts}
    x, y, w, h = (float(v) for v in mask_utils.toBbox(coco))
    return CheckedRle(counts, height, width, int(mask_utils.area(coco)), (x, y, w, h))
