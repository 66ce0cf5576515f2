"""A sequence's masks as a download:

    GET /api/sequences/{id}/export?format=davis|ytvis|coco

davis: a zip of one 8-bit palette PNG per frame (pixel = object id); ytvis: YouTube-VIS JSON;
coco: COCO instances JSON with one image per frame (`segany.server.sequence_export`).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from functools import partial
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from segany.errors import FormatError
from segany.formats.track_journal import FrameRecord
from segany.project.storage import repository
from segany.project.storage import sequence_masks as masks_repo
from segany.project.storage import sequences as repo
from segany.server.routes.common import state
from segany.server.sequence_export import (
    UNCATEGORISED,
    WRITERS,
    SequenceMeta,
    write_volume_zip,
)

router = APIRouter(tags=["sequences"])


@router.get("/sequences/{sequence_id}/export", response_class=FileResponse)
def export_sequence(
    request: Request,
    sequence_id: str,
    format: Literal["davis", "ytvis", "coco", "volume"] = Query("davis"),
):
    """Every stored mask of the sequence, in `format`, frames named by their file stems (a
    folder of frames) or numbers ("00042"); `volume`: the label volume in the input's format
    and geometry, zipped (volumes only)."""
    app = state(request)
    service = app.sequences
    row = service.row(sequence_id)
    with service.open(sequence_id) as sequence:  # the frames' stems
        stems = [sequence.name(i) for i in range(len(sequence))]
        volume = sequence.volume
    write, suffix, media_type = WRITERS["davis" if format == "volume" else format]
    if format == "volume":
        if volume is None:
            raise FormatError(
                f"sequence {sequence_id} is a video: a label volume is written for volumes "
                "(NIfTI, DICOM, TIFF stacks); export davis, ytvis or coco"
            )
        write = partial(write_volume_zip, volume=volume)
    with app.project.db.session() as session:
        names = {c.id: c.name for c in repository.list_categories(session)}
        objects = repo.list_objects(session, sequence_id)
    categories = {o.object_id: names.get(o.category_id, UNCATEGORISED) for o in objects}
    name = _file_stem(row.name)
    meta = SequenceMeta(name, row.frame_count, row.height, row.width, stems.__getitem__, categories)
    folder = Path(tempfile.mkdtemp(prefix="segany-sequence-export-"))
    target = folder / f"{name}-{format}{suffix}"
    try:
        with app.project.db.session() as session:
            records = (
                FrameRecord(frame, stems[frame], {m.object_id: _counts(m) for m in masks})
                for frame, masks in masks_repo.iter_masks(session, sequence_id)
            )
            write(target, meta, records)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    cleanup = BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
    return FileResponse(target, media_type=media_type, filename=target.name, background=cleanup)


def _counts(mask) -> tuple[str, float]:
    """A stored mask as the writers take it: (RLE counts, score)."""
    return mask.rle_counts, 0.0 if mask.score is None else float(mask.score)


def _file_stem(name: str) -> str:
    """A name safe in a file name: the sequence's name without its suffixes."""
    stem = name.split(".")[0] or "sequence"
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:80] or "sequence"
