"""SAM's data engine loop end to end, as a user types it: `segany serve --demo`, masks clicked
and accepted through the API, `segany export --format coco`, `segany train` fine-tuning the
decoder of the built-in model on the export, and `segany serve --checkpoint` answering with the new
weights. On SQLite and on PostgreSQL (`--db`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from postgres import postgres_server  # noqa: F401  (fixture)
from segany import SamPredictor, build_sam
from segany.cli.main import main
from segany.data.sample_scene import make_sample
from segany.formats.manifest import read_manifest
from segany.registry import DEFAULT_MODEL
from server_helpers import SAMPLE_POINT, LiveServer


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str | None:
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_server").new_database()


def click(http, image_id: str, x: int, y: int) -> dict:
    response = http.post(f"/api/images/{image_id}/predict", json={"points": [[x, y, 1]]})
    assert response.status_code == 200, response.text
    return response.json()


def test_annotate_export_train_serve(tmp_path, db_url):
    data, export, run = tmp_path / "data", tmp_path / "export", tmp_path / "run"
    project = ["--data", str(data)] + ([] if db_url is None else ["--db", db_url])
    x, y = SAMPLE_POINT

    # 1. Annotate: click, accept the best mask with a category (the annotator's two calls).
    with LiveServer(data, "--demo", "--no-pre-encode", db=db_url) as server:
        with server.client() as http:
            images = http.get("/api/images").json()["images"]
            category = http.get("/api/categories").json()[0]
            accepted = []
            for image, (px, py) in zip(images[:2], [(x, y), (320, 240)], strict=True):
                answer = click(http, image["id"], px, py)
                body = {"rle": answer["masks"][0]["rle"], "category_id": category["id"],
                        "source": "manual", "score": answer["masks"][0]["score"]}  # fmt: skip
                made = http.post(f"/api/images/{image['id']}/annotations", json=body)
                assert made.status_code == 201, made.text
                accepted.append(made.json())
            sample = next(i for i in images if i["file_name"] == "sample.png")
            before = click(http, sample["id"], x, y)

    # 2. Export the project as COCO (the server stopped: the project is on disk).
    assert main(["export", "--format", "coco", "--out", str(export), *project]) == 0
    coco = json.loads((export / "annotations.json").read_text())
    assert len(coco["images"]) == 4 and len(coco["annotations"]) == 2
    assert [a["area"] for a in coco["annotations"]] == [a["area"] for a in accepted]
    manifest = read_manifest(export / "manifest.json")
    assert all(entry.path.is_file() for entry in manifest.values())

    # 3. Fine-tune the built-in model's mask decoder on it for three steps.
    config = tmp_path / "finetune.toml"
    config.write_text(
        f"""
[data]
train = "coco:{export / "annotations.json"}"
[model]
name = "{DEFAULT_MODEL}"
pretrained = true
trainable = "decoder"
[optim]
lr = 0.01
warmup_steps = 0
batch_size = 2
masks_per_image = 2
[loop]
max_steps = 3
iterations = 3
checkpoint_every = 0
device = "cpu"
progress = false
output_dir = "{run}"
"""
    )
    assert main(["train", "--config", str(config)]) == 0
    weights = run / "model.safetensors"
    tuned, shipped = load_file(weights), build_sam(DEFAULT_MODEL).state_dict()
    changed = {k for k in shipped if not torch.equal(tuned[k], shipped[k])}
    assert changed and all(k.startswith("mask_decoder.") for k in changed)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]

    # 4. Serve the fine-tuned weights: the same click gets the new model's answer.
    with LiveServer(data, "--checkpoint", str(weights), "--no-pre-encode", db=db_url) as server:
        with server.client() as http:
            after = click(http, sample["id"], x, y)
            assert len(http.get(f"/api/images/{sample['id']}/annotations").json()) == 1
    assert [m["score"] for m in after["masks"]] != [m["score"] for m in before["masks"]]
    # ... and it is the answer of these weights, computed here without the server.
    predictor = SamPredictor(build_sam(DEFAULT_MODEL, checkpoint=weights))
    predictor.set_image(np.asarray(make_sample()))
    _, scores, _ = predictor.predict(np.array([[x, y]]), np.array([1]))
    served = [m["score"] for m in after["masks"]]
    np.testing.assert_allclose(served, sorted(scores.tolist(), reverse=True), atol=2e-3)
