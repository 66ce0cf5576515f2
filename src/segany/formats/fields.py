"""The per-mask numbers every format writes, taken from one generator record as plain Python
values (the generator may hand NumPy or torch scalars; JSON and CSV want ints and floats)."""

from __future__ import annotations

from typing import Any

from segany.errors import FormatError

# The keys of a generator record besides `segmentation`.
RECORD_KEYS = ("area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box")


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # NumPy / torch arrays and scalars
        return value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def mask_fields(record: dict[str, Any]) -> dict[str, Any]:
    """area (int pixels), bbox and crop_box ([x, y, w, h] in the original image), predicted_iou
    and stability_score (float), point_coords ([[x, y]] pixels of the prompt)."""
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise FormatError(f"a mask record lacks {', '.join(missing)} (has {', '.join(record)})")
    return {
        "area": int(record["area"]),
        "bbox": _plain(record["bbox"]),
        "predicted_iou": float(record["predicted_iou"]),
        "stability_score": float(record["stability_score"]),
        "point_coords": _plain(record["point_coords"]),
        "crop_box": _plain(record["crop_box"]),
    }
