"""SAM 2's image encoder: segany's `Sam2ImageEncoder` against the reference `sam2==1.1.0`
`ImageEncoder`, same weights, same (1, 3, S, S) input, float32, under `torch.inference_mode`.

    python benchmarks/bench_sam2_encoder.py [--model sam2.1_hiera_t] [--size 1024]
        [--rounds 5] [--threads 2]

The two run alternately (ours, reference, ours, ...) after one warm-up call each, so that
load from other processes hits both; prints every round, the medians and their ratio, and
the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import sam2  # noqa: F401  (initialises Hydra with the reference's configs)
import torch
from hydra import compose
from hydra.utils import instantiate

from segany.modeling.sam2.image_encoder import Sam2ImageEncoder
from segany.registry import get_spec


def reference_encoder(name: str) -> torch.nn.Module:
    """The reference `ImageEncoder` of registry model `name`, from its official config."""
    name = get_spec(name).name
    version = "sam2.1" if name.startswith("sam2.1") else "sam2"
    config = compose(config_name=f"configs/{version}/{name}")
    return instantiate(config.model.image_encoder, _recursive_=True).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sam2.1_hiera_t")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reference = reference_encoder(args.model)
    config = dataclasses.replace(get_spec(args.model).encoder, img_size=args.size)
    ours = Sam2ImageEncoder(config).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, args.size, args.size)
    times: dict[str, list[float]] = {"segany": [], "reference": []}
    with torch.inference_mode():
        ours(x), reference(x)  # warm-up: allocations, kernel choice, caches
        for _ in range(args.rounds):
            for key, model in (("segany", ours), ("reference", reference)):
                start = time.perf_counter()
                model(x)
                times[key].append(time.perf_counter() - start)
            print(f"segany {times['segany'][-1]:.2f} s  reference {times['reference'][-1]:.2f} s")
    ours_s, ref_s = statistics.median(times["segany"]), statistics.median(times["reference"])
    per_round = [r / o for o, r in zip(times["segany"], times["reference"], strict=True)]
    print(
        f"{args.model} at {args.size} px, {args.threads} threads, median of {args.rounds}: "
        f"segany {ours_s:.2f} s, reference {ref_s:.2f} s, ratio {ref_s / ours_s:.2f} "
        f"(median per-round ratio {statistics.median(per_round):.2f})"
    )


if __name__ == "__main__":
    main()
