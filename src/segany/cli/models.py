"""`segany models`: the registered models and whether their checkpoints are downloaded."""

from __future__ import annotations

import argparse
import json
from typing import Any

from segany.byte_sizes import format_bytes
from segany.download import checkpoint_path
from segany.paths import HOME_ENV, cache_dir
from segany.registry import ALIASES, DEFAULT_MODEL, ModelSpec, get_spec, list_models

_COLUMNS = ("NAME", "IMAGE", "DOWNLOAD", "CHECKPOINT", "CACHED", "DESCRIPTION")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the models and their checkpoints",
        description="List the registered models, their checkpoint files, and which are "
        f"already in the download cache (${HOME_ENV}, default ~/.cache/segany).",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list instead")
    parser.set_defaults(run=run)


def describe(spec: ModelSpec) -> dict[str, Any]:
    """One model as a JSON-ready dict; `cached` says whether its official file is downloaded."""
    downloadable = spec.url is not None
    path = checkpoint_path(spec) if downloadable else spec.bundled_path
    size = spec.size_bytes
    if spec.bundled_path is not None and spec.bundled_path.is_file():
        size = spec.bundled_path.stat().st_size
    return {
        "name": spec.name,
        "aliases": [alias for alias, name in ALIASES.items() if name == spec.name],
        "default": spec.name == DEFAULT_MODEL,
        "image_size": spec.image_size,
        "checkpoint": spec.checkpoint_name or spec.bundled,
        "size_bytes": size,
        "url": spec.url,
        "bundled": spec.bundled is not None,
        "cached": bool(path is not None and path.is_file()),
        "path": str(path) if path is not None else None,
        "licence": spec.licence,
        "description": spec.description,
        "amg_defaults": dict(spec.amg_defaults),  # where it differs from SAM's options
    }


def _human_size(n_bytes: int | None) -> str:
    return "-" if n_bytes is None else format_bytes(n_bytes)


def _row(model: dict[str, Any]) -> tuple[str, ...]:
    cached = ("yes" if model["cached"] else "no") if model["url"] else "-"
    if model["bundled"]:
        cached = "bundled"
    description = model["description"] + (" [default]" if model["default"] else "")
    return (
        model["name"],
        f"{model['image_size']} px",
        _human_size(model["size_bytes"]),
        model["checkpoint"] or "-",
        cached,
        description,
    )


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns under `_COLUMNS`, two spaces apart; the last column is not padded."""
    table = [_COLUMNS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(_COLUMNS) - 1)]
    lines = []
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    models = [describe(get_spec(name)) for name in list_models()]
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    print(format_table([_row(m) for m in models]))
    print(
        f"\ncheckpoint cache: {cache_dir() / 'checkpoints'} (set {HOME_ENV} to move it); "
        "fetch one with `segany download NAME`"
    )
    if ALIASES:
        print("aliases: " + ", ".join(f"{alias} = {name}" for alias, name in ALIASES.items()))
    return 0
