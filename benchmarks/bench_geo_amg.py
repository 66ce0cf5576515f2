"""Peak memory of `segany geo amg` against raster size: memory must not grow with the raster.

    python benchmarks/bench_geo_amg.py                          # 5,000 .. 40,000 px square
    python benchmarks/bench_geo_amg.py --sizes 5000 20000 --tile-size 2048
    python benchmarks/bench_geo_amg.py --model segany-tiny

Each raster is a 3-band uint8 GeoTIFF (tiled, deflate, sparse: unwritten blocks are nodata)
holding the same 3000 px flat-coloured field with a disc, so every size segments the same
windows and differs only in how much raster there is around them (the nodata windows are read
and skipped). Each run is `segany geo amg` in a fresh interpreter, with `--model` (default:
segany's default model) and one torch thread; the table gives its wall time, its RSS after the
imports (torch's share), its peak RSS, the difference, and tracemalloc's peak (NumPy and
Python allocations: the windows' pixels, masks and polygons).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from segany.registry import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def measure(side: int, folder: Path, tile_size: int, points_per_side: int, model: str) -> dict:
    from test_geotiff import MEASURE, write_big_raster

    tif = write_big_raster(folder / f"raster_{side}.tif", side)
    out = folder / f"masks_{side}.gpkg"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    command = [
        sys.executable, "-c", MEASURE, "geo", "amg", str(tif), "--out", str(out),
        "--tile-size", str(tile_size), "--overlap", "128",
        "--points-per-side", str(points_per_side), "--model", model, "--quiet",
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"segany geo amg failed on {side} px:\n{done.stderr}")
    baseline, peak, traced = (int(v) for v in done.stdout.split("MEMORY")[1].split())
    summary = done.stdout.split("geo amg: ")[1].split(";")[0]
    return {
        "side": side,
        "uncompressed_gb": side * side * 3 / 1e9,
        "file_mb": tif.stat().st_size / 1e6,
        "windows": summary,
        "seconds": seconds,
        "baseline_mib": baseline / 2**20,
        "peak_mib": peak / 2**20,
        "traced_mib": traced / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000, 40000])
    parser.add_argument("--tile-size", type=int, default=1024)
    parser.add_argument("--points-per-side", type=int, default=4)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a registered model name")
    args = parser.parse_args()
    if min(args.sizes) < 4500:
        raise SystemExit("sizes must be at least 4500 px (the 3000 px field sits at side / 4)")
    print(
        f"segany geo amg, {args.model}, tile {args.tile_size} px, overlap 128, "
        f"{args.points_per_side}x{args.points_per_side} points, 1 thread\n"
    )
    header = (
        "| raster (px) | uncompressed | file | windows | wall | RSS after imports | peak RSS "
        "| peak - imports | traced peak |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    with tempfile.TemporaryDirectory() as folder:
        for side in args.sizes:
            r = measure(side, Path(folder), args.tile_size, args.points_per_side, args.model)
            print(
                f"| {side:,} x {side:,} | {r['uncompressed_gb']:.2f} GB | {r['file_mb']:.2f} MB "
                f"| {r['windows']} | {r['seconds']:.1f} s | {r['baseline_mib']:.0f} MiB "
                f"| {r['peak_mib']:.0f} MiB | {r['peak_mib'] - r['baseline_mib']:.0f} MiB "
                f"| {r['traced_mib']:.0f} MiB |",
                flush=True,
            )


if __name__ == "__main__":
    main()
