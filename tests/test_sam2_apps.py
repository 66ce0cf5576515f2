"""The applications with a SAM 2 model: `segany predict` and `segany amg`, the embedding cache
(three feature levels), the annotation server's click, accept and /auto, the geo service, and
`segany geo segment` / `segany geo amg` on a GeoTIFF.

They run sam2.1_hiera_t's architecture at 256 px with random weights (registered for this
module as SAM2_TEST, with permissive automatic-mask defaults so that random weights keep some
masks): the code paths of the 1024 px model, at a fraction of the time.
"""

from __future__ import annotations

import dataclasses
import json
from types import MappingProxyType

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from conftest import synthetic_image
from segany import registry
from segany.cache import EmbeddingCache, encode, image_key, restore
from segany.cli.main import main
from segany.predictor import SamPredictor
from segany.server.app import create_app
from segany.server.settings import ServerSettings
from server_helpers import LOCAL_URL, scene_png

SAM2_TEST = "test_sam2.1_hiera_t_256"
FEATURES = {"image_embed", "high_res_feat_s0", "high_res_feat_s1"}


@pytest.fixture(scope="module", autouse=True)
def sam2_test_model():
    """SAM2_TEST in the registry while this module runs."""
    spec = dataclasses.replace(
        registry.get_spec("sam2.1_hiera_t").at_image_size(256),
        name=SAM2_TEST,
        url=None,
        checkpoint_name=None,
        amg_defaults=MappingProxyType(
            {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
        ),
        description="sam2.1_hiera_t at 256 px, random weights (tests)",
    )
    registry.register(spec)
    yield spec
    del registry._SPECS[SAM2_TEST]


@pytest.fixture(autouse=True)
def _isolated_home(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGANY_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def model():
    return registry.build_sam(SAM2_TEST, pretrained=False, seed=0)


# ---- the cache ---------------------------------------------------------------------------------


def test_cache_keeps_every_feature_level_and_restores_the_same_masks(model, tmp_path):
    image = synthetic_image(96, 128, seed=1)
    predictor = SamPredictor(model)
    cache = EmbeddingCache(tmp_path / "cache", max_memory_bytes=0)  # disk only: a real round trip
    key = image_key(image.tobytes(), SAM2_TEST, "random-seed-0")
    computed, hit = cache.get_or_compute(key, lambda: encode(predictor, image))
    assert not hit and set(computed.features) == FEATURES
    expected = predictor.predict(np.array([[40.0, 30.0]]), np.array([1]))

    again, hit = cache.get_or_compute(key, lambda: pytest.fail("computed twice"))
    assert hit and set(again.features) == FEATURES
    assert again.nbytes == sum(t.numel() * 4 for t in computed.features.values())
    for name, tensor in computed.features.items():
        assert torch.equal(again.features[name], tensor)
    fresh = SamPredictor(model)
    restore(fresh, again, image)
    got = fresh.predict(np.array([[40.0, 30.0]]), np.array([1]))
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], atol=1e-6)


def test_cache_keys_differ_between_models():
    assert image_key(b"img", SAM2_TEST, "w") != image_key(b"img", "sam2.1_hiera_t", "w")


# ---- the command line --------------------------------------------------------------------------


def test_predict_command_and_its_embedding_cache(tmp_path, capsys):
    image_path = tmp_path / "scene.png"
    Image.fromarray(synthetic_image(96, 128, seed=2)).save(image_path)
    argv = ["predict", str(image_path), "--model", SAM2_TEST, "--random-weights"]
    argv += ["--point", "60,40", "--box", "20,10,100,80", "--json"]
    reports = []
    for run in range(2):
        out = tmp_path / f"mask{run}.png"
        assert main([*argv, "--out", str(out)]) == 0
        reports.append(json.loads(capsys.readouterr().out))
        mask = np.asarray(Image.open(out))
        assert mask.shape == (96, 128) and set(np.unique(mask)) <= {0, 255}
    assert reports[0]["model"] == SAM2_TEST
    assert len(reports[0]["objects"][0]["masks"]) == 3
    for report in reports:
        for mask in report["objects"][0]["masks"]:
            mask.pop("paths")
    assert [r["embedding_cached"] for r in reports] == [False, True]
    assert reports[0]["objects"] == reports[1]["objects"]  # the second from cached features
    assert (tmp_path / "mask0.png").read_bytes() == (tmp_path / "mask1.png").read_bytes()
    cached = list((tmp_path / "home" / "embeddings").rglob("*.safetensors"))
    assert len(cached) == 1


@pytest.mark.parametrize("m2m", [False, True], ids=["plain", "m2m"])
def test_amg_command(tmp_path, capsys, m2m):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(synthetic_image(96, 128, seed=4)).save(images / "a.png")
    argv = ["amg", str(images), "--out", str(tmp_path / "out"), "--model", SAM2_TEST]
    argv += ["--random-weights", "--quiet", "--box-nms-thresh", "1.0"]
    argv += ["--stability-score-offset", "0.05"] + (["--use-m2m"] if m2m else [])
    assert main(argv) == 0
    record = json.loads((tmp_path / "out" / "a.json").read_text())
    assert len(record["annotations"]) >= 1
    assert record["image"]["height"] == 96


# ---- the annotation server ---------------------------------------------------------------------


@pytest.fixture
def client(tmp_path):
    settings = ServerSettings(
        data_dir=tmp_path / "data", model=SAM2_TEST, random_weights=True, pre_encode=False
    )
    with TestClient(create_app(settings), base_url=LOCAL_URL) as client:
        yield client


def test_server_click_accept_and_auto(client):
    info = client.get("/api/info").json()
    assert (info["model"], info["image_size"]) == (SAM2_TEST, 256)
    upload = client.post("/api/images", files={"file": ("a.png", scene_png(5), "image/png")})
    assert upload.status_code == 201, upload.text
    image_id = upload.json()["id"]
    url = f"/api/images/{image_id}/predict"

    first = client.post(url, json={"points": [[60, 40, 1]]})
    assert first.status_code == 200, first.text
    first = first.json()
    assert len(first["masks"]) == 3 and first["cached"] is False
    # A second click refines the first answer: its low-resolution logits are the mask input.
    second = client.post(
        url, json={"points": [[60, 40, 1], [20, 20, 0]], "previous": first["previous"]}
    )
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["cached"] is True and len(second["masks"]) == 4

    chosen = second["masks"][0]
    accepted = client.post(
        f"/api/images/{image_id}/annotations",
        json={"rle": chosen["rle"], "score": chosen["score"], "source": "semi-auto"},
    )
    assert accepted.status_code == 201, accepted.text
    assert len(client.get(f"/api/images/{image_id}/annotations").json()) == 1

    auto = client.post(f"/api/images/{image_id}/auto")
    assert auto.status_code == 200, auto.text
    masks = auto.json()["masks"]
    assert masks, "permissive thresholds keep some of the random model's masks"
    assert all(m["rle"]["size"] == [96, 128] for m in masks)


# ---- the geo service ---------------------------------------------------------------------------


def test_geo_segment(tmp_path):
    from geo_helpers import Scene, TileServer

    scene = Scene()
    lng, lat = scene.inside("rect")
    with TileServer(scene) as tiles:
        settings = ServerSettings(
            data_dir=tmp_path / "data",
            model=SAM2_TEST,
            random_weights=True,
            pre_encode=False,
            tile_url=tiles.template("ok"),
        )
        with TestClient(create_app(settings), base_url=LOCAL_URL) as client:
            prompt = {"id": 3, "type": "point", "data": {"lat": lat, "lng": lng}, "label": 1}
            body = {"bbox": scene.bbox(), "zoom": scene.zoom, "prompt": [prompt]}
            answer = client.post("/infer_samgis", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["n_predictions"] == 1
            again = client.post("/infer_samgis", json=body).json()
            assert again["cached_embedding"] is True
            assert again["geojson"] == answer.json()["geojson"]


# ---- segany geo on a GeoTIFF -------------------------------------------------------------------


@pytest.fixture
def geotiff(tmp_path):
    """A (96, 128) RGB GeoTIFF in UTM 32N, 1 m pixels; its top-left corner at (500000, 5e6)."""
    import rasterio  # segany[geo], part of segany[dev]
    from rasterio.transform import from_origin

    data = synthetic_image(96, 128, seed=6).transpose(2, 0, 1)  # (3, H, W)
    path = tmp_path / "scene.tif"
    profile = dict(driver="GTiff", width=128, height=96, count=3, dtype="uint8")
    transform = from_origin(500000, 5000000, 1, 1)
    with rasterio.open(path, "w", crs="EPSG:32632", transform=transform, **profile) as out:
        out.write(data)
    return path


def test_geo_commands_on_a_geotiff(geotiff, tmp_path, capsys):
    model = ["--model", SAM2_TEST, "--random-weights"]
    out = tmp_path / "click.geojson"
    point = "500060.5,4999959.5"  # pixel (60, 40), in the raster's CRS
    code = main(["geo", "segment", str(geotiff), "--point", point, "--out", str(out), *model])
    assert code == 0, capsys.readouterr().err
    assert json.loads(out.read_text())["features"]

    out = tmp_path / "auto.gpkg"
    code = main(["geo", "amg", str(geotiff), "--out", str(out), *model, "--box-nms-thresh", "1"])
    assert code == 0, capsys.readouterr().err
    assert out.is_file()
