"""Request and response bodies of the HTTP API (pydantic), with the checks that make a bad
request a 422 that says what is wrong: finite coordinates, labels 0 / 1, boxes x0 <= x1."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from segany.server.prompt_fields import Box, Points


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


class PredictRequest(Strict):
    """points: [x, y, label] in upright image pixels (label 1 include, 0 exclude); box:
    [x0, y0, x1, y1]; multimask: the interactive rule's candidates, best first (3 for a first
    click or box, else 4), or false for the single-mask output alone; previous: a token of an
    earlier answer ("TOKEN" or "TOKEN.i"); polygons: false leaves the masks' outlines out
    (null), for clients that draw the RLE."""

    points: Points = []
    box: Box | None = None
    multimask: bool = True
    previous: str | None = Field(default=None, max_length=80)
    polygons: bool = True


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
    stale: bool  # the image's file changed size since the mask was drawn: look again
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
