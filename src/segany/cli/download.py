"""`segany download NAME`: fetch a model's official checkpoint into the cache (or --dest)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segany.download import HOME_ENV, checkpoint_path, fetch_checkpoint
from segany.registry import get_spec


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download",
        help="download a model's official checkpoint",
        description="Download a model's official checkpoint, verify it, and print its path. "
        "Verified by the published sha256 where there is one; the SAM 2 files (no published "
        "checksum) by their contents: the keys and shapes of the model, read as data only. "
        "The computed sha256 is shown on stderr. Files go to the cache "
        f"(${HOME_ENV}/checkpoints, default ~/.cache/segany/checkpoints), where `segany "
        "predict` finds them. An interrupted download resumes "
        "when run again; a file already there is not fetched twice.",
    )
    parser.add_argument(
        "name",
        metavar="NAME",
        help="model name or alias, e.g. vit_b, sam2.1_hiera_t or sam2.1_hiera_tiny (see "
        "`segany models`)",
    )
    parser.add_argument(
        "--dest",
        type=Path,
        metavar="DIR",
        help="folder to save into instead of the cache; then pass the printed path to "
        "`segany predict --checkpoint`",
    )
    parser.add_argument(
        "--url",
        help="download from this mirror instead (the file is verified all the same)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    spec = get_spec(args.name)
    if spec.bundled_path is not None and spec.url is None:
        if not args.quiet:
            print(f"{spec.name} ships with segany: nothing to download", file=sys.stderr)
        print(spec.bundled_path)
        return 0
    if not args.quiet and spec.url and spec.checkpoint_name:
        target = (
            args.dest.expanduser() / spec.checkpoint_name
            if args.dest is not None
            else checkpoint_path(spec)
        )
        if not target.is_file():  # a cached file is only re-hashed: nothing to announce
            size = f" ({spec.size_bytes / 2**20:.0f} MiB)" if spec.size_bytes else ""
            print(f"downloading {spec.name}{size} to {target}", file=sys.stderr)
    done = fetch_checkpoint(spec, url=args.url, dest_dir=args.dest, progress=not args.quiet)
    if not args.quiet and done.sha256 is not None:
        how = {"sha256": "matches the published checksum", "contents": "verified by contents"}
        checked = how.get(done.verified_by, done.verified_by)
        print(f"sha256 {done.sha256} ({checked})", file=sys.stderr)
    print(done.path)
    return 0
