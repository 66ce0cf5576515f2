"""`segany track` end to end: inputs, formats, resume (after --max-frames and after a kill),
refusals and bad input. Most tests run the command with the exact fake tracker of
tests/track_fakes.py (no model: fast, and resumed runs must match uninterrupted ones pixel for
pixel); one runs the built-in model on a tiny mp4."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segany.sequences
import segany.track
from segany.cli.main import main
from segany.formats.sequence_png import read_label_png
from segany.formats.track_journal import FRAMES_FILE, PARAMS_FILE
from track_fakes import COLOURS, ColourTracker, square_at, square_frames

TESTS = Path(__file__).parent


@pytest.fixture
def fake_tracker(monkeypatch):
    """`segany track` with the colour tracker and no model."""
    tracker = ColourTracker()
    monkeypatch.setattr(segany.track, "build_tracker", lambda model, **_: tracker, raising=False)
    monkeypatch.setattr("segany.cli.track.load_model", lambda *a, **k: None)
    return tracker


def frames_folder(path: Path, length: int = 8) -> Path:
    path.mkdir()
    for t, frame in enumerate(square_frames(length)):
        Image.fromarray(frame).save(path / f"f{t:03d}.png")
    return path


def prompts_file(path: Path, entries: list) -> Path:
    path.write_text(json.dumps(entries))
    return path


def click(frame: int, k: int) -> dict:
    x, y = square_at(frame, k)
    return {"frame": frame, "object": k, "points": [[x, y, 1]]}


def track(capsys, *argv) -> tuple[int, str, str]:
    code = main(["track", *map(str, argv), "--random-weights", "--model", "test_tiny"])
    out, err = capsys.readouterr()
    return code, out, err


def labels_of(out: Path, length: int = 8) -> list[np.ndarray]:
    return [read_label_png(out / f"f{t:03d}.png") for t in range(length)]


def test_png_output_both_directions(fake_tracker, capsys, tmp_path):
    frames = frames_folder(tmp_path / "clip")
    prompts = prompts_file(tmp_path / "p.json", [click(3, 1), click(5, 2)])
    code, out, err = track(capsys, frames, "--prompts", prompts, "--out", tmp_path / "out")
    assert code == 0, err
    assert "2 objects tracked" in out and "8 of 8 frames have masks" in out
    expected = square_frames(8)
    for t, labels in enumerate(labels_of(tmp_path / "out")):
        for k in (1, 2):
            assert np.array_equal(labels == k, np.all(expected[t] == COLOURS[k], axis=-1))


def test_resume_after_max_frames_matches_one_run(fake_tracker, capsys, tmp_path):
    frames = frames_folder(tmp_path / "clip")
    prompts = prompts_file(tmp_path / "p.json", [click(2, 1), click(4, 2)])
    args = [frames, "--prompts", prompts, "--format", "davis"]
    assert track(capsys, *args, "--out", tmp_path / "whole")[0] == 0
    code, out, _ = track(capsys, *args, "--out", tmp_path / "part", "--max-frames", "2")
    # pass 0 forward from 2 writes 2, 3; pass 1 backward from 4 writes 3 (4 is pass 0's)
    assert code == 0 and "2 of 8 frames" in out
    fake_tracker.log.clear()
    code, out, _ = track(capsys, *args, "--out", tmp_path / "part")
    assert code == 0 and "resumed: 2 frames" in out, out
    # the forward pass restarts at its last written frame, re-prompted there from its masks
    assert ("propagate", 3, False, 5) in fake_tracker.log
    for whole, part in zip(
        labels_of(tmp_path / "whole"), labels_of(tmp_path / "part"), strict=True
    ):
        assert np.array_equal(whole, part)
    code, out, _ = track(capsys, *args, "--out", tmp_path / "part")
    assert code == 0 and "through 0 frames" in out and "nothing left to track: 8 frames" in out


KILLABLE = """
import sys, time
sys.path.insert(0, {tests!r})
import segany.track, segany.cli.track
from track_fakes import ColourTracker, ColourSession

class Slow(ColourSession):
    def propagate(self, *a, **k):
        for result in super().propagate(*a, **k):
            time.sleep(0.3)
            yield result

class SlowTracker(ColourTracker):
    def open(self, sequence):
        return Slow(sequence, self.log)

segany.track.build_tracker = lambda model, **_: SlowTracker()
segany.cli.track.load_model = lambda *a, **k: None
from segany.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_a_kill(fake_tracker, capsys, tmp_path):
    frames = frames_folder(tmp_path / "clip", 16)
    prompts = prompts_file(tmp_path / "p.json", [click(0, 1), click(0, 2)])
    out = tmp_path / "out"
    argv = ["track", str(frames), "--prompts", str(prompts), "--out", str(out), "--format"]
    argv += ["ytvis", "--random-weights", "--model", "test_tiny"]
    script = KILLABLE.format(tests=str(TESTS))
    child = subprocess.Popen([sys.executable, "-c", script, *argv], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        journal = out / FRAMES_FILE
        if journal.exists() and journal.read_bytes().count(b"\n") >= 4:
            break
        time.sleep(0.05)
    assert child.poll() is None, "the run ended before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert not (out / "clip.json").exists()
    written = (out / FRAMES_FILE).read_bytes().count(b"\n")
    assert 4 <= written < 16
    code, text, err = track(capsys, *argv[1:-3])
    assert code == 0, err
    assert f"resumed: {written} frames" in text
    annotations = json.loads((out / "clip.json").read_text())["annotations"]
    whole = tmp_path / "whole"
    assert track(capsys, *argv[1:4], "--out", whole, "--format", "ytvis")[0] == 0
    assert json.loads((whole / "clip.json").read_text())["annotations"] == annotations
    assert all(s is not None for a in annotations for s in a["segmentations"])


def test_another_command_into_the_same_out_is_refused(fake_tracker, capsys, tmp_path):
    frames = frames_folder(tmp_path / "clip", 4)
    prompts = prompts_file(tmp_path / "p.json", [click(0, 1)])
    out = tmp_path / "out"
    assert track(capsys, frames, "--prompts", prompts, "--out", out)[0] == 0
    code, _, err = track(capsys, frames, "--prompts", prompts, "--out", out, "--format", "coco")
    assert code == 2 and "another track command" in err and "format" in err
    code, _, err = track(capsys, frames, "--point", "6,6", "--out", out)
    assert code == 2 and "differs in: prompts" in err
    code, text, err = track(capsys, frames, "--prompts", prompts, "--out", out, "--format")
    # argparse: --format needs a value
    assert code == 2
    code, text, err = track(
        capsys, frames, "--prompts", prompts, "--out", out, "--format", "coco", "--overwrite"
    )
    assert code == 0, err
    assert not (out / "f000.png").exists() and (out / "clip.json").exists()
    assert json.loads((out / PARAMS_FILE).read_text())["format"] == "coco"


@pytest.mark.parametrize(
    "extra, written",
    [(["--reverse"], [0, 1, 2, 3, 4, 5]), (["--start", "4"], [4, 5, 6, 7])],
)
def test_one_direction(fake_tracker, capsys, tmp_path, extra, written):
    frames = frames_folder(tmp_path / "clip")
    prompts = prompts_file(tmp_path / "p.json", [click(2, 1), click(5, 2)])
    code, _, err = track(capsys, frames, "--prompts", prompts, "--out", tmp_path / "o", *extra)
    assert code == 0, err
    assert sorted(int(p.stem[1:]) for p in (tmp_path / "o").glob("*.png")) == written


def test_point_and_box_options(fake_tracker, capsys, tmp_path):
    frames = frames_folder(tmp_path / "clip", 4)
    x, y = square_at(2, 2)
    box = f"{x - 3},{y - 3},{x + 3},{y + 3}"
    code, out, err = track(
        capsys, frames, "--box", box, "--frame", 2, "--object", 7, "--out", tmp_path / "o"
    )
    assert code == 0, err
    labels = labels_of(tmp_path / "o", 4)
    assert [int((lb == 7).sum()) for lb in labels] == [36] * 4


def test_volume_writes_a_label_volume_with_the_input_affine(fake_tracker, capsys, tmp_path):
    import nibabel as nib  # segany[volume], a dev dependency: missing, the test fails

    values = np.zeros((32, 24, 5), np.int16)
    values[4:12, 6:14, 1:4] = 500
    affine = np.diag([0.8, 0.7, 2.5, 1.0])
    affine[:3, 3] = (-10, 20, 5)
    nib.save(nib.Nifti1Image(values, affine), str(tmp_path / "scan.nii.gz"))
    out = tmp_path / "out"
    with segany.sequences.open_sequence(tmp_path / "scan.nii.gz") as sequence:
        ys, xs = np.nonzero(sequence.rgb(2)[:, :, 0] == sequence.rgb(2)[:, :, 0].max())
    point = f"{xs.mean() + 0.5},{ys.mean() + 0.5}"
    code, text, err = track(
        capsys, tmp_path / "scan.nii.gz", "--point", point, "--frame", 2, "--out", out
    )
    assert code == 0, err
    image = nib.load(str(out / "scan_labels.nii.gz"))
    assert np.allclose(image.affine, affine)
    assert np.array_equal(np.asarray(image.dataobj) == 1, values == 500)


def test_dicom_series_gets_a_nifti_and_a_dicom_label_series(fake_tracker, capsys, tmp_path):
    from sequence_inputs import write_dicom_series

    pixels = np.zeros((5, 16, 20), np.int16)
    pixels[1:4, 4:10, 6:14] = 800
    write_dicom_series(tmp_path / "series", pixels)
    with segany.sequences.open_sequence(tmp_path / "series") as sequence:
        grey = sequence.rgb(2)[:, :, 0]
        ys, xs = np.nonzero(grey == grey.max())
        slices = len(sequence)
    point = f"{xs.mean() + 0.5},{ys.mean() + 0.5}"
    out = tmp_path / "out"
    code, text, err = track(
        capsys, tmp_path / "series", "--point", point, "--frame", 2, "--out", out
    )
    assert code == 0, err
    import nibabel as nib

    labels = np.asarray(nib.load(str(out / "series_labels.nii.gz")).dataobj)
    assert labels.sum() == (pixels == 800).sum()  # every blob voxel, in the NIfTI's own order
    assert len(list((out / "series_labels_dicom").iterdir())) == slices
    assert "series_labels_dicom" in text


def test_tiny_mp4_with_the_built_in_model(capsys, tmp_path):
    from sequence_inputs import write_video

    frames = np.full((3, 48, 64, 3), 110, np.uint8)
    for t in range(3):
        frames[t, 12:36, 10 + 4 * t : 30 + 4 * t] = (220, 40, 40)
    video = write_video(tmp_path / "clip.mp4", frames, "libx264", "yuv420p", preset="ultrafast")
    out = tmp_path / "out"
    code = main(["track", str(video), "--point", "20,24", "--out", str(out), "--format", "davis"])
    text, err = capsys.readouterr()
    assert code == 0, err
    assert "1 object tracked through 3 frames" in text and "3 of 3 frames" in text
    for t in range(3):
        with Image.open(out / f"{t:05d}.png") as image:
            assert image.mode == "P"
            labels = np.asarray(image)
        truth = np.zeros((48, 64), bool)
        truth[12:36, 10 + 4 * t : 30 + 4 * t] = True
        iou = ((labels == 1) & truth).sum() / ((labels == 1) | truth).sum()
        assert iou > 0.8, (t, iou)


def bad_case(tmp_path: Path, case: str) -> list:
    """The arguments of bad-input case `case` (all but --out)."""
    frames = frames_folder(tmp_path / "clip", 3)
    good = prompts_file(tmp_path / "good.json", [click(0, 1)])
    bad = tmp_path / "bad.json"
    if case == "missing input":
        return [tmp_path / "nothing.mp4", "--prompts", good]
    if case == "unreadable video":
        video = tmp_path / "broken.mp4"
        video.write_bytes(b"this is not a video" * 10)
        return [video, "--prompts", good]
    texts = {
        "prompt past the end": json.dumps([click(3, 1)]),
        "object id 0": json.dumps([{**click(0, 1), "object": 0}]),
        "object id 300 in png": json.dumps([{**click(0, 1), "object": 300}]),
        "not json": "[{",
        "nan": '[{"frame": 0, "object": 1, "box": [0, 0, NaN, 3]}]',
    }
    if case in texts:
        bad.write_text(texts[case])
        return [frames, "--prompts", bad]
    return {
        "missing prompts file": [frames, "--prompts", tmp_path / "none.json"],
        "both prompt ways": [frames, "--prompts", good, "--point", "1,1"],
        "no prompts": [frames],
        "start past the end": [frames, "--prompts", good, "--start", 3],
        "out is the input": [frames, "--prompts", good],
        "out under a file": [frames, "--prompts", good],
    }[case]


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing input", "not found"),
        ("unreadable video", "video"),
        ("prompt past the end", "frame 3 is past the end; the sequence has 3 frames"),
        ("object id 0", "object id 0 is not allowed"),
        ("object id 300 in png", "does not fit an 8-bit label PNG"),
        ("missing prompts file", "cannot read the prompts file"),
        ("not json", "not valid JSON"),
        ("nan", "NaN is not a number"),
        ("both prompt ways", "not both"),
        ("no prompts", "give the prompts"),
        ("start past the end", "--start 3 is past the end"),
        ("out is the input", "the input itself"),
        ("out under a file", "cannot write the results"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(fake_tracker, capsys, tmp_path, case, message):
    args = bad_case(tmp_path, case)
    out = tmp_path / "out"
    if case == "out is the input":
        out = args[0]
    elif case == "out under a file":
        out = tmp_path / "good.json" / "out"
    code, _, err = track(capsys, *args, "--out", out)
    assert code == 2
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err
    assert fake_tracker.log == []  # refused before any tracking
