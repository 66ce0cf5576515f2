"""The local engine: one model in this process, images one after another."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from segany.engine.jobs import ImageJob
from segany.engine.options import ModelSource, OutputOptions
from segany.engine.worker import ImageWorker, JobResult

if TYPE_CHECKING:
    from segany.masks.config import AmgConfig


def run_local(
    jobs: Sequence[ImageJob], model: ModelSource, amg: AmgConfig, output: OutputOptions
) -> Iterator[JobResult]:
    """Segment and write `jobs` in order, yielding each one's result as it finishes."""
    if not jobs:
        return
    worker = ImageWorker(model, amg, output)
    for job in jobs:
        yield worker.process(job)
