"""The sequence yardstick over many held-out videos and volumes: what `segany eval --sequences`
and `--volumes` print (issue 26's targets: J, J as a share of the ground-truth-box ceiling, the
correction click's J&F gain, frames per second; Dice on volumes).

Videos are `synthetic_video.make_video(seed, length, size)` for the seeds of
`held_out_seeds(n, start)`; volumes `synthetic_volume.make_volume(seed, shape)` for the same
seeds. Means are over objects (DAVIS's convention, see `davis`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from segany.data.synthetic_video import make_video
from segany.data.synthetic_volume import make_volume
from segany.errors import ConfigError
from segany.evaluation.davis import DavisSummary, ObjectScores
from segany.evaluation.sequence_baselines import image_baselines
from segany.evaluation.sequences import evaluate_video, evaluate_volume
from segany.track.base import Tracker


@dataclass(frozen=True)
class SequenceReport:
    """The yardstick on `videos` videos of `length` frames of `size` (H, W).

    tracker: the tracker's DAVIS summary from one click per object; corrected: after one
    correction click per video (None when not run); baselines: the image model's, by name
    (`sequence_baselines.BASELINES`; empty when not run); frames_per_second: frames the
    tracker propagated per second of its own time (prompts included); per_video: one dict per
    video (seed, objects, J, F, J&F, the correction made)."""

    videos: int
    length: int
    size: tuple[int, int]
    tracker: DavisSummary
    corrected: DavisSummary | None
    baselines: dict[str, DavisSummary]
    frames_per_second: float
    per_video: list[dict[str, Any]] = field(default_factory=list)

    @property
    def correction_gain(self) -> float | None:
        """J&F after the correction click minus before, None when not run."""
        return None if self.corrected is None else self.corrected.jf_mean - self.tracker.jf_mean

    @property
    def ceiling_share(self) -> float | None:
        """The tracker's J mean over the ground-truth-box baseline's (None without it)."""
        ceiling = self.baselines.get("ground-truth box")
        return None if ceiling is None else self.tracker.j_mean / max(ceiling.j_mean, 1e-12)

    def to_dict(self) -> dict[str, Any]:
        return {
            "videos": self.videos,
            "length": self.length,
            "size": list(self.size),
            "tracker": self.tracker.to_dict(),
            "corrected": None if self.corrected is None else self.corrected.to_dict(),
            "correction_gain": self.correction_gain,
            "baselines": {name: s.to_dict() for name, s in self.baselines.items()},
            "ceiling_share": self.ceiling_share,
            "frames_per_second": self.frames_per_second,
            "per_video": self.per_video,
        }


def _check_count(n: int, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"the number of {what} must be an int >= 1, got {n!r}")


def evaluate_videos(
    tracker: Tracker,
    predictor: Any | None,
    seeds: Sequence[int],
    length: int = 30,
    size: tuple[int, int] = (480, 640),
    correction: bool = True,
    progress: bool = False,
) -> SequenceReport:
    """Score `tracker` (and, with a `predictor`, the image model's baselines) on the videos of
    `seeds` (see the module docstring); `progress` shows a bar on stderr."""
    _check_count(len(seeds), "videos")
    scores: list[ObjectScores] = []
    corrected: list[ObjectScores] = []
    baselines: dict[str, list[ObjectScores]] = {}
    frames, seconds, per_video = 0, 0.0, []
    for seed in tqdm(seeds, unit="video", disable=None if progress else True):
        video = make_video(int(seed), length=length, size=size)
        result = evaluate_video(tracker, video, correction=correction)
        scores += result.scores
        corrected += result.corrected or []
        frames, seconds = frames + result.frames, seconds + result.seconds
        summary = DavisSummary.of(result.scores)
        made = result.correction
        per_video.append(
            {
                "seed": int(seed),
                "objects": len(video.objects),
                "j_mean": summary.j_mean,
                "f_mean": summary.f_mean,
                "jf_mean": summary.jf_mean,
                "correction": None
                if made is None
                else {"frame": made.frame, "object": made.object_id, "click": list(made.click)},
                "corrected_jf_mean": DavisSummary.of(result.corrected).jf_mean
                if result.corrected
                else None,
            }
        )
        if predictor is not None:
            for name, object_scores in image_baselines(predictor, video).items():
                baselines.setdefault(name, []).extend(object_scores)
    return SequenceReport(
        videos=len(seeds),
        length=length,
        size=(int(size[0]), int(size[1])),
        tracker=DavisSummary.of(scores),
        corrected=DavisSummary.of(corrected) if correction else None,
        baselines={name: DavisSummary.of(s) for name, s in baselines.items()},
        frames_per_second=frames / max(seconds, 1e-9),
        per_video=per_video,
    )


@dataclass(frozen=True)
class VolumeReport:
    """Dice of one click per blob on `volumes` volumes of `shape` (D, H, W): the mean over
    blobs, each blob's (per_volume: seed -> {id: Dice}), and slices per second."""

    volumes: int
    shape: tuple[int, int, int]
    dice_mean: float
    per_volume: dict[int, dict[int, float]]
    slices_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "volumes": self.volumes,
            "shape": list(self.shape),
            "dice_mean": self.dice_mean,
            "per_volume": {
                str(seed): {str(k): d for k, d in dice.items()}
                for seed, dice in self.per_volume.items()
            },
            "slices_per_second": self.slices_per_second,
        }


def evaluate_volumes(
    tracker: Tracker,
    seeds: Sequence[int],
    shape: tuple[int, int, int] = (200, 256, 256),
    progress: bool = False,
) -> VolumeReport:
    """Dice of `tracker` from one click per blob on the volumes of `seeds`."""
    _check_count(len(seeds), "volumes")
    per_volume: dict[int, dict[int, float]] = {}
    slices, seconds = 0, 0.0
    for seed in tqdm(seeds, unit="volume", disable=None if progress else True):
        result = evaluate_volume(tracker, make_volume(int(seed), shape))
        per_volume[int(seed)] = result.dice
        slices, seconds = slices + result.slices, seconds + result.seconds
    every = [d for dice in per_volume.values() for d in dice.values()]
    return VolumeReport(
        volumes=len(seeds),
        shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        dice_mean=float(np.mean(every)),
        per_volume=per_volume,
        slices_per_second=slices / max(seconds, 1e-9),
    )
