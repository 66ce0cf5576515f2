"""Intensity windows: a volume's voxel values (CT Hounsfield units, MR signal, 16-bit
microscopy) mapped to 8-bit grey for display and for the image model.

A window is (center, width): values <= center - width/2 become 0, values >= center + width/2
become 255, linear in between (DICOM's window center/width, without its half-voxel offsets).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from segany.errors import ConfigError

# Named windows (center, width) in Hounsfield units, the usual radiology presets.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "ct-soft": (40.0, 400.0),
    "ct-lung": (-600.0, 1500.0),
    "ct-bone": (400.0, 1800.0),
    "ct-brain": (40.0, 80.0),
}
# Names meaning "derive the window from the volume": percentiles of a strided sample.
AUTO_WINDOWS = ("auto", "mr")
AUTO_PERCENTILES = (0.5, 99.5)


def parse_window(window: str | Sequence[float] | None) -> tuple[float, float] | None:
    """`window` as (center, width), or None for the automatic window.

    Accepts None, "auto" or "mr" (automatic), a preset name (`WINDOW_PRESETS`), a
    "center,width" string (e.g. "40,400") or a (center, width) pair. Raises `ConfigError` for
    anything else, a width <= 0 or a value that is not finite.
    """
    if window is None:
        return None
    if isinstance(window, str):
        key = window.strip().lower()
        if key in AUTO_WINDOWS:
            return None
        if key in WINDOW_PRESETS:
            return WINDOW_PRESETS[key]
        if "," not in key:
            raise ConfigError(
                f"unknown window {window!r}: give one of {', '.join([*WINDOW_PRESETS, 'mr'])}, "
                "'auto', or CENTER,WIDTH (e.g. 40,400)"
            )
        window = key.split(",")
    try:
        values = [float(v) for v in window]
    except (TypeError, ValueError):
        raise ConfigError(f"a window is (center, width) numbers, got {window!r}") from None
    if len(values) != 2:
        raise ConfigError(f"a window is two numbers (center, width), got {len(values)}")
    center, width = values
    if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
        raise ConfigError(f"a window needs a finite center and a width > 0, got {window!r}")
    return center, width


def auto_window(sample: np.ndarray) -> tuple[float, float]:
    """(center, width) spanning the 0.5th-99.5th percentiles of `sample` (voxel values, any
    shape; non-finite values ignored). A constant sample gets a width of 1."""
    values = sample[np.isfinite(sample)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, AUTO_PERCENTILES)
    width = float(high - low)
    if width <= 0:
        return float(low), 1.0
    return float(low) + width / 2, width


def apply_window(values: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Voxel values (any shape, any real dtype) -> uint8 of the same shape through the window
    (center, width); NaN becomes 0."""
    center, width = window
    low = center - width / 2
    scaled = (values.astype(np.float32) - np.float32(low)) * np.float32(255.0 / width)
    scaled = np.nan_to_num(scaled, nan=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
