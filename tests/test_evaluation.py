"""Evaluation: data specs, the metric functions on hand-made masks, the Evaluator with fake
predictors, and `segany eval` end to end on a tiny random model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from segany.cli.main import main
from segany.data import (
    DenseMasks,
    MaskFolder,
    Sample,
    SceneConfig,
    SceneDataset,
    build_pool,
    make_scene,
    split_seeds,
)
from segany.data.spec import SyntheticScenes, open_dataset
from segany.errors import ConfigError, DataError
from segany.evaluation import (
    EvalConfig,
    EvalSummary,
    Evaluator,
    click_from_error,
    interior_point,
    iou,
)
from segany.evaluation.evaluator import MaskResult


def test_synthetic_spec_generates_the_split_scenes():
    dataset = open_dataset("synthetic:test:3:64")
    assert isinstance(dataset, SyntheticScenes)
    assert len(dataset) == 3
    sample = dataset[0]
    assert isinstance(sample, Sample)
    assert sample.image.shape == (64, 64, 3)
    assert sample.masks.size == (64, 64)
    assert sample.name == dataset[-3].name != dataset[1].name
    np.testing.assert_array_equal(sample.image, open_dataset("synthetic:test:1:64")[0].image)


def test_synthetic_spec_default_size():
    assert open_dataset("synthetic:val:1")[0].image.shape == (256, 256, 3)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "synthetic",
        "synthetic:",
        "synthetic:test",
        "synthetic:nope:2",
        "synthetic:test:0",
        "synthetic:test:x",
        "synthetic:test:2:-5",
        "synthetic:test:2:8",
        "synthetic:test:2:64:1",
        "unknown:path",
        "coco:annotations.json",
        "coco::images",
    ],
)
def test_bad_specs_name_the_accepted_forms(spec):
    with pytest.raises(DataError, match="synthetic:SPLIT:COUNT|too small"):
        open_dataset(spec)


def test_pool_and_folder_specs_open_their_readers(tmp_path):
    config = SceneConfig(height=32, width=32)
    build_pool("val", 2, config, tmp_path / "pool")
    pool = open_dataset(f"pool:{tmp_path / 'pool'}")
    assert isinstance(pool, SceneDataset) and len(pool) == 2
    np.testing.assert_array_equal(pool[1].image, make_scene(split_seeds("val", 2)[1], config).image)

    folder = tmp_path / "folder"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "a.png")
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 255
    Image.fromarray(mask).save(folder / "a_0.png")
    samples = open_dataset(f"folder:{folder}")
    assert isinstance(samples, MaskFolder) and len(samples) == 1
    assert samples[0].masks.areas().tolist() == [16]


@pytest.mark.parametrize("kind", ["pool", "sa1b", "folder"])
def test_missing_folders_are_data_errors(tmp_path, kind):
    with pytest.raises(DataError):
        open_dataset(f"{kind}:{tmp_path / 'missing'}")


def test_coco_spec_missing_annotation_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_dataset(f"coco:{tmp_path / 'missing.json'}:{tmp_path}")


# ---- metric functions --------------------------------------------------------------------


def box_mask(y0: int, y1: int, x0: int, x1: int, size: tuple[int, int] = (48, 64)) -> np.ndarray:
    """(H, W) bool, True on rows y0:y1 and columns x0:x1."""
    mask = np.zeros(size, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_interior_point_of_an_odd_rectangle_is_its_centre():
    assert interior_point(box_mask(10, 21, 20, 41)) == (30, 15)


def test_interior_point_of_an_even_rectangle_is_the_up_left_of_its_four_centre_pixels():
    # Rows 14-15 and columns 24-35 are all 5 px from the border; the middle of that run wins,
    # not its first pixel (24, 14).
    assert interior_point(box_mask(10, 20, 20, 40)) == (29, 14)


def test_interior_point_treats_the_image_edge_as_border():
    assert interior_point(np.ones((5, 9), dtype=bool)) == (4, 2)
    # A mask filling the left part: the point sits half-way between the image edge and the
    # mask's right edge, not at the image edge.
    assert interior_point(box_mask(0, 48, 0, 20)) == (9, 23)


def test_interior_point_of_a_disc_and_of_an_l_shape():
    yy, xx = np.mgrid[:48, :64]
    disc = (xx - 40) ** 2 + (yy - 20) ** 2 <= 8**2
    assert interior_point(disc) == (40, 20)
    l_shape = box_mask(5, 45, 5, 15) | box_mask(35, 45, 5, 60)
    x, y = interior_point(l_shape)
    assert l_shape[y, x]


def test_interior_point_of_an_empty_mask_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        interior_point(np.zeros((4, 4), dtype=bool))


def test_click_on_a_false_negative_region_is_positive():
    gt = box_mask(5, 35, 5, 45)
    pred = gt.copy()
    pred[10:21, 10:21] = False  # a missed 11 x 11 hole: 121 px
    pred[40:43, 50:53] = True  # a 3 x 3 false positive elsewhere
    assert click_from_error(pred, gt) == (15, 15, 1)


def test_click_on_a_false_positive_region_is_negative():
    gt = box_mask(5, 35, 5, 45)
    pred = gt | box_mask(38, 47, 50, 59)  # a 9 x 9 false positive: 81 px
    pred[10:13, 10:13] = False  # a 3 x 3 miss
    assert click_from_error(pred, gt) == (54, 42, 0)


def test_click_regions_are_eight_connected():
    gt = box_mask(0, 3, 0, 3) | box_mask(3, 6, 3, 6)  # two 3 x 3 blocks touching at a corner
    pred = box_mask(20, 24, 20, 24)  # a 4 x 4 false positive (16 px)
    # Connected through the corner, the 18 missed pixels are one region, larger than 16.
    assert click_from_error(pred, gt)[2] == 1
    pred = box_mask(20, 24, 20, 25)  # 20 px now beat 18
    assert click_from_error(pred, gt)[2] == 0


def test_click_on_a_tie_is_positive_and_none_without_errors():
    gt = box_mask(0, 4, 0, 4)
    pred = box_mask(10, 14, 10, 14)
    assert click_from_error(pred, gt) == (1, 1, 1)
    assert click_from_error(gt, gt) is None


def test_iou_values():
    a = box_mask(0, 10, 0, 10)  # 100 px
    b = box_mask(0, 10, 5, 15)  # 100 px, 50 shared
    assert iou(a, b) == pytest.approx(50 / 150)
    assert iou(a, a) == 1.0
    assert iou(a, box_mask(20, 30, 20, 30)) == 0.0
    assert iou(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == 1.0
    assert iou(a.astype(np.uint8), b) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="shapes"):
        iou(a, a[:5])


# ---- the Evaluator with fake predictors ------------------------------------------------------


class FakePredictor:
    """A `SamPredictor` stand-in: `answer(call, gt, coords, labels)` gives the masks of each
    call; every call's prompts are recorded. Logits are (C, 16, 16) zeros."""

    def __init__(self, answer, scores=None):
        self.answer = answer
        self.scores = scores
        self.images = 0
        self.calls: list[dict] = []
        self.gt: list[np.ndarray] = []

    def set_image(self, image):
        self.images += 1
        self.image = image

    def predict(
        self, point_coords=None, point_labels=None, box=None, mask_input=None, multimask_output=True
    ):
        call = {
            "coords": point_coords.copy(),
            "labels": point_labels.copy(),
            "mask_input": None if mask_input is None else mask_input.shape,
            "multimask": multimask_output,
        }
        self.calls.append(call)
        masks = np.asarray(self.answer(len(self.calls) - 1, point_coords, point_labels), bool)
        count = len(masks)
        scores = np.linspace(1, 0, count) if self.scores is None else np.asarray(self.scores)
        if not multimask_output:
            scores = scores[:1]
        return masks, scores.astype(np.float32), np.zeros((count, 16, 16), np.float32)


def two_box_sample(name: str = "img") -> Sample:
    masks = np.stack(
        [box_mask(4, 20, 4, 30), box_mask(25, 45, 35, 60), box_mask(40, 43, 2, 5)]  # last: 9 px
    )
    return Sample(image=np.zeros((48, 64, 3), np.uint8), masks=DenseMasks(masks), name=name)


def oracle_for(sample: Sample):
    """Answers with the ground-truth mask under the first click (plus two empty candidates on
    multimask calls)."""

    def answer(call, coords, labels):
        x, y = coords[0].astype(int)
        gt = next(m for m in sample.masks.to_numpy() if m[y, x])
        empty = np.zeros_like(gt)
        return [gt, empty, empty] if len(coords) == 1 else [gt]

    return answer


def test_a_predictor_returning_the_ground_truth_scores_perfectly():
    samples = [two_box_sample("a"), two_box_sample("b")]
    predictor = FakePredictor(oracle_for(samples[0]))
    summary = Evaluator(predictor).evaluate(samples)
    assert summary.one_point_miou == summary.oracle_miou == 1.0
    assert summary.noc85 == summary.noc90 == 1.0
    assert summary.nof85 == summary.nof90 == 0
    assert (summary.images, summary.masks, summary.skipped_masks) == (2, 4, 2)
    assert predictor.images == 2  # one encoder pass per image, not per mask
    assert len(predictor.calls) == 4 and all(c["multimask"] for c in predictor.calls)


def test_max_masks_stops_early():
    samples = [two_box_sample("a"), two_box_sample("b")]
    predictor = FakePredictor(oracle_for(samples[0]))
    summary = Evaluator(predictor).evaluate(samples, max_masks=3)
    assert (summary.images, summary.masks) == (2, 3)
    summary = Evaluator(predictor).evaluate(samples, max_masks=1)
    assert (summary.images, summary.masks) == (1, 1)


def test_one_point_takes_the_highest_predicted_iou_and_oracle_the_best():
    gt = box_mask(10, 30, 10, 30)
    half = box_mask(10, 20, 10, 30)

    def answer(call, coords, labels):
        return [gt, half, np.zeros_like(gt)] if call == 0 else [gt]

    predictor = FakePredictor(answer, scores=[0.1, 0.9, 0.2])
    result = Evaluator(predictor).evaluate_mask(gt)
    assert result.one_point_iou == 0.5
    assert result.oracle_iou == 1.0
    assert (result.noc85, result.noc90) == (2, 2)
    assert result.ious == (0.5, 1.0)
    # The second click fixes the missed lower half: positive, at its centre.
    np.testing.assert_array_equal(predictor.calls[1]["coords"], [[19, 19], [19, 24]])
    np.testing.assert_array_equal(predictor.calls[1]["labels"], [1, 1])


def test_noc_counts_the_clicks_of_an_improving_predictor():
    gt = box_mask(10, 30, 20, 40)  # 20 x 20
    rows = [0, 10, 17, 18, 20]  # IoU 0, 0.5, 0.85, 0.9, 1 after each call

    def answer(call, coords, labels):
        pred = np.zeros_like(gt)
        pred[10 : 10 + rows[call], 20:40] = True
        return [pred] * (3 if call == 0 else 1)

    predictor = FakePredictor(answer)
    result = Evaluator(predictor).evaluate_mask(gt)
    assert result.ious == pytest.approx((0.0, 0.5, 0.85, 0.9))
    assert (result.noc85, result.noc90) == (3, 4)
    assert len(predictor.calls) == 4  # stops once 0.90 is reached
    first, *later = predictor.calls
    assert first["multimask"] and first["mask_input"] is None
    for k, call in enumerate(later, start=2):
        assert not call["multimask"]
        assert call["mask_input"] == (1, 16, 16)
        assert call["coords"].shape == (k, 2)
        np.testing.assert_array_equal(call["labels"], [1] * k)  # only misses to fix


def test_a_mask_never_reached_counts_max_clicks():
    gt = box_mask(10, 30, 20, 40)
    everything = np.ones_like(gt)

    def answer(call, coords, labels):
        return [everything] * (3 if call == 0 else 1)

    predictor = FakePredictor(answer)
    evaluator = Evaluator(predictor, EvalConfig(max_clicks=5))
    result = evaluator.evaluate_mask(gt)
    assert (result.noc85, result.noc90) == (5, 5)
    assert len(result.ious) == len(predictor.calls) == 5
    # Everything outside the box is a false positive: negative clicks after the first.
    np.testing.assert_array_equal(predictor.calls[-1]["labels"], [1, 0, 0, 0, 0])
    summary = EvalSummary.from_results([result], images=1, skipped=0, config=evaluator.config)
    assert (summary.noc85, summary.nof85, summary.nof90) == (5.0, 1, 1)


@pytest.mark.parametrize(
    ("clicks", "noc85", "ious"), [("sam", 5, (0.5,) * 5), ("consistent", 2, (0.5, 1.0))]
)
def test_consistent_clicks_take_the_output_that_honours_the_clicks(clicks, noc85, ious):
    gt = box_mask(10, 30, 20, 40)
    upper = box_mask(10, 20, 20, 40)  # IoU 0.5: the next click goes to the lower half

    def answer(call, coords, labels):
        if call == 0:
            return [upper, upper, upper]
        # The single-mask output keeps contradicting the positive click in the lower half; the
        # second multimask output is right.
        return [upper, np.zeros_like(gt), gt, upper]

    predictor = FakePredictor(answer)
    result = Evaluator(predictor, EvalConfig(max_clicks=5, clicks=clicks)).evaluate_mask(gt)
    assert result.ious == pytest.approx(ious)
    assert result.noc85 == noc85
    later = {call["multimask"] for call in predictor.calls[1:]}
    assert later == ({False} if clicks == "sam" else {"all"})  # one decoder pass for the 4


def test_summary_splits_masks_by_coco_size_class():
    def result(area, one_point, noc85):
        return MaskResult("x", 0, area, one_point, 1.0, noc85, noc85, (one_point,), one_point)

    results = [result(100, 0.2, 20), result(1023, 0.4, 10), result(1024, 0.9, 2),
               result(96**2, 1.0, 1)]  # fmt: skip
    summary = EvalSummary.from_results(results, images=1, skipped=0, config=EvalConfig())
    assert list(summary.by_size) == ["small", "medium", "large"]
    small, medium, large = summary.by_size.values()
    assert small["masks"] == 2 and small["one_point_miou"] == pytest.approx(0.3)
    assert small["noc85"] == 15.0 and small["oracle_miou"] == 1.0
    assert medium == {
        "masks": 1,
        "one_point_miou": 0.9,
        "oracle_miou": 1.0,
        "noc85": 2.0,
        "noc90": 2.0,
        "boundary_f": 0.9,
    }
    assert large["masks"] == 1
    only_large = EvalSummary.from_results(results[3:], images=1, skipped=0, config=EvalConfig())
    assert list(only_large.by_size) == ["large"]  # empty classes are left out


def test_nothing_large_enough_is_a_data_error():
    sample = two_box_sample()
    evaluator = Evaluator(FakePredictor(oracle_for(sample)), EvalConfig(min_area=10_000))
    with pytest.raises(DataError, match="min_area"):
        evaluator.evaluate([sample])


@pytest.mark.parametrize("kwargs", [{"max_clicks": 0}, {"min_area": 0}, {"clicks": "random"}])
def test_bad_eval_config(kwargs):
    with pytest.raises(ConfigError):
        EvalConfig(**kwargs)


# ---- segany eval ------------------------------------------------------------------------------

TINY = ["eval", "--model", "test_tiny", "--random-weights", "--quiet"]


def test_eval_command_prints_json_metrics(capsys):
    args = ["eval", "--model", "test_tiny", "--random-weights", "--data", "synthetic:test:2:64"]
    assert main([*args, "--max-masks", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = {
        "model",
        "checkpoint",
        "data",
        "images",
        "masks",
        "skipped_masks",
        "one_point_miou",
        "oracle_miou",
        "noc85",
        "noc90",
        "nof85",
        "nof90",
        "max_clicks",
        "min_area",
        "by_size",
        "boundary_f",
        "boundary_tolerance",
        "tiny_side",
        "size_split",
        "amg",
        "encoding_ms",
        "threads",
        "encoder_dtype",
        "edge_refinement",
        "clicks",
    }
    assert set(report) == expected
    assert report["clicks"] == "sam"  # SAM's protocol unless --clicks says otherwise
    assert report["encoding_ms"] > 0 and report["threads"] >= 1
    assert report["encoder_dtype"] == "float32"  # test_tiny declares no faster dtype
    assert report["edge_refinement"] is None  # nor an edge refinement
    assert report["amg"] is None  # only with --amg
    assert report["masks"] == 3 and report["model"] == "test_tiny"
    assert sum(row["masks"] for row in report["by_size"].values()) == 3
    assert 0 <= report["one_point_miou"] <= report["oracle_miou"] <= 1
    assert 1 <= report["noc85"] <= report["noc90"] <= 20


def test_eval_command_prints_a_table(capsys):
    command = [*TINY, "--data", "synthetic:val:1:64", "--max-masks", "2", "--max-clicks", "3"]
    assert main(command) == 0
    out = capsys.readouterr().out
    for label in ("1-point mIoU", "oracle mIoU", "NoC@85", "NoC@90", "masks", "by mask area"):
        assert label in out
    assert "masks not edge-refined" in out
    assert "later clicks answered by the single-mask output" in out


def test_eval_command_answers_later_clicks_with_the_apps_rule(capsys):
    command = [*TINY, "--data", "synthetic:val:1:64", "--max-masks", "2", "--clicks", "consistent"]
    assert main([*command, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clicks"] == "consistent" and report["masks"] == 2
    assert 1 <= report["noc85"] <= report["noc90"] <= 20
    assert main(command) == 0
    assert "the app's click-consistent rule" in capsys.readouterr().out


@pytest.mark.parametrize(
    "options",
    [
        ["--data", "synthetic:test:1:64", "--clicks", "best"],
        ["--data", "synthetic:nope:2"],
        ["--data", "synthetic:test:1:64", "--max-masks", "0"],
        ["--data", "synthetic:test:1:64", "--max-clicks", "0"],
        ["--data", "synthetic:test:1:64", "--min-area", "100000"],
    ],
)
def test_eval_command_user_errors_exit_2(capsys, options):
    assert main([*TINY, *options]) == 2
    assert "error:" in capsys.readouterr().err


def test_encoding_time_is_measured_on_a_640_by_480_image(monkeypatch):
    from segany import build_sam
    from segany.evaluation import timing

    seen = []
    model = build_sam("test_tiny", pretrained=False, seed=0)
    real = model.image_encoder.forward
    monkeypatch.setattr(model.image_encoder, "forward", lambda x: seen.append(x.shape) or real(x))
    milliseconds = timing.encoding_milliseconds(model, repeats=2)
    assert milliseconds > 0
    assert len(seen) == 3  # one warm-up, then the timed calls
    # 640 x 480 resized to the model's input (256 px long side), padded square
    assert seen[0] == (1, 3, 256, 256)
