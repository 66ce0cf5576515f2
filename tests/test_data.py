"""Datasets: the synthetic scene generator, scene pools, and the SA-1B / COCO / PNG-folder
readers on small files made here."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image, ImageOps
from pycocotools import mask as mask_utils  # noqa: E402

from conftest import synthetic_image
from segany.cli.main import main
from segany.data import (
    CocoDataset,
    MaskFolder,
    SA1BDataset,
    SceneConfig,
    SceneDataset,
    build_pool,
    make_scene,
    split_seeds,
)
from segany.data.spec import _split_paths
from segany.data.synthetic import masks_from_labels
from segany.errors import ConfigError, DataError
from segany.formats import read_sa1b, to_binary_mask

SMALL = SceneConfig(height=96, width=128)


def coco_rle(mask: np.ndarray) -> dict:
    """A pycocotools-compressed RLE with str counts, as JSON files hold it."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def plain_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths over the column-major pixels, 0s first."""
    flat = mask.T.ravel().astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


# ----------------------------------------------------------------------------- synthetic scenes


def test_scene_is_reproducible_by_seed():
    a, b = make_scene(11, SMALL), make_scene(11, SMALL)
    for name in ("image", "labels", "parent", "kind", "level"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_different_seeds_give_different_scenes():
    images = [make_scene(seed, SMALL).image for seed in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(images[i], images[j])


@pytest.mark.parametrize("config", [SMALL, SceneConfig()], ids=["96x128", "256x256"])
def test_scene_shapes_and_masks(config):
    for seed in range(3):
        scene = make_scene(seed, config)
        h, w = config.height, config.width
        assert scene.image.shape == (h, w, 3) and scene.image.dtype == np.uint8
        masks = scene.masks
        m = len(scene)
        assert m > 0
        assert masks.shape == (m, h, w) and masks.dtype == bool
        assert scene.parent.shape == scene.kind.shape == scene.level.shape == (m,)
        assert masks.reshape(m, -1).sum(1).min() >= config.min_area  # tiny masks dropped
        assert scene.labels.min() >= -1 and scene.labels.max() < m
        for i in range(m):
            p = scene.parent[i]
            if p < 0:
                assert scene.level[i] == 0
                continue
            assert p < i and scene.level[i] == scene.level[p] + 1
            assert not (masks[i] & ~masks[p]).any()  # a part lies inside its whole
        assert set(scene.kind_names) <= {
            "ellipse", "rectangle", "polygon", "star", "blob", "ring", "curve", "dot"
        }  # fmt: skip


def test_scenes_have_nesting_thin_and_small_objects():
    scenes = [make_scene(seed) for seed in range(12)]
    levels = np.concatenate([s.level for s in scenes])
    assert (levels == 1).any() and (levels == 2).any()  # parts and sub-parts
    # Some mask strictly inside another: fewer pixels, and all of them in the other.
    strictly_inside = 0
    for s in scenes:
        areas = s.masks.reshape(len(s), -1).sum(1)
        for i in np.flatnonzero(s.parent >= 0):
            p = s.parent[i]
            strictly_inside += bool(areas[i] < areas[p] and not (s.masks[i] & ~s.masks[p]).any())
    assert strictly_inside >= 10
    kinds = {k for s in scenes for k in s.kind_names}
    assert {"curve", "dot"} <= kinds
    areas = np.concatenate([s.masks.reshape(len(s), -1).sum(1) for s in scenes])
    assert (areas < 100).any() and (areas > 5000).any()  # small and large objects


def test_masks_from_labels_unions_descendants():
    labels = np.array([[-1, 0, 1, 2]], dtype=np.int16)
    parent = np.array([-1, 0, 1], dtype=np.int16)  # 2 inside 1 inside 0
    masks = masks_from_labels(labels, parent)
    np.testing.assert_array_equal(masks[:, 0], [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]])


def test_splits_are_disjoint():
    train, val, test = (set(split_seeds(s, 1000)) for s in ("train", "val", "test"))
    assert len(train) == len(val) == len(test) == 1000
    assert not train & val and not train & test and not val & test
    last_train = split_seeds("train", 10**8)[-1]
    assert last_train < split_seeds("val", 1)[0]
    with pytest.raises(ConfigError, match="unknown split"):
        split_seeds("validation", 3)
    with pytest.raises(ConfigError):
        split_seeds("train", 10**8 + 1)


def test_scene_config_is_validated():
    with pytest.raises(ConfigError, match="object_size"):
        SceneConfig(object_size=(0.5, 0.1))
    with pytest.raises(ConfigError, match="probability"):
        SceneConfig(part_prob=1.5)
    with pytest.raises(ConfigError, match="too small"):
        SceneConfig(height=8)


# ----------------------------------------------------------------------------- scene pools


def test_pool_round_trip(tmp_path):
    config = SceneConfig(height=48, width=64)
    path = build_pool("val", 3, config, tmp_path / "pool")
    dataset = SceneDataset(path)
    assert len(dataset) == 3 and dataset.config == config and dataset.split == "val"
    for i, seed in enumerate(split_seeds("val", 3)):
        expected = make_scene(seed, config)
        scene = dataset.scene(i)
        np.testing.assert_array_equal(scene.image, expected.image)
        np.testing.assert_array_equal(scene.masks, expected.masks)
        np.testing.assert_array_equal(scene.level, expected.level)
        sample = dataset[i]
        np.testing.assert_array_equal(sample.masks.to_numpy(), expected.masks)
        np.testing.assert_array_equal(sample.parent, expected.parent)
        assert sample.name == f"val:{seed}"
    # DataLoader workers receive a pickled dataset: it re-opens its memory maps.
    dataset.scene(0)
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone._images is None
    np.testing.assert_array_equal(clone[2].image, dataset[2].image)
    with pytest.raises(IndexError):
        dataset.scene(3)


def test_pool_with_workers_equals_serial(tmp_path):
    config = SceneConfig(height=32, width=32)
    serial = SceneDataset(build_pool("test", 4, config, tmp_path / "a"))
    parallel = SceneDataset(build_pool("test", 4, config, tmp_path / "b", workers=2))
    for i in range(4):
        np.testing.assert_array_equal(serial.scene(i).image, parallel.scene(i).image)
        np.testing.assert_array_equal(serial.scene(i).labels, parallel.scene(i).labels)


def test_pool_errors(tmp_path):
    config = SceneConfig(height=32, width=32)
    path = build_pool("train", 1, config, tmp_path / "pool")
    with pytest.raises(DataError, match="already exists"):
        build_pool("train", 1, config, path)
    build_pool("train", 2, config, path, overwrite=True)
    assert len(SceneDataset(path)) == 2
    with pytest.raises(DataError, match="not a scene pool"):
        SceneDataset(tmp_path)
    kind = path / "kind.npy"
    good = kind.read_bytes()
    # A damaged header: numpy's header parser raises tokenize.TokenError for this one.
    kind.write_bytes(good.replace(b",), }", b",(, }"))
    with pytest.raises(DataError, match="cannot read kind.npy .*TokenError"):
        SceneDataset(path)
    for damaged in (good[:20], b"garbage"):
        kind.write_bytes(damaged)
        with pytest.raises(DataError, match="cannot read kind.npy"):
            SceneDataset(path)
    kind.unlink()
    with pytest.raises(DataError, match="kind.npy is missing"):
        SceneDataset(path)


# ----------------------------------------------------------------------------- SA-1B folders


def _sa1b_folder(tmp_path, size=(20, 30)):
    h, w = size
    image = np.random.default_rng(1).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "sa_1.jpg")
    a = np.zeros(size, bool)
    a[2:9, 3:20] = True
    b = np.zeros(size, bool)
    b[10:18, 5:7] = True
    record = {
        "image": {"image_id": 1, "file_name": "sa_1.jpg", "width": w, "height": h},
        "annotations": [
            {"id": 7, "segmentation": coco_rle(a), "area": int(a.sum()), "bbox": [3, 2, 17, 7]},
            {"id": 8, "segmentation": coco_rle(b), "area": int(b.sum()), "bbox": [5, 10, 2, 8]},
        ],
    }
    (tmp_path / "sa_1.json").write_text(json.dumps(record))
    return record, np.stack([a, b])


def test_sa1b_reader(tmp_path):
    _, masks = _sa1b_folder(tmp_path)
    dataset = SA1BDataset(tmp_path)
    assert len(dataset) == 1
    sample = dataset[0]
    assert sample.image.shape == (20, 30, 3) and sample.image.dtype == np.uint8
    assert sample.name == "sa_1" and len(sample.masks) == 2
    np.testing.assert_array_equal(sample.masks.to_numpy(), masks)
    np.testing.assert_array_equal(sample.masks.take([1]), masks[1:])
    np.testing.assert_array_equal(sample.masks.areas(), masks.sum((1, 2)))
    pickle.loads(pickle.dumps(sample))  # crosses DataLoader worker processes


def test_sa1b_reads_what_segany_amg_writes(tmp_path):
    # The real command, not its writer: the images are found through amg's manifest.
    image = synthetic_image(48, 64, seed=4)
    (tmp_path / "photos").mkdir()
    Image.fromarray(image).save(tmp_path / "photos" / "photo.png")
    out = tmp_path / "masks"
    low = ["--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0"]
    argv = ["amg", str(tmp_path / "photos"), "--out", str(out), "--model", "segany-tiny"]
    assert main([*argv, *low, "--quiet"]) == 0
    annotations = read_sa1b(out / "photo.json")["annotations"]
    masks = np.stack([to_binary_mask(a["segmentation"]) for a in annotations])

    (sample,) = SA1BDataset(out)
    assert sample.name == "photo" and len(masks) > 0
    np.testing.assert_array_equal(sample.image, image)
    np.testing.assert_array_equal(sample.masks.to_numpy(), masks)
    np.testing.assert_array_equal(sample.masks.areas(), [a["area"] for a in annotations])


def test_sa1b_image_root_searches_subfolders_but_not_amg_files(tmp_path):
    (tmp_path / "images").mkdir()
    _, masks = _sa1b_folder(tmp_path / "images")
    annotations = tmp_path / "annotations"
    (annotations / "sub").mkdir(parents=True)
    record = json.loads((tmp_path / "images" / "sa_1.json").read_text())
    (annotations / "sub" / "sa_1.json").write_text(json.dumps(record))
    record["image"]["file_name"] = "missing.jpg"  # would fail if read
    for ignored in ("coco_parts/sub/x.json", ".hidden/y.json", "sub/.x.tmp-1-ab.json"):
        (annotations / ignored).parent.mkdir(parents=True, exist_ok=True)
        (annotations / ignored).write_text(json.dumps(record))
    (annotations / "annotations.json").write_text("{}")
    dataset = SA1BDataset(annotations, image_root=tmp_path / "images")
    assert [p.relative_to(annotations).as_posix() for p in dataset.annotation_files] == [
        "sub/sa_1.json"
    ]
    assert dataset[0].name == "sub/sa_1"
    np.testing.assert_array_equal(dataset[0].masks.to_numpy(), masks)
    # Meta's layout (no manifest, no image root): one folder, as before.
    with pytest.raises(DataError, match="no SA-1B annotation files"):
        SA1BDataset(annotations / "coco_parts")


def test_sa1b_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        SA1BDataset(tmp_path / "missing")
    with pytest.raises(DataError, match=r"no SA-1B annotation files"):
        SA1BDataset(tmp_path)
    record, _ = _sa1b_folder(tmp_path)
    json_path = tmp_path / "sa_1.json"

    json_path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        SA1BDataset(tmp_path)[0]

    bad = json.loads(json.dumps(record))
    bad["annotations"][1]["segmentation"]["size"] = [20, 31]
    json_path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="annotation 8.*20x31"):
        SA1BDataset(tmp_path)[0]

    bad = json.loads(json.dumps(record))
    bad["image"]["height"] = 40
    json_path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="40x30"):
        SA1BDataset(tmp_path)[0]

    bad = json.loads(json.dumps(record))
    del bad["annotations"]
    json_path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="'annotations'"):
        SA1BDataset(tmp_path)[0]

    json_path.write_text(json.dumps(record))
    (tmp_path / "sa_1.jpg").unlink()
    with pytest.raises(DataError, match="image file not found"):
        SA1BDataset(tmp_path)[0]


# ----------------------------------------------------------------------------- COCO


def _coco_files(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name, (h, w) in {"a.jpg": (24, 32), "b.jpg": (16, 16), "c.jpg": (8, 8)}.items():
        Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(images / name)
    rle_mask = np.zeros((24, 32), bool)
    rle_mask[10:20, 4:9] = True
    crowd = np.zeros((16, 16), bool)
    crowd[:4] = True
    plain_crowd = plain_rle(crowd)
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "height": 24, "width": 32},
            {"id": 2, "file_name": "b.jpg", "height": 16, "width": 16},
            {"id": 3, "file_name": "c.jpg", "height": 8, "width": 8},  # no annotation
        ],
        "annotations": [
            # a 10 x 6 px rectangle as a polygon, in pixel-edge coordinates
            {"id": 1, "image_id": 1, "segmentation": [[2, 2, 12, 2, 12, 8, 2, 8]], "iscrowd": 0},
            {"id": 2, "image_id": 1, "segmentation": coco_rle(rle_mask), "iscrowd": 0},
            {"id": 3, "image_id": 2, "segmentation": plain_crowd, "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, images, data, rle_mask, crowd


def test_coco_reader(tmp_path):
    path, images, _, rle_mask, crowd = _coco_files(tmp_path)
    dataset = CocoDataset(path, images)
    assert len(dataset) == 1  # image 2 has only a crowd region, image 3 nothing
    sample = dataset[0]
    assert sample.name == "1" and sample.image.shape == (24, 32, 3)
    polygon, rle = sample.masks.to_numpy()
    np.testing.assert_array_equal(rle, rle_mask)
    assert polygon[3:8, 3:12].all() and polygon.sum() in range(50, 80)  # ~10 x 6 px
    assert not polygon[:, 14:].any() and not polygon[10:].any()
    pickle.loads(pickle.dumps(sample))

    with_crowd = CocoDataset(path, images, include_crowd=True)
    assert len(with_crowd) == 2
    np.testing.assert_array_equal(with_crowd[1].masks[0], crowd)  # uncompressed counts


def test_coco_errors(tmp_path):
    path, images, data, _, _ = _coco_files(tmp_path)
    with pytest.raises(DataError, match="not found"):
        CocoDataset(tmp_path / "nope.json", images)
    with pytest.raises(DataError, match="image folder not found"):
        CocoDataset(path, tmp_path / "nope")

    bad = json.loads(json.dumps(data))
    bad["annotations"][0]["image_id"] = 99
    path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="image_id 99"):
        CocoDataset(path, images)

    bad = json.loads(json.dumps(data))
    bad["annotations"][1]["segmentation"]["size"] = [24, 33]
    path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="annotation 2.*24x33"):
        CocoDataset(path, images)[0]

    bad = json.loads(json.dumps(data))
    bad["annotations"][0]["segmentation"] = [[1, 2, 3]]
    path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="polygon"):
        CocoDataset(path, images)[0]

    bad = json.loads(json.dumps(data))
    bad["images"][0]["width"] = 20
    path.write_text(json.dumps(bad))
    with pytest.raises(DataError, match="24x20"):
        CocoDataset(path, images)[0]

    path.write_text(json.dumps(data))
    (images / "a.jpg").unlink()
    with pytest.raises(DataError, match="image file not found"):
        CocoDataset(path, images)[0]


# ----------------------------------------------------------------------------- one pixel frame


def _exif_jpeg(path, stored=(20, 30)):
    """A JPEG of `stored` (H, W) pixels with EXIF orientation 6 (viewers turn it 90 degrees):
    returns its (stored, upright) RGB arrays as PIL decodes them."""
    exif = Image.Exif()
    exif[0x0112] = 6
    pixels = np.random.default_rng(2).integers(0, 255, (*stored, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, exif=exif)
    with Image.open(path) as opened:
        as_stored = np.asarray(opened.convert("RGB"))
        upright = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    assert upright.shape[:2] == stored[::-1]
    return as_stored, upright


def _sa1b_record(size, recorded=True):
    mask = np.zeros(size, bool)
    mask[1:5, 2:9] = True
    image = {"image_id": 1, "file_name": "r.jpg"}
    if recorded:
        image.update(height=size[0], width=size[1])
    return {"image": image, "annotations": [{"id": 0, "segmentation": coco_rle(mask)}]}, mask


@pytest.mark.parametrize("frame", ["upright", "stored", "stored, by mask size"])
def test_readers_use_the_frame_the_annotations_fit(tmp_path, frame):
    stored, upright = _exif_jpeg(tmp_path / "r.jpg")
    expected = upright if frame == "upright" else stored
    record, mask = _sa1b_record(expected.shape[:2], recorded=frame != "stored, by mask size")
    (tmp_path / "r.json").write_text(json.dumps(record))
    sample = SA1BDataset(tmp_path)[0]
    np.testing.assert_array_equal(sample.image, expected)
    np.testing.assert_array_equal(sample.masks[0], mask)

    coco = {
        "images": [{"id": 1, **record["image"]}],
        "annotations": [{"id": 1, "image_id": 1, **record["annotations"][0]}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    np.testing.assert_array_equal(CocoDataset(tmp_path / "coco.json", tmp_path)[0].image, expected)

    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "r.jpg").rename(folder / "r.jpg")
    _save(folder / "r_0.png", mask.astype(np.uint8) * 255)
    np.testing.assert_array_equal(MaskFolder(folder)[0].image, expected)


def test_annotations_of_neither_frame_are_a_data_error(tmp_path):
    _exif_jpeg(tmp_path / "r.jpg")  # 20 x 30 stored, 30 x 20 upright
    record, _ = _sa1b_record((20, 20))
    (tmp_path / "r.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"20x20 \(HxW\) but its image is 30x20"):
        SA1BDataset(tmp_path)[0]


def test_spec_paths_split_at_colons_keeping_windows_drives():
    assert _split_paths("out") == ["out"]
    assert _split_paths("out:images") == ["out", "images"]
    assert _split_paths("a:/images", drives=False) == ["a", "/images"]  # POSIX: folder "a"
    assert _split_paths("C:\\out:D:/images", drives=True) == ["C:\\out", "D:/images"]
    assert _split_paths("out:C:", drives=True) == ["out", "C", ""]


# ----------------------------------------------------------------------------- PNG folders


def _save(path, array, mode=None):
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)


def test_mask_folder_flat_layout(tmp_path):
    rgb = np.full((10, 12, 3), 200, np.uint8)
    # a.jpg with an instance map a.png: ids 3 and 5, 0 background
    _save(tmp_path / "a.jpg", rgb)
    ids = np.zeros((10, 12), np.uint8)
    ids[1:4, 1:5] = 5
    ids[6:9, 2:10] = 3
    _save(tmp_path / "a.png", ids)
    # b.png (a PNG image) with binary masks b_0.png, b_1.png, b_10.png (number order)
    _save(tmp_path / "b.png", rgb)
    masks_b = np.zeros((3, 10, 12), np.uint8)
    masks_b[0, :2] = 255
    masks_b[1, 5:, 6:] = 1
    masks_b[2, 3, 3] = 7
    for k, number in enumerate((0, 1, 10)):
        _save(tmp_path / f"b_{number}.png", masks_b[k])

    dataset = MaskFolder(tmp_path)
    assert len(dataset) == 2
    a, b = dataset[0], dataset[1]
    assert a.name == "a" and b.name == "b"
    np.testing.assert_array_equal(a.masks.to_numpy(), np.stack([ids == 3, ids == 5]))
    np.testing.assert_array_equal(b.masks.to_numpy(), masks_b != 0)


def test_mask_folder_split_layout_and_ignore_ids(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    _save(tmp_path / "images" / "x.png", np.zeros((6, 7, 3), np.uint8))
    ids = np.zeros((6, 7), np.uint8)
    ids[0, :] = 255  # Pascal VOC's "void" border
    ids[2:5, 2:5] = 1
    _save(tmp_path / "masks" / "x.png", ids)
    assert len(MaskFolder(tmp_path)[0].masks) == 2
    sample = MaskFolder(tmp_path, ignore_ids=(0, 255))[0]
    np.testing.assert_array_equal(sample.masks.to_numpy(), (ids == 1)[None])


def test_mask_folder_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        MaskFolder(tmp_path / "missing")
    _save(tmp_path / "a.jpg", np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(DataError, match="no mask file, e.g. a.jpg"):
        MaskFolder(tmp_path)

    _save(tmp_path / "a.png", np.zeros((10, 13), np.uint8))
    with pytest.raises(DataError, match="10x13"):
        MaskFolder(tmp_path)[0]

    _save(tmp_path / "a.png", np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(DataError, match="single-channel"):
        MaskFolder(tmp_path)[0]

    _save(tmp_path / "a_0.png", np.zeros((10, 12), np.uint8))
    with pytest.raises(DataError, match="both an instance map"):
        MaskFolder(tmp_path)
