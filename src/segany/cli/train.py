"""`segany train --config FILE`: train or fine-tune a model with SAM's recipe."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train or fine-tune a model with SAM's recipe",
        description="Train or fine-tune a registered model on a dataset spec with SAM's "
        "interactive training recipe. The config (TOML or JSON) has [data], [model], [optim] "
        "and [loop] tables (see segany.train.config). Resumes from OUTPUT_DIR/last.pt when "
        "present; writes OUTPUT_DIR/model.pth, model.safetensors and metrics.jsonl. Launch "
        "with torchrun for several processes.",
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="config file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="override one config value (repeatable), e.g. --set loop.max_steps=3",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: `segany --help` should not pay for the trainer's imports.
    from segany.train.config import load_config
    from segany.train.trainer import Trainer

    config = load_config(args.config, args.set)
    path = Trainer(config).fit()
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one line, not one per process
        print(f"weights: {path}", file=sys.stderr)
    return 0
