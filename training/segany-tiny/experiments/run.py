"""Run one stage-1 experiment of segany-tiny's architecture on a registered variant.

    python run.py CONFIG.toml STRIDE [PE_SCALE]

Registers `segany-tiny-s{STRIDE}` (segany-tiny with its encoder at that output stride, and
the prompt encoder's positional frequencies at std PE_SCALE, 1 by default, with a `-pe{..}`
suffix when not 1) and trains CONFIG with it (the config's model.name is replaced). For
choosing the recipe only.
"""

import dataclasses
import sys

from segany.modeling.config import ConvEncoderConfig
from segany.registry import get_spec, register
from segany.train.config import load_config
from segany.train.trainer import Trainer


def register_variant(stride: int, pe_scale: float = 1.0) -> str:
    """Register segany-tiny with its encoder at `stride` and the prompt encoder's positional
    frequencies at std `pe_scale`, without the shipped weights; returns the variant's name."""
    spec = get_spec("segany-tiny")
    name = f"segany-tiny-s{stride}" + (f"-pe{pe_scale:g}" if pe_scale != 1.0 else "")
    register(
        dataclasses.replace(
            spec,
            name=name,
            encoder=ConvEncoderConfig(stride=stride),
            decoder=dataclasses.replace(spec.decoder, pe_scale=pe_scale),
            bundled=None,
        )
    )
    return name


def main() -> None:
    config_path, stride = sys.argv[1], int(sys.argv[2])
    name = register_variant(stride, float(sys.argv[3]) if len(sys.argv) > 3 else 1.0)
    config = load_config(config_path)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, name=name))
    Trainer(config).fit()


if __name__ == "__main__":
    main()
