"""The outputs of `segany track` read back by their usual readers (PIL for label and DAVIS
PNGs, the YouTube-VIS JSON layout, pycocotools' COCO), its journal, prompts and passes; with a
fake exact tracker (tests/track_fakes.py), no model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from segany.cli.track_passes import plan_passes, prompt_from_mask, run_pass
from segany.errors import ConfigError, FormatError, PromptError
from segany.formats.sequence_outputs import SequenceOutputs
from segany.formats.sequence_png import davis_palette, labels_from_masks, read_label_png
from segany.formats.track_journal import FRAMES_FILE, FrameRecord, TrackJournal
from segany.formats.track_prompts import check_prompts_fit, parse_track_prompts
from segany.track.base import ObjectPrompt
from track_fakes import ColourTracker, square_at, square_frames, square_sequence

SHAPE = (24, 32)


def two_objects(frame: int = 0) -> list[ObjectPrompt]:
    return [ObjectPrompt(frame, k, points=np.array([[*square_at(frame, k), 1.0]])) for k in (1, 2)]


def expected_masks(frames: np.ndarray, t: int) -> dict[int, np.ndarray]:
    from track_fakes import COLOURS

    return {k: np.all(frames[t] == COLOURS[k], axis=-1) for k in (1, 2)}


def track_into(tmp_path, fmt, length=6, prompts=None, categories=None, **plan):
    """Track `square_sequence(length)` with the colour tracker into tmp_path/out."""
    sequence = square_sequence(length)
    prompts = prompts or two_objects()
    journal = TrackJournal.open(tmp_path / "out", {"format": fmt}, ["clip.json"])
    objects = {1: "car", 2: "person"} if categories is None else categories
    outputs = SequenceOutputs(
        journal, fmt, SHAPE, length, objects, lambda f: f"clip/{f:05d}.jpg", "clip"
    )
    tracker = ColourTracker()
    for track_pass in plan_passes(length, prompts, **plan):
        run_pass(track_pass, tracker, sequence, prompts, outputs)
    files = outputs.finish()
    journal.close()
    return files, tracker


def test_davis_palette_is_the_voc_bit_interleaving():
    palette = davis_palette()
    assert len(palette) == 768
    colours = [tuple(palette[3 * i : 3 * i + 3]) for i in (0, 1, 2, 3, 4, 7, 8, 255)]
    assert colours == [
        (0, 0, 0),
        (128, 0, 0),
        (0, 128, 0),
        (128, 128, 0),
        (0, 0, 128),
        (128, 128, 128),
        (64, 0, 0),
        (224, 224, 192),
    ]


def test_labels_overlap_goes_to_the_higher_score():
    a = np.zeros(SHAPE, bool)
    a[:10] = True
    b = np.zeros(SHAPE, bool)
    b[5:15] = True
    labels = labels_from_masks({1: a, 2: b}, SHAPE, {1: 0.9, 2: 0.5})
    assert (labels[:10] == 1).all() and (labels[10:15] == 2).all() and (labels[15:] == 0).all()
    with pytest.raises(FormatError, match="8-bit"):
        labels_from_masks({256: a}, SHAPE)


@pytest.mark.parametrize("fmt, mode", [("png", "L"), ("davis", "P")])
def test_png_and_davis_read_back_with_pil(tmp_path, fmt, mode):
    track_into(tmp_path, fmt)
    frames = square_frames(6)
    for t in range(6):
        with Image.open(tmp_path / "out" / f"{t:05d}.png") as image:
            assert image.mode == mode
            labels = np.asarray(image)
            if mode == "P":
                assert image.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
        masks = expected_masks(frames, t)
        assert (labels == 1).sum() == masks[1].sum() == 36
        assert np.array_equal(labels == 1, masks[1]) and np.array_equal(labels == 2, masks[2])
        assert np.array_equal(read_label_png(tmp_path / "out" / f"{t:05d}.png"), labels)


def test_ytvis_layout(tmp_path):
    (path,), _ = track_into(tmp_path, "ytvis")
    data = json.loads(path.read_text())
    assert path.name == "clip.json"
    assert data["videos"] == [
        {
            "id": 1,
            "file_names": [f"clip/{t:05d}.jpg" for t in range(6)],
            "height": 24,
            "width": 32,
            "length": 6,
        }
    ]
    assert data["categories"] == [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}]
    frames = square_frames(6)
    for annotation, k in zip(data["annotations"], (1, 2), strict=True):
        assert annotation["video_id"] == 1 and annotation["category_id"] == k
        assert annotation["object_id"] == k and annotation["iscrowd"] == 0
        assert len(annotation["segmentations"]) == 6
        for t, rle in enumerate(annotation["segmentations"]):
            mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
            assert np.array_equal(mask.astype(bool), expected_masks(frames, t)[k])
            assert annotation["areas"][t] == 36
            x, y = square_at(t, k)
            assert annotation["bboxes"][t] == [x - 3, y - 3, 6.0, 6.0]


def test_ytvis_null_where_absent_or_untracked(tmp_path):
    # one forward pass from frame 0 over 4 frames: frames 4, 5 untracked (null for both);
    # object 2, prompted on frame 3, exists from there on only
    prompts = [two_objects(0)[0], two_objects(3)[1]]
    (path,), _ = track_into(tmp_path, "ytvis", prompts=prompts, start=0, max_frames=4)
    annotations = json.loads(path.read_text())["annotations"]
    one, two = (a["segmentations"] for a in annotations)
    assert all(s is not None for s in one[:4]) and one[4:] == [None, None]
    assert two[:3] == [None] * 3 and two[3] is not None and two[4:] == [None, None]
    assert annotations[1]["areas"][:3] == [None] * 3


def test_coco_reads_back_with_pycocotools(tmp_path):
    (path,), _ = track_into(tmp_path, "coco", categories={1: "object", 2: "object"})
    coco = COCO(str(path))
    assert sorted(coco.getImgIds()) == list(range(1, 7))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["object"]
    frames = square_frames(6)
    for image_id in coco.getImgIds():
        t = coco.imgs[image_id]["frame_index"]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert sorted(a["object_id"] for a in anns) == [1, 2]
        for ann in anns:
            assert np.array_equal(
                coco.annToMask(ann).astype(bool), expected_masks(frames, t)[ann["object_id"]]
            )
            assert ann["area"] == 36 and ann["category_id"] == 1


def test_coco_has_no_annotation_for_an_empty_mask(tmp_path):
    prompts = [two_objects(0)[0], two_objects(2)[1]]
    (path,), _ = track_into(tmp_path, "coco", prompts=prompts, start=0)
    coco = COCO(str(path))
    per_frame = {
        coco.imgs[i]["frame_index"]: len(coco.getAnnIds(imgIds=i)) for i in coco.getImgIds()
    }
    assert per_frame == {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 2}


def test_both_directions_give_every_object_on_every_frame(tmp_path):
    # object 1 prompted on frame 2, object 2 on frame 4: pass 0 forward from 2, pass 1
    # backward from 4; each frame takes each object from the pass that reached it from a prompt
    prompts = [two_objects(2)[0], two_objects(4)[1]]
    _, tracker = track_into(tmp_path, "png", length=7, prompts=prompts)
    frames = square_frames(7)
    for t in range(7):
        labels = read_label_png(tmp_path / "out" / f"{t:05d}.png")
        masks = expected_masks(frames, t)
        assert np.array_equal(labels == 1, masks[1]) and np.array_equal(labels == 2, masks[2])
    propagations = [e for e in tracker.log if e[0] == "propagate"]
    assert propagations == [("propagate", 2, False, 5), ("propagate", 4, True, 5)]


def test_plan_passes():
    prompts = [ObjectPrompt(3, 1, box=np.array([0, 0, 5, 5.0])), ObjectPrompt(6, 2, box=None)]
    forward, backward = plan_passes(10, prompts)
    assert (forward.start, forward.reverse, list(forward.frames)) == (3, False, list(range(3, 10)))
    assert (backward.start, backward.reverse, list(backward.frames)) == (
        6,
        True,
        [5, 4, 3, 2, 1, 0],
    )
    (one,) = plan_passes(10, prompts, reverse=True, max_frames=3)
    assert (one.start, list(one.frames), one.owns) == (6, [6, 5, 4], "all")
    (one,) = plan_passes(10, prompts, start=8, max_frames=5)
    assert list(one.frames) == [8, 9]
    assert len(plan_passes(10, [ObjectPrompt(0, 1, box=None)])) == 1


def test_prompt_from_mask_is_inside_and_boxes_it():
    mask = np.zeros((20, 30), bool)
    mask[4:12, 10:25] = True
    mask[4:12, 10:13] = False  # not convex: the deepest point stays inside
    prompt = prompt_from_mask(7, 3, mask)
    assert (prompt.frame, prompt.object_id) == (7, 3)
    assert prompt.box.tolist() == [13.0, 4.0, 25.0, 12.0]
    x, y, label = prompt.points[0]
    assert label == 1 and mask[int(y), int(x)]
    assert prompt_from_mask(0, 1, np.zeros((4, 4), bool)) is None


def test_journal_cuts_a_half_written_line_and_resumes(tmp_path):
    out = tmp_path / "out"
    journal = TrackJournal.open(out, {"a": 1}, [])
    for t in range(3):
        journal.append(FrameRecord(t, f"{t:05d}", {1: ("PPYo1", 0.5)}))
    journal.close()
    with open(out / FRAMES_FILE, "ab") as f:
        f.write(b'{"frame": 3, "name": "000')  # killed mid-line
    again = TrackJournal.open(out, {"a": 1}, [])
    assert again.done_frames().tolist() == [0, 1, 2]
    again.append(FrameRecord(3, "00003", {}))
    assert [r.frame for r in again.records()] == [0, 1, 2, 3]
    again.close()
    lines = (out / FRAMES_FILE).read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines)


def test_journal_refuses_another_run_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    journal = TrackJournal.open(out, {"model": "a", "format": "png"}, [])
    journal.append(FrameRecord(0, "f0", {}))
    journal.close()
    (out / "f0.png").write_bytes(b"x")
    (out / "mine.txt").write_text("not segany's")
    with pytest.raises(ConfigError, match="differs in: model"):
        TrackJournal.open(out, {"model": "b", "format": "png"}, [])
    fresh = TrackJournal.open(out, {"model": "b", "format": "png"}, [], overwrite=True)
    assert len(fresh.done_frames()) == 0 and not (out / "f0.png").exists()
    assert (out / "mine.txt").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.png").write_bytes(b"x")
    with pytest.raises(ConfigError, match="not empty"):
        TrackJournal.open(other, {}, [])
    with pytest.raises(ConfigError, match="is a file"):
        TrackJournal.open(other / "x.png", {}, [])


def test_missing_or_damaged_png_is_rewritten_from_the_journal(tmp_path):
    track_into(tmp_path, "davis")
    out = tmp_path / "out"
    before = [read_label_png(out / f"0000{t}.png") for t in (2, 4)]
    (out / "00002.png").unlink()  # deleted by hand
    damaged = (out / "00004.png").read_bytes()
    (out / "00004.png").write_bytes(damaged[: len(damaged) // 2])  # a power cut's leftover
    track_into(tmp_path, "davis")  # same run: nothing tracked, the PNGs come back
    after = [read_label_png(out / f"0000{t}.png") for t in (2, 4)]
    assert all(np.array_equal(a, b) for a, b in zip(after, before, strict=True))


GOOD = {"frame": 0, "object": 1, "points": [[3, 4]]}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"frame": 0}, "JSON list"),
        ([], "empty"),
        ([{**GOOD, "object": 0}], "object id 0"),
        ([{**GOOD, "object": "1"}], "'object' must be an integer"),
        ([{**GOOD, "frame": -1}], "'frame' must be >= 0"),
        ([{"frame": 0, "object": 1}], "needs 'points', 'box'"),
        ([{**GOOD, "points": [[1, 2, 3]]}], "label must be 1"),
        ([{**GOOD, "points": [[1]]}], "each point"),
        ([{**GOOD, "box": [5, 5, 5, 9]}], "empty or inverted"),
        ([{**GOOD, "box": [0, 0, float("inf"), 9]}], "finite"),
        ([{**GOOD, "colour": 1}], "unknown keys"),
        ([GOOD, GOOD], "second prompt"),
        ([GOOD] * 10_001, "at most 10000"),
        ([{**GOOD, "category": "a"}, {**GOOD, "frame": 1, "category": "b"}], "'a' in an earlier"),
    ],
)
def test_bad_prompts_are_refused(data, message):
    with pytest.raises(PromptError, match=message):
        parse_track_prompts(data)


def test_prompts_checked_against_the_sequence():
    prompts = parse_track_prompts([GOOD, {"frame": 2, "object": 300, "box": [1, 1, 30, 20]}])
    assert prompts.prompts[0].points.tolist() == [[3.0, 4.0, 1.0]]
    with pytest.raises(PromptError, match="frame 2 is past the end; the sequence has 2"):
        check_prompts_fit(prompts, 2, 32, 24, None)
    with pytest.raises(PromptError, match="does not fit an 8-bit label PNG"):
        check_prompts_fit(prompts, 3, 32, 24, 255)
    with pytest.raises(PromptError, match="reaches outside"):
        check_prompts_fit(prompts, 3, 16, 24, None)
    check_prompts_fit(prompts, 3, 32, 24, None)
    assert (
        prompts.digest()
        == parse_track_prompts(
            json.loads(json.dumps([GOOD, {"box": [1, 1, 30, 20], "object": 300, "frame": 2}]))
        ).digest()
    )
