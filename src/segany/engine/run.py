"""A whole automatic-mask run: find the images, skip those already done, segment the rest
on the chosen engine with a progress bar, merge COCO parts, report failures."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from segany.engine.jobs import ImageJob, find_images
from segany.engine.options import ModelSource, OutputOptions, RayOptions
from segany.engine.outputs import OutputLayout
from segany.engine.worker import FAILED, JobResult
from segany.errors import ConfigError, ImageError
from segany.formats.atomic import atomic_write_text
from segany.formats.coco import merge_coco_parts
from segany.formats.image import IMAGE_EXTENSIONS

if TYPE_CHECKING:
    from segany.masks.generator import AmgConfig

ENGINES = ("local", "ray")


@dataclass
class RunSummary:
    """Counts of a run: images found, segmented now, skipped (outputs existed), failed
    ((name, reason) each), masks written now; `coco_file` when the format is COCO."""

    images: int
    skipped: int = 0
    processed: int = 0
    masks: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    coco_file: Path | None = None

    def add(self, result: JobResult) -> None:
        if result.status == FAILED:
            self.failed.append((result.name, result.message))
        else:
            self.processed += 1
            self.masks += result.n_masks

    def line(self) -> str:
        return (
            f"{self.images} images: {self.processed} processed ({self.masks} masks), "
            f"{self.skipped} skipped (outputs exist), {len(self.failed)} failed"
        )


def run_amg(
    inputs: Sequence[Path],
    model: ModelSource,
    output: OutputOptions,
    amg: AmgConfig | None = None,
    engine: str = "local",
    ray: RayOptions | None = None,
    progress: bool = True,
) -> RunSummary:
    """Segment every image in `inputs` (files and folders) and write the masks to
    `output.out_dir`; images whose outputs exist are skipped unless `output.overwrite`.

    Unreadable images are reported (stderr, out_dir/errors.txt) and skipped; `ImageError` if
    the inputs hold no image at all. Returns the run's `RunSummary`. `amg` defaults to the
    generator's own defaults.
    """
    from segany.masks.generator import AmgConfig

    amg = AmgConfig() if amg is None else amg
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    layout = OutputLayout(output)
    jobs = find_images(inputs, exclude=layout.root)
    if not jobs:
        raise ImageError(
            f"no images found in {', '.join(map(str, inputs))} "
            f"(looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    layout.check_keys(jobs)
    pending = [job for job in jobs if output.overwrite or not layout.is_done(job)]
    summary = RunSummary(images=len(jobs), skipped=len(jobs) - len(pending))
    layout.root.mkdir(parents=True, exist_ok=True)

    results = _engine_results(engine, pending, model, amg, output, ray)
    _consume(results, summary, total=len(pending), progress=progress)

    if output.format == "coco":
        parts = [(j.image_id, layout.primary(j)) for j in jobs if layout.primary(j).is_file()]
        merge_coco_parts(parts, layout.coco_file, description="segany amg")
        summary.coco_file = layout.coco_file
    _write_errors(layout.errors_file, summary.failed)
    return summary


def _engine_results(
    engine: str,
    pending: list[ImageJob],
    model: ModelSource,
    amg: AmgConfig,
    output: OutputOptions,
    ray: RayOptions | None,
) -> Iterator[JobResult]:
    if engine == "ray":
        from segany.engine.ray_engine import run_ray

        return run_ray(pending, model, amg, output, ray or RayOptions())
    from segany.engine.local import run_local

    return run_local(pending, model, amg, output)


def _consume(results: Iterator[JobResult], summary: RunSummary, total: int, progress: bool) -> None:
    from tqdm import tqdm

    # disable=None: a bar only on a terminal, never in logs or captured output.
    with tqdm(total=total, unit="image", disable=None if progress else True) as bar:
        for result in results:
            summary.add(result)
            if result.status == FAILED:
                bar.write(f"warning: skipped {result.name}: {result.message}", file=sys.stderr)
            bar.update()


def _write_errors(path: Path, failed: list[tuple[str, str]]) -> None:
    """errors.txt lists this run's failures, one "name<TAB>reason" line each; a stale file
    from an earlier run is removed when nothing failed."""
    if failed:
        atomic_write_text(path, "".join(f"{name}\t{reason}\n" for name, reason in failed))
    else:
        path.unlink(missing_ok=True)
