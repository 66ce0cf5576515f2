"""The built-in models' speed on this machine: image encoder and one click.

    python benchmarks/bench_segany_tiny.py [--model segany-tiny-v2] [--checkpoint PATH] \
        [--rounds 20] [--threads 2]

segany's own models have no reference implementation to compare with; the issues' goals are
absolute (segany-tiny: <= 0.3 s, segany-tiny-v2: <= 60 ms for the encoder at 640 x 480
on a 2-core CPU), so this prints
medians and best times of
`set_image` (resize, normalise, encoder) and of `predict` (1 point, 3 masks, upsampled to the
image) on the README's 640 x 480 sample, plus the same on a 768 x 1024 image; and a later click
(an exclude click with the first answer's logits) answered by the click rule
(`segany.interactive.predict_edit`, 4 outputs ranked) against the 3 multimask outputs the
annotation app asked for before it, in the same run.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timing import time_calls

import segany
from segany.interactive import predict_edit
from segany.registry import DEFAULT_MODEL, list_models

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sample.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=list_models())
    parser.add_argument("--checkpoint", help="weights file (default: the model's own)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    predictor = segany.SamPredictor(segany.build_sam(args.model, args.checkpoint))
    sample = np.asarray(Image.open(SAMPLE).convert("RGB"))
    large = np.asarray(Image.fromarray(sample).resize((1024, 768)))
    point = (np.array([[330.0, 190.0]]), np.array([1]))
    print(f"{args.model}, {args.threads} threads, {args.rounds} rounds")
    for name, image in (("640x480", sample), ("1024x768", large)):
        predictor.set_image(image)  # warm-up
        encode = time_calls(lambda image=image: predictor.set_image(image), args.rounds)
        scale = image.shape[1] / sample.shape[1]
        coords = point[0] * scale
        click = time_calls(lambda coords=coords: predictor.predict(coords, point[1]), args.rounds)
        print(
            f"{name:>9}: set_image median {statistics.median(encode) * 1e3:7.1f} ms "
            f"(best {min(encode) * 1e3:.1f}); predict median "
            f"{statistics.median(click) * 1e3:6.1f} ms (best {min(click) * 1e3:.1f})"
        )
        later = np.array([[330.0, 190.0], [140.0, 250.0]]) * scale, np.array([1, 0])
        previous = predictor.predict(coords, point[1])[2][:1]  # (1, h, w)
        rule = time_calls(
            lambda later=later, previous=previous: predict_edit(
                predictor, *later, mask_input=previous
            ),
            args.rounds,
        )
        three = time_calls(
            lambda later=later, previous=previous: predictor.predict(*later, mask_input=previous),
            args.rounds,
        )
        rule_ms, three_ms = statistics.median(rule) * 1e3, statistics.median(three) * 1e3
        print(
            f"{'':>9}  later click: the click rule (4 outputs) median {rule_ms:6.1f} ms, "
            f"3 multimask outputs {three_ms:6.1f} ms ({rule_ms / three_ms:.2f}x)"
        )


if __name__ == "__main__":
    main()
