"""Click latency of `segany serve` under 8 concurrent annotators, and the first click on a new
image with and without pre-encoding; with --mixed, the clicks' latency while Auto runs and
new images are being pre-encoded.

    python benchmarks/bench_server.py [--model segany-tiny-v2 | segany-tiny | vit_b] [--seconds 60]
        [--images 8] [--no-edge-refinement] [--polygons]
        [--clients 8] [--workers 1] [--threads N] [--think 2] [--json out.json]
        [--mixed [--auto-every 10] [--pre-encode 20]]

The default model is segany's default (the built-in segany-tiny-v2).

Starts the real server (a subprocess on loopback, SQLite in a temporary folder), uploads
`--images` synthetic 640 x 480 pictures, waits until the pre-encoder has computed all their
embeddings, then `--clients` threads, each with its own connection, click (one random include
point, 3 masks back as RLE, as the browser annotator asks; `--polygons`: with their outlines too,
the API's default) on random pre-encoded images for `--seconds`: p50 / p95 / p99 latency,
throughput, errors. Then the first click on freshly uploaded images, `--think` seconds after
the upload (a person looks before clicking), on this server and on one started with
--no-pre-encode. A model without shipped weights (`--model vit_b`) runs a random-weights
checkpoint written here (the speed of the official weights, without downloading them).
Latencies are measured by the clients, on the same machine as the server: on a small machine
they share its cores. The server runs with torch's default thread count unless `--threads`.

--mixed: the same clickers, while one more client runs Auto as the annotator does (a job:
POST /api/images/{id}/auto/jobs, then GET /api/auto/jobs/{job} every 0.4 s until done; the
next one `--auto-every` seconds after the previous started, or when it ends if later) and
`--pre-encode` new images, uploaded as the clicking starts, are pre-encoded. Reports the
clicks' percentiles, the Auto runs' durations and how many new images were encoded (no
first-click phase). `--auto-route sync` runs Auto as one POST /api/images/{id}/auto instead,
for servers before the job API (the previous design, for comparison).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from segany.registry import DEFAULT_MODEL, get_spec  # noqa: E402
from server_helpers import LiveServer, scene_png  # noqa: E402

HEIGHT, WIDTH = 480, 640


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a registered model name")
    parser.add_argument("--checkpoint", type=Path, help="weights for --model (default: see doc)")
    parser.add_argument("--images", type=int, default=8, help="pre-encoded images to click on")
    parser.add_argument("--clients", type=int, default=8, help="concurrent annotators")
    parser.add_argument("--seconds", type=float, default=60.0, help="duration of the click load")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--threads", type=int, help="torch threads per worker (server default)")
    parser.add_argument(
        "--no-edge-refinement", action="store_true", help="serve plain masks (segany-tiny-v2)"
    )
    parser.add_argument(
        "--polygons", action="store_true", help="ask for the masks' outlines (the API default)"
    )
    parser.add_argument("--fresh", type=int, default=3, help="new images for the first click")
    parser.add_argument("--think", type=float, default=2.0, help="seconds from upload to click")
    parser.add_argument("--encode-timeout", type=float, default=1800.0)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--mixed", action="store_true", help="click while Auto runs and images are pre-encoded"
    )
    parser.add_argument("--auto-every", type=float, default=10.0, help="--mixed: Auto period, s")
    parser.add_argument(
        "--pre-encode", type=int, default=20, help="--mixed: new images uploaded at the start"
    )
    parser.add_argument(
        "--auto-route", choices=("jobs", "sync"), default="jobs", help="--mixed: how Auto is run"
    )
    return parser.parse_args()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def upload(http: httpx.Client, seed: int) -> str:
    data = scene_png(seed, HEIGHT, WIDTH)
    response = http.post("/api/images", files={"file": (f"bench-{seed}.png", data, "image/png")})
    response.raise_for_status()
    return response.json()["id"]


def click(
    http: httpx.Client, image_id: str, rng: random.Random, polygons: bool = False
) -> httpx.Response:
    point = [rng.uniform(0, WIDTH - 1), rng.uniform(0, HEIGHT - 1), 1]
    body = {"points": [point]} if polygons else {"points": [point], "polygons": False}
    return http.post(f"/api/images/{image_id}/predict", json=body)


def wait_encoded(http: httpx.Client, start: float, timeout: float) -> float:
    """Seconds from `start` (perf_counter) until /api/encoding reports nothing pending."""
    while time.perf_counter() - start < timeout:
        if http.get("/api/encoding").json()["pending"] == 0:
            return time.perf_counter() - start
        time.sleep(0.05)
    raise TimeoutError(f"the images were not encoded in {timeout:.0f} s")


def click_load(
    server: LiveServer, ids: list[str], clients: int, seconds: float, polygons: bool
) -> dict:
    """`clients` threads clicking on random images of `ids` for `seconds`; the figures, and
    the slowest clicks (seconds into the run, milliseconds) to see when they happened."""
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []  # (started, took) of each answered click
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def annotator(n: int) -> None:
        rng = random.Random(n)
        with server.client() as http:
            start.wait()
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                try:
                    response = click(http, rng.choice(ids), rng, polygons)
                    error = None if response.status_code == 200 else response.text[:200]
                except httpx.HTTPError as e:
                    error = repr(e)
                took = time.perf_counter() - began
                with lock:
                    if error is None:
                        latencies.append(took)
                        timeline.append((began, took))
                    else:
                        errors.append(error)

    threads = [threading.Thread(target=annotator, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    slowest = sorted(timeline, key=lambda item: -item[1])[:10]
    return {
        "slowest": [(round(t - began, 2), round(1000 * took)) for t, took in slowest],
        "clicks": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:5],
        "clicks_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p95_ms": 1000 * percentile(latencies, 95),
        "p99_ms": 1000 * percentile(latencies, 99),
        "mean_ms": 1000 * statistics.fmean(latencies) if latencies else float("nan"),
    }


def auto_runs(
    server: LiveServer, ids: list[str], every: float, route: str, stop: threading.Event
) -> list[dict]:
    """Auto on the images of `ids` in turn, one run at a time, a run starting `every` s after
    the previous one started (or when it ends, if later), until `stop`: per run its seconds,
    final state, mask count and slices (jobs route). A job still running at `stop` is
    cancelled and reported as such."""
    runs = []
    with server.client(timeout=None) as http:
        for n in range(10**9):
            if stop.is_set():
                break
            began = time.perf_counter()
            image_id = ids[n % len(ids)]
            if route == "sync":
                response = http.post(f"/api/images/{image_id}/auto")
                response.raise_for_status()
                job = {"state": "done", "masks": response.json()["masks"], "total_steps": 0}
            else:
                response = http.post(f"/api/images/{image_id}/auto/jobs")
                response.raise_for_status()
                job = response.json()
                while job["state"] in ("queued", "running"):
                    if stop.wait(0.4):
                        job = http.delete(f"/api/auto/jobs/{job['id']}").json()
                        job["state"] = "stopped"  # by the end of the run, not finished
                        break
                    job = http.get(f"/api/auto/jobs/{job['id']}").json()
            runs.append(
                {
                    "seconds": time.perf_counter() - began,
                    "state": job["state"],
                    "masks": len(job.get("masks") or []),
                    "slices": job["total_steps"],
                    "slices_done": job.get("done_steps", 0),
                }
            )
            stop.wait(max(0.0, every - (time.perf_counter() - began)))
    return runs


def mixed_load(server: LiveServer, ids: list[str], args: argparse.Namespace) -> dict:
    """`click_load` while `auto_runs` runs and `args.pre_encode` new images are uploaded (and
    so pre-encoded): the clicks' figures, the Auto runs, the new images encoded by the end."""
    stop = threading.Event()
    autos: list[dict] = []
    fresh: list[str] = []

    def auto() -> None:
        autos.extend(auto_runs(server, ids, args.auto_every, args.auto_route, stop))

    def uploads() -> None:
        with server.client() as http:
            fresh.extend(upload(http, 2000 + n) for n in range(args.pre_encode))

    helpers = [threading.Thread(target=auto), threading.Thread(target=uploads)]
    for thread in helpers:
        thread.start()
    load = click_load(server, ids, args.clients, args.seconds, args.polygons)
    stop.set()
    with server.client() as http:
        status = http.get("/api/encoding").json()
    for thread in helpers:
        thread.join()
    load["auto_runs"] = autos
    load["pre_encoded"] = status["encoded"] - len(ids)
    return load


def first_clicks(server: LiveServer, seeds: range, think: float, polygons: bool) -> list[float]:
    """Seconds of the first click on each image of `seeds`, `think` s after its upload."""
    took = []
    rng = random.Random(0)
    with server.client() as http:
        for seed in seeds:
            image_id = upload(http, seed)
            time.sleep(think)
            began = time.perf_counter()
            response = click(http, image_id, rng, polygons)
            took.append(time.perf_counter() - began)
            response.raise_for_status()
            assert response.json()["masks"], "no mask"
    return took


def run(args: argparse.Namespace, folder: Path) -> dict:
    model = ["--model", args.model]
    checkpoint = args.checkpoint
    if checkpoint is None and get_spec(args.model).bundled_path is None:
        import torch

        from segany import build_sam

        checkpoint = folder / f"{args.model}-random.pth"
        print(f"writing random-weights {args.model} to {checkpoint}", file=sys.stderr)
        torch.save(build_sam(args.model, pretrained=False, seed=0).state_dict(), checkpoint)
    if checkpoint is not None:
        model += ["--checkpoint", str(checkpoint)]
    common = [*model, "--workers", str(args.workers)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    if args.no_edge_refinement:
        common.append("--no-edge-refinement")
    fresh = range(1000, 1000 + args.fresh)
    results: dict = {"config": {k: str(v) for k, v in vars(args).items()}}

    # The tests' servers run one torch thread (OMP_NUM_THREADS=1); a user's runs torch's default.
    default_threads = {"OMP_NUM_THREADS": None}
    pre = LiveServer(
        folder / "pre", *common, log=folder / "pre.log", timeout=600, env=default_threads
    )
    with pre as server:
        with server.client() as http:
            began = time.perf_counter()
            ids = [upload(http, seed) for seed in range(args.images)]
            results["encode_all_s"] = wait_encoded(http, began, args.encode_timeout)
        print(
            f"{args.images} images uploaded and encoded in {results['encode_all_s']:.1f} s",
            file=sys.stderr,
        )
        if args.mixed:
            results["load"] = mixed_load(server, ids, args)
            return results
        results["load"] = click_load(server, ids, args.clients, args.seconds, args.polygons)
        results["first_click_pre_encoded_s"] = first_clicks(
            server, fresh, args.think, args.polygons
        )
    off = LiveServer(
        folder / "off",
        *common,
        "--no-pre-encode",
        log=folder / "off.log",
        timeout=600,
        env=default_threads,
    )
    with off as server:
        results["first_click_no_pre_encode_s"] = first_clicks(
            server, fresh, args.think, args.polygons
        )
    return results


def report(args: argparse.Namespace, results: dict) -> str:
    load = results["load"]
    if args.mixed:
        return report_mixed(args, results)
    on = statistics.median(results["first_click_pre_encoded_s"])
    off = statistics.median(results["first_click_no_pre_encode_s"])
    return "\n".join(
        [
            f"segany serve, {args.model}, {args.workers} worker(s), {args.clients} clients "
            f"({'RLE and polygons' if args.polygons else 'RLE'}), "
            f"{args.seconds:g} s, {args.images} pre-encoded {WIDTH}x{HEIGHT} images "
            f"(uploaded and encoded in {results['encode_all_s']:.1f} s)",
            "",
            *click_table(load),
            "",
            f"| first click on a new image, {args.think:g} s after its upload "
            f"(median of {args.fresh}) | ms |",
            "|---|---:|",
            f"| pre-encoding on | {1000 * on:.0f} |",
            f"| --no-pre-encode | {1000 * off:.0f} |",
        ]
    )


def click_table(load: dict) -> list[str]:
    """The clicks' latency table (markdown rows) of a load run."""
    return [
        "| clicks | errors | clicks/s | p50 ms | p95 ms | p99 ms | mean ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {load['clicks']} | {load['errors']} | {load['clicks_per_s']:.1f} "
        f"| {load['p50_ms']:.0f} | {load['p95_ms']:.0f} | {load['p99_ms']:.0f} "
        f"| {load['mean_ms']:.0f} |",
    ]


def report_mixed(args: argparse.Namespace, results: dict) -> str:
    load = results["load"]
    finished = [run["seconds"] for run in load["auto_runs"] if run["state"] == "done"]
    states = ", ".join(f"{run['state']} {run['seconds']:.1f} s" for run in load["auto_runs"])
    auto = (
        f"{len(finished)} finished, median {statistics.median(finished):.1f} s"
        if finished
        else "none finished"
    )
    slices = max((run["slices"] for run in load["auto_runs"]), default=0)
    return "\n".join(
        [
            f"segany serve, {args.model}, {args.workers} worker(s), {args.clients} clients "
            f"({'RLE and polygons' if args.polygons else 'RLE'}), {args.seconds:g} s, "
            f"{args.images} pre-encoded {WIDTH}x{HEIGHT} images; meanwhile Auto every "
            f"{args.auto_every:g} s ({args.auto_route}) and {args.pre_encode} new images "
            "being pre-encoded",
            "",
            *click_table(load),
            "",
            f"Auto: {auto}" + (f", {slices} slices each" if slices else "") + f" ({states})",
            f"new images pre-encoded during the run: {load['pre_encoded']} of {args.pre_encode}",
            "slowest clicks (s into the run: ms): "
            + ", ".join(f"{t:.1f}: {ms}" for t, ms in load["slowest"][:8]),
        ]
    )


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="segany-bench-server-") as tmp:
        results = run(args, Path(tmp))
    print(report(args, results))
    if results["load"]["error_samples"]:
        print("errors, e.g.:", *results["load"]["error_samples"], sep="\n  ")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
