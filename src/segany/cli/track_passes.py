"""The tracking passes of `segany track` and how an interrupted run resumes them.

Plan. Without --start or --reverse, every object is tracked forward and backward from its own
prompts: pass 0 runs forward from the earliest prompted frame to the end; pass 1 runs backward
from the latest frame where an object is first prompted, down to frame 0. A frame's mask of
object o comes from pass 0 when o has a prompt on or before the frame, else from pass 1 (the
pass that reaches the frame from o's prompt). --start N (forward, or backward with --reverse)
or --reverse alone (backward from the latest prompted frame) make one pass that owns every
object. --max-frames K bounds each pass to K frames, its start included.

Resume. Each frame a pass writes is journaled with the pass's number. A rerun finds, per
pass, the frames it already wrote (a run of frames from its start, in tracking order); a pass
not begun starts as planned; a pass interrupted after frame k restarts at k in a new tracking
session holding the original prompts plus, for each object the pass owns at k, a prompt made
from its journaled mask on k (the mask's box and its deepest point). The tracker's memory of
the frames before k is not carried over, so masks after k can differ slightly from those of an
uninterrupted run (SAM 2 loses its memory bank; the image-model tracker its appearance model).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from segany.formats.sequence_outputs import SequenceOutputs
from segany.formats.track_journal import TrackJournal
from segany.sequences.base import FrameSequence
from segany.track.base import FrameResult, ObjectPrompt, Tracker


@dataclass(frozen=True)
class TrackPass:
    """One propagation. step: its number; start: the frame it propagates from; frames: the
    frames it writes, in tracking order (the start left out when another pass writes it);
    owns: "all", "prompted_before" (objects prompted on or before a frame) or
    "prompted_after" (objects whose first prompt is after it)."""

    step: int
    start: int
    reverse: bool
    frames: range
    owns: str = "all"


def plan_passes(
    length: int,
    prompts: Iterable[ObjectPrompt],
    start: int | None = None,
    reverse: bool = False,
    max_frames: int | None = None,
) -> list[TrackPass]:
    """The passes over a `length`-frame sequence (see the module's docstring)."""
    first = first_prompts(prompts)
    limit = length if max_frames is None else max_frames

    def span(begin: int, backward: bool) -> range:
        if backward:
            return range(begin, max(-1, begin - limit), -1)
        return range(begin, min(length, begin + limit))

    if start is not None:
        return [TrackPass(0, start, reverse, span(start, reverse))]
    if reverse:
        latest = max(first.values())
        return [TrackPass(0, latest, True, span(latest, True))]
    earliest, latest_first = min(first.values()), max(first.values())
    passes = [TrackPass(0, earliest, False, span(earliest, False), "prompted_before")]
    if latest_first > 0:
        backward = span(latest_first, True)[1:]  # its start is pass 0's
        passes.append(TrackPass(1, latest_first, True, backward, "prompted_after"))
    return passes


def first_prompts(prompts: Iterable[ObjectPrompt]) -> dict[int, int]:
    """Object id -> the first frame it is prompted on."""
    first: dict[int, int] = {}
    for prompt in prompts:
        first[prompt.object_id] = min(first.get(prompt.object_id, prompt.frame), prompt.frame)
    return first


def owns(track_pass: TrackPass, first: dict[int, int], object_id: int, frame: int) -> bool:
    """Whether `track_pass` gives object `object_id`'s mask on `frame`."""
    if track_pass.owns == "prompted_before":
        return first.get(object_id, frame) <= frame
    if track_pass.owns == "prompted_after":
        return first.get(object_id, frame) > frame
    return True


def prompt_from_mask(frame: int, object_id: int, mask: np.ndarray) -> ObjectPrompt | None:
    """A prompt that re-finds an (H, W) bool mask: its tight box (pixel edges, xyxy) and one
    foreground point at its deepest pixel (the centre of the pixel farthest from the mask's
    outline). None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)  # (4,)
    y0, x0 = int(box[1]), int(box[0])
    crop = np.pad(mask[y0 : int(box[3]), x0 : int(box[2])], 1)  # outline inside the crop
    depth = ndimage.distance_transform_edt(crop)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    point = np.array([[x0 + x - 1 + 0.5, y0 + y - 1 + 0.5, 1.0]])  # (1, 3) x, y, label
    return ObjectPrompt(frame=frame, object_id=object_id, points=point, box=box)


def done_prefix(track_pass: TrackPass, journal: TrackJournal) -> int:
    """How many of the pass's frames, from its first, the journal already has from it."""
    count = 0
    for frame in track_pass.frames:
        if not journal.has(frame, track_pass.step):
            break
        count += 1
    return count


def run_pass(
    track_pass: TrackPass,
    tracker: Tracker,
    sequence: FrameSequence,
    prompts: list[ObjectPrompt],
    outputs: SequenceOutputs,
    on_frame: Callable[[int], None] = lambda frame: None,
) -> int:
    """Track and write the frames of `track_pass` the journal lacks; returns how many were
    written. on_frame(frame) is called after each frame is written (a progress bar)."""
    journal = outputs.journal
    frames = track_pass.frames
    skip = done_prefix(track_pass, journal)
    if skip == len(frames):
        return 0
    first = first_prompts(prompts)
    session = tracker.open(sequence)
    try:
        for prompt in prompts:
            session.add_prompt(prompt)
        begin = track_pass.start
        if skip:
            last = frames[skip - 1]
            made = resume_prompts(track_pass, journal, prompts, first, last, outputs.shape)
            for prompt in made:
                session.add_prompt(prompt)
            # With no prompt on the last written frame (every object lost there) the pass is
            # tracked again from its start, writing only the frames it lacks.
            if made or any(p.frame == last for p in prompts):
                begin = last
        todo = frames[skip:]
        count = abs(todo[-1] - begin) + 1
        written = 0
        for result in session.propagate(start=begin, reverse=track_pass.reverse, max_frames=count):
            if result.frame not in todo:
                continue
            masks, scores = merged(track_pass, journal, first, result, outputs.shape)
            outputs.write(result.frame, sequence.name(result.frame), masks, scores, track_pass.step)
            written += 1
            on_frame(result.frame)
            if result.frame == todo[-1]:
                break
        return written
    finally:
        session.close()


def resume_prompts(
    track_pass: TrackPass,
    journal: TrackJournal,
    prompts: list[ObjectPrompt],
    first: dict[int, int],
    frame: int,
    shape: tuple[int, int],
) -> list[ObjectPrompt]:
    """Prompts on `frame` from the pass's journaled masks there, for the objects the pass owns
    on it and that have no prompt of their own there."""
    prompted = {p.object_id for p in prompts if p.frame == frame}
    record = journal.record(frame, track_pass.step)
    made = []
    for object_id, mask in sorted(record.masks(shape).items()):
        if object_id in prompted or not owns(track_pass, first, object_id, frame):
            continue
        prompt = prompt_from_mask(frame, object_id, mask)
        if prompt is not None:
            made.append(prompt)
    return made


def merged(
    track_pass: TrackPass,
    journal: TrackJournal,
    first: dict[int, int],
    result: FrameResult,
    shape: tuple[int, int],
) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    """The frame's masks and scores to write: the pass's own objects from `result`, the others
    from the other pass's record of the frame where there is one."""
    masks, scores = dict(result.masks), dict(result.scores)
    if track_pass.owns == "all":
        return masks, scores
    other = 1 - track_pass.step
    if not journal.has(result.frame, other):
        return masks, scores
    record = journal.record(result.frame, other)
    other_masks, other_scores = record.masks(shape), record.scores()
    for object_id in set(masks) | set(other_masks):
        if not owns(track_pass, first, object_id, result.frame) and object_id in other_masks:
            masks[object_id] = other_masks[object_id]
            scores[object_id] = other_scores[object_id]
    return masks, scores
