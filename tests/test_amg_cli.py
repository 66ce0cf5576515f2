"""`segany amg` and its parts: the mask writers (SA-1B, COCO, PNG), atomic writes, image
discovery, the many-mask overlay, the command line with a stub generator (no model), and end to
end with the tiny random-weights model on the local and the Ray engine."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as coco_mask

from conftest import synthetic_image
from segany.cli.main import main
from segany.engine import ModelSource, find_images
from segany.engine import worker as engine_worker
from segany.errors import ConfigError, FormatError, ImageError
from segany.formats import (
    merge_coco_parts,
    read_png_metadata,
    read_sa1b,
    to_binary_mask,
    to_coco_rle,
    write_coco_part,
    write_png_masks,
    write_sa1b,
)
from segany.formats.atomic import atomic_file, atomic_folder
from segany.formats.manifest import ManifestEntry, read_manifest
from segany.formats.png import METADATA_HEADER
from segany.masks.config import AmgConfig
from segany.masks.rle import masks_to_rle
from segany.registry import get_spec
from segany.visualize import distinct_color, draw_masks

HEIGHT, WIDTH = 64, 80
# Thresholds at which the random-weights test_tiny model keeps masks.
LOW = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0"]
TINY = ["--model", "test_tiny", "--random-weights", "--quiet"]
GOOD = ["a.png", "c.png", "sub/b.jpg"]  # the readable images of `images`, by name


@pytest.fixture
def images(tmp_path) -> Path:
    """A folder: three small images (one in a subfolder), a corrupt PNG, a text file, and a
    hidden image (skipped, as an interrupted write's temporary file would be)."""
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(synthetic_image(HEIGHT, WIDTH, seed=0)).save(folder / "a.png")
    Image.fromarray(synthetic_image(HEIGHT, WIDTH, seed=1)).save(folder / "sub" / "b.jpg")
    Image.fromarray(synthetic_image(HEIGHT - 8, WIDTH, seed=2)).save(folder / "c.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (folder / "notes.txt").write_text("not an image")
    Image.fromarray(synthetic_image(8, 8)).save(folder / ".hidden.png")
    return folder


def amg(capsys, *argv) -> tuple[int, str, str]:
    code = main(["amg", *(str(a) for a in argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- a generator stub: two rectangles per image, no model --------------------------------


def rectangles(height: int, width: int) -> list[np.ndarray]:
    """Two (H, W) bool masks: a large and a small rectangle."""
    big = np.zeros((height, width), dtype=bool)
    big[5 : height - 5, 10 : width - 10] = True
    small = np.zeros((height, width), dtype=bool)
    small[2:9, 3:7] = True
    return [big, small]


def record(mask: np.ndarray, segmentation, i: int = 0) -> dict:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return {
        "segmentation": segmentation,
        "area": int(mask.sum()),
        "bbox": [x0, y0, int(xs.max()) - x0, int(ys.max()) - y0],
        "predicted_iou": 0.9 - 0.1 * i,
        "point_coords": [[float(x0) + 0.5, float(y0)]],
        "stability_score": np.float32(0.95),  # a NumPy scalar, as a generator may hand
        "crop_box": [0, 0, mask.shape[1], mask.shape[0]],
    }


def coco_records(height: int, width: int) -> list[dict]:
    masks = rectangles(height, width)
    rles = masks_to_rle(torch.as_tensor(np.stack(masks)))
    pairs = enumerate(zip(masks, rles, strict=True))
    return [record(mask, to_coco_rle(rle), i) for i, (mask, rle) in pairs]


class StubGenerator:
    """Answers `generate` like AutomaticMaskGenerator in coco_rle mode."""

    calls = 0

    def __init__(self, model, amg: AmgConfig) -> None:
        assert amg.output_mode == "coco_rle"  # the engine asks for compact masks
        self.amg = amg
        StubGenerator.last = self

    def generate(self, image: np.ndarray) -> list[dict]:
        assert image.dtype == np.uint8 and image.ndim == 3
        StubGenerator.calls += 1
        return coco_records(*image.shape[:2])


@pytest.fixture
def stub(monkeypatch):
    StubGenerator.calls = 0
    monkeypatch.setattr(engine_worker, "build_generator", StubGenerator)
    monkeypatch.setattr(ModelSource, "build", lambda self: None)
    return StubGenerator


# ---- writers ------------------------------------------------------------------------------


def test_segmentation_forms_convert_to_each_other():
    mask = rectangles(HEIGHT, WIDTH)[0]
    rle = masks_to_rle(torch.as_tensor(mask)[None])[0]
    coco = to_coco_rle(mask)
    assert isinstance(coco["counts"], str) and coco["size"] == [HEIGHT, WIDTH]
    assert to_coco_rle(rle) == coco == to_coco_rle(coco)
    as_bytes = {"size": coco["size"], "counts": coco["counts"].encode()}
    for form in (mask, rle, coco, as_bytes):
        np.testing.assert_array_equal(to_binary_mask(form), mask)
    with pytest.raises(FormatError):
        to_binary_mask({"counts": "x"})
    with pytest.raises(FormatError):
        to_coco_rle(np.zeros((2, 3, 4), dtype=bool))


def test_coco_rle_of_an_array_matches_pycocotools_wherever_the_mask_sits():
    """to_coco_rle encodes only the mask's tight box; the result must be pycocotools' own
    encoding of the whole image: masks at the borders, spanning the full height or width,
    single pixels, empty and full."""
    rng = np.random.default_rng(2)
    cases = [np.zeros((7, 5), bool), np.ones((7, 5), bool)]
    for y0, y1, x0, x1 in ((0, 7, 1, 3), (2, 3, 0, 5), (6, 7, 4, 5), (0, 1, 0, 1), (1, 6, 1, 4)):
        mask = np.zeros((7, 5), bool)
        mask[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < 0.7
        mask[y0, x0] = mask[y1 - 1, x1 - 1] = True
        cases.append(mask)
    for mask in cases:
        expected = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        got = to_coco_rle(mask)
        assert got == {"size": [7, 5], "counts": expected["counts"].decode()}
        np.testing.assert_array_equal(to_binary_mask(got), mask)


def test_sa1b_file_round_trip(tmp_path):
    masks = rectangles(HEIGHT, WIDTH)
    records = coco_records(HEIGHT, WIDTH)
    path = tmp_path / "deep" / "a.json"
    write_sa1b(path, 7, "sub/a.jpg", WIDTH, HEIGHT, records)
    document = read_sa1b(path)
    assert document["image"] == {
        "image_id": 7,
        "file_name": "sub/a.jpg",
        "width": WIDTH,
        "height": HEIGHT,
    }
    annotations = document["annotations"]
    assert [a["id"] for a in annotations] == [0, 1]
    for annotation, mask, rec in zip(annotations, masks, records, strict=True):
        assert set(annotation) == {
            "id",
            "segmentation",
            "area",
            "bbox",
            "predicted_iou",
            "stability_score",
            "point_coords",
            "crop_box",
        }
        assert isinstance(annotation["segmentation"]["counts"], str)
        np.testing.assert_array_equal(to_binary_mask(annotation["segmentation"]), mask)
        assert annotation["area"] == int(mask.sum())
        assert annotation["bbox"] == rec["bbox"]
        assert annotation["predicted_iou"] == pytest.approx(rec["predicted_iou"])
        assert isinstance(annotation["stability_score"], float)
        assert annotation["point_coords"] == rec["point_coords"]
        assert annotation["crop_box"] == [0, 0, WIDTH, HEIGHT]

    # Binary masks and uncompressed RLEs give the same file.
    binary = [{**r, "segmentation": m} for r, m in zip(records, masks, strict=True)]
    write_sa1b(tmp_path / "b.json", 7, "sub/a.jpg", WIDTH, HEIGHT, binary)
    assert (tmp_path / "b.json").read_text() == path.read_text()
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary files left


def test_read_sa1b_rejects_other_files(tmp_path):
    (tmp_path / "x.json").write_text('{"images": []}')
    with pytest.raises(FormatError, match="not an SA-1B file"):
        read_sa1b(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{")
    with pytest.raises(FormatError, match="not JSON"):
        read_sa1b(tmp_path / "y.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(FormatError, match="not JSON"):
        read_sa1b(tmp_path / "binary.json")
    with pytest.raises(FormatError, match="cannot read"):
        read_sa1b(tmp_path / "missing.json")
    with pytest.raises(FormatError, match="cannot read"):
        read_sa1b(tmp_path)


def test_coco_parts_merge_into_a_file_pycocotools_loads(tmp_path):
    from pycocotools.coco import COCO

    write_coco_part(tmp_path / "p" / "a.json", "a.png", WIDTH, HEIGHT, coco_records(HEIGHT, WIDTH))
    write_coco_part(tmp_path / "p" / "b.json", "b.png", 40, 30, coco_records(30, 40))
    write_coco_part(tmp_path / "p" / "e.json", "e.png", 9, 9, [])  # an image without masks
    parts = [(3, tmp_path / "p" / "a.json"), (5, tmp_path / "p" / "b.json")]
    parts.append((6, tmp_path / "p" / "e.json"))
    assert merge_coco_parts(parts, tmp_path / "coco.json") == (3, 4)

    coco = COCO(str(tmp_path / "coco.json"))
    assert sorted(coco.getImgIds()) == [3, 5, 6]
    assert coco.loadImgs(5)[0] == {"id": 5, "file_name": "b.png", "width": 40, "height": 30}
    assert coco.loadCats(coco.getCatIds()) == [{"id": 1, "name": "object"}]
    annotations = coco.loadAnns(coco.getAnnIds())
    assert [a["id"] for a in annotations] == [1, 2, 3, 4]
    assert [a["image_id"] for a in annotations] == [3, 3, 5, 5]
    for annotation in annotations:
        assert annotation["iscrowd"] == 0 and annotation["category_id"] == 1
        assert annotation["score"] == annotation["predicted_iou"]
        image = coco.loadImgs(annotation["image_id"])[0]
        mask = coco.annToMask(annotation)
        assert mask.shape == (image["height"], image["width"])
        assert int(mask.sum()) == annotation["area"]
    np.testing.assert_array_equal(coco.annToMask(annotations[2]), rectangles(30, 40)[0])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"{", "cannot read the COCO part"),
        (b"\xff\xfe\x00binary", "cannot read the COCO part"),
        (b"[]", "is not a COCO part file"),
        (None, "cannot read the COCO part"),
    ],
)
def test_a_damaged_coco_part_is_a_format_error_and_writes_nothing(tmp_path, content, message):
    write_coco_part(tmp_path / "a.json", "a.png", WIDTH, HEIGHT, coco_records(HEIGHT, WIDTH))
    bad = tmp_path / "bad.json"
    if content is not None:  # None: the part file is missing
        bad.write_bytes(content)
    out = tmp_path / "coco.json"
    with pytest.raises(FormatError, match=message):
        merge_coco_parts([(1, tmp_path / "a.json"), (2, bad)], out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_png_folder_and_metadata(tmp_path):
    masks = rectangles(HEIGHT, WIDTH)
    records = coco_records(HEIGHT, WIDTH)
    folder = tmp_path / "a"
    assert write_png_masks(folder, records) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["0.png", "1.png", "metadata.csv"]
    lines = (folder / "metadata.csv").read_text().splitlines()
    assert lines[0] == (
        "id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y,predicted_iou,"
        "stability_score,crop_box_x0,crop_box_y0,crop_box_w,crop_box_h"
    )
    assert lines[0] == ",".join(METADATA_HEADER) and len(lines) == 3
    rows = read_png_metadata(folder)
    for i, (row, mask, rec) in enumerate(zip(rows, masks, records, strict=True)):
        with Image.open(folder / f"{i}.png") as png:
            assert png.mode == "L"
            pixels = np.asarray(png)
        assert set(np.unique(pixels)) == {0, 255}
        np.testing.assert_array_equal(pixels == 255, mask)
        assert row["id"] == i and row["area"] == int(mask.sum())
        assert [row[k] for k in ("bbox_x0", "bbox_y0", "bbox_w", "bbox_h")] == rec["bbox"]
        assert [row["point_input_x"], row["point_input_y"]] == rec["point_coords"][0]
        assert row["predicted_iou"] == pytest.approx(rec["predicted_iou"])

    # Rewriting replaces the folder as a whole: no mask of the old run survives.
    write_png_masks(folder, records[:1])
    assert sorted(p.name for p in folder.iterdir()) == ["0.png", "metadata.csv"]


def test_atomic_writes_leave_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError), atomic_file(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []

    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "old.png").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(folder) as temporary:
        (temporary / "0.png").write_text("new")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == [folder]
    assert [p.name for p in folder.iterdir()] == ["old.png"]  # the old result is untouched


def test_draw_masks_gives_each_mask_its_own_colour():
    image = np.full((HEIGHT, WIDTH, 3), 128, dtype=np.uint8)
    big, small = rectangles(HEIGHT, WIDTH)
    drawn = np.asarray(draw_masks(image, iter([big, small]), alpha=1.0))
    assert drawn.shape == image.shape
    assert tuple(drawn[30, 40]) == distinct_color(0)  # inside the big mask only
    assert tuple(drawn[5, 5]) == distinct_color(1)  # the small one, drawn on top
    assert tuple(drawn[0, 0]) == (128, 128, 128)
    colours = {distinct_color(i) for i in range(12)}
    assert len(colours) == 12
    with pytest.raises(ImageError, match="does not fit"):
        draw_masks(image, [np.zeros((3, 3), dtype=bool)])


# ---- discovery ----------------------------------------------------------------------------


def test_find_images_sorted_recursive_and_numbered(images, tmp_path):
    jobs = find_images([images])
    # Folders give images by suffix (the corrupt one too: reading will report it).
    assert [j.name for j in jobs] == ["a.png", "broken.png", "c.png", "sub/b.jpg"]
    assert [j.image_id for j in jobs] == [1, 2, 3, 4]
    assert [j.key for j in jobs] == ["a", "broken", "c", "sub/b"]
    # Names are relative to the folder given; ids follow the sorted names, not the arguments.
    jobs = find_images([images / "sub", images / "a.png"])
    assert [(j.image_id, j.name, j.path) for j in jobs] == [
        (1, "a.png", images / "a.png"),
        (2, "b.jpg", images / "sub" / "b.jpg"),
    ]
    # A file named directly is kept whatever its suffix; a file given twice counts once.
    named = find_images([images / "notes.txt", images / "c.png", images])
    assert [j.name for j in named] == ["a.png", "broken.png", "c.png", "notes.txt", "sub/b.jpg"]
    # Outputs inside the input folder are never inputs.
    (images / "out" / "overlays").mkdir(parents=True)
    Image.fromarray(synthetic_image(8, 8)).save(images / "out" / "overlays" / "a.png")
    assert len(find_images([images], exclude=images / "out")) == 4


def test_find_images_errors(images, tmp_path):
    with pytest.raises(ImageError, match="input not found"):
        find_images([tmp_path / "nowhere"])
    Image.fromarray(synthetic_image(8, 8)).save(images / "a.jpg")
    with pytest.raises(ConfigError, match="would both write"):
        find_images([images])


# ---- the command line, with the stub generator ------------------------------------------


def test_cli_flags_default_to_the_models_defaults(stub, images, tmp_path, capsys):
    """No flag given: SAM's options with the model's own defaults; a flag given wins."""
    code, _, err = amg(capsys, images / "a.png", "--out", tmp_path / "o1", *TINY)
    assert code == 0, err
    assert StubGenerator.last.amg == AmgConfig.for_model(
        get_spec("test_tiny"), output_mode="coco_rle"
    )
    code, _, err = amg(
        capsys,
        images / "a.png",
        "--out",
        tmp_path / "o2",
        *TINY,
        "--pred-iou-thresh",
        "0.25",
        "--skip-covered-points",
    )
    assert code == 0, err
    assert StubGenerator.last.amg.pred_iou_thresh == 0.25
    assert StubGenerator.last.amg.skip_covered_points is True


def test_an_image_with_no_mask_is_warned_about_naming_the_thresholds(
    stub, images, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(StubGenerator, "generate", lambda self, image: [])
    code, stdout, err = amg(capsys, images / "a.png", "--out", tmp_path / "out", *TINY)
    assert code == 0
    assert (
        "a.png: no mask passed the filters (pred_iou_thresh 0.88, stability_score_thresh "
        "0.95)" in err
    )
    assert "(0 masks)" in stdout


@pytest.mark.parametrize("fmt", ["sa1b", "coco", "png"])
def test_amg_writes_each_format_and_reports_the_corrupt_file(capsys, stub, images, tmp_path, fmt):
    out = tmp_path / "out"
    code, stdout, err = amg(capsys, images, "--out", out, "--format", fmt, *TINY)
    assert code == 0, err
    assert "broken.png" in err and "corrupt" in err
    assert "4 images: 3 processed (6 masks), 0 skipped (outputs exist), 1 failed" in stdout
    errors = (out / "errors.txt").read_text().splitlines()
    assert len(errors) == 1 and errors[0].startswith("broken.png\t")
    assert stub.calls == 3

    # Every format records where its images are, the corrupt one too (it has no outputs).
    manifest = read_manifest(out / "manifest.json")
    assert sorted(manifest) == ["a.png", "broken.png", "c.png", "sub/b.jpg"]
    assert manifest["sub/b.jpg"] == ManifestEntry(4, "sub/b.jpg", images / "sub" / "b.jpg")
    if fmt == "sa1b":
        assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json")) == [
            "a.json",
            "c.json",
            "manifest.json",
            "sub/b.json",
        ]
        document = read_sa1b(out / "c.json")
        assert document["image"] == {
            "image_id": 3,
            "file_name": "c.png",
            "width": WIDTH,
            "height": HEIGHT - 8,
        }
        assert len(document["annotations"]) == 2
    elif fmt == "coco":
        from pycocotools.coco import COCO

        coco = COCO(str(out / "annotations.json"))
        names = {img["file_name"]: img for img in coco.loadImgs(coco.getImgIds())}
        assert sorted(names) == GOOD
        assert len(coco.getAnnIds()) == 6
        for annotation in coco.loadAnns(coco.getAnnIds()):
            image = coco.loadImgs(annotation["image_id"])[0]
            assert coco.annToMask(annotation).shape == (image["height"], image["width"])
        assert str(out / "annotations.json") in stdout
    else:
        for key in ("a", "c", "sub/b"):
            assert sorted(p.name for p in (out / key).iterdir()) == [
                "0.png",
                "1.png",
                "metadata.csv",
            ]
            assert len(read_png_metadata(out / key)) == 2
        assert not (out / "broken").exists()


def test_rerun_skips_done_images_and_overwrite_redoes_them(capsys, stub, images, tmp_path):
    out = tmp_path / "out"
    argv = [images, "--out", out, *TINY, "--overlay"]
    assert amg(capsys, *argv)[0] == 0
    outputs = [out / "a.json", out / "sub" / "b.json", out / "overlays" / "c.png"]
    past = 1_000_000_000  # mark the outputs as old, to see whether a rerun touches them
    for path in outputs:
        os.utime(path, (past, past))

    code, stdout, _ = amg(capsys, *argv)
    assert code == 0
    assert "0 processed (0 masks), 3 skipped (outputs exist), 1 failed" in stdout
    assert stub.calls == 3  # the corrupt image is tried again, the others not
    assert all(path.stat().st_mtime == past for path in outputs)

    # A missing overlay makes its image not done; an interrupted write's temp file is ignored.
    (out / "overlays" / "c.png").unlink()
    (out / ".a.tmp-1-deadbeef.json").write_text('{"half')
    code, stdout, _ = amg(capsys, *argv)
    assert "1 processed (2 masks), 2 skipped" in stdout
    assert (out / "overlays" / "c.png").is_file()

    code, stdout, _ = amg(capsys, *argv, "--overwrite")
    assert code == 0 and "3 processed (6 masks), 0 skipped" in stdout
    assert all(path.stat().st_mtime > past for path in outputs)

    # When nothing fails, a stale errors.txt goes.
    (images / "broken.png").unlink()
    assert amg(capsys, *argv)[0] == 0
    assert not (out / "errors.txt").exists()


def test_coco_rerun_merges_old_and_new_images(capsys, stub, images, tmp_path):
    import shutil

    from pycocotools.coco import COCO

    out = tmp_path / "out"
    shutil.move(images / "sub", tmp_path / "later")
    assert amg(capsys, images, "--out", out, "--format", "coco", *TINY)[0] == 0
    shutil.move(tmp_path / "later", images / "sub")
    code, stdout, _ = amg(capsys, images, "--out", out, "--format", "coco", *TINY)
    assert "1 processed (2 masks), 2 skipped" in stdout
    coco = COCO(str(out / "annotations.json"))
    assert sorted(img["file_name"] for img in coco.loadImgs(coco.getImgIds())) == GOOD
    assert len(coco.getAnnIds()) == 6


def test_overlay_is_written_per_image(capsys, stub, images, tmp_path):
    out = tmp_path / "out"
    assert amg(capsys, images, "--out", out, "--format", "png", "--overlay", *TINY)[0] == 0
    with Image.open(out / "overlays" / "sub" / "b.png") as overlay:
        assert overlay.size == (WIDTH, HEIGHT) and overlay.mode == "RGB"


def test_nothing_readable_exits_1(capsys, stub, images, tmp_path):
    code, stdout, err = amg(capsys, images / "broken.png", "--out", tmp_path / "o", *TINY)
    assert code == 1 and "1 failed" in stdout and "broken.png" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--points-per-side", "0"], "points_per_side must be >= 1"),
        (["--box-nms-thresh", "1.5"], "box_nms_thresh"),
        (["--format", "tiff"], "invalid choice"),
        (["--ray-address", "auto"], "--ray-address needs --engine ray"),
        (["--checkpoint", "missing.pth"], "checkpoint file not found"),
    ],
)
def test_user_errors_exit_2_before_any_model(capsys, stub, images, tmp_path, argv, message):
    base = ["--model", "test_tiny", "--quiet"]
    if "--checkpoint" not in argv:
        base.append("--random-weights")
    code, _, err = amg(capsys, images, "--out", tmp_path / "o", *base, *argv)
    assert code == 2 and message in err
    assert stub.calls == 0


def test_user_errors_about_inputs_and_models(capsys, stub, images, tmp_path):
    code, _, err = amg(capsys, tmp_path / "nowhere", "--out", tmp_path / "o", *TINY)
    assert code == 2 and "input not found" in err
    (tmp_path / "empty").mkdir()
    code, _, err = amg(capsys, tmp_path / "empty", "--out", tmp_path / "o", *TINY)
    assert code == 2 and "no images found" in err
    assert not (tmp_path / "o").exists()  # nothing was written
    code, _, err = amg(
        capsys, images, "--out", tmp_path / "o", "--model", "vit_b", "--random-weights"
    )
    assert code == 2 and "--random-weights is only for models without official weights" in err


def test_ray_engine_missing_says_what_to_install(capsys, stub, images, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, _, err = amg(capsys, images, "--out", tmp_path / "o", *TINY, "--engine", "ray")
    assert code == 2 and "install segany[scale]" in err


# ---- end to end: the tiny random-weights model --------------------------------------------


def test_end_to_end_tiny_model(capsys, images, tmp_path):
    from pycocotools.coco import COCO

    sa1b, coco, png = tmp_path / "sa1b", tmp_path / "coco", tmp_path / "png"
    assert amg(capsys, images, "--out", sa1b, *TINY, *LOW, "--overlay")[0] == 0
    assert amg(capsys, images, "--out", coco, "--format", "coco", *TINY, *LOW)[0] == 0
    code, stdout, err = amg(capsys, images, "--out", png, "--format", "png", *TINY, *LOW)
    assert code == 0 and "meaningless" in err and "1 failed" in stdout

    coco_file = COCO(str(coco / "annotations.json"))
    for name, key in zip(GOOD, ("a", "c", "sub/b"), strict=True):
        document = read_sa1b(sa1b / f"{key}.json")
        annotations = document["annotations"]
        assert document["image"]["file_name"] == name and annotations
        height, width = document["image"]["height"], document["image"]["width"]
        for annotation in annotations:
            mask = to_binary_mask(annotation["segmentation"])
            assert mask.shape == (height, width) and int(mask.sum()) == annotation["area"]
            assert isinstance(annotation["predicted_iou"], float)
            assert len(annotation["point_coords"]) == 1 and len(annotation["bbox"]) == 4
        with Image.open(sa1b / "overlays" / f"{key}.png") as overlay:
            assert overlay.size == (width, height)

        # The three formats hold the same masks.
        rows = read_png_metadata(png / key)
        assert len(rows) == len(annotations)
        assert len(list((png / key).glob("*.png"))) == len(annotations)
        for i, annotation in enumerate(annotations):
            with Image.open(png / key / f"{i}.png") as mask_png:
                np.testing.assert_array_equal(
                    np.asarray(mask_png) == 255, to_binary_mask(annotation["segmentation"])
                )
            assert rows[i]["area"] == annotation["area"]
        (image,) = [i for i in coco_file.loadImgs(coco_file.getImgIds()) if i["file_name"] == name]
        coco_annotations = coco_file.loadAnns(coco_file.getAnnIds(imgIds=image["id"]))
        assert [a["segmentation"] for a in coco_annotations] == [
            a["segmentation"] for a in annotations
        ]


def test_ray_engine_writes_what_the_local_engine_writes(capsys, images, tmp_path):
    import ray.data  # noqa: F401  (segany[dev]: missing, the test fails)

    local, distributed = tmp_path / "local", tmp_path / "ray"
    assert amg(capsys, images, "--out", local, *TINY, *LOW)[0] == 0
    code, stdout, err = amg(capsys, images, "--out", distributed, *TINY, *LOW, "--engine", "ray")
    assert code == 0, err
    assert "3 processed" in stdout and "1 failed" in stdout and "broken.png" in err
    assert read_manifest(distributed / "manifest.json") == read_manifest(local / "manifest.json")
    for key in ("a", "c", "sub/b"):
        ours = json.loads((local / f"{key}.json").read_text())
        theirs = json.loads((distributed / f"{key}.json").read_text())
        assert ours["image"] == theirs["image"]
        assert len(ours["annotations"]) == len(theirs["annotations"]) > 0
        for a, b in zip(ours["annotations"], theirs["annotations"], strict=True):
            # Same masks; scores agree to float rounding (actors run torch on 1 thread).
            assert a["segmentation"] == b["segmentation"]
            for field in ("predicted_iou", "stability_score"):
                assert a[field] == pytest.approx(b[field], abs=1e-5)
            assert {
                k: v for k, v in a.items() if k not in ("predicted_iou", "stability_score")
            } == {k: v for k, v in b.items() if k not in ("predicted_iou", "stability_score")}
