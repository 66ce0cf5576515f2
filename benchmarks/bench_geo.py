"""The SamGIS-compatible service: the first request on a map extent against the same extent with
new prompts (the embedding reused from the cache).

    python benchmarks/bench_geo.py [--model segany-tiny-v2 | segany-tiny | vit_b] [--extents 5]
        [--clicks 5] [--threads N] [--json out.json]

Runs the app in this process (FastAPI's TestClient, no network) with `--tile-url` on a local
tile server that draws the test scene (tests/geo_helpers.py). For each of `--extents` extents
(the scene's 521 x 501 px view at zoom 16, shifted by a few pixels so that each is a new
embedding; 9 tiles), one click on a shape is the first request (tiles from the local server,
encoder, decoder, polygons), then `--clicks` requests on the same extent with other prompts
(decoder and polygons only). The default model is segany's default (the built-in
segany-tiny-v2); a model without shipped weights (`--model vit_b`) uses random weights: the
speed of the official ones without downloading them. Prints medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from geo_helpers import Scene, TileServer  # noqa: E402
from segany.registry import DEFAULT_MODEL, get_spec  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a registered model name")
    parser.add_argument("--extents", type=int, default=5, help="extents (first requests)")
    parser.add_argument("--clicks", type=int, default=5, help="new prompts per extent")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    return parser.parse_args()


def prompts(scene: Scene, round_: int) -> list[dict]:
    """A different prompt each round: a click on one shape, then boxes and two-point clicks."""
    names = list(scene.shapes)
    name = names[round_ % len(names)]
    lng, lat = scene.inside(name)
    click = {"type": "point", "data": {"lat": lat, "lng": lng}, "label": 1}
    if round_ % 2 == 0:
        return [click]
    s = scene.shapes[name]
    half = s.size if s.kind == "disk" else s.size / 2
    west, south = scene.lnglat(s.dx - half - 6, s.dy - half - 6)
    east, north = scene.lnglat(s.dx + half + 6, s.dy + half + 6)
    box = {"ne": {"lat": north, "lng": east}, "sw": {"lat": south, "lng": west}}
    return [click, {"type": "rectangle", "data": box}]


def main() -> int:
    args = parse_args()
    from fastapi.testclient import TestClient

    import segany.geo  # noqa: F401  (fails early, saying what to install)
    from segany.server.app import create_app
    from segany.server.settings import ServerSettings

    scene = Scene()
    first, reused, shapes = [], [], []
    with TileServer(scene) as tiles, tempfile.TemporaryDirectory() as data:
        settings = ServerSettings(
            data_dir=Path(data),
            model=args.model,
            random_weights=get_spec(args.model).bundled_path is None,
            device=args.device,
            threads=args.threads,
            pre_encode=False,
            tile_url=tiles.template("ok"),
        )
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:

            def infer(shift: int, prompt: list[dict]) -> dict:
                bbox = scene.bbox(260 + shift, 250 + shift)
                body = {"bbox": bbox, "zoom": scene.zoom, "prompt": prompt}
                answer = client.post("/infer_samgis", json=body)
                answer.raise_for_status()
                return answer.json()

            infer(40, prompts(scene, 0))  # warm-up: first-call overheads, not the extent's
            for extent in range(args.extents):
                answer = infer(extent, prompts(scene, 0))
                assert not answer["cached_embedding"]
                first.append(answer["duration_run"])
                for click in range(1, args.clicks + 1):
                    answer = infer(extent, prompts(scene, click))
                    assert answer["cached_embedding"]
                    reused.append(answer["duration_run"])
                    shapes.append(answer["n_shapes_geojson"])
    figures = {
        "model": args.model,
        "device": args.device,
        "first_request_s": statistics.median(first),
        "same_extent_new_prompts_s": statistics.median(reused),
        "extents": args.extents,
        "requests_reusing": len(reused),
        "polygons_per_answer": statistics.median(shapes),
    }
    figures["reuse_speedup"] = figures["first_request_s"] / figures["same_extent_new_prompts_s"]
    print(f"model {args.model} on {args.device}, extent 521 x 501 px (9 tiles), median seconds")
    print(f"  first request on an extent      {figures['first_request_s']:8.3f} s")
    print(f"  same extent, new prompts        {figures['same_extent_new_prompts_s']:8.3f} s")
    print(f"  embedding reuse: {figures['reuse_speedup']:.1f}x faster")
    print(f"  polygons per answer (median): {figures['polygons_per_answer']:g}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
