"""The sequence yardstick: DAVIS J and F on hand-computed cases, the tracker protocol (one click,
propagation, the correction click) with fake trackers whose answers are known, the volume Dice,
and the image-model baselines with segany-tiny-v2."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

from segany.data.synthetic_video import HELD_OUT_START, make_video
from segany.data.synthetic_volume import make_volume
from segany.errors import DataError
from segany.evaluation.davis import (
    DavisSummary,
    ObjectScorer,
    Statistics,
    boundary_f,
    davis_tolerance,
    dice,
    region_j,
)
from segany.evaluation.sequence_baselines import BASELINES, image_baselines, mask_box
from segany.evaluation.sequences import evaluate_video, evaluate_volume, first_clicks
from segany.track.base import FrameResult, ObjectPrompt, Tracker, TrackingSession

SIZE = (96, 128)


def _square(x0: int, y0: int, side: int = 10, shape=(20, 20)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask


def test_j_by_hand():
    a, b = _square(5, 5), _square(6, 5)  # 10 x 10 squares one column apart
    assert region_j(a, b) == pytest.approx(90 / 110)
    empty = np.zeros((20, 20), bool)
    assert region_j(empty, empty) == 1.0
    assert region_j(a, empty) == 0.0


def test_f_by_hand():
    a, b = _square(5, 5), _square(6, 5)
    # Each outline has 36 pixels; at 0 px the top and bottom rows share 9 + 9 of them.
    assert boundary_f(a, b, tolerance=0) == pytest.approx(0.5)
    assert boundary_f(a, b, tolerance=1) == 1.0  # every outline pixel within 1 px
    empty = np.zeros((20, 20), bool)
    assert boundary_f(empty, empty) == 1.0
    assert boundary_f(a, empty) == 0.0
    # DAVIS's default at 20 x 20: ceil(0.008 * 28.3) = 1 px.
    assert boundary_f(a, b) == 1.0


def test_davis_tolerance():
    assert davis_tolerance((480, 640)) == 7.0  # 0.008 * 800 = 6.4
    assert davis_tolerance((2160, 3840, 3)) == 36.0  # 0.008 * 4405.7 = 35.2


def test_bad_masks():
    with pytest.raises(DataError, match="shape"):
        region_j(np.zeros((4, 4), bool), np.zeros((4, 5), bool))
    with pytest.raises(DataError, match="shape"):
        boundary_f(np.zeros((4, 4, 1), bool), np.zeros((4, 4, 1), bool))
    with pytest.raises(DataError, match="no frames"):
        Statistics.of([])
    with pytest.raises(DataError, match="no objects"):
        DavisSummary.of([])


def test_statistics_by_hand():
    stats = Statistics.of([1.0, 0.9, 0.6, 0.6, 0.4, 0.2, 0.1, 0.0])
    assert stats.mean == pytest.approx(3.8 / 8)
    assert stats.recall == pytest.approx(4 / 8)  # 1.0, 0.9, 0.6, 0.6 are over 0.5
    assert stats.decay == pytest.approx(0.95 - 0.05)  # first quarter minus last
    assert Statistics.of([0.7]).decay == 0.0


def test_summary_averages_objects_not_frames():
    long, short = ObjectScorer("a", 1, tolerance=1), ObjectScorer("a", 2, tolerance=1)
    a, b = _square(5, 5), _square(6, 5)
    for t in range(6):
        long.add(t, a, a)  # J = F = 1 on 6 frames
    short.add(0, a, b)  # J = 90/110, F = 1 on 1 frame
    summary = DavisSummary.of([long.scores(), short.scores()])
    assert summary.objects == 2 and summary.frames == 7
    assert summary.j_mean == pytest.approx((1 + 90 / 110) / 2)
    assert summary.f_mean == 1.0
    assert summary.jf_mean == pytest.approx((summary.j_mean + 1) / 2)
    assert summary.to_dict()["jf_mean"] == summary.jf_mean


def test_dice_by_hand():
    a, b = _square(5, 5), _square(6, 5)
    assert dice(a, b) == pytest.approx(2 * 90 / 200)
    assert dice(np.zeros((2, 3, 3)), np.zeros((2, 3, 3))) == 1.0


def test_mask_box_is_pixel_edges():
    np.testing.assert_array_equal(mask_box(_square(5, 6, side=3)), [5, 6, 8, 9])
    assert mask_box(np.zeros((4, 4), bool)) is None


class _FakeSession(TrackingSession):
    """Answers with the true ids of `truth(t)`, shifted `shift` px right, except from a
    correction prompt's frame on, where it answers exactly. Yields only forward when
    `forward_only`."""

    def __init__(self, truth, length, shift, forward_only):
        self.truth, self.length, self.shift, self.forward_only = truth, length, shift, forward_only
        self.first: dict[int, int] = {}
        self.exact_from = length

    def _result(self, t: int) -> FrameResult:
        ids = self.truth(t)
        masks = {}
        for k in self.first:
            mask = ids == k
            if t < self.exact_from:
                mask = np.roll(mask, self.shift, axis=1)
            masks[k] = mask
        return FrameResult(t, masks, {k: 1.0 for k in masks})

    def add_prompt(self, prompt: ObjectPrompt) -> FrameResult:
        if prompt.object_id in self.first:
            self.exact_from = min(self.exact_from, prompt.frame)
        else:
            self.first[prompt.object_id] = prompt.frame
        return self._result(prompt.frame)

    def propagate(self, start=None, reverse=False, max_frames=None) -> Iterator[FrameResult]:
        if reverse and self.forward_only:
            return
        frames = range(start, -1, -1) if reverse else range(start, self.length)
        for t in frames:
            yield self._result(t)

    def remove_object(self, object_id: int) -> None:
        del self.first[object_id]


class _FakeTracker(Tracker):
    name = "fake"

    def __init__(self, truth: Callable[[int], np.ndarray], shift=0, forward_only=False):
        self.truth, self.shift, self.forward_only = truth, shift, forward_only

    def open(self, sequence):
        return _FakeSession(self.truth, len(sequence), self.shift, self.forward_only)


@pytest.fixture(scope="module")
def video():
    return make_video(HELD_OUT_START, length=8, size=SIZE)


def test_first_clicks_land_inside_on_the_prompt_frame(video):
    for k, prompt in first_clicks(video).items():
        x, y, label = prompt.points[0]
        assert prompt.frame == video.prompt_frames[k] and label == 1
        assert video.mask(prompt.frame)[int(y), int(x)] == k


def test_exact_tracker_scores_one_and_needs_no_correction(video):
    result = evaluate_video(_FakeTracker(video.mask), video)
    summary = DavisSummary.of(result.scores)
    assert summary.j_mean == summary.f_mean == 1.0
    assert result.correction is None and DavisSummary.of(result.corrected) == summary
    assert result.frames == len(video) - min(video.prompt_frames.values())
    for scores in result.scores:  # every frame from the object's prompt frame on
        assert scores.frames[0] == video.prompt_frames[scores.object_id]
        assert scores.frames[-1] == len(video) - 1


def test_correction_goes_to_the_worst_frame_and_rescores_from_it(video):
    result = evaluate_video(_FakeTracker(video.mask, shift=4), video)
    before = DavisSummary.of(result.scores)
    after = DavisSummary.of(result.corrected)
    assert before.jf_mean < 1 and after.jf_mean > before.jf_mean
    made = result.correction
    jf = {s.object_id: dict(zip(s.frames.tolist(), s.jf, strict=True)) for s in result.scores}
    per_frame = {}
    for table in jf.values():
        for t, value in table.items():
            per_frame.setdefault(t, []).append(value)
    worst = min(per_frame, key=lambda t: (np.mean(per_frame[t]), t))
    assert made.frame == worst
    assert made.click[2] in (0, 1)
    for old, new in zip(result.scores, result.corrected, strict=True):
        early = old.frames < made.frame  # untouched before the correction, exact from it
        np.testing.assert_array_equal(old.j[early], new.j[early])
        assert (new.j[~early] == 1).all()


def test_a_mask_of_the_wrong_size_is_an_error(video):
    small = _FakeTracker(lambda t: video.mask(t)[:10, :10])
    with pytest.raises(DataError, match="expected"):
        evaluate_video(small, video, correction=False)


def test_volume_dice():
    volume = make_volume(HELD_OUT_START, (24, 40, 48))
    exact = evaluate_volume(_FakeTracker(lambda t: volume.labels[t]), volume)
    assert set(exact.dice) == set(volume.objects)
    assert all(d == 1.0 for d in exact.dice.values())
    assert exact.slices >= len(volume)  # forward and backward together cover every slice
    half = evaluate_volume(_FakeTracker(lambda t: volume.labels[t], forward_only=True), volume)
    for k, value in half.dice.items():  # the slices below the click are never segmented
        below = (volume.labels[: volume.prompt_slices[k]] == k).sum()
        total = (volume.labels == k).sum()
        assert value == pytest.approx(2 * (total - below) / (2 * total - below))


def test_image_baselines_with_segany_tiny_v2():
    from segany import SamPredictor
    from segany.registry import build_sam

    tiny = make_video(HELD_OUT_START + 1, length=4, size=SIZE)
    predictor = SamPredictor(build_sam("segany-tiny-v2", edge_refinement=False))
    results = image_baselines(predictor, tiny)
    assert tuple(results) == BASELINES
    for scores in results.values():
        assert [s.object_id for s in scores] == list(tiny.objects)
        for s in scores:
            assert s.frames[0] == tiny.prompt_frames[s.object_id] and s.frames[-1] == 3
            assert ((0 <= s.j) & (s.j <= 1) & (0 <= s.f) & (s.f <= 1)).all()
    for held, previous in zip(results["held"], results["previous box"], strict=True):
        assert held.j[0] == previous.j[0]  # the same 1-click mask on the prompt frame
    ceiling = DavisSummary.of(results["ground-truth box"])
    assert ceiling.j_mean > 0.6  # a true box on clear photo shapes: the model's own ceiling


class _EmptySession(_FakeSession):
    """Finds nothing anywhere: J = 0 wherever an object shows."""

    def _result(self, t: int) -> FrameResult:
        return FrameResult(t, {}, {})


class _EmptyTracker(Tracker):
    name = "empty"

    def open(self, sequence):
        return _EmptySession(None, len(sequence), 0, False)


TINY_RUN = ["eval", "--sequences", "2", "--length", "3", "--size", "48x64", "--quiet"]
TINY_RUN += ["--volumes", "1", "--volume-shape", "16x32x32", "--no-baselines"]


def test_cli_prints_the_table(monkeypatch, capsys):
    import segany.track
    from segany.cli.main import main

    monkeypatch.setattr(segany.track, "build_tracker", lambda model: _EmptyTracker())
    assert main(TINY_RUN) == 0
    out = capsys.readouterr().out
    assert "2 held-out synthetic videos (seeds 10000-10001), 3 frames of 64 x 48" in out
    assert "tracker: empty" in out
    tracker_row = next(line for line in out.splitlines() if line.strip().startswith("tracker "))
    assert tracker_row.split()[1:] == ["0.0000"] * 2 + ["0.0000", "0.0000", "0.0000"]
    assert "correction gain (J&F)" in out and "frames/s" in out
    assert "1 synthetic volumes of 16 x 32 x 32 voxels" in out and "Dice 0.0000" in out


def test_cli_json(monkeypatch, capsys):
    import json

    import segany.track
    from segany.cli.main import main

    monkeypatch.setattr(segany.track, "build_tracker", lambda model: _EmptyTracker())
    assert main([*TINY_RUN, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sequences"]["videos"] == 2 and len(report["sequences"]["per_video"]) == 2
    assert report["sequences"]["baselines"] == {}
    assert report["volumes"]["dice_mean"] == 0.0


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--sequences", "0"], "--sequences must be at least 1"),
        (["--sequences", "1", "--length", "0"], "--length"),
        (["--sequences", "1", "--size", "20x20"], "--size"),
        (["--sequences", "1", "--size", "big"], "HEIGHTxWIDTH"),
        (["--volumes", "1", "--volume-shape", "8x8"], "DEPTHxHEIGHTxWIDTH"),
        (["--sequences", "1", "--data", "scenes:test:2"], "not both"),
        (["--sequences", "1", "--seed-start", "-1"], "--seed-start"),
        ([], "--data SPEC"),
    ],
)
def test_cli_bad_options(extra, words, capsys):
    from segany.cli.main import main

    assert main(["eval", "--quiet", *extra]) == 2
    assert words in capsys.readouterr().err
