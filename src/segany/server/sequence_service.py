"""The annotator's sequences (videos and volumes): adding them, prompting their objects on any
frame, propagating as a background job, all of it stored in the project database.

    service.prompt(sequence_id, frame, object_id, points, box)   # the frame's masks, at once
    job = service.propagate(sequence_id, start, reverse, max_frames)  # 202: follow, cancel
    service.jobs.get(job.id)                                           # progress

A prompt on a sequence whose propagation is running stops that job first (at its next frame),
so that a correction is applied to the tracker's state at rest; the client then propagates
again from the corrected frame. Propagation jobs reuse `AutoJobs` (bounded, cancellable, their
progress readable from every worker) with the sequence id where Auto has the image id.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import UploadFile

from segany.errors import ConflictError, GoneError, PromptError
from segany.project.storage import sequence_masks as masks_repo
from segany.project.storage import sequences as repo
from segany.project.storage.sequence_models import Sequence
from segany.project.workspace import Project
from segany.sequences.base import FrameSequence
from segany.server.auto_jobs import LIVE, AutoJob, AutoJobs, JobLimits
from segany.server.sequence_files import Opener, default_opener, import_path, probe, save_upload
from segany.server.sequence_frames import FrameImages
from segany.server.sequence_sessions import SequenceSessions, TrackerFactory
from segany.server.settings import ServerSettings
from segany.track.base import FrameResult, ObjectPrompt

log = logging.getLogger("segany.server")
STOP_WAIT_S = 60.0  # how long a prompt waits for a running propagation to stop


@dataclass(frozen=True)
class Propagation:
    """What a propagation job was asked: first frame, direction, frame count."""

    start: int
    reverse: bool
    total: int


class SequenceService:
    """One per worker process: the sequences' files, frame images, tracking sessions, jobs."""

    def __init__(
        self,
        settings: ServerSettings,
        project: Project,
        compute: Any,
        model: object,
        opener: Opener | None = None,
        tracker_factory: TrackerFactory | None = None,
    ) -> None:
        self.settings = settings
        self.project = project
        self.folder = settings.data_dir / "sequences"
        self._opener = opener or default_opener
        self.frames = FrameImages(self.open)
        self.sessions = SequenceSessions(
            compute,
            model,
            self.open,
            self.stored_prompts,
            capacity=settings.limits.tracking_sessions,
            tracker_factory=tracker_factory,
        )
        self.jobs = AutoJobs(settings.data_dir / "track-jobs", JobLimits(live=4, running=1))
        self._live: dict[str, AutoJob] = {}  # sequence id -> its latest job in this worker
        self._lock = threading.Lock()

    def close(self) -> None:
        self.jobs.close()
        self.sessions.close()
        self.frames.close()

    # ---- sequences --------------------------------------------------------------------------

    def row(self, sequence_id: str) -> Sequence:
        with self.project.db.session() as session:
            return repo.get_sequence(session, sequence_id)

    @staticmethod
    def check_frame(row: Sequence, frame: int) -> Sequence:
        """The row, or `PromptError` (422) when `frame` is not one of its frames."""
        if not 0 <= frame < row.frame_count:
            raise PromptError(
                f"frame {frame} is past the end: sequence {row.id} has {row.frame_count} "
                f"frames (0..{row.frame_count - 1})"
            )
        return row

    def open(self, sequence_id: str) -> FrameSequence:
        """A fresh decoder on the sequence's file; `GoneError` (410) when it was moved."""
        row = self.row(sequence_id)
        path = Path(row.stored_path)
        if not path.exists():
            raise GoneError(f"sequence {sequence_id} ({row.name}): {path} is gone")
        return self._opener(path, axis=row.axis)

    async def upload(self, file: UploadFile, axis: int | None) -> tuple[Sequence, bool]:
        """Store and record an uploaded sequence; the same bytes again: (the first, False)."""
        path, sha256 = await save_upload(file, self.folder, self.settings.limits.upload_bytes)
        try:
            return self._record(path, file.filename or "upload", _keyed(sha256, axis), axis)
        except BaseException:
            self._remove_file(path)  # refused: nothing of it stays on the server
            raise

    def import_path(self, path_text: str, axis: int | None) -> tuple[Sequence, bool]:
        """Record a server file or folder (under the import roots) in place."""
        path = import_path(path_text, self.settings.import_roots)
        sha256 = hashlib.sha256(f"path:{path}".encode()).hexdigest()
        return self._record(path, path.name, _keyed(sha256, axis), axis)

    def _record(
        self, path: Path, name: str, sha256: str, axis: int | None
    ) -> tuple[Sequence, bool]:
        with self.project.db.session() as session:
            existing = repo.find_sequence_by_sha256(session, sha256)
        if existing is not None:
            return existing, False
        limits = self.settings.limits
        new = probe(
            path,
            name,
            sha256,
            max_frames=limits.sequence_frames,
            max_pixels=limits.sequence_frame_pixels,
            axis=axis,
            opener=self._opener,
        )
        with self.project.db.session() as session:
            return repo.add_sequence(session, new), True

    def delete(self, sequence_id: str) -> None:
        """Delete the sequence, what is stored of it and its uploaded file (an imported one
        stays)."""
        self._stop(sequence_id)
        self.sessions.forget(sequence_id)
        self.frames.forget(sequence_id)
        with self.project.db.session() as session:
            row = repo.delete_sequence(session, sequence_id)
        self._remove_file(Path(row.stored_path))

    def _remove_file(self, path: Path) -> None:
        """Remove an uploaded file (or unpacked folder) that no sequence reads (a volume may
        be open along several axes); imported ones are never touched."""
        if not path.resolve().is_relative_to(self.folder.resolve()):
            return
        with self.project.db.session() as session:
            if repo.path_in_use(session, str(path)):
                return
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    # ---- prompts and objects ----------------------------------------------------------------

    def stored_prompts(self, sequence_id: str) -> list[ObjectPrompt]:
        """The stored prompts, as the tracker takes them, frame by frame."""
        with self.project.db.session() as session:
            rows = repo.list_prompts(session, sequence_id)
        prompts = []
        for row in rows:
            points, box = repo.prompt_fields(row)
            prompts.append(_object_prompt(row.frame, row.object_id, points, box))
        return prompts

    def prompt(
        self,
        sequence_id: str,
        frame: int,
        object_id: int,
        points: list[list[float]] | None,
        box: list[float] | None,
        author: str = "",
    ) -> tuple[list[Any], str | None]:
        """Prompt `object_id` on `frame` (the object is added if new): returns the frame's
        stored masks afterwards and the id of the propagation this prompt stopped, if any."""
        self.check_frame(self.row(sequence_id), frame)
        repo.check_object_id(object_id)
        with self.project.db.session() as session:
            try:
                repo.get_object(session, sequence_id, object_id)
            except LookupError:
                repo.add_object(session, sequence_id, object_id=object_id)
            prompted = {(p.frame, p.object_id) for p in repo.list_prompts(session, sequence_id)}
        stopped = self._stop(sequence_id)
        result = self.sessions.prompt(sequence_id, _object_prompt(frame, object_id, points, box))
        prompted.add((frame, object_id))
        with self.project.db.session() as session:
            repo.save_prompt(session, sequence_id, object_id, frame, points, box, author)
            self._save(session, sequence_id, result, prompted)
            return masks_repo.frame_masks(session, sequence_id, frame), stopped

    def delete_object(self, sequence_id: str, object_id: int) -> None:
        self._stop(sequence_id)
        with self.project.db.session() as session:
            repo.delete_object(session, sequence_id, object_id)
        self.sessions.remove_object(sequence_id, object_id)

    def _save(self, session: Any, sequence_id: str, result: FrameResult, prompted: set) -> None:
        masks = {}
        for object_id, mask in result.masks.items():
            source = "prompt" if (result.frame, object_id) in prompted else "tracked"
            score = result.scores.get(object_id)
            masks[int(object_id)] = masks_repo.encode_mask(
                np.asarray(mask), None if score is None else float(score), source
            )
        masks_repo.save_frame(session, sequence_id, result.frame, masks)

    # ---- propagation jobs -------------------------------------------------------------------

    def propagate(
        self, sequence_id: str, start: int | None, reverse: bool, max_frames: int | None
    ) -> AutoJob:
        """Start tracking every prompted object from `start` (default: the first prompted
        frame, the last one for reverse) to the end (frame 0 for reverse), or `max_frames`
        frames; 409 while the sequence has a job running, 422 before any prompt."""
        row = self.row(sequence_id)
        prompts = self.stored_prompts(sequence_id)
        if not prompts:
            raise PromptError(f"sequence {sequence_id} has no prompts yet: prompt an object first")
        frames = [p.frame for p in prompts]
        if start is None:
            start = max(frames) if reverse else min(frames)
        self.check_frame(row, start)
        total = start + 1 if reverse else row.frame_count - start
        if max_frames is not None:
            total = min(total, max_frames)
        plan = Propagation(start, reverse, total)
        prompted = {(p.frame, p.object_id) for p in prompts}
        running = self.live_job(sequence_id)
        if running is not None:
            raise ConflictError(
                f"sequence {sequence_id} is being propagated already (job {running}): follow "
                f"it (GET /api/track/jobs/{running}) or cancel it first"
            )
        job = self.jobs.start(
            sequence_id, lambda on_step: self._run(sequence_id, plan, prompted, on_step)
        )
        job.total_steps = max(job.total_steps, plan.total)  # known now: shown from the start
        with self._lock:
            self._live[sequence_id] = job
        return job

    def _run(self, sequence_id: str, plan: Propagation, prompted: set, on_step) -> list:
        done, total = 0, plan.total

        def begin(first: int) -> None:
            nonlocal total  # a new session re-tracks from its nearest known frame
            total = plan.total + abs(plan.start - first)
            on_step(0, total)

        def store(result: FrameResult) -> None:
            nonlocal done
            with self.project.db.session() as session:
                self._save(session, sequence_id, result, prompted)
            done += 1
            on_step(done, total)  # raises JobCancelled once cancelled

        self.sessions.propagate(
            sequence_id, plan.start, plan.reverse, plan.total, store, on_begin=begin
        )
        return []

    def live_job(self, sequence_id: str) -> str | None:
        """The id of the sequence's queued or running job in this worker, if any."""
        with self._lock:
            job = self._live.get(sequence_id)
        return job.id if job is not None and job.state in LIVE else None

    def _stop(self, sequence_id: str) -> str | None:
        """Cancel the sequence's live job and wait until it has stopped; its id, or None."""
        with self._lock:
            job = self._live.get(sequence_id)
        if job is None or job.state not in LIVE:
            return None
        self.jobs.cancel(job.id)
        if not job.ended.wait(STOP_WAIT_S):
            raise ConflictError(
                f"the propagation {job.id} of sequence {sequence_id} did not stop within "
                f"{STOP_WAIT_S:.0f} s; try again"
            )
        return job.id


def _object_prompt(
    frame: int, object_id: int, points: list | None, box: list | None
) -> ObjectPrompt:
    coords = None if not points else np.asarray(points, dtype=np.float64).reshape(-1, 3)
    corners = None if box is None else np.asarray(box, dtype=np.float64).reshape(4)
    return ObjectPrompt(frame=frame, object_id=object_id, points=coords, box=corners)


def _keyed(sha256: str, axis: int | None) -> str:
    """The content's key, per slicing axis: a volume opened along another axis is another
    sequence (its own frames, objects and masks), over the same file."""
    if axis is None:
        return sha256
    return hashlib.sha256(f"{sha256}:axis={axis}".encode()).hexdigest()
