"""The journal of a `segany track` run in its output folder, which makes the run resumable.

Two hidden files in OUT:
- `.segany-track.json`: the run's parameters (input, its frame count and size, model, prompts
  digest, format, direction, ...) and the outputs it writes besides the frame PNGs; a rerun
  with other parameters is refused unless it asks to overwrite.
- `.segany-track-frames.jsonl`: one JSON line per tracked frame, appended (and synced) once
  the frame's own output is in place: `{"frame": i, "name": stem, "objects": {"1":
  {"counts": rle, "score": s}, ...}}`, each mask a COCO RLE (pycocotools' compressed counts,
  column-major) of the (H, W) frame. It is what the JSON formats are assembled from and what
  a resumed run re-prompts the tracker from. A kill can leave a last line half written; it is
  cut off when the journal is reopened.

Memory: the journal keeps only each done frame's byte offset in the lines file; records are
read back one at a time.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from segany.errors import ConfigError, FormatError
from segany.formats.atomic import atomic_write_text

PARAMS_FILE = ".segany-track.json"
FRAMES_FILE = ".segany-track-frames.jsonl"
JOURNAL_VERSION = 1


def encode_mask(mask: np.ndarray) -> str:
    """(H, W) bool mask -> COCO compressed RLE counts (str)."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return rle["counts"].decode("ascii")


def decode_mask(counts: str, shape: tuple[int, int]) -> np.ndarray:
    """COCO compressed RLE counts of an (H, W) mask -> (H, W) bool."""
    rle = {"size": [int(shape[0]), int(shape[1])], "counts": counts.encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


@dataclass
class FrameRecord:
    """One tracked frame: its index, output stem, per object id its mask's RLE counts and
    score (masks of the frame's (H, W) size), and the tracking pass that wrote it (a run's
    passes are numbered 0, 1, ...; a later record of a frame replaces an earlier one)."""

    frame: int
    name: str
    objects: dict[int, tuple[str, float]]
    step: int = 0

    def masks(self, shape: tuple[int, int]) -> dict[int, np.ndarray]:
        """Object id -> (H, W) bool mask."""
        return {i: decode_mask(counts, shape) for i, (counts, _) in self.objects.items()}

    def scores(self) -> dict[int, float]:
        return {i: score for i, (_, score) in self.objects.items()}

    def to_json(self) -> str:
        objects = {
            str(i): {"counts": c, "score": round(s, 6)} for i, (c, s) in self.objects.items()
        }
        data = {"frame": self.frame, "name": self.name, "pass": self.step, "objects": objects}
        return json.dumps(data)

    @classmethod
    def from_json(cls, line: str) -> FrameRecord:
        data = json.loads(line)
        objects = {
            int(i): (str(o["counts"]), float(o["score"])) for i, o in data["objects"].items()
        }
        return cls(int(data["frame"]), str(data["name"]), objects, int(data.get("pass", 0)))


class OffsetIndex:
    """Frame (and pass) -> byte offset of its latest journal line, or -1: one int64 per frame
    for the latest line and one per frame and pass, grown as frames come (16 bytes a frame
    for two passes: 160 kB for 10,000 frames, where dicts would take ~30 times as much)."""

    def __init__(self) -> None:
        self.table = np.full((1, 0), -1, dtype=np.int64)  # (1 + passes, frames)

    def set(self, frame: int, step: int, offset: int) -> None:
        rows, columns = self.table.shape
        if frame >= columns or step + 1 >= rows:
            grown = np.full((max(rows, step + 2), max(columns * 2, frame + 1)), -1, np.int64)
            grown[:rows, :columns] = self.table
            self.table = grown
        self.table[0, frame] = self.table[step + 1, frame] = offset

    def get(self, frame: int, step: int | None = None) -> int:
        row = 0 if step is None else step + 1
        if row >= self.table.shape[0] or not 0 <= frame < self.table.shape[1]:
            return -1
        return int(self.table[row, frame])

    def frames(self) -> np.ndarray:
        """The done frames, ascending."""
        return np.flatnonzero(self.table[0] >= 0)


class TrackJournal:
    """The journal of one output folder. `open` checks a folder's earlier run against this
    run's parameters; then `has`/`done_frames` tell the frames already written, `append`
    records a frame, `record(i)` / `records()` read frames back."""

    def __init__(self, out: Path, params: dict[str, Any]) -> None:
        self.out = Path(out)
        self.params = params
        self.index = OffsetIndex()
        self._earlier = 0  # byte size of the lines an earlier process wrote (found at open)
        self._file: Any = None
        self._reader: Any = None

    @property
    def frames_path(self) -> Path:
        return self.out / FRAMES_FILE

    def done_frames(self) -> np.ndarray:
        """The frames with a record, ascending."""
        return self.index.frames()

    def has(self, frame: int, step: int | None = None) -> bool:
        """Whether frame `frame` has a record (of pass `step`, if given)."""
        return self.index.get(frame, step) >= 0

    def written_earlier(self, frame: int) -> bool:
        """Whether frame `frame`'s latest record comes from an earlier process."""
        return 0 <= self.index.get(frame) < self._earlier

    @classmethod
    def open(
        cls, out: Path, params: dict[str, Any], outputs: list[str], overwrite: bool = False
    ) -> TrackJournal:
        """Start or resume the run of `params` in folder `out`.

        outputs: the files (relative to `out`) the run writes besides its frame PNGs, removed
        with an earlier run's outputs by `overwrite`. Raises `ConfigError` when `out` holds
        another run's results, or files that are not a run's, unless `overwrite`.
        """
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file; give a folder (it is created if needed)")
        params = {"segany_track": JOURNAL_VERSION, **params}
        journal = cls(out, params)
        earlier = journal._read_params()
        if earlier is not None and _same_run(earlier, params):
            journal._earlier = journal._scan_frames()
        elif earlier is not None:
            if not overwrite:
                keys = (set(earlier) | set(params)) - {"outputs"}
                differ = sorted(k for k in keys if earlier.get(k) != params.get(k))
                raise ConfigError(
                    f"{out} holds the results of another track command (it differs in: "
                    f"{', '.join(differ)}); rerun that command to resume it, give another "
                    "--out, or add --overwrite to replace them"
                )
            journal._remove_earlier(earlier)
        elif out.is_dir() and any(out.iterdir()) and not overwrite:
            raise ConfigError(
                f"{out} is not empty and holds no track run to resume; give an empty or new "
                "folder, or add --overwrite to write into it anyway"
            )
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / PARAMS_FILE, json.dumps({**params, "outputs": outputs}, indent=1))
        return journal

    def _read_params(self) -> dict[str, Any] | None:
        path = self.out / PARAMS_FILE
        if not path.is_file():
            return None
        try:
            params = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise FormatError(
                f"cannot read {path} ({e}); remove it, or add --overwrite to start over"
            ) from None
        if not isinstance(params, dict):
            raise FormatError(f"{path} is not a segany track journal; remove it or --overwrite")
        return params

    def _scan_frames(self) -> int:
        """Index the lines file; cut off a last line a kill left half written. Returns the
        size of the lines kept, bytes."""
        path = self.frames_path
        if not path.exists():
            return 0
        good = 0
        with open(path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                try:
                    record = FrameRecord.from_json(line.decode("utf-8"))
                except (ValueError, KeyError, TypeError, AttributeError):
                    break  # a damaged line: it and what follows are redone
                self.index.set(record.frame, record.step, good)
                good += len(line)
        if good < path.stat().st_size:
            with open(path, "r+b") as f:
                f.truncate(good)
        return good

    def _remove_earlier(self, earlier: dict[str, Any]) -> None:
        """Delete an earlier run's outputs (frame PNGs it journaled, its other outputs and its
        journal); files it did not write are left alone."""
        if self.frames_path.exists():
            self._scan_frames()
            for record in self.records():
                (self.out / f"{record.name}.png").unlink(missing_ok=True)
            self.close()
            self.index = OffsetIndex()
            self.frames_path.unlink()
        for name in earlier.get("outputs", []):
            path = self.out / str(name)
            if path.resolve().parent != self.out.resolve():
                continue  # a journal edited by hand to name files elsewhere
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)  # a DICOM label series
            elif path.is_file():
                path.unlink()

    def append(self, record: FrameRecord) -> None:
        """Record a frame as done (after its own output is written), durably."""
        if self._file is None:
            self._file = open(self.frames_path, "ab")
        offset = self._file.tell()
        self._file.write((record.to_json() + "\n").encode("utf-8"))
        self._file.flush()
        os.fsync(self._file.fileno())
        self.index.set(record.frame, record.step, offset)

    def record(self, frame: int, step: int | None = None) -> FrameRecord:
        """The latest record of done frame `frame` (of pass `step`, if given)."""
        offset = self.index.get(frame, step)
        if offset < 0:
            raise KeyError(
                f"frame {frame} has no record" + ("" if step is None else f" of pass {step}")
            )
        if self._reader is None:
            self._reader = open(self.frames_path, "rb")
        self._reader.seek(offset)
        return FrameRecord.from_json(self._reader.readline().decode("utf-8"))

    def records(self) -> Iterator[FrameRecord]:
        """Every done frame's latest record, in frame order, one at a time."""
        for frame in self.done_frames():
            yield self.record(int(frame))

    def close(self) -> None:
        for handle in (self._file, self._reader):
            if handle is not None:
                handle.close()
        self._file = self._reader = None


def _same_run(earlier: dict[str, Any], params: dict[str, Any]) -> bool:
    return {k: v for k, v in earlier.items() if k != "outputs"} == params
