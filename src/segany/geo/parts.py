"""Per-window results of an unfinished `segany geo amg` run, kept in OUT.parts/ so that a
killed run resumes where it stopped.

    OUT.parts/run.json            what the results depend on (raster, options, model)
    OUT.parts/tile-000042.json    window 42's polygons (raster pixel frame, WKB) and scores

Every file is written atomically (`formats.atomic`): a window has its whole result or none.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import shapely

from segany.errors import ConfigError
from segany.formats.atomic import atomic_write_text
from segany.geo.seams import Piece, Tile

# Bumped when the part files' content changes: older parts are then not resumed.
PARTS_VERSION = 1


def parts_folder(out: Path) -> Path:
    """Where an unfinished run into `out` keeps its per-window results."""
    return out.with_name(out.name + ".parts")


class PartStore:
    """OUT.parts/: run.json (the fingerprint) and one tile-NNNNNN.json per finished window,
    each written atomically, so a window either has its whole result there or none."""

    def __init__(self, folder: Path, fingerprint: dict[str, Any]) -> None:
        self.folder = folder
        run = folder / "run.json"
        # JSON round trip: tuples become lists, as they are when read back.
        expected = json.loads(json.dumps(fingerprint))
        if run.is_file():
            found = json.loads(run.read_text(encoding="utf-8"))
            if found != expected:
                changed = sorted(
                    k for k in expected.keys() | found.keys() if found.get(k) != expected.get(k)
                )
                raise ConfigError(
                    f"{folder} holds an unfinished run on other inputs or options "
                    f"({', '.join(changed)} differ); rerun with the same ones to resume, or "
                    "remove that folder to start again"
                )
        else:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run, json.dumps(expected))

    def _path(self, index: int) -> Path:
        return self.folder / f"tile-{index:06d}.json"

    def done(self) -> set[int]:
        """Indices of the windows whose part is saved."""
        return {
            int(p.stem.split("-")[1])
            for p in self.folder.glob("tile-*.json")
            if p.stem[5:].isdigit()
        }

    def save(self, tile: Tile, pieces: list[Piece] | None) -> None:
        record = {
            "tile": tile.index,
            "nodata": pieces is None,
            "pieces": [
                {
                    "wkb": shapely.to_wkb(p.geometry, hex=True),
                    "score": p.score,
                    "stability": p.stability,
                }
                for p in pieces or []
            ],
        }
        atomic_write_text(self._path(tile.index), json.dumps(record))

    def load(self, tile: Tile) -> list[Piece]:
        record = json.loads(self._path(tile.index).read_text(encoding="utf-8"))
        return [
            Piece(shapely.from_wkb(p["wkb"]), p["score"], p["stability"]) for p in record["pieces"]
        ]

    def remove(self) -> None:
        shutil.rmtree(self.folder)
