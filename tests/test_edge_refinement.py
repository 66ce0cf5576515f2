"""Edge refinement (`segany.edge_refinement`): the guided filter, the masks it refines, and how
`SamPredictor`, the cache and the server apply it (segany-tiny-v2's default; never the
reference models')."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import synthetic_image
from segany import ImageError, SamPredictor, build_sam
from segany.cache import EmbeddingCache, PixelCache, encode, restore
from segany.edge_refinement import EdgeRefinement, guided_filter, refine_masks
from segany.errors import ConfigError
from segany.registry import get_spec, list_models

ROOT = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 60, 80
EDGE = 41  # the test image's colour edge: columns < EDGE red, >= EDGE blue


def two_colour_image() -> np.ndarray:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[:, :EDGE] = (200, 30, 30)
    image[:, EDGE:] = (20, 40, 190)
    return image


def ramp_logits(crossing: float) -> np.ndarray:
    """(1, H, W) logits of a soft mask of the left part, zero at column `crossing`: what
    upsampling a coarse prediction gives, its edge a few pixels off the object's."""
    columns = np.arange(WIDTH, dtype=np.float32) + 0.5
    return np.broadcast_to((crossing - columns) / 3, (1, HEIGHT, WIDTH)).copy()


def test_a_soft_outline_snaps_to_the_colour_edge():
    image = two_colour_image()
    for crossing in (37.0, 45.0):  # 4 px inside or outside the red region
        raw = ramp_logits(crossing)[0] > 0
        assert abs(int(raw[0].sum()) - EDGE) == 4  # the plain threshold misses the edge
        refined = refine_masks(ramp_logits(crossing), image, radius=8, eps=3e-4)[0]
        expected = np.zeros((HEIGHT, WIDTH), bool)
        expected[:, :EDGE] = True
        np.testing.assert_array_equal(refined, expected)


def test_a_constant_probability_and_a_flat_image_change_nothing():
    rng = np.random.default_rng(0)
    guide = rng.random((30, 40, 3), dtype=np.float32)
    constant = np.full((30, 40), 0.7, np.float32)
    np.testing.assert_allclose(guided_filter(guide, constant, 4, 1e-3), constant, atol=1e-4)
    # In a flat image the filter only smooths: a large square keeps its shape.
    logits = np.full((1, 50, 50), -8.0, np.float32)
    logits[0, 10:40, 10:40] = 8.0
    flat = np.full((50, 50, 3), 128, np.uint8)
    refined = refine_masks(logits, flat, radius=3, eps=3e-4)[0]
    raw = logits[0] > 0
    assert (refined & raw).sum() / (refined | raw).sum() > 0.95


def test_empty_masks_stay_empty_and_far_pixels_keep_their_threshold():
    image = two_colour_image()
    logits = np.full((2, HEIGHT, WIDTH), -5.0, np.float32)
    logits[1, 5:12, 5:12] = 5.0
    refined = refine_masks(logits, image, radius=2, eps=3e-4)
    assert not refined[0].any()
    reach = 2 * 2 + 1
    assert not refined[1, 12 + reach :, :].any() and not refined[1, :, 12 + reach :].any()


@pytest.mark.parametrize(
    "logits, image",
    [
        (np.zeros((HEIGHT, WIDTH), np.float32), two_colour_image()),  # no candidate axis
        (np.zeros((1, HEIGHT, WIDTH), np.float32), two_colour_image()[:-1]),  # other size
        (np.zeros((1, HEIGHT, WIDTH), np.float32), two_colour_image().astype(np.float32)),
    ],
)
def test_refine_masks_rejects_mismatched_inputs(logits, image):
    with pytest.raises(ImageError):
        refine_masks(logits, image, radius=2, eps=1e-3)


@pytest.mark.parametrize(
    "options",
    [
        {"radius": 0},
        {"radius": 2.5},
        {"eps": 0.0},
        {"eps": -1.0},
        {"subsample": 0},
        {"subsample": True},
    ],
)
def test_edge_refinement_settings_are_checked(options):
    with pytest.raises(ConfigError):
        EdgeRefinement(**options)


def test_the_fast_filter_follows_the_exact_one():
    """Fitting the colour models on a 4x smaller image (He and Sun's fast guided filter) moves
    a refined outline by little: the soft mask over the two-colour edge lands on the edge
    either way, and on a textured image the two refined masks agree closely."""
    image = two_colour_image()
    for subsample in (1, 2, 4):
        refined = refine_masks(ramp_logits(37.0), image, 8, 3e-4, subsample)[0]
        assert abs(int(refined[HEIGHT // 2].sum()) - EDGE) <= 1, subsample
    textured = synthetic_image(96, 128, seed=8)
    logits = np.full((1, 96, 128), -6.0, np.float32)
    logits[0, 20:70, 30:100] = 6.0
    exact = refine_masks(logits, textured, 8, 3e-4, 1)[0]
    fast = refine_masks(logits, textured, 8, 3e-4, 4)[0]
    assert (exact & fast).sum() / (exact | fast).sum() > 0.9


def test_the_radius_scales_from_the_input_frame_to_the_image():
    settings = EdgeRefinement(radius=8)
    assert settings.radius_for(512, 512) == 8
    assert settings.radius_for(1024, 512) == 16
    assert settings.radius_for(100, 512) == 2
    assert settings.radius_for(10, 512) == 1


@pytest.mark.parametrize("name", list_models())
def test_only_the_built_in_v2_refines_by_default(name):
    """The reference models' masks must match the reference: none refines."""
    expected = name == "segany-tiny-v2"
    assert (get_spec(name).edge_refinement is not None) == expected


@pytest.fixture(scope="module")
def tiny():
    return build_sam("test_tiny", pretrained=False, seed=0)


def _click(predictor: SamPredictor, **kwargs):
    return predictor.predict(np.array([[30.0, 20.0]]), np.array([1]), **kwargs)


def test_predictor_refines_with_given_settings_and_the_image(tiny):
    image = synthetic_image(HEIGHT, WIDTH, seed=3)
    settings = EdgeRefinement(radius=9, eps=1e-3)
    plain = SamPredictor(tiny)  # test_tiny's spec has no refinement: "auto" is off
    assert plain.edge_refinement is None
    plain.set_image(image)
    raw_masks, raw_scores, raw_low = _click(plain)
    logits, _, _ = _click(plain, return_logits=True)
    np.testing.assert_array_equal(raw_masks, logits > 0)

    refined = SamPredictor(tiny, edge_refinement=settings)
    refined.set_image(image)
    masks, scores, low = _click(refined)
    radius = settings.radius_for(WIDTH, tiny.image_size)  # input-frame radius, scaled
    np.testing.assert_array_equal(
        masks, refine_masks(logits, image, radius, 1e-3, settings.subsample)
    )
    assert not np.array_equal(masks, raw_masks)  # so the comparisons below can fail
    np.testing.assert_array_equal(scores, raw_scores)
    np.testing.assert_array_equal(low, raw_low)  # the logits fed back are never refined
    logits_again, _, _ = _click(refined, return_logits=True)
    np.testing.assert_array_equal(logits_again, logits)

    # From a cached embedding: refined only when the pixels come with it.
    cached = encode(SamPredictor(tiny), image)
    restored = SamPredictor(tiny, edge_refinement=settings)
    restore(restored, cached)
    np.testing.assert_array_equal(_click(restored)[0], raw_masks)
    restore(restored, cached, image)
    np.testing.assert_array_equal(_click(restored)[0], masks)
    with pytest.raises(ImageError, match="embedding is of a"):
        restore(restored, cached, image[:-2])
    restored.reset_image()
    assert restored._guide is None


def test_predictor_rejects_a_bad_refinement_setting(tiny):
    with pytest.raises(ConfigError, match="edge_refinement"):
        SamPredictor(tiny, edge_refinement="sharp")  # type: ignore[arg-type]


def test_predict_batch_refines_each_image(tiny):
    images = [synthetic_image(HEIGHT, WIDTH, seed=s) for s in (4, 5)]
    settings = EdgeRefinement(radius=2, eps=1e-3)
    predictor = SamPredictor(tiny, edge_refinement=settings)
    prompts = [{"point_coords": np.array([[30.0, 20.0]]), "point_labels": np.array([1])}] * 2
    batch = predictor.predict_batch(images, prompts)
    for image, (masks, _, _) in zip(images, batch, strict=True):
        single = SamPredictor(tiny, edge_refinement=settings)
        single.set_image(image)
        np.testing.assert_array_equal(masks, _click(single)[0])


def test_pixel_cache_loads_once_and_keeps_to_its_bound():
    calls = []

    def load(value: int):
        def inner():
            calls.append(value)
            return np.full((10, 10, 3), value, np.uint8)  # 300 bytes

        return inner

    cache = PixelCache(max_bytes=700)
    assert cache.get_or_load("a", load(1))[0, 0, 0] == 1
    assert cache.get_or_load("a", load(9))[0, 0, 0] == 1  # kept: not loaded again
    cache.get_or_load("b", load(2))
    cache.get_or_load("c", load(3))  # 900 bytes > 700: "a", the least recent, goes
    assert cache.get_or_load("a", load(4))[0, 0, 0] == 4
    assert calls == [1, 2, 3, 4]


def test_the_servers_click_gives_the_predictors_refined_masks(tmp_path):
    """The annotation server answers from a cached embedding; its masks must be the ones
    `SamPredictor` gives on the image (refined with segany-tiny-v2, the default)."""
    from PIL import Image

    from segany.server.inference import ModelService, StoredImage
    from segany.server.settings import ServerSettings

    image = synthetic_image(96, 128, seed=6)
    path = tmp_path / "image.png"
    Image.fromarray(image).save(path)
    service = ModelService(ServerSettings(data_dir=tmp_path / "data"))
    stored = StoredImage(path, hashlib.sha256(path.read_bytes()).hexdigest(), 128, 96)
    records, _, _ = service.predict(stored, [[60.0, 40.0, 1]], None, True, None)
    service.pixels = PixelCache()  # a later click after the image left memory: read again
    again, _, _ = service.predict(stored, [[60.0, 40.0, 1]], None, True, None)
    predictor = SamPredictor(service.model)
    assert predictor.edge_refinement is not None
    predictor.set_image(image)
    masks, scores, _ = predictor.predict(np.array([[60.0, 40.0]]), np.array([1]))
    order = np.argsort(-scores, kind="stable")
    assert [r["area"] for r in records] == [int(masks[i].sum()) for i in order]
    assert [r["rle"] for r in again] == [r["rle"] for r in records]
    unrefined = SamPredictor(service.model, edge_refinement=None)
    unrefined.set_image(image)
    raw, _, _ = unrefined.predict(np.array([[60.0, 40.0]]), np.array([1]))
    assert any(not np.array_equal(raw[i], masks[i]) for i in range(3))


def test_cache_round_trip_keeps_refined_masks(tmp_path, tiny):
    image = synthetic_image(HEIGHT, WIDTH, seed=7)
    settings = EdgeRefinement(radius=2, eps=1e-3)
    store = EmbeddingCache(tmp_path / "cache")
    direct = SamPredictor(tiny, edge_refinement=settings)
    cached, hit = store.get_or_compute("ab" * 32, lambda: encode(direct, image))
    assert not hit
    first = _click(direct)[0]
    again, hit = store.get_or_compute("ab" * 32, lambda: pytest.fail("recomputed"))
    assert hit
    restored = SamPredictor(tiny, edge_refinement=settings)
    restore(restored, again, image)
    np.testing.assert_array_equal(_click(restored)[0], first)
    assert torch.equal(again.embedding, cached.embedding)


def test_automatic_masks_of_the_built_in_model_are_refined():
    """AMG thresholds each candidate through the predictor: segany-tiny-v2's masks come
    refined (closer to the sample's drawn disc), and switching the predictor's refinement off
    gives the plain threshold."""
    from PIL import Image

    from segany.formats.segmentation import to_binary_mask
    from segany.masks.generator import AutomaticMaskGenerator

    model = build_sam()  # segany-tiny-v2, the shipped weights
    image = np.asarray(Image.open(ROOT / "examples/sample.png").convert("RGB"))
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    disc = (xx - 330) ** 2 + (yy - 190) ** 2 <= 100**2

    def best_disc_iou(refine: bool) -> float:
        generator = AutomaticMaskGenerator(model, points_per_side=8, output_mode="binary_mask")
        assert generator.predictor.edge_refinement is not None
        if not refine:
            generator.predictor.edge_refinement = None
        records = generator.generate(image)
        masks = [to_binary_mask(r["segmentation"]) for r in records]
        return max(float((m & disc).sum() / (m | disc).sum()) for m in masks)

    raw, refined = best_disc_iou(False), best_disc_iou(True)
    assert refined > raw and refined >= 0.97, (raw, refined)


# ---- switching it off: build_sam(edge_refinement=False), --no-edge-refinement ------------------


def test_build_sam_can_leave_the_refinement_off():
    plain = build_sam("segany-tiny-v2", edge_refinement=False)
    assert plain.spec.edge_refinement is None and SamPredictor(plain).edge_refinement is None
    assert get_spec("segany-tiny-v2").edge_refinement is not None  # the registry is untouched
    assert SamPredictor(build_sam("segany-tiny-v2")).edge_refinement is not None


def test_model_source_carries_the_switch_to_every_worker():
    from segany.engine.options import ModelSource

    assert ModelSource("segany-tiny-v2").build().spec.edge_refinement is not None
    source = ModelSource("segany-tiny-v2", edge_refinement=False)
    assert source.build().spec.edge_refinement is None


def test_predict_cli_without_refinement_gives_the_plain_masks(tmp_path, capsys):
    """`segany predict --no-edge-refinement` writes the thresholded logits; by default the
    refined masks, which differ on the sample's disc."""
    from PIL import Image

    from segany.cli.main import main

    sample = ROOT / "examples/sample.png"
    image = np.asarray(Image.open(sample).convert("RGB"))
    written = {}
    for flag in ([], ["--no-edge-refinement"]):
        out = tmp_path / ("plain.png" if flag else "refined.png")
        command = ["predict", str(sample), "--point", "330,190", "--out", str(out), *flag]
        assert main([*command, "--no-cache"]) == 0
        written[bool(flag)] = np.asarray(Image.open(out)) > 0
    capsys.readouterr()
    predictor = SamPredictor(build_sam(), edge_refinement=None)
    predictor.set_image(image)
    masks, scores, _ = predictor.predict(np.array([[330.0, 190.0]]), np.array([1]))
    np.testing.assert_array_equal(written[True], masks[int(np.argmax(scores))])
    assert not np.array_equal(written[True], written[False])


def test_the_server_can_serve_plain_masks(tmp_path):
    from segany.server.inference import ModelService
    from segany.server.settings import ServerSettings

    service = ModelService(ServerSettings(data_dir=tmp_path / "data", edge_refinement=False))
    assert SamPredictor(service.model).edge_refinement is None


def test_eval_reports_plain_masks_when_told(capsys):
    import json

    from segany.cli.main import main

    command = ["eval", "--data", "scenes:val:1:64", "--max-masks", "1", "--max-clicks", "1"]
    for flag, expected in (([], True), (["--no-edge-refinement"], False)):
        assert main([*command, "--quiet", "--json", *flag]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["model"] == "segany-tiny-v2"
        assert (report["edge_refinement"] is not None) == expected
