"""Request and response bodies of the HTTP API (pydantic), with the checks that make a bad
request a 422 that says what is wrong: finite coordinates, labels 0 / 1, boxes x0 <= x1."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rle(Strict):
    """A COCO compressed RLE of an image-sized mask."""

    size: tuple[int, int]
    counts: str


class ImageCreated(BaseModel):
    id: str
    width: int
    height: int


class ImageItem(BaseModel):
    id: str
    file_name: str
    width: int
    height: int
    encoded: bool
    annotations: int
    reviewed: bool


class ImagePage(BaseModel):
    total: int
    images: list[ImageItem]


class ImagePatch(Strict):
    reviewed: bool


class ImportRequest(Strict):
    path: str = Field(min_length=1, max_length=4096)


class ImportResult(BaseModel):
    added: int
    skipped: int
    ids: list[str]
    errors: list[str] = []


def _finite(values: list[float], what: str) -> None:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{what} must be finite numbers, got {values}")


class PredictRequest(Strict):
    """points: [x, y, label] in upright image pixels (label 1 include, 0 exclude); box:
    [x0, y0, x1, y1]; multimask: the interactive rule's candidates, best first (3 for a first
    click or box, else 4), or false for the single-mask output alone; previous: a token of an
    earlier answer ("TOKEN" or "TOKEN.i"); polygons: false leaves the masks' outlines out
    (null), for clients that draw the RLE."""

    points: list[tuple[float, float, int]] = []
    box: tuple[float, float, float, float] | None = None
    multimask: bool = True
    previous: str | None = Field(default=None, max_length=80)
    polygons: bool = True

    @field_validator("points")
    @classmethod
    def _points(cls, points: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
        for x, y, label in points:
            _finite([x, y], "point coordinates")
            if label not in (0, 1):
                raise ValueError(f"a point's label must be 1 (include) or 0 (exclude), got {label}")
        return points

    @field_validator("box")
    @classmethod
    def _box(cls, box: tuple[float, float, float, float] | None):
        if box is None:
            return box
        _finite(list(box), "box coordinates")
        x0, y0, x1, y1 = box
        if x1 < x0 or y1 < y0:
            raise ValueError(f"box must be [x0, y0, x1, y1] with x1 >= x0 and y1 >= y0, got {box}")
        return box


class MaskOut(BaseModel):
    rle: Rle
    polygons: list[list[float]] | None  # None: not asked for
    score: float | None
    area: int
    bbox: tuple[int, int, int, int]


class ProposalOut(MaskOut):
    stability: float


class PredictResponse(BaseModel):
    masks: list[MaskOut]
    previous: str
    cached: bool


class ProposalsResponse(BaseModel):
    masks: list[ProposalOut]


class CategoryIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")


class CategoryPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")


class CategoryOut(BaseModel):
    id: int
    name: str
    color: str | None


Source = Literal["manual", "semi-auto", "auto"]


class AnnotationIn(Strict):
    rle: Rle
    category_id: int | None = None
    source: Source = "manual"
    accepted: bool = True
    score: float | None = None


class AnnotationPatch(Strict):
    category_id: int | None = None
    accepted: bool | None = None
    rle: Rle | None = None


class AnnotationOut(BaseModel):
    id: int
    image_id: str
    category_id: int | None
    rle: Rle
    polygons: list[list[float]]
    area: int
    bbox: tuple[float, float, float, float]
    score: float | None
    source: str
    accepted: bool
    author: str
    created_at: str
    updated_at: str


class EncodingStatus(BaseModel):
    total: int
    encoded: int
    pending: int


class Info(BaseModel):
    model: str
    image_size: int
    version: str
    amg_defaults: dict[str, float | int | bool | str]
