"""`segany download NAME`: fetch a model's official checkpoint into the cache (or --dest)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segany.download import HOME_ENV, checkpoint_path, download_checkpoint
from segany.registry import get_spec


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download",
        help="download a model's official checkpoint",
        description="Download a model's official checkpoint, verify its sha256, and print its "
        f"path. Files go to the cache (${HOME_ENV}/checkpoints, default "
        "~/.cache/segany/checkpoints), where `segany predict` finds them. An interrupted "
        "download resumes when run again; a file already there is not fetched twice.",
    )
    parser.add_argument("name", metavar="NAME", help="model name (see `segany models`)")
    parser.add_argument(
        "--dest",
        type=Path,
        metavar="DIR",
        help="folder to save into instead of the cache; then pass the printed path to "
        "`segany predict --checkpoint`",
    )
    parser.add_argument(
        "--url", help="download from this mirror instead (the official sha256 is still checked)"
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
    path = download_checkpoint(spec, url=args.url, dest_dir=args.dest, progress=not args.quiet)
    print(path)
    return 0
