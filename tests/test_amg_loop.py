"""The data engine's automatic loop: what `segany amg` writes, `segany eval` and `segany train`
read back through a data spec, with the images found through OUT/manifest.json and read in the
same (EXIF-upright) pixel frame amg segmented them in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import synthetic_image
from segany import engine
from segany.cli.main import main
from segany.data.spec import open_dataset
from segany.errors import ConfigError, DataError
from segany.formats import read_sa1b, to_binary_mask
from segany.formats.manifest import read_manifest

# Explicit thresholds (the defaults are tuned for real models): masks exist on tiny images.
LOW = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0"]
MODEL = ["--model", "segany-tiny"]
STORED = (48, 96)  # (H, W) of sub/b.jpg's pixels as stored; upright (EXIF 6) it is 96 x 48
UPRIGHT = (96, 48)


def make_inputs(folder: Path) -> Path:
    """in/a.png (64 x 80) and in/sub/b.jpg, a JPEG whose EXIF orientation 6 turns it upright."""
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(synthetic_image(64, 80, seed=0)).save(folder / "a.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90 degrees clockwise
    Image.fromarray(synthetic_image(*STORED, seed=1)).save(folder / "sub" / "b.jpg", exif=exif)
    return folder


def run_amg(inputs, out: Path, *extra) -> int:
    return main(["amg", *map(str, inputs), "--out", str(out), *MODEL, *LOW, "--quiet", *extra])


def upright(path: Path) -> np.ndarray:
    with Image.open(path) as opened:
        return np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))


@pytest.fixture(scope="module")
def engine_outputs(tmp_path_factory) -> dict[str, Path]:
    """One amg run per format over the same inputs: {"in", "sa1b", "coco"} folders."""
    root = tmp_path_factory.mktemp("loop")
    inputs = make_inputs(root / "in")
    assert run_amg([inputs], root / "sa1b") == 0
    assert run_amg([inputs], root / "coco", "--format", "coco") == 0
    return {"in": inputs, "sa1b": root / "sa1b", "coco": root / "coco"}


SPECS = {
    "sa1b": "sa1b:{sa1b}",
    "sa1b-image-root": "sa1b:{sa1b}:{in}",
    "coco": "coco:{coco}/annotations.json",
    "coco-image-dir": "coco:{coco}/annotations.json:{in}",
}


def spec_of(form: str, outputs: dict[str, Path]) -> str:
    return SPECS[form].format(**outputs)


def amg_masks(outputs: dict[str, Path], fmt: str, file_name: str) -> np.ndarray:
    """(M, H, W) bool: the masks amg wrote for one image, decoded from its own file."""
    if fmt == "sa1b":
        key = str(Path(file_name).with_suffix(""))
        annotations = read_sa1b(outputs["sa1b"] / f"{key}.json")["annotations"]
    else:
        coco = json.loads((outputs["coco"] / "annotations.json").read_text())
        (image_id,) = [i["id"] for i in coco["images"] if i["file_name"] == file_name]
        annotations = [a for a in coco["annotations"] if a["image_id"] == image_id]
    return np.stack([to_binary_mask(a["segmentation"]) for a in annotations])


@pytest.mark.parametrize("form", SPECS)
def test_samples_are_upright_and_hold_what_amg_wrote(engine_outputs, form):
    dataset = open_dataset(spec_of(form, engine_outputs))
    assert len(dataset) == 2
    # Both readers keep the sorted order of the names: a.png, then sub/b.jpg.
    for sample, file_name in zip(dataset, ["a.png", "sub/b.jpg"], strict=True):
        image = upright(engine_outputs["in"] / file_name)
        np.testing.assert_array_equal(sample.image, image)
        masks = amg_masks(engine_outputs, form.split("-")[0], file_name)
        assert masks.shape[1:] == image.shape[:2]
        np.testing.assert_array_equal(sample.masks.to_numpy(), masks)
    assert dataset[1].image.shape[:2] == UPRIGHT
    if form.startswith("sa1b"):
        assert [s.name for s in dataset] == ["a", "sub/b"]


@pytest.mark.parametrize("form", SPECS)
def test_segany_eval_reads_the_amg_output(engine_outputs, form, capsys):
    spec = spec_of(form, engine_outputs)
    fmt = form.split("-")[0]
    areas = [amg_masks(engine_outputs, fmt, n).sum((1, 2)) for n in ("a.png", "sub/b.jpg")]
    # Only each image's largest masks, one click: the point is that every image is found,
    # read and fits its masks, not the metrics.
    min_area = min(int(a.max()) for a in areas)
    argv = ["eval", *MODEL, "--data", spec, "--json", "--quiet", "--max-clicks", "1"]
    assert main([*argv, "--min-area", str(min_area)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"] == spec and report["images"] == 2
    assert report["masks"] + report["skipped_masks"] == sum(len(a) for a in areas)


@pytest.mark.parametrize("form", ["sa1b", "coco"])
def test_segany_train_reads_the_amg_output(engine_outputs, form, tmp_path):
    config = tmp_path / "train.toml"
    config.write_text(
        f'[data]\ntrain = "{spec_of(form, engine_outputs)}"\n'
        '[model]\nname = "segany-tiny"\ntrainable = "decoder"\n'
        "[optim]\nlr = 1e-4\nwarmup_steps = 1\nbatch_size = 2\nmasks_per_image = 2\n"
        f'[loop]\nmax_steps = 2\ncheckpoint_every = 0\niterations = 3\ndevice = "cpu"\n'
        f'progress = false\noutput_dir = "{(tmp_path / "run").as_posix()}"\n'
    )
    assert main(["train", "--config", str(config)]) == 0
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in metrics][-1] == 2
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_manifest_lists_every_image_relative_to_out(engine_outputs):
    text = (engine_outputs["sa1b"] / "manifest.json").read_text()
    assert json.loads(text)["images"] == [
        {"image_id": 1, "file_name": "a.png", "path": "../in/a.png"},
        {"image_id": 2, "file_name": "sub/b.jpg", "path": "../in/sub/b.jpg"},
    ]
    assert (engine_outputs["coco"] / "manifest.json").read_text() == text


def test_a_resumed_run_merges_the_manifest(tmp_path):
    inputs = make_inputs(tmp_path / "in")
    more = tmp_path / "more"
    more.mkdir()
    Image.fromarray(synthetic_image(40, 40, seed=3)).save(more / "c.png")
    out = tmp_path / "out"
    assert run_amg([inputs / "a.png"], out) == 0
    assert sorted(read_manifest(out / "manifest.json")) == ["a.png"]
    assert run_amg([inputs], out) == 0  # a.png skipped, sub/b.jpg segmented
    assert run_amg([more], out) == 0  # another folder into the same output
    manifest = read_manifest(out / "manifest.json")
    assert sorted(manifest) == ["a.png", "c.png", "sub/b.jpg"]
    assert manifest["c.png"].path == more / "c.png"
    assert len(open_dataset(f"sa1b:{out}")) == 3  # folders of two runs, one dataset


def test_moved_images_are_a_data_error_until_amg_records_them(engine_outputs, tmp_path, capsys):
    shutil.copytree(engine_outputs["in"], tmp_path / "in")
    shutil.copytree(engine_outputs["sa1b"], tmp_path / "out")
    # Moved together, outputs and images still meet: the manifest's paths are relative.
    assert len(open_dataset(f"sa1b:{tmp_path / 'out'}")) == 2
    (tmp_path / "in").rename(tmp_path / "elsewhere")
    dataset = open_dataset(f"sa1b:{tmp_path / 'out'}")
    with pytest.raises(DataError, match=r"image 'a.png' not found at .*in/a.png.*moved"):
        dataset[0]
    assert main(["eval", *MODEL, "--data", f"sa1b:{tmp_path / 'out'}", "--quiet"]) == 2
    assert "sub/b.jpg" not in capsys.readouterr().err  # names the first missing file only
    # A rerun on the images at their new place skips them all and records the new paths.
    assert run_amg([tmp_path / "elsewhere"], tmp_path / "out") == 0
    assert "0 processed (0 masks), 2 skipped" in capsys.readouterr().out
    sample = open_dataset(f"sa1b:{tmp_path / 'out'}")[1]
    assert sample.image.shape[:2] == UPRIGHT


def test_manifest_errors_are_data_errors(engine_outputs, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(engine_outputs["sa1b"], out)
    manifest = out / "manifest.json"
    text = manifest.read_text()

    manifest.write_text(text.replace('"sub/b.jpg"', '"sub/other.jpg"'))
    with pytest.raises(DataError, match=r"names the image 'sub/b.jpg', which .* does not list"):
        open_dataset(f"sa1b:{out}")[1]

    manifest.write_text(text[:-5])
    with pytest.raises(DataError, match=r"manifest.json: not JSON.*sa1b:.*:IMAGE_ROOT"):
        open_dataset(f"sa1b:{out}")
    with pytest.raises(DataError, match="is not a segany-amg-manifest"):
        manifest.write_text('{"images": []}')
        open_dataset(f"sa1b:{out}")
    # The explicit image folder needs no manifest.
    assert len(open_dataset(f"sa1b:{out}:{engine_outputs['in']}")) == 2
    with pytest.raises(DataError, match="image folder not found"):
        open_dataset(f"sa1b:{out}:{tmp_path / 'nowhere'}")


def test_coco_without_image_dir_needs_the_manifest(engine_outputs, tmp_path):
    shutil.copy(engine_outputs["coco"] / "annotations.json", tmp_path / "annotations.json")
    with pytest.raises(DataError, match=r"no IMAGE_DIR given.*Accepted forms"):
        open_dataset(f"coco:{tmp_path / 'annotations.json'}")
    dataset = open_dataset(f"coco:{tmp_path / 'annotations.json'}:{engine_outputs['in']}")
    assert dataset[1].image.shape[:2] == UPRIGHT


def test_the_same_name_from_another_folder_is_refused_on_resume(engine_outputs, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(engine_outputs["in"], tmp_path / "in")
    shutil.copytree(engine_outputs["sa1b"], out)
    other = make_inputs(tmp_path / "other")  # other files, the same names
    assert run_amg([other], out) == 2
    assert "holds the masks of" in capsys.readouterr().err
    assert read_manifest(out / "manifest.json")["a.png"].path == tmp_path / "in" / "a.png"
    assert run_amg([other], out, "--overwrite") == 0  # redone: the new files are right
    assert read_manifest(out / "manifest.json")["a.png"].path == other / "a.png"


def test_an_image_named_like_the_manifest_is_refused(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    Image.fromarray(synthetic_image(32, 32)).save(tmp_path / "in" / "manifest.png")
    assert run_amg([tmp_path / "in"], tmp_path / "out") == 2
    assert "manifest.json" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="manifest.json"):  # the Python API too
        engine.run_amg(
            [tmp_path / "in"],
            engine.ModelSource("segany-tiny"),
            engine.OutputOptions(tmp_path / "out"),
        )
    assert not (tmp_path / "out").exists()
