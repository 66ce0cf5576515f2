"""The Ray engine: a Ray Data pipeline over the image paths, one model per actor.

`map_batches` runs `_AmgActor` on a fixed pool of actors; each builds its model once and
writes its images' outputs itself with the same `ImageWorker` as the local engine, so the
files are identical. Only small `JobResult` rows travel back to the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segany.engine.jobs import ImageJob
from segany.engine.options import ModelSource, OutputOptions, RayOptions
from segany.engine.worker import ImageWorker, JobResult
from segany.errors import ConfigError

if TYPE_CHECKING:
    from segany.masks.config import AmgConfig


def import_ray() -> Any:
    """The `ray` module with Ray Data, or a `ConfigError` that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (plain `ray` lacks Ray Data's pandas/pyarrow)
    except ImportError as e:
        raise ConfigError(
            f"the Ray engine needs Ray Data ({e}); install segany[scale] "
            '(pip install "segany[scale]") or use --engine local'
        ) from None
    return ray


class _AmgActor:
    """A Ray Data callable class: one model per actor, one batch of jobs per call."""

    def __init__(
        self, model: ModelSource, amg: AmgConfig, output: OutputOptions, threads: int
    ) -> None:
        import torch

        # Actors share the node's cores: each gets only the CPUs Ray reserved for it.
        torch.set_num_threads(threads)
        self.worker = ImageWorker(model, amg, output)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [
            self.worker.process(ImageJob(int(image_id), Path(str(path)), str(name), str(key)))
            for image_id, path, name, key in zip(
                batch["image_id"], batch["path"], batch["name"], batch["key"], strict=True
            )
        ]
        columns = [asdict(result) for result in results]
        return {field: np.array([c[field] for c in columns]) for field in columns[0]}


def run_ray(
    jobs: Sequence[ImageJob],
    model: ModelSource,
    amg: AmgConfig,
    output: OutputOptions,
    options: RayOptions,
) -> Iterator[JobResult]:
    """Segment and write `jobs` on Ray, yielding results as they arrive (in any order).

    Connects to `options.address`, or starts a local Ray of `options.num_cpus` CPUs (and shuts
    it down at the end) unless Ray is already initialised in this process.
    """
    if not jobs:
        return
    ray = import_ray()
    # Actors may run on other nodes, in other working directories: absolute paths only
    # (inputs, outputs and checkpoint must be on a file system every node sees).
    jobs = [replace(job, path=job.path.resolve()) for job in jobs]
    output = replace(output, out_dir=output.out_dir.resolve())
    if model.checkpoint is not None:
        model = replace(model, checkpoint=model.checkpoint.resolve())
    started_here = False
    if not ray.is_initialized():
        if options.address is not None:
            ray.init(address=options.address, logging_level=logging.ERROR)
        else:
            ray.init(
                num_cpus=options.num_cpus, include_dashboard=False, logging_level=logging.ERROR
            )
        started_here = True
    # Ray Data logs every dataset's plan at INFO; the caller reports progress instead.
    data_logger = logging.getLogger("ray.data")
    data_level = data_logger.level
    data_logger.setLevel(logging.ERROR)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the caller shows one bar for the whole run
        rows = [
            {"image_id": j.image_id, "path": str(j.path), "name": j.name, "key": j.key}
            for j in jobs
        ]
        on_gpu = model.device.startswith("cuda")
        results = ray.data.from_items(rows).map_batches(
            _AmgActor,
            fn_constructor_kwargs={
                "model": model,
                "amg": amg,
                "output": output,
                "threads": options.cpus_per_actor,
            },
            batch_size=1,  # one image per call: results stream back as images finish
            compute=ray.data.ActorPoolStrategy(size=min(options.actors, len(jobs))),
            num_cpus=options.cpus_per_actor,
            num_gpus=1 if on_gpu else 0,
        )
        for row in results.iter_rows():
            yield JobResult(
                image_id=int(row["image_id"]),
                name=str(row["name"]),
                status=str(row["status"]),
                n_masks=int(row["n_masks"]),
                message=str(row["message"]),
            )
    finally:
        data_logger.setLevel(data_level)
        if started_here:
            ray.shutdown()
