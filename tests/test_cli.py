"""The `segany` command line, called in-process through `main(argv)`, plus its pure helpers."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segany import build_sam
from segany.cli.main import main
from segany.cli.models import format_table
from segany.cli.parsing import check_inside_image, parse_box, parse_point, parse_prompts
from segany.cli.predict import read_image, save_mask
from segany.download import HOME_ENV, checkpoint_path
from segany.errors import ImageError, PromptError
from segany.masks.extent import mask_area, mask_bbox_xyxy
from segany.registry import DEFAULT_MODEL, list_models
from segany.visualize import (
    BOX_COLOR,
    FOREGROUND_COLOR,
    MASK_COLOR,
    blend_mask,
    draw_overlay,
    mask_outline,
)

HEIGHT, WIDTH = 48, 64
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    """Every test sees an empty checkpoint cache of its own, never the user's."""
    home = tmp_path / "segany_home"
    monkeypatch.setenv(HOME_ENV, str(home))
    return home


@pytest.fixture
def image_path(tmp_path) -> Path:
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([4 * xx, 5 * yy, 255 - 4 * xx], axis=-1).astype(np.uint8)  # (H, W, 3)
    rgb[10:30, 20:45] = (250, 40, 40)
    path = tmp_path / "image.png"
    Image.fromarray(rgb).save(path)
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tiny(image: Path, out: Path, *extra) -> list:
    """A predict command line on the test_tiny model with random weights."""
    return ["predict", image, "--model", "test_tiny", "--random-weights", "--out", out, *extra]


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "L"
        return np.asarray(image)


# ---- top level ------------------------------------------------------------------------------


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.startswith("segany ")


def test_help_exits_zero(capsys):
    code, out, _ = run(capsys, "predict", "--help")
    assert code == 0
    assert "--point" in out


def test_no_command_prints_usage(capsys):
    code, out, err = run(capsys)
    assert code == 2
    assert out == ""
    assert "predict" in err


def test_console_script_smoke(tmp_path):
    exe = shutil.which("segany")
    assert exe is not None, "the segany console script is not on PATH (pip install -e .)"
    env = {**os.environ, HOME_ENV: str(tmp_path)}
    done = subprocess.run(
        [exe, "models"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "test_tiny" in done.stdout


# ---- models ---------------------------------------------------------------------------------


def test_models_table_lists_every_model_and_the_cache(capsys):
    cached = checkpoint_path("vit_t")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    code, out, _ = run(capsys, "models")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "IMAGE", "DOWNLOAD", "CHECKPOINT", "CACHED", "DESCRIPTION"]
    rows = {line.split()[0]: line for line in lines[1:] if line.strip()}
    assert set(list_models()) <= set(rows)
    cached_column = lines[0].index("CACHED")
    assert rows["vit_t"][cached_column:].split()[0] == "yes"
    assert rows["vit_b"][cached_column:].split()[0] == "no"
    assert rows["test_tiny"][cached_column:].split()[0] == "-"
    assert "sam_vit_b_01ec64.pth" in rows["vit_b"]
    assert str(cached.parent) in out


def test_models_json(capsys):
    cached = checkpoint_path("vit_b")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    models = {m["name"]: m for m in json.loads(out)}
    assert list(models) == list_models()
    assert models["vit_b"]["cached"] is True
    assert models["vit_b"]["path"] == str(cached)
    assert models["vit_h"]["cached"] is False
    assert models["vit_h"]["image_size"] == 1024
    assert models["test_tiny"]["image_size"] == 256
    assert models["test_tiny"]["checkpoint"] is None
    assert models["test_tiny"]["cached"] is False
    assert [n for n, m in models.items() if m["default"]] == [DEFAULT_MODEL]


def test_format_table_aligns_columns():
    table = format_table([("a", "1", "2", "3", "4", "long description"), ("bbbb", *"56789")])
    header, first, second = table.splitlines()
    assert header.index("IMAGE") == first.index("1") == second.index("5")
    assert first.endswith("long description")


# ---- predict --------------------------------------------------------------------------------


def test_predict_random_weights_writes_masks_overlay_and_json(capsys, tmp_path, image_path):
    out, overlay = tmp_path / "mask.png", tmp_path / "overlay.png"
    prompts = ["--point", "30,20", "--point", "5,40,0", "--box", "15,5,50,35"]
    code, stdout, err = run(
        capsys, *tiny(image_path, out, *prompts, "--overlay", overlay, "--all-masks", "--json")
    )
    assert code == 0, err
    assert "meaningless" in err  # the random-weights warning

    report = json.loads(stdout)
    assert report["model"] == "test_tiny"
    assert report["checkpoint"] is None
    assert report["image"] == {"path": str(image_path), "width": WIDTH, "height": HEIGHT}
    assert report["prompts"] == {
        "points": [[30.0, 20.0, 1], [5.0, 40.0, 0]],
        "box_xyxy": [15.0, 5.0, 50.0, 35.0],
        "boxes_xyxy": [[15.0, 5.0, 50.0, 35.0]],
    }
    masks = report["masks"]
    assert [m["index"] for m in masks] == [0, 1, 2, 3]  # two points: the click rule's four
    scores = [m["score"] for m in masks]
    assert all(math.isfinite(s) for s in scores)
    best = 0  # best first
    assert report["chosen"] == best
    assert [m["chosen"] for m in masks] == [i == best for i in range(4)]
    # The same candidates, in the same order, as the Python API's click rule.
    from segany import SamPredictor
    from segany.formats.image import read_image
    from segany.interactive import predict_edit

    predictor = SamPredictor(build_sam("test_tiny", pretrained=False, seed=0))
    predictor.set_image(read_image(image_path))
    points, labels, box = [[30.0, 20.0], [5.0, 40.0]], [1, 0], [15.0, 5.0, 50.0, 35.0]
    expected, _, _ = predict_edit(predictor, np.array(points), np.array(labels), np.array(box))

    chosen = read_png(out)
    assert chosen.shape == (HEIGHT, WIDTH)
    assert set(np.unique(chosen)) <= {0, 255}
    for m in masks:
        path = tmp_path / f"mask_{m['index']}.png"
        expected_paths = [str(out), str(path)] if m["chosen"] else [str(path)]
        assert m["paths"] == expected_paths
        pixels = read_png(path) > 0
        assert m["area"] == int(pixels.sum())
        bbox = mask_bbox_xyxy(pixels)
        assert m["bbox_xyxy"] == (list(bbox) if bbox is not None else None)
    np.testing.assert_array_equal(read_png(tmp_path / f"mask_{best}.png"), chosen)
    for i, mask in enumerate(expected):
        np.testing.assert_array_equal(read_png(tmp_path / f"mask_{i}.png") > 0, mask)

    assert report["out"] == str(out)
    assert report["overlay"] == str(overlay)
    with Image.open(overlay) as drawn:
        assert drawn.size == (WIDTH, HEIGHT)
        assert drawn.mode == "RGB"


def test_predict_single_gives_one_mask(capsys, tmp_path, image_path):
    out = tmp_path / "mask.png"
    code, stdout, err = run(
        capsys, *tiny(image_path, out, "--box", "10,5,40,30", "--single", "--json")
    )
    assert code == 0, err
    masks = json.loads(stdout)["masks"]
    assert len(masks) == 1
    assert masks[0]["chosen"] is True
    assert read_png(out).shape == (HEIGHT, WIDTH)


def test_predict_prints_a_human_summary(capsys, tmp_path, image_path):
    out = tmp_path / "mask.png"
    code, stdout, _ = run(capsys, *tiny(image_path, out, "--point", "30,20"))
    assert code == 0
    assert f"({WIDTH}x{HEIGHT})" in stdout
    assert stdout.count("mask ") == 3
    assert f"best, written to {out}" in stdout


def test_predict_several_boxes_one_object_each(capsys, tmp_path, image_path):
    """Each --box is one object, as with the Python API's (B, 4) boxes; --out is the union of
    the objects' best masks, and the report has one entry per box."""
    out = tmp_path / "mask.png"
    boxes = ["--box", "2,2,20,20", "--box", "30,10,60,40"]
    code, stdout, err = run(capsys, *tiny(image_path, out, *boxes, "--all-masks", "--json"))
    assert code == 0, err
    report = json.loads(stdout)
    assert report["prompts"]["boxes_xyxy"] == [[2, 2, 20, 20], [30, 10, 60, 40]]
    assert report["prompts"]["box_xyxy"] is None
    objects = report["objects"]
    assert [o["box_xyxy"] for o in objects] == [[2, 2, 20, 20], [30, 10, 60, 40]]
    union = np.zeros((HEIGHT, WIDTH), bool)
    for b, obj in enumerate(objects):
        assert len(obj["masks"]) == 3
        best = int(np.argmax([m["score"] for m in obj["masks"]]))
        assert obj["chosen"] == best
        union |= read_png(tmp_path / f"mask_{b}_{best}.png") > 0
    np.testing.assert_array_equal(read_png(out) > 0, union)

    # The same objects from the Python API, one call with (B, 4) boxes.
    from segany import SamPredictor
    from segany.formats.image import read_image

    predictor = SamPredictor(build_sam("test_tiny", pretrained=False, seed=0))
    predictor.set_image(read_image(image_path))
    masks, scores, _ = predictor.predict(box=np.array([[2, 2, 20, 20], [30, 10, 60, 40]]))
    for b in range(2):
        best = int(np.argmax(scores[b]))
        np.testing.assert_array_equal(
            read_png(tmp_path / f"mask_{b}_{best}.png") > 0, masks[b, best]
        )

    code, stdout, _ = run(capsys, *tiny(image_path, out, *boxes))
    assert "box 1 (30,10,60,40):" in stdout and "union of the 2 best masks" in stdout


def test_predict_json_without_out_writes_no_file(capsys, tmp_path, image_path):
    argv = ["predict", image_path, "--model", "test_tiny", "--random-weights", "--point", "30,20"]
    code, stdout, err = run(capsys, *argv, "--json")
    assert code == 0, err
    report = json.loads(stdout)
    assert report["out"] is None and len(report["masks"]) == 3
    assert all(m["paths"] == [] for m in report["masks"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.png", "segany_home"] or sorted(
        p.name for p in tmp_path.iterdir()
    ) == ["image.png"]


def test_predict_with_a_checkpoint_file(capsys, tmp_path, image_path):
    torch.manual_seed(3)
    checkpoint = tmp_path / "tiny.pth"
    torch.save(build_sam("test_tiny", pretrained=False).state_dict(), checkpoint)
    out = tmp_path / "mask.png"
    argv = ["predict", image_path, "--model", "test_tiny", "--checkpoint", checkpoint]
    code, stdout, err = run(capsys, *argv, "--point", "30,20", "--out", out, "--json")
    assert code == 0, err
    assert "warning" not in err
    report = json.loads(stdout)
    assert report["checkpoint"] == str(checkpoint)
    assert len(report["masks"]) == 3
    assert set(np.unique(read_png(out))) <= {0, 255}


def test_predict_uses_the_downloaded_checkpoint_by_default(capsys, tmp_path, image_path):
    """Without --checkpoint the cached official file is loaded: here a corrupt one, to see it
    is the file that was opened without building a large model."""
    cached = checkpoint_path("vit_t")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a checkpoint")
    out = tmp_path / "mask.png"
    code, _, err = run(
        capsys, "predict", image_path, "--model", "vit_t", "--point", "3,4", "--out", out
    )
    assert code == 2
    assert str(cached) in err


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated_png(tmp_path: Path, image_path: Path) -> Path:
    data = image_path.read_bytes()
    return _write(tmp_path / "truncated.png", data[: len(data) // 2])


# Each case: a function (tmp_path, image, out) -> argv, and a phrase the error must contain.
ERROR_CASES = {
    "missing image": (lambda t, i, o: tiny(t / "nope.png", o, "--point", "1,1"), "not found"),
    "corrupt image": (
        lambda t, i, o: tiny(_write(t / "bad.png", b"not an image"), o, "--point", "1,1"),
        "cannot read",
    ),
    "truncated image": (
        lambda t, i, o: tiny(_truncated_png(t, i), o, "--point", "1,1"),
        "cannot read image",
    ),
    "image is a folder": (lambda t, i, o: tiny(t, o, "--point", "1,1"), "is a folder"),
    "point with one value": (lambda t, i, o: tiny(i, o, "--point", "10"), "X,Y or X,Y,LABEL"),
    "point not numeric": (lambda t, i, o: tiny(i, o, "--point", "a,3"), "not a number"),
    "point bad label": (lambda t, i, o: tiny(i, o, "--point", "1,2,5"), "label must be 1"),
    "point NaN": (lambda t, i, o: tiny(i, o, "--point", "nan,3"), "finite"),
    "box infinite": (lambda t, i, o: tiny(i, o, "--box", "0,0,inf,5"), "finite"),
    "no prompt": (lambda t, i, o: tiny(i, o), "at least one prompt"),
    "box x1 < x0": (lambda t, i, o: tiny(i, o, "--box", "50,5,10,40"), "X1 >= X0"),
    "nothing to write": (
        lambda t, i, o: [
            "predict",
            i,
            "--model",
            "test_tiny",
            "--random-weights",
            "--point",
            "1,1",
        ],
        "nothing to write",
    ),
    "all masks without out": (
        lambda t, i, o: [
            *["predict", i, "--model", "test_tiny", "--random-weights", "--point", "1,1"],
            *["--json", "--all-masks"],
        ],
        "give --out",
    ),
    "second box outside": (
        lambda t, i, o: tiny(i, o, "--box", "1,1,5,5", "--box", "2,2,6,60"),
        "2,2,6,60 reaches outside the image",
    ),
    "model typo": (
        lambda t, i, o: ["predict", i, "--model", "vit-b", "--point", "1,1", "--out", o],
        "did you mean 'vit_b'",
    ),
    "point outside": (lambda t, i, o: tiny(i, o, "--point", "100,10"), "outside the image"),
    "box outside": (lambda t, i, o: tiny(i, o, "--box", "0,0,10,60"), "outside the image"),
    "unknown model": (
        lambda t, i, o: ["predict", i, "--model", "vit_z", "--point", "1,1", "--out", o],
        "unknown model 'vit_z'",
    ),
    "vit_b not downloaded": (
        lambda t, i, o: ["predict", i, "--model", "vit_b", "--point", "1,1", "--out", o],
        "segany download vit_b",
    ),
    "test_tiny without weights": (
        lambda t, i, o: ["predict", i, "--model", "test_tiny", "--point", "1,1", "--out", o],
        "--random-weights",
    ),
    "random weights for an official model": (
        lambda t, i, o: [
            "predict",
            i,
            "--model",
            "vit_t",
            "--random-weights",
            "--point",
            "1,1",
            "--out",
            o,
        ],
        "only for models without official weights",
    ),
    "random weights and checkpoint": (
        lambda t, i, o: tiny(i, o, "--point", "1,1", "--checkpoint", t / "w.pth"),
        "not both",
    ),
    "missing checkpoint file": (
        lambda t, i, o: [
            "predict",
            i,
            "--model",
            "test_tiny",
            "--checkpoint",
            t / "w.pth",
            "--point",
            "1,1",
            "--out",
            o,
        ],
        "checkpoint file not found",
    ),
    "corrupt checkpoint file": (
        lambda t, i, o: [
            "predict",
            i,
            "--model",
            "test_tiny",
            "--checkpoint",
            _write(t / "w.pth", b"garbage"),
            "--point",
            "1,1",
            "--out",
            o,
        ],
        "cannot read checkpoint",
    ),
    "mask not png": (lambda t, i, o: tiny(i, t / "mask.jpg", "--point", "1,1"), "must end in .png"),
    "output folder missing": (
        lambda t, i, o: tiny(i, t / "no" / "mask.png", "--point", "1,1"),
        "does not exist",
    ),
    "overlay unknown type": (
        lambda t, i, o: tiny(i, o, "--point", "1,1", "--overlay", t / "x.xyz"),
        "cannot write images",
    ),
    "output overwrites input": (
        lambda t, i, o: tiny(i, i, "--point", "1,1"),
        "overwrite the input",
    ),
    "bad device": (
        lambda t, i, o: tiny(i, o, "--point", "1,1", "--device", "gpu7"),
        "not a device",
    ),
    "unknown option": (lambda t, i, o: tiny(i, o, "--point", "1,1", "--colour"), "unrecognized"),
    "missing --out": (lambda t, i, o: ["predict", i, "--point", "1,1"], "--out"),
    "unknown command": (lambda t, i, o: ["segment", i], "invalid choice"),
    "download test_tiny": (lambda t, i, o: ["download", "test_tiny"], "no official checkpoint"),
    "download unknown model": (lambda t, i, o: ["download", "vit_q"], "unknown model"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_user_errors_exit_2_with_one_clear_message(case, capsys, tmp_path, image_path):
    make_argv, phrase = ERROR_CASES[case]
    out = tmp_path / "mask.png"
    code, stdout, err = run(capsys, *make_argv(tmp_path, image_path, out))
    assert code == 2
    assert stdout == ""
    assert err.startswith("error: ")
    assert "Traceback" not in err
    assert phrase in err
    assert not out.exists()


# ---- pure helpers ---------------------------------------------------------------------------


def test_parse_point():
    assert parse_point("10,20") == (10.0, 20.0, 1)
    assert parse_point(" 1.5, 2 ,0") == (1.5, 2.0, 0)
    assert parse_point("3,4,1") == (3.0, 4.0, 1)


@pytest.mark.parametrize(
    "text", ["", "1", "1,2,1,0", "x,2", "1,", "1,2,2", "1,2,fg", "nan,1", "1,-inf"]
)
def test_parse_point_rejects(text):
    with pytest.raises(PromptError, match="--point"):
        parse_point(text)


def test_parse_box():
    assert parse_box("1,2,30.5,40") == (1.0, 2.0, 30.5, 40.0)
    assert parse_box("5,5,5,5") == (5.0, 5.0, 5.0, 5.0)  # degenerate but well-formed


@pytest.mark.parametrize(
    "text", ["1,2,3", "1,2,3,4,5", "a,2,3,4", "1,2,nan,4", "9,2,3,4", "1,9,3,4"]
)
def test_parse_box_rejects(text):
    with pytest.raises(PromptError, match="--box"):
        parse_box(text)


def test_parse_prompts_shapes():
    coords, labels, box = parse_prompts(["1,2", "3,4,0"], ["0,0,5,6"])
    np.testing.assert_array_equal(coords, [[1, 2], [3, 4]])
    assert coords.shape == (2, 2) and coords.dtype == np.float64
    np.testing.assert_array_equal(labels, [1, 0])
    np.testing.assert_array_equal(box, [[0, 0, 5, 6]])  # (B, 4)
    assert parse_prompts([], ["0,0,5,6"])[:2] == (None, None)
    assert parse_prompts([], ["0,0,5,6", "1,1,2,2"])[2].shape == (2, 4)
    assert parse_prompts(["1,2"], [])[2] is None
    with pytest.raises(PromptError, match="at least one prompt"):
        parse_prompts([], [])


def test_check_inside_image():
    check_inside_image(np.array([[0.0, 0.0], [64.0, 48.0]]), np.array([0, 0, 64, 48]), 64, 48)
    with pytest.raises(PromptError, match="64x48"):
        check_inside_image(np.array([[64.5, 1.0]]), None, 64, 48)
    with pytest.raises(PromptError, match="outside"):
        check_inside_image(None, np.array([-1, 0, 10, 10]), 64, 48)


def test_mask_area_and_bbox():
    mask = np.zeros((6, 8), dtype=bool)
    assert mask_area(mask) == 0
    assert mask_bbox_xyxy(mask) is None
    mask[2, 3] = True
    assert mask_bbox_xyxy(mask) == (3, 2, 4, 3)  # one pixel: exclusive corner
    mask[4:6, 1] = True
    assert mask_area(mask) == 3
    assert mask_bbox_xyxy(mask) == (1, 2, 4, 6)


def test_mask_outline():
    mask = np.zeros((9, 9), dtype=bool)
    mask[2:7, 2:7] = True  # a 5x5 square
    ring = mask_outline(mask)
    assert ring.sum() == 16 and not ring[4, 4] and ring[2, 2]
    assert mask_outline(mask, width=2).sum() == 24
    full = mask_outline(np.ones((4, 5), dtype=bool))
    assert full.sum() == 4 * 5 - 2 * 3  # the image border closes the outline
    assert not mask_outline(np.zeros((3, 3), dtype=bool)).any()


def test_blend_mask():
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    mask = np.array([[True, False], [False, False]])
    blended = blend_mask(image, mask, color=(200, 100, 0), alpha=0.5)
    assert blended[0, 0].tolist() == [100, 50, 0]
    assert blended[1, 1].tolist() == [0, 0, 0]


def test_draw_overlay():
    image = np.full((60, 80, 3), 128, dtype=np.uint8)
    mask = np.zeros((60, 80), dtype=bool)
    mask[10:40, 10:50] = True
    drawn = np.asarray(
        draw_overlay(image, mask, np.array([[30.0, 25.0]]), np.array([1]), np.array([5, 5, 55, 45]))
    )
    assert drawn.shape == (60, 80, 3)
    assert drawn[55, 75].tolist() == [128, 128, 128]  # away from mask and prompts
    assert drawn[20, 40].tolist() == blend_mask(image, mask)[20, 40].tolist()  # tinted inside
    assert drawn[10, 20].tolist() == list(MASK_COLOR)  # the outline
    assert drawn[25, 30].tolist() == list(FOREGROUND_COLOR)  # the point's centre
    assert drawn[45, 30].tolist() == list(BOX_COLOR)  # the box's bottom edge
    with pytest.raises(ImageError, match="does not fit"):
        draw_overlay(image, mask[:10])


def test_read_image_converts_to_upright_rgb(tmp_path):
    gray = tmp_path / "gray.png"
    Image.new("L", (20, 10), 7).save(gray)
    assert read_image(gray).mode == "RGB"
    assert read_image(gray).size == (20, 10)
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: shown rotated by 90 degrees
    Image.new("RGB", (20, 10)).save(rotated, exif=exif)
    assert read_image(rotated).size == (10, 20)


def test_save_mask_writes_0_and_255(tmp_path):
    mask = np.array([[True, False, True]])
    save_mask(mask, tmp_path / "m.png")
    assert read_png(tmp_path / "m.png").tolist() == [[255, 0, 255]]


def test_sample_image_is_small_and_reproducible():
    committed = EXAMPLES / "sample.png"
    assert committed.stat().st_size < 100_000
    spec = importlib.util.spec_from_file_location("make_sample", EXAMPLES / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with Image.open(committed) as image:
        assert image.size == (640, 480)
        np.testing.assert_array_equal(np.asarray(image), np.asarray(module.make_sample()))


def test_predict_reuses_the_images_embedding(capsys, tmp_path, image_path, empty_cache):
    """The second prompt on an image skips the encoder (segany.cache in $SEGANY_HOME), with
    the same masks; --no-cache neither reads nor writes it."""
    argv = [*tiny(image_path, tmp_path / "m.png", "--point", "30,20"), "--json"]
    reports = []
    for extra in ([], [], ["--no-cache"]):
        code, stdout, err = run(capsys, *argv, *extra)
        assert code == 0, err
        reports.append(json.loads(stdout))
    assert [r["embedding_cached"] for r in reports] == [False, True, False]
    assert reports[0]["masks"] == reports[1]["masks"] == reports[2]["masks"]
    assert len(list((empty_cache / "embeddings").rglob("*.safetensors"))) == 1
