"""Run one stage-1 experiment of segany-tiny's architecture on a registered variant.

    python run.py CONFIG.toml STRIDE

Registers `segany-tiny-s{STRIDE}` (segany-tiny with its encoder at that output stride) and
trains CONFIG with it (the config's model.name is replaced). For choosing the recipe only.
"""

import dataclasses
import sys

from segany.modeling.config import ConvEncoderConfig
from segany.registry import get_spec, register
from segany.train.config import load_config
from segany.train.trainer import Trainer

config_path, stride = sys.argv[1], int(sys.argv[2])
spec = get_spec("segany-tiny")
name = f"segany-tiny-s{stride}"
register(
    dataclasses.replace(spec, name=name, encoder=ConvEncoderConfig(stride=stride), bundled=None)
)
config = load_config(config_path)
config = dataclasses.replace(config, model=dataclasses.replace(config.model, name=name))
Trainer(config).fit()
