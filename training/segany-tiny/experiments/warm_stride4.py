"""Fine-tune the shipped segany-tiny at stride 4, starting from its stride-8 weights.

    python warm_stride4.py CONFIG.toml [--init-only]

Registers `segany-tiny-s4` (the shipped architecture with `ConvEncoderConfig(stride=4)`),
copies every shipped weight into it and zeroes the new lateral branch's BatchNorm scale, so
that the new model starts as the shipped one seen through a 64 x 64 grid: the stride-8 map
upsampled, with the fusion blocks at the identity. Saves that as OUT/init.pth, then trains
CONFIG (its model.name and model.checkpoint are replaced) and prints the validation scores
of `choice.py` for the result. A question for the recipe: does a short high-resolution phase
lift the small masks that stride 8 cannot draw?
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from segany import SamPredictor
from segany.data.spec import SyntheticScenes
from segany.modeling.build import build_model
from segany.registry import build_sam, get_spec
from segany.train.config import load_config
from segany.train.trainer import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from choice import CHOICES, choice_rows, mean_by_choice  # noqa: E402
from run import register_variant  # noqa: E402


def main() -> None:
    config = load_config(sys.argv[1])
    name = register_variant(stride=4)
    out = Path(config.loop.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    init = out / "init.pth"
    if not init.exists():
        model = build_model(get_spec(name))
        missing, unexpected = model.load_state_dict(build_sam("segany-tiny").state_dict(), False)
        assert not unexpected, unexpected
        assert all(k.startswith(("image_encoder.lateral", "image_encoder.fuse")) for k in missing)
        torch.nn.init.zeros_(model.image_encoder.lateral[1].weight)
        torch.save(model.state_dict(), init)
    if "--init-only" in sys.argv:
        return
    model_cfg = dataclasses.replace(config.model, name=name, checkpoint=str(init))
    Trainer(dataclasses.replace(config, model=model_cfg)).fit()
    for label, path in (("start", init), ("end", out / "model.pth")):
        predictor = SamPredictor(build_sam(name, checkpoint=path))
        rows = choice_rows(predictor, SyntheticScenes("val", 40))
        means = " ".join(f"{c} {m:.3f}" for c, m in zip(CHOICES, mean_by_choice(rows), strict=True))
        print(f"{label}: {len(rows)} masks, {means}", flush=True)


if __name__ == "__main__":
    main()
