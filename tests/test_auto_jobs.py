"""`segany.server.auto_jobs.AutoJobs`: /auto's jobs run in the background with progress, stop
at the next step when cancelled (queued ones at once), are bounded (one live job per image, a
cap per worker, finished ones expire), and are readable and cancellable from another worker
through their files."""

from __future__ import annotations

import threading
import time

import pytest

from segany.errors import ConflictError, ImageError, NotFoundError
from segany.server.auto_jobs import AutoJobs, JobLimitError, JobLimits

MASKS = [{"score": 0.9}]


class Steps:
    """A job's work that takes `total` steps, each when the test lets it (`step()`), or all
    at once after `release()`."""

    made: list[Steps] = []  # released at the end of each test, so that no job waits on

    def __init__(self, total: int = 3) -> None:
        Steps.made.append(self)
        self.total = total
        self.allowed = threading.Semaphore(0)
        self.ran = 0
        self.started = threading.Event()

    def __call__(self, on_step) -> list[dict]:
        self.started.set()
        for done in range(self.total):
            on_step(done, self.total)
            assert self.allowed.acquire(timeout=30), "the test never let the step run"
            self.ran += 1
        on_step(self.total, self.total)
        return MASKS

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.allowed.release()

    def release(self) -> None:
        self.step(self.total)


def wait_for(jobs: AutoJobs, job_id: str, condition, seconds: float = 30) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        view = jobs.get(job_id)
        if condition(view):
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def release_all_work():
    yield
    for work in Steps.made:
        work.step(work.total + 1)
    Steps.made.clear()


@pytest.fixture
def jobs(tmp_path):
    made = AutoJobs(tmp_path / "auto-jobs", JobLimits(live=2, running=1, finished=2))
    yield made
    for work in Steps.made:
        work.step(work.total + 1)
    made.close()


def test_a_job_reports_progress_then_its_masks(jobs):
    work = Steps(total=3)
    job = jobs.start("img", work)
    assert job.view()["state"] in ("queued", "running")
    wait_for(jobs, job.id, lambda v: v["state"] == "running" and v["total_steps"] == 3)
    work.step(2)
    view = wait_for(jobs, job.id, lambda v: v["done_steps"] == 2)
    assert view["masks"] is None and view["error"] is None
    work.step()
    view = wait_for(jobs, job.id, lambda v: v["state"] == "done")
    assert (view["done_steps"], view["total_steps"], view["masks"]) == (3, 3, MASKS)
    assert jobs.wait(job) == MASKS


def test_cancel_stops_a_running_job_at_its_next_step(jobs):
    work = Steps(total=50)
    job = jobs.start("img", work)
    work.step(2)
    wait_for(jobs, job.id, lambda v: v["done_steps"] == 2)
    jobs.cancel(job.id)
    work.release()  # the step in progress finishes; no later one starts
    view = wait_for(jobs, job.id, lambda v: v["state"] == "cancelled")
    assert view["masks"] is None and work.ran == 3
    with pytest.raises(ConflictError, match="cancelled"):
        jobs.wait(job)
    jobs.start("img", Steps(total=0))  # the image is free again


def test_a_queued_job_is_cancelled_at_once_and_never_runs(jobs):
    first, second = Steps(), Steps()
    running = jobs.start("a", first)
    queued = jobs.start("b", second)  # one runs at a time (running=1)
    assert jobs.get(queued.id)["state"] == "queued"
    assert jobs.cancel(queued.id)["state"] == "cancelled"
    first.release()
    wait_for(jobs, running.id, lambda v: v["state"] == "done")
    assert not second.started.is_set()


def test_one_live_job_per_image_and_a_cap_per_worker(jobs):
    work = Steps()
    job = jobs.start("a", work)
    with pytest.raises(ConflictError, match=job.id):
        jobs.start("a", Steps())
    jobs.start("b", Steps())
    with pytest.raises(JobLimitError, match="at most 2"):
        jobs.start("c", Steps())
    jobs.cancel(job.id)
    work.step()
    wait_for(jobs, job.id, lambda v: v["state"] == "cancelled")
    jobs.start("c", Steps())  # room again


def test_finished_jobs_are_kept_a_while_and_a_few_only(tmp_path):
    jobs = AutoJobs(tmp_path / "jobs", JobLimits(live=4, finished=2, keep_seconds=3600))
    ids = []
    for name in "abc":
        job = jobs.start(name, Steps(total=0))
        jobs.wait(job)
        ids.append(job.id)
    jobs.get(ids[2])  # expiry runs on every call
    with pytest.raises(NotFoundError, match=ids[0]):
        jobs.get(ids[0])  # the oldest of three, beyond finished=2
    assert jobs.get(ids[1])["state"] == "done"
    assert sorted(p.stem for p in (tmp_path / "jobs").iterdir()) == sorted(ids[1:])
    jobs.limits = JobLimits(live=4, finished=2, keep_seconds=0)
    time.sleep(0.01)
    with pytest.raises(NotFoundError):
        jobs.get(ids[2])  # expired
    assert list((tmp_path / "jobs").iterdir()) == []
    jobs.close()


def test_deleting_a_finished_job_forgets_it(jobs):
    job = jobs.start("img", Steps(total=0))
    jobs.wait(job)
    assert jobs.cancel(job.id)["state"] == "done"
    with pytest.raises(NotFoundError):
        jobs.get(job.id)


@pytest.mark.parametrize("job_id", ["nope", "0" * 32, "../../etc/passwd", "a" * 31 + "/"])
def test_unknown_ids_are_not_found(jobs, job_id):
    with pytest.raises(NotFoundError, match="no Auto job"):
        jobs.get(job_id)
    with pytest.raises(NotFoundError):
        jobs.cancel(job_id)


def test_another_worker_reads_and_cancels_a_job_through_its_files(tmp_path):
    owner = AutoJobs(tmp_path / "jobs")
    other = AutoJobs(tmp_path / "jobs")
    work = Steps(total=10)
    job = owner.start("img", work)
    work.step()
    view = wait_for(other, job.id, lambda v: v["done_steps"] == 1)
    assert (view["image_id"], view["state"]) == ("img", "running")
    assert other.cancel(job.id)["state"] == "running"  # asked; it stops at its next step
    work.release()
    assert wait_for(other, job.id, lambda v: v["state"] == "cancelled")["done_steps"] <= 2
    done = owner.start("img2", Steps(total=0))
    owner.wait(done)
    assert other.get(done.id)["masks"] == MASKS
    owner.close(), other.close()


def test_a_failed_job_says_why_and_the_synchronous_caller_gets_the_error(jobs):
    def moved(on_step):
        raise ImageError("image file x.png changed since it was recorded")

    def bug(on_step):
        raise KeyError("internal")

    job = jobs.start("a", moved)
    with pytest.raises(ImageError):
        jobs.wait(job)
    assert jobs.get(job.id)["error"] == "image file x.png changed since it was recorded"
    job = jobs.start("b", bug)
    with pytest.raises(KeyError):
        jobs.wait(job)
    view = jobs.get(job.id)
    assert (
        view["state"] == "failed"
        and "KeyError" in view["error"]
        and "internal" not in (view["error"])
    )


def test_close_cancels_the_live_jobs(tmp_path):
    jobs = AutoJobs(None)
    work = Steps(total=10)
    job = jobs.start("img", work)
    work.started.wait(30)
    closer = threading.Thread(target=jobs.close)
    closer.start()
    work.release()
    closer.join(30)
    assert not closer.is_alive() and job.state == "cancelled"
