"""SAM 2: segany against the reference `sam2==1.1.0`, same process, same weights, same inputs.

    python benchmarks/bench_sam2.py [--model sam2.1_hiera_t] [--rounds 3] [--frames 8]
        [--rss-frames 1000] [--skip-rss] [--threads 2]

Prints issue 25's speed and memory rows:
- `set_image` of a 768 x 1024 image (1024 px model input), median and best of `--rounds`,
  alternating the two implementations so that machine noise hits both;
- video propagation per frame: two objects clicked on frame 0 of a `--frames`-frame 640 x 480
  clip (a folder of JPEGs), `propagate_in_video` timed over the remaining frames, alternating;
- peak RSS of tracking one object through a `--rss-frames`-frame 640 x 480 video (a folder of
  JPEGs, which both read), each implementation in a fresh process (`ru_maxrss`). The reference
  holds every frame at 1024 px in one float32 tensor, so its peak is measured at
  `--ref-rss-frames` frames and half as many, and extrapolated linearly to `--rss-frames`
  (the table says so).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from timing import time_calls  # noqa: E402

import segany  # noqa: E402
from conftest import synthetic_image  # noqa: E402

VIDEO_SIZE = (480, 640)  # (H, W)


def reference_config(name: str) -> str:
    """The reference's Hydra config for a registry name (long aliases allowed)."""
    name = segany.registry.get_spec(name).name
    version = "sam2.1" if name.startswith("sam2.1") else "sam2"
    return f"configs/{version}/{name}.yaml"


def save_reference_weights(name: str, path: Path, seed: int = 0) -> None:
    """Random weights of the reference model `name`, as an official-layout `{"model": sd}`."""
    from sam2.build_sam import build_sam2

    torch.manual_seed(seed)
    model = build_sam2(reference_config(name), None, device="cpu")
    torch.save({"model": model.state_dict()}, path)


def moving_frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` (480, 640, 3) uint8 frames, from time `seed` on: two discs drifting over a
    textured background."""
    height, width = VIDEO_SIZE
    background = synthetic_image(height, width)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(seed, seed + count):
        frame = background.copy()
        for k, colour in enumerate(((230, 40, 40), (40, 60, 230))):
            cx = 160 + 320 * k + 40 * np.sin(t / 15 + k)
            cy = 240 + 60 * np.cos(t / 20 + 2 * k)
            frame[(yy - cy) ** 2 + (xx - cx) ** 2 < 60**2] = colour
        frames.append(frame)
    return frames


def write_frames(count: int, folder: Path) -> None:
    """`count` frames of `moving_frames` as JPEGs, 50 at a time (bounded memory)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, count, 50):
        for i, frame in enumerate(moving_frames(min(50, count - start), seed=start)):
            Image.fromarray(frame).save(folder / f"{start + i:05d}.jpg", quality=95)


def clicks() -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(object id, (1, 2) xy points, (1,) labels) on the two discs of frame 0."""
    return [
        (1, np.array([[160.0, 300.0]], dtype=np.float32), np.array([1], dtype=np.int32)),
        (2, np.array([[480.0, 180.0]], dtype=np.float32), np.array([1], dtype=np.int32)),
    ]


def track(predictor, video: str, objects: int) -> tuple[float, int, np.ndarray]:
    """Seconds per propagated frame, frames propagated, and the last frame's logits."""
    state = predictor.init_state(video_path=video)
    for obj_id, points, labels in clicks()[:objects]:
        predictor.add_new_points_or_box(state, 0, obj_id, points=points, labels=labels)
    times, last = [], None
    generator = predictor.propagate_in_video(state)
    import time

    while True:
        start = time.perf_counter()
        try:
            _, _, logits = next(generator)
        except StopIteration:
            break
        times.append(time.perf_counter() - start)
        last = logits
    # frame 0 (the prompted frame) is answered from its clicks: time the tracked frames only
    tracked = times[1:]
    return statistics.median(tracked), len(tracked), last.float().cpu().numpy()


def rss_child(args: argparse.Namespace) -> None:
    """In a fresh process: track one object through `args.video`, print peak RSS in bytes."""
    import resource

    torch.set_num_threads(args.threads)
    if args.impl == "segany":
        model = segany.build_sam(args.model, checkpoint=args.weights)
        predictor = segany.VideoPredictor(model)
    else:
        from sam2.build_sam import build_sam2_video_predictor

        predictor = build_sam2_video_predictor(
            reference_config(args.model), args.weights, device="cpu"
        )
    frames = 0
    with torch.inference_mode():
        state = predictor.init_state(video_path=args.video)
        _, points, labels = clicks()[0]
        predictor.add_new_points_or_box(state, 0, 1, points=points, labels=labels)
        for _ in predictor.propagate_in_video(state):
            frames += 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"frames": frames, "peak_rss": peak}))


def peak_rss(impl: str, model: str, weights: Path, video: Path, threads: int) -> int:
    command = [
        sys.executable,
        __file__,
        "--rss-child",
        impl,
        "--model",
        model,
        "--weights",
        str(weights),
        "--video",
        str(video),
        "--threads",
        str(threads),
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_rss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sam2.1_hiera_t")
    parser.add_argument("--rounds", type=int, default=3, help="set_image / tracking rounds")
    parser.add_argument("--frames", type=int, default=8, help="frames of the timed clip")
    parser.add_argument("--rss-frames", type=int, default=1000)
    parser.add_argument("--ref-rss-frames", type=int, default=100)
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rss-child", choices=("segany", "reference"), help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        args.impl = args.rss_child
        rss_child(args)
        return
    torch.set_num_threads(args.threads)
    from sam2.build_sam import build_sam2_video_predictor
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = tmp / "weights.pt"
        save_reference_weights(args.model, weights)
        config = reference_config(args.model)
        ref_video = build_sam2_video_predictor(config, str(weights), device="cpu")
        ref_image = SAM2ImagePredictor(ref_video)
        ours_model = segany.build_sam(args.model, checkpoint=weights)
        ours_image = segany.SamPredictor(ours_model)
        ours_video = segany.VideoPredictor(ours_model)

        image = synthetic_image(768, 1024)
        enc = {"reference": [], "segany": []}
        with torch.inference_mode():
            for _ in range(args.rounds):
                for name, predictor in (("reference", ref_image), ("segany", ours_image)):
                    enc[name] += time_calls(lambda p=predictor: p.set_image(image), 1)
            point = dict(point_coords=np.array([[400.0, 300.0]]), point_labels=np.array([1]))
            expected = ref_image.predict(**point, return_logits=True)
            got = ours_image.predict(**point, return_logits=True)

        clip = tmp / "clip"
        write_frames(args.frames, clip)
        per_frame = {"reference": [], "segany": []}
        with torch.inference_mode():
            for _ in range(args.rounds):
                for name, predictor in (("reference", ref_video), ("segany", ours_video)):
                    seconds, tracked, logits = track(predictor, str(clip), objects=2)
                    per_frame[name].append(seconds)
                    if name == "reference":
                        ref_logits = logits
                    else:
                        our_logits = logits

        print(
            f"model {args.model}, threads {args.threads}, torch {torch.__version__}, "
            f"clip {args.frames} frames 640x480, 2 objects"
        )
        print(f"{'measure':<40}{'reference':>12}{'segany':>12}{'ratio':>9}")
        for label, data in (
            ("set_image 768x1024, s", enc),
            (f"propagation per frame ({tracked} tracked), s", per_frame),
        ):
            for stat_name, stat in (("median", statistics.median), ("best", min)):
                r, s = stat(data["reference"]), stat(data["segany"])
                print(f"{label + ' ' + stat_name:<40}{r:>12.3f}{s:>12.3f}{r / s:>8.2f}x")
        print(
            f"image: max |logit diff| {np.abs(expected[0] - got[0]).max():.2e}, max |IoU diff| "
            f"{np.abs(expected[1] - got[1]).max():.2e}, mask agreement "
            f"{((expected[0] > 0) == (got[0] > 0)).mean():.6f}"
        )
        print(
            f"video, last frame: max |logit diff| {np.abs(ref_logits - our_logits).max():.2e}, "
            f"mask agreement {((ref_logits > 0) == (our_logits > 0)).mean():.6f}"
        )

        if args.skip_rss:
            return
        long_video = tmp / "long"
        write_frames(args.rss_frames, long_video)
        ours_peak = peak_rss("segany", args.model, weights, long_video, args.threads)
        short_video, half_video = tmp / "short", tmp / "half"
        write_frames(args.ref_rss_frames, short_video)
        write_frames(args.ref_rss_frames // 2, half_video)
        ref_full = peak_rss("reference", args.model, weights, short_video, args.threads)
        ref_half = peak_rss("reference", args.model, weights, half_video, args.threads)
        slope = (ref_full - ref_half) / (args.ref_rss_frames - args.ref_rss_frames // 2)
        ref_extrapolated = ref_full + slope * (args.rss_frames - args.ref_rss_frames)
        gib = 2**30
        print(f"peak RSS tracking 1 object, {args.rss_frames} frames 640x480:")
        print(f"  segany (measured)          {ours_peak / gib:8.2f} GiB")
        print(
            f"  reference at {args.ref_rss_frames // 2} / {args.ref_rss_frames} frames "
            f"(measured) {ref_half / gib:.2f} / {ref_full / gib:.2f} GiB, "
            f"{slope / 2**20:.1f} MiB per frame"
        )
        print(f"  reference (extrapolated)   {ref_extrapolated / gib:8.2f} GiB")


if __name__ == "__main__":
    main()
