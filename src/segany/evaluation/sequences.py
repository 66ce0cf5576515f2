"""The sequence yardstick (issue 26): a tracker scored with the DAVIS protocol on held-out
synthetic videos, one click per object, and the Dice of one click on synthetic volumes.

Videos (`evaluate_video`): each object gets one positive click on its prompt frame (the first
frame where it shows enough pixels, `SyntheticVideo.prompt_frames`), at the pixel of its
visible mask farthest from the mask's border (`metrics.interior_point`, as in SAM's point
evaluation). The tracker propagates forward from the earliest prompt frame; each object is
scored (J, F; `davis`) on every frame from its prompt frame on.

Correction: after tracking, the worst frame (lowest J&F averaged over its scored objects) gets
one more click for its worst object, at the interior point of the largest error region (positive
on a missed region, negative on an extra one: `metrics.click_from_error`, SAM's simulated
interaction); the tracker re-propagates forward from that frame and the video is scored again.
On the object's prompt frame the click joins the first one; elsewhere it is the frame's prompt.

Volumes (`evaluate_volume`): one click per blob on the slice where its cross-section is largest,
propagation forward and backward from there, Dice over the whole volume.

The image model's own baselines, without a tracker, are in `sequence_baselines`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from segany.data.synthetic_video import SyntheticVideo
from segany.data.synthetic_volume import SyntheticVolume
from segany.errors import DataError
from segany.evaluation.davis import ObjectScorer, ObjectScores, dice_from_counts
from segany.evaluation.metrics import click_from_error, interior_point
from segany.track.base import FrameResult, ObjectPrompt, Tracker, TrackingSession


def first_clicks(video: SyntheticVideo) -> dict[int, ObjectPrompt]:
    """object id -> its one-click prompt: a positive click (x, y, 1) on its prompt frame at the
    interior point of its visible mask (frame pixels)."""
    prompts = {}
    for k, frame in video.prompt_frames.items():
        x, y = interior_point(video.mask(frame) == k)
        prompts[k] = ObjectPrompt(frame, k, points=np.array([[x, y, 1.0]]))
    return prompts


@dataclass(frozen=True)
class Correction:
    """The correction click: on `frame`, for `object_id`, (x, y, label) frame pixels."""

    frame: int
    object_id: int
    click: tuple[int, int, int]


@dataclass(frozen=True)
class TrackedVideo:
    """A tracker's scores on one video.

    scores: one `ObjectScores` per object; corrected: the scores after the correction click
    (None when not asked for; equal to `scores` when the worst frame was already perfect);
    correction: the click made (None when none was); frames: frames the first propagation
    yielded; seconds: time the tracker took for them, prompts included (scoring excluded)."""

    scores: list[ObjectScores]
    corrected: list[ObjectScores] | None
    correction: Correction | None
    frames: int
    seconds: float


def _timed(results: Iterable[FrameResult], clock: list[float]) -> Iterator[FrameResult]:
    """`results`, adding the time spent producing each to clock[0]."""
    iterator = iter(results)
    while True:
        start = time.perf_counter()
        try:
            result = next(iterator)
        except StopIteration:
            clock[0] += time.perf_counter() - start
            return
        clock[0] += time.perf_counter() - start
        yield result


def _mask_of(result: FrameResult, object_id: int, shape: tuple[int, int]) -> np.ndarray:
    """The object's (H, W) bool mask in `result`, all False when the tracker gave none."""
    mask = result.masks.get(object_id)
    if mask is None:
        return np.zeros(shape, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise DataError(
            f"the tracker's mask of object {object_id} on frame {result.frame} is "
            f"{mask.shape}, expected {shape} (the frame's size)"
        )
    return mask


def _score_pass(
    video: SyntheticVideo,
    results: Iterable[FrameResult],
    scorers: dict[int, ObjectScorer],
) -> tuple[int, tuple[float, int, dict[int, np.ndarray]] | None]:
    """Score each result's frame into `scorers`; returns (frames seen, the worst frame as
    (its mean J&F, frame, predicted masks of the objects scored there)) (None if none)."""
    shape = (video.height, video.width)
    worst = None
    count = 0
    for result in results:
        count += 1
        gt = video.mask(result.frame)
        masks, values = {}, []
        for k, scorer in scorers.items():
            if result.frame < video.prompt_frames[k]:
                continue
            masks[k] = _mask_of(result, k, shape)
            values.append(sum(scorer.add(result.frame, masks[k], gt == k)) / 2)
        if values and (worst is None or np.mean(values) < worst[0]):
            worst = (float(np.mean(values)), result.frame, masks)
    return count, worst


def evaluate_video(
    tracker: Tracker,
    video: SyntheticVideo,
    name: str | None = None,
    correction: bool = True,
    tolerance: float | None = None,
) -> TrackedVideo:
    """Track `video`'s objects from one click each and score them (see the module docstring).

    name: the video's name in the scores (default "seed<seed>"); correction: also make and
    score the correction click; tolerance: F's matching distance in px (default DAVIS's)."""
    name = f"seed{video.seed}" if name is None else name
    sequence = video.sequence(lazy=True)
    session = tracker.open(sequence)
    try:
        prompts = first_clicks(video)
        clock = [0.0]
        start = time.perf_counter()
        for prompt in sorted(prompts.values(), key=lambda p: p.frame):
            session.add_prompt(prompt)
        clock[0] += time.perf_counter() - start
        scorers = {k: ObjectScorer(name, k, tolerance) for k in video.objects}
        first = min(p.frame for p in prompts.values())
        frames, worst = _score_pass(video, _timed(session.propagate(start=first), clock), scorers)
        scores = [scorer.scores() for scorer in scorers.values()]
        if not all(len(s.frames) for s in scores):
            raise DataError(f"{name}: the tracker yielded no frame for some object")
        corrected, made = None, None
        if correction and worst is not None:
            corrected, made = _correct(video, session, scorers, worst, prompts)
        return TrackedVideo(scores, corrected, made, frames, clock[0])
    finally:
        session.close()


def _correct(
    video: SyntheticVideo,
    session: TrackingSession,
    scorers: dict[int, ObjectScorer],
    worst: tuple[float, int, dict[int, np.ndarray]],
    prompts: dict[int, ObjectPrompt],
) -> tuple[list[ObjectScores], Correction | None]:
    """One correction click on the worst frame's worst object, re-propagation, new scores."""
    _, frame, masks = worst
    gt = video.mask(frame)
    jf = {k: sum(scorers[k].score(frame)) / 2 for k in masks}
    k = min(jf, key=lambda k: (jf[k], k))
    click = click_from_error(masks[k], gt == k)
    if click is None:  # the worst frame is already perfect: nothing to correct
        return [scorer.scores() for scorer in scorers.values()], None
    points = np.array([click], dtype=np.float64)
    if prompts[k].frame == frame:
        points = np.concatenate([prompts[k].points, points])
    session.add_prompt(ObjectPrompt(frame, k, points=points))
    again = {j: scorer.copy() for j, scorer in scorers.items()}
    _score_pass(video, session.propagate(start=frame), again)
    return [scorer.scores() for scorer in again.values()], Correction(frame, k, click)


@dataclass(frozen=True)
class TrackedVolume:
    """dice: object id -> Dice over the volume; slices: slices the propagations yielded;
    seconds: the tracker's time for them, prompts included."""

    dice: dict[int, float]
    slices: int
    seconds: float


def volume_clicks(volume: SyntheticVolume) -> dict[int, ObjectPrompt]:
    """object id -> one positive click at the interior point of its largest cross-section."""
    prompts = {}
    for k, s in volume.prompt_slices.items():
        x, y = interior_point(volume.labels[s] == k)
        prompts[k] = ObjectPrompt(s, k, points=np.array([[x, y, 1.0]]))
    return prompts


def evaluate_volume(tracker: Tracker, volume: SyntheticVolume) -> TrackedVolume:
    """One click per blob, propagation forward from the clicks (each blob counted from its
    own slice on) and backward (below its slice), Dice per blob over the whole volume."""
    session = tracker.open(volume.sequence())
    shape = volume.labels.shape[1:]
    try:
        prompts = volume_clicks(volume)
        clock = [0.0]
        start = time.perf_counter()
        for prompt in prompts.values():
            session.add_prompt(prompt)
        clock[0] += time.perf_counter() - start
        counts = {k: [0, 0] for k in volume.objects}  # (|pred n gt|, |pred|)
        slices = 0
        firsts = [p.frame for p in prompts.values()]
        for reverse, begin in ((False, min(firsts)), (True, max(firsts))):
            for result in _timed(session.propagate(start=begin, reverse=reverse), clock):
                slices += 1
                for k, count in counts.items():
                    if (result.frame < prompts[k].frame) != reverse:
                        continue  # forward counts a blob from its slice up, backward below it
                    pred = _mask_of(result, k, shape)
                    count[0] += int(np.count_nonzero(pred & (volume.labels[result.frame] == k)))
                    count[1] += int(np.count_nonzero(pred))
        truth = np.bincount(volume.labels.ravel(), minlength=len(volume.objects) + 1)
        dice = {k: dice_from_counts(c[0], c[1], int(truth[k])) for k, c in counts.items()}
        return TrackedVolume(dice, slices, clock[0])
    finally:
        session.close()
