"""/auto as jobs: started at once, run in the background in slices, watched (progress) and
cancelled by id.

A job lives in the worker process that started it, in memory, and is mirrored to a small JSON
file in `directory` (DATA/auto-jobs) at each slice: with `--workers N` the annotator's next
request may reach another worker, which answers from the file (and cancels through a marker
file that the job's worker checks between slices).

Bounded for a hostile client: per worker at most `JobLimits.live` jobs queued or running
(429 past it), one per image (409), `running` of them at once; a finished job is kept
`keep_seconds`, at most `finished` of them (oldest forgotten first).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segany.errors import ConflictError, NotFoundError, SeganyError
from segany.formats.atomic import atomic_file

log = logging.getLogger("segany.server")

LIVE = ("queued", "running")
FINISHED = ("done", "cancelled", "failed")
_ID = re.compile(r"[0-9a-f]{32}")

# on_step(done, total) -> None: progress before each slice; raising stops the work.
Work = Callable[[Callable[[int, int], None]], list[dict[str, Any]]]


class JobLimitError(SeganyError):
    """Too many jobs at once (HTTP 429): wait for one to finish, or cancel one."""


class JobCancelled(Exception):
    """Raised between slices of a job that was cancelled; the job ends as 'cancelled'."""


@dataclass(frozen=True)
class JobLimits:
    live: int = 4  # queued or running, per worker
    running: int = 1  # at once, per worker (each takes turns on the compute thread anyway)
    finished: int = 16  # finished jobs kept, per worker
    keep_seconds: float = 600.0  # a finished job is forgotten this long after it ended


@dataclass
class AutoJob:
    """One /auto run. state: queued, running, done, cancelled or failed; done_steps of
    total_steps (0 until the run has planned its slices); masks once done; error once failed."""

    id: str
    image_id: str
    state: str = "queued"
    done_steps: int = 0
    total_steps: int = 0
    masks: list[dict[str, Any]] | None = None
    error: str | None = None
    ended_at: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    exception: BaseException | None = None  # what failed it, for the synchronous route

    def view(self) -> dict[str, Any]:
        """The job as the API shows it (`AutoJobOut`)."""
        return {
            "id": self.id,
            "image_id": self.image_id,
            "state": self.state,
            "done_steps": self.done_steps,
            "total_steps": self.total_steps,
            "masks": self.masks,
            "error": self.error,
        }


class AutoJobs:
    """The /auto jobs of one worker process; `close()` cancels the live ones and waits."""

    def __init__(self, directory: Path | None, limits: JobLimits = JobLimits()) -> None:
        self.directory = directory
        self.limits = limits
        self._jobs: dict[str, AutoJob] = {}  # insertion order: oldest first
        self._lock = threading.Lock()
        self._runner = ThreadPoolExecutor(limits.running, thread_name_prefix="segany-auto")

    def start(self, image_id: str, work: Work) -> AutoJob:
        """Queue `work` for `image_id`. `ConflictError` when the image has a live job,
        `JobLimitError` when this worker has `limits.live` of them."""
        with self._lock:
            self._expire()
            live = [job for job in self._jobs.values() if job.state in LIVE]
            same = next((job for job in live if job.image_id == image_id), None)
            if same is not None:
                raise ConflictError(
                    f"an Auto job for image {image_id} is already {same.state} (job {same.id}): "
                    f"follow it (GET /api/auto/jobs/{same.id}) or cancel it first"
                )
            if len(live) >= self.limits.live:
                raise JobLimitError(
                    f"{len(live)} Auto jobs are queued or running (at most "
                    f"{self.limits.live}); wait for one to finish or cancel one"
                )
            job = AutoJob(secrets.token_hex(16), image_id)
            self._jobs[job.id] = job
        self._publish(job)
        self._runner.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        """The job's view, from this worker or from another one's file. `NotFoundError` for
        an unknown or expired id."""
        with self._lock:
            self._expire()
            job = self._jobs.get(job_id)
            if job is not None:
                return job.view()
        return self._read(job_id)

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Stop a live job at its next slice (its state turns 'cancelled' then; at once when
        it was still queued) or forget a finished one. Returns its view as it is now."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                if job.state in LIVE:
                    job.cancel.set()
                    if job.state == "queued":
                        self._end(job, "cancelled")
                else:
                    self._forget(job)
                return job.view()
        view = self._read(job_id)  # another worker's job (so `directory` is set)
        if view["state"] in LIVE:
            (self.directory / f"{job_id}.cancel").touch()
        return view

    def wait(self, job: AutoJob) -> list[dict[str, Any]]:
        """The masks of `job` once it is done; its error raised when it failed."""
        job.ended.wait()
        if job.state == "done":
            return job.masks or []
        if job.exception is not None:
            raise job.exception
        raise ConflictError(f"the Auto job {job.id} for image {job.image_id} was cancelled")

    def close(self) -> None:
        with self._lock:
            for job in self._jobs.values():
                job.cancel.set()
        self._runner.shutdown(wait=True, cancel_futures=True)

    # ---- running ----------------------------------------------------------------------------

    def _run(self, job: AutoJob, work: Work) -> None:
        with self._lock:
            if job.state != "queued":  # cancelled while queued
                return
            job.state = "running"
        self._publish(job)

        def on_step(done: int, total: int) -> None:
            job.done_steps, job.total_steps = done, total
            if job.cancel.is_set() or self._cancel_marked(job.id):
                raise JobCancelled
            self._publish(job)

        try:
            masks = work(on_step)
        except JobCancelled:
            state = "cancelled"
        except SeganyError as error:  # a user's problem (a moved file...): its message
            job.exception, job.error, state = error, str(error), "failed"
        except Exception as error:  # a bug: logged with its traceback, a sentence for the user
            log.exception("Auto job %s for image %s failed", job.id, job.image_id)
            job.exception, state = error, "failed"
            job.error = f"the server failed to compute the suggestions ({type(error).__name__})"
        else:
            job.masks, state = masks, "done"
        with self._lock:
            self._end(job, state)

    def _end(self, job: AutoJob, state: str) -> None:
        """Under the lock: the job is over."""
        job.state, job.ended_at = state, time.monotonic()
        self._publish(job)
        self._unlink(job.id, ".cancel")
        job.ended.set()

    def _expire(self) -> None:
        """Under the lock: forget finished jobs past `keep_seconds` or beyond `finished`."""
        now = time.monotonic()
        finished = [job for job in self._jobs.values() if job.state in FINISHED]
        for index, job in enumerate(finished):
            too_many = len(finished) - index > self.limits.finished
            if too_many or now - (job.ended_at or now) > self.limits.keep_seconds:
                self._forget(job)
        self._sweep_files()

    def _forget(self, job: AutoJob) -> None:
        del self._jobs[job.id]
        self._unlink(job.id, ".json", ".cancel")

    # ---- the files other workers read ---------------------------------------------------------

    def _unlink(self, job_id: str, *suffixes: str) -> None:
        if self.directory is not None:
            for suffix in suffixes:
                (self.directory / f"{job_id}{suffix}").unlink(missing_ok=True)

    def _publish(self, job: AutoJob) -> None:
        if self.directory is None:
            return
        try:
            with atomic_file(self.directory / f"{job.id}.json", durable=False) as temporary:
                temporary.write_text(json.dumps(job.view()), encoding="utf-8")
        except OSError as error:  # the disk is full: this worker still answers for the job
            log.warning("cannot write Auto job %s's state: %s", job.id, error)

    def _read(self, job_id: str) -> dict[str, Any]:
        if self.directory is not None and _ID.fullmatch(job_id):
            try:
                return json.loads((self.directory / f"{job_id}.json").read_text("utf-8"))
            except (OSError, ValueError):
                pass  # no such job (or a half-swept one): not found
        raise NotFoundError(f"no Auto job {job_id!r} (finished jobs are kept for a while only)")

    def _cancel_marked(self, job_id: str) -> bool:
        return self.directory is not None and (self.directory / f"{job_id}.cancel").exists()

    def _sweep_files(self) -> None:
        """Files of jobs whose worker is gone (a restart) or forgot them: older than
        `keep_seconds` (a running job's file is rewritten at every slice)."""
        if self.directory is None or not self.directory.is_dir():
            return
        oldest = time.time() - self.limits.keep_seconds
        for path in self.directory.iterdir():
            try:
                if path.stat().st_mtime < oldest:
                    path.unlink(missing_ok=True)
            except OSError:
                continue  # swept by another worker meanwhile
