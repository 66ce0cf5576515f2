"""`segany track`'s speed and memory rows: frames/s at 640 x 480 with 2 objects, and resident
memory along a long video (flat in its length).

    python benchmarks/bench_track.py [--model segany-tiny-v2] [--frames 40] [--sam2 MODEL]
        [--rss-frames 10000] [--every 500] [--source lazy|mp4] [--skip-rss] [--skip-speed]
        [--writers-only] [--threads 2]

Speed: two textured discs drifting over a textured background (generated lazily, frame by
frame), one click on each on frame 0, tracked through `--frames` frames; the median per-frame
time of the tracker alone (`session.propagate`, the prompted frame left out) and of the whole
pipeline `segany track` runs (tracker, label PNG written atomically, journal line synced).
`--sam2 sam2.1_hiera_t` also times SAM 2's memory tracker (random weights: speed only).

Memory: in a fresh process, one object tracked through `--rss-frames` frames of the same
scene (`--source lazy`: a FrameSequence generating each frame when read; `mp4`: an H.264 file
written first with PyAV and decoded lazily), with the outputs written as `segany track` writes
them; the current RSS (/proc/self/statm) and the peak (ru_maxrss) every `--every` frames.
`--writers-only` puts the discs' true masks in the tracker's place (no model): the memory of
decoding and writing alone, over 10,000 frames in minutes rather than hours on a CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

import segany
from segany.cli.track_passes import plan_passes, run_pass
from segany.formats.sequence_outputs import SequenceOutputs
from segany.formats.track_journal import TrackJournal
from segany.sequences.base import FrameSequence
from segany.track import FrameResult, ObjectPrompt, Tracker, TrackingSession, build_tracker

HEIGHT, WIDTH = 480, 640
CENTRES = ((200.0, 240.0), (440.0, 240.0))  # the discs' rest positions, xy
RADIUS = 55


def disc_centre(t: int, k: int) -> tuple[int, int]:
    """Disc k's centre (x, y) on frame t."""
    cx, cy = CENTRES[k]
    return int(cx + 40 * np.sin(t / 25 + k)), int(cy + 60 * np.cos(t / 30 + 2 * k))


def texture(height: int, width: int, seed: int) -> np.ndarray:
    """(H, W, 3) uint8: smooth random colour blobs plus fine noise (no flat colour)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (height // 16 + 2, width // 16 + 2, 3)).astype(np.float32)
    image = np.kron(coarse, np.ones((16, 16, 1), np.float32))[:height, :width]
    image += rng.normal(0, 12, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


class DriftingDiscs(FrameSequence):
    """`length` 640 x 480 frames, each made when read: a background panning slowly, two
    textured discs drifting around `CENTRES` (so memory holds no frame for the sequence)."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.length = length
        self.height, self.width = HEIGHT, WIDTH
        grey = texture(HEIGHT, WIDTH + 200, seed=1).astype(np.float32)
        grey = 0.4 * grey + 0.6 * grey.mean(axis=2, keepdims=True)  # muted colours
        self.background = grey.astype(np.uint8)
        self.discs = []
        for k, tint in enumerate(((230, 60, 50), (50, 90, 230))):
            pattern = texture(2 * RADIUS, 2 * RADIUS, seed=2 + k).astype(np.float32)
            disc = 0.7 * np.array(tint, np.float32) + 0.3 * pattern  # tinted, textured
            self.discs.append(disc.astype(np.uint8))
        yy, xx = np.mgrid[-RADIUS:RADIUS, -RADIUS:RADIUS]
        self.inside = yy**2 + xx**2 < RADIUS**2

    def __len__(self) -> int:
        return self.length

    def read_rgb(self, index: int) -> np.ndarray:
        shift = int(100 + 100 * np.sin(index / 200))
        frame = self.background[:, shift : shift + WIDTH].copy()
        for k, disc in enumerate(self.discs):
            cx, cy = disc_centre(index, k)
            window = frame[cy - RADIUS : cy + RADIUS, cx - RADIUS : cx + RADIUS]
            window[self.inside] = disc[self.inside]
        return frame


def clicks(objects: int) -> list[ObjectPrompt]:
    return [ObjectPrompt(0, k + 1, points=np.array([[*CENTRES[k], 1.0]])) for k in range(objects)]


class DiscTruth(Tracker):
    """`--writers-only`: a stand-in tracker that answers each frame with the discs' true masks
    (no model), so the memory of the rest of the pipeline (decoding, label PNGs, journal)
    is measured alone, at its own speed."""

    name = "truth"

    def open(self, sequence: FrameSequence) -> TrackingSession:
        return _TruthSession(sequence)


class _TruthSession(TrackingSession):
    def __init__(self, sequence: FrameSequence) -> None:
        self.sequence = sequence
        self.objects: set[int] = set()
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
        self.grid = (xx, yy)

    def add_prompt(self, prompt: ObjectPrompt) -> FrameResult:
        self.objects.add(prompt.object_id)
        return self._result(prompt.frame)

    def _result(self, frame: int) -> FrameResult:
        self.sequence.rgb(frame)  # decoded as a tracker would
        xx, yy = self.grid
        result = FrameResult(frame)
        for object_id in sorted(self.objects):
            cx, cy = disc_centre(frame, object_id - 1)
            result.masks[object_id] = (xx - cx) ** 2 + (yy - cy) ** 2 < RADIUS**2
            result.scores[object_id] = 1.0
        return result

    def propagate(
        self, start: int | None = None, reverse: bool = False, max_frames: int | None = None
    ) -> Iterator[FrameResult]:
        step = -1 if reverse else 1
        order = range(start or 0, -1 if reverse else len(self.sequence), step)
        for frame in order[:max_frames]:
            yield self._result(frame)

    def remove_object(self, object_id: int) -> None:
        self.objects.discard(object_id)


def build(model_name: str) -> torch.nn.Module:
    pretrained = segany.registry.get_spec(model_name).url is None or model_name.startswith("segany")
    if model_name.startswith("sam2"):
        return segany.build_sam(model_name, pretrained=False, seed=0)
    return segany.build_sam(model_name, pretrained=pretrained)


def time_tracker(model_name: str, frames: int) -> tuple[float, float]:
    """(tracker alone, whole pipeline) median seconds per frame, 2 objects, `frames` frames."""
    model = build(model_name)
    tracker = build_tracker(model)
    sequence = DriftingDiscs(frames)
    with torch.inference_mode():
        session = tracker.open(sequence)
        for prompt in clicks(2):
            session.add_prompt(prompt)
        alone = []
        start = time.perf_counter()
        for _ in session.propagate(start=0):
            alone.append(time.perf_counter() - start)
            start = time.perf_counter()
        session.close()
        with tempfile.TemporaryDirectory() as tmp:
            pipeline = []
            outputs = open_outputs(Path(tmp), sequence, objects=2)
            (track_pass,) = plan_passes(frames, clicks(2), start=0)
            start = time.perf_counter()

            def tick(_: int) -> None:
                nonlocal start
                pipeline.append(time.perf_counter() - start)
                start = time.perf_counter()

            run_pass(track_pass, tracker, sequence, clicks(2), outputs, tick)
            outputs.journal.close()
    return statistics.median(alone[1:]), statistics.median(pipeline[1:])


def open_outputs(out: Path, sequence: FrameSequence, objects: int) -> SequenceOutputs:
    journal = TrackJournal.open(out, {"bench": True}, [])
    return SequenceOutputs(
        journal,
        "png",
        (sequence.height, sequence.width),
        len(sequence),
        {k + 1: "object" for k in range(objects)},
        lambda f: f"{f:05d}.jpg",
        "bench",
    )


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_mp4(path: Path, length: int) -> None:
    """The lazy scene encoded as H.264 (PyAV), one frame in memory at a time."""
    import av

    scene = DriftingDiscs(length)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
        stream.height, stream.width, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
        for t in range(length):
            frame = av.VideoFrame.from_ndarray(scene.read_rgb(t), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def rss_child(args: argparse.Namespace) -> None:
    """In a fresh process: track 1 object through the long video, printing JSON samples."""
    torch.set_num_threads(args.threads)
    if args.video:
        from segany.sequences import open_sequence

        sequence = open_sequence(args.video)
    else:
        sequence = DriftingDiscs(args.rss_frames)
    tracker = DiscTruth() if args.writers_only else build_tracker(build(args.model))
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        outputs = open_outputs(Path(tmp), sequence, objects=1)
        (track_pass,) = plan_passes(len(sequence), clicks(1), start=0)
        start = time.perf_counter()

        def sample(frame: int) -> None:
            if frame % args.every == 0 or frame == len(sequence) - 1:
                seconds = time.perf_counter() - start
                record = {"frame": frame, "rss": rss_mib(), "peak": peak_mib(), "s": seconds}
                print(json.dumps(record), flush=True)

        print(json.dumps({"frame": -1, "rss": rss_mib(), "peak": peak_mib(), "s": 0.0}))
        run_pass(track_pass, tracker, sequence, clicks(1), outputs, sample)
        outputs.journal.close()
    sequence.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="segany-tiny-v2")
    parser.add_argument("--sam2", help="also time this SAM 2 model (random weights)")
    parser.add_argument("--frames", type=int, default=40, help="frames of the timed clip")
    parser.add_argument("--rss-frames", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=500, help="RSS sample period, frames")
    parser.add_argument("--source", choices=("lazy", "mp4"), default="lazy")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument(
        "--writers-only",
        action="store_true",
        help="memory run without a model: true masks stand in for the tracker's",
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args)
        return
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {args.threads}, 640x480")
    if not args.skip_speed:
        print(f"speed, 2 objects, {args.frames} frames:")
        print(
            f"{'model':<18}{'tracker s/frame':>17}{'frames/s':>10}"
            f"{'pipeline s/frame':>18}{'frames/s':>10}"
        )
        for name in [args.model, *([args.sam2] if args.sam2 else [])]:
            alone, pipeline = time_tracker(name, args.frames)
            print(
                f"{name:<18}{alone:>17.3f}{1 / alone:>10.2f}{pipeline:>18.3f}{1 / pipeline:>10.2f}"
            )
    if args.skip_rss:
        return
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, __file__, "--rss-child", "--model", args.model]
        command += ["--rss-frames", str(args.rss_frames), "--every", str(args.every)]
        command += ["--threads", str(args.threads)]
        command += ["--writers-only"] if args.writers_only else []
        if args.source == "mp4":
            video = Path(tmp) / "long.mp4"
            write_mp4(video, args.rss_frames)
            command += ["--video", str(video)]
        result = subprocess.run(command, check=True, capture_output=True, text=True)
    samples = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    who = "true masks, no model (--writers-only)" if args.writers_only else args.model
    print(f"\nmemory, 1 object, {args.rss_frames} frames ({args.source}), {who}:")
    print(f"{'frame':>7}{'RSS MiB':>10}{'peak MiB':>10}{'s/frame':>9}")
    for s in samples:
        per_frame = s["s"] / (s["frame"] + 1) if s["frame"] >= 0 else float("nan")
        label = "ready" if s["frame"] < 0 else str(s["frame"])
        print(f"{label:>7}{s['rss']:>10.0f}{s['peak']:>10.0f}{per_frame:>9.3f}")
    tracked = [s for s in samples if s["frame"] >= 0]
    if len(tracked) >= 3:
        a, b = tracked[1], tracked[-1]
        slope = (b["rss"] - a["rss"]) / max(1, b["frame"] - a["frame"]) * 1000
        print(
            f"RSS change from frame {a['frame']} to {b['frame']}: {slope:+.1f} MiB per 1000 frames"
        )
    print(f"peak RSS {max(s['peak'] for s in samples) / 1024:.2f} GiB")


if __name__ == "__main__":
    main()
