"""A whole automatic-mask run: find the images, skip those already done, record where the
images are (manifest.json), segment the rest on the chosen engine with a progress bar, merge
COCO parts, report failures."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from segany.engine.jobs import ImageJob, find_images
from segany.engine.options import ModelSource, OutputOptions, RayOptions
from segany.engine.outputs import OutputLayout
from segany.engine.worker import FAILED, JobResult
from segany.errors import ConfigError, FormatError, ImageError
from segany.formats.atomic import atomic_write_text
from segany.formats.coco import merge_coco_parts
from segany.formats.image import IMAGE_EXTENSIONS
from segany.formats.manifest import ManifestEntry, read_manifest, write_manifest

if TYPE_CHECKING:
    from segany.masks.config import AmgConfig

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
    `amg` defaults to SAM's options with the model's own defaults applied
    (`AmgConfig.for_model`); an image that yields no mask is warned about on stderr, naming
    the thresholds.

    Unreadable images are reported (stderr, out_dir/errors.txt) and skipped; `ImageError` if
    the inputs hold no image at all. Where every image is goes to out_dir/manifest.json (see
    `segany.formats.manifest`), so `sa1b:OUT` and `coco:OUT/annotations.json` read the outputs
    back with their images. Returns the run's `RunSummary`.
    """
    from segany.masks.config import AmgConfig
    from segany.registry import get_spec

    amg = AmgConfig.for_model(get_spec(model.name)) if amg is None else amg
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
    _update_manifest(layout, jobs, pending)  # creates the folder; checks before it writes

    results = _engine_results(engine, pending, model, amg, output, ray)
    _consume(results, summary, amg, total=len(pending), progress=progress)

    if output.format == "coco":
        parts = [(j.image_id, layout.primary(j)) for j in jobs if layout.primary(j).is_file()]
        merge_coco_parts(parts, layout.coco_file, description="segany amg")
        summary.coco_file = layout.coco_file
    _write_errors(layout.errors_file, summary.failed)
    return summary


def _update_manifest(layout: OutputLayout, jobs: list[ImageJob], pending: list[ImageJob]) -> None:
    """Record every image of the run in the manifest, over the entries of earlier runs into
    the same folder (a rerun on moved images, all skipped, updates their paths).

    Written before any image is segmented, so the outputs of an interrupted run can be read
    back too; an image that then fails has an entry but no outputs, which readers never ask
    for. `ConfigError` when a skipped image is another file than the one its outputs were
    made from (same name, another folder): the outputs would be paired with the wrong image.
    """
    path = layout.manifest_file
    try:
        entries = read_manifest(path) if path.is_file() else {}
    except FormatError as e:
        raise FormatError(
            f"{e}. Delete it and run again: the run rewrites it for its own inputs (images "
            "of earlier runs into this folder then need rerunning too)"
        ) from None
    redone = {job.name for job in pending}
    for job in jobs:
        old = entries.get(job.name)
        if old is not None and job.name not in redone and _another_file(old.path, job.path):
            raise ConfigError(
                f"{layout.root} holds the masks of {old.path} under the name {job.name!r}; "
                f"{job.path} has the same name and would be skipped as done. Overwrite its "
                "outputs (--overwrite), or write to another output folder"
            )
        entries[job.name] = ManifestEntry(job.image_id, job.name, job.path)
    write_manifest(path, entries.values())


def _another_file(old: Path, new: Path) -> bool:
    """Whether `old` still exists and is not the file `new` (a moved image no longer exists
    where it was: then `new` is taken to be it)."""
    return old.exists() and not (new.exists() and os.path.samefile(old, new))


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


def _consume(
    results: Iterator[JobResult], summary: RunSummary, amg: AmgConfig, total: int, progress: bool
) -> None:
    from tqdm import tqdm

    # disable=None: a bar only on a terminal, never in logs or captured output.
    with tqdm(total=total, unit="image", disable=None if progress else True) as bar:
        for result in results:
            summary.add(result)
            if result.status == FAILED:
                bar.write(f"warning: skipped {result.name}: {result.message}", file=sys.stderr)
            elif result.n_masks == 0:
                bar.write(
                    f"warning: {result.name}: no mask passed the filters ({amg.thresholds()}); "
                    "lower these thresholds to keep more",
                    file=sys.stderr,
                )
            bar.update()


def _write_errors(path: Path, failed: list[tuple[str, str]]) -> None:
    """errors.txt lists this run's failures, one "name<TAB>reason" line each; a stale file
    from an earlier run is removed when nothing failed."""
    if failed:
        atomic_write_text(path, "".join(f"{name}\t{reason}\n" for name, reason in failed))
    else:
        path.unlink(missing_ok=True)
