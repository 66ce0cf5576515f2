"""`AutomaticMaskGenerator.generate(image, run_step)`: the work in steps that a caller runs
where it likes (the server: on its compute thread, one at a time between clicks), with the same
masks as one call; a step that raises stops the run and the generator still works."""

from __future__ import annotations

import threading

import pytest
import torch

from conftest import synthetic_image
from segany import build_sam
from segany.masks.generator import AutomaticMaskGenerator

OPTIONS = dict(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)


@pytest.fixture(scope="module")
def model():
    return build_sam("segany-tiny", pretrained=False, seed=0)


def same_records(a: list[dict], b: list[dict]) -> bool:
    def key(record: dict) -> tuple:
        return (record["segmentation"]["counts"], record["bbox"], round(record["predicted_iou"], 5))

    return [key(r) for r in a] == [key(r) for r in b]


@pytest.mark.parametrize("crop_n_layers", [0, 1])
def test_steps_on_another_thread_give_the_same_masks_and_their_count(model, crop_n_layers):
    image = synthetic_image(60, 80, seed=1)
    options = dict(OPTIONS, crop_n_layers=crop_n_layers, output_mode="coco_rle")
    expected = AutomaticMaskGenerator(model, **options).generate(image)
    generator = AutomaticMaskGenerator(model, points_per_batch=5, **options)
    threads, calls = set(), []

    def run_step(step):
        # Each step is self-contained: it runs (in inference mode) on a thread of its own.
        box = {}
        worker = threading.Thread(target=lambda: box.update(out=step()))
        worker.start()
        worker.join()
        threads.add(worker.ident)
        calls.append(1)
        return box["out"]

    got = generator.generate(image, run_step)
    assert expected and same_records(got, expected)
    assert len(calls) == generator.step_count(60, 80)
    # 64 points in batches of 5: 13 batches, plus an encoder pass and a merge per crop, and
    # the final step; crop layer 1 adds 4 crops.
    assert generator.step_count(60, 80) == (1 + 13 + 1) * (1 + 4 * crop_n_layers) + 1
    assert threading.get_ident() not in threads


def test_batch_size_does_not_change_the_masks(model):
    image = synthetic_image(48, 64, seed=2)
    by_batch = [
        AutomaticMaskGenerator(
            model, points_per_batch=n, output_mode="coco_rle", **OPTIONS
        ).generate(image)
        for n in (64, 16, 3)
    ]
    assert by_batch[0] and all(same_records(r, by_batch[0]) for r in by_batch[1:])


def test_a_raising_step_stops_the_run_and_the_generator_still_works(model):
    image = synthetic_image(48, 64, seed=3)
    generator = AutomaticMaskGenerator(
        model, points_per_batch=16, output_mode="coco_rle", **OPTIONS
    )
    ran = []

    class Stop(Exception):
        pass

    def run_step(step):
        if len(ran) == 2:  # the encoder pass and one batch ran
            raise Stop
        ran.append(1)
        return step()

    with pytest.raises(Stop):
        generator.generate(image, run_step)
    assert len(ran) == 2 and not generator.predictor.is_image_set
    again = generator.generate(image)
    assert same_records(
        again, AutomaticMaskGenerator(model, output_mode="coco_rle", **OPTIONS).generate(image)
    )
    assert not torch.is_inference_mode_enabled()
