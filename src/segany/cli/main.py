"""Entry point of the `segany` command: argument parsing and the user-error boundary."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import segany
from segany.cli import amg, download, eval, geo, models, predict, project, serve, track, train
from segany.cli.errors import UsageError
from segany.errors import SeganyError

# Exit statuses: 0 success, 2 a user error (argparse's convention), 130 interrupted (128 + SIGINT).
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and calling sys.exit, so that
    `main` reports every user error the same way and tests can call it in-process."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="segany",
        description="Segment Anything: list models, download checkpoints, segment images.",
    )
    parser.add_argument("--version", action="version", version=f"segany {segany.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (models, download, predict, amg, eval, train, serve, geo, track):
        command.add_parser(subparsers)
    project.add_parsers(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]) and return its exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USER_ERROR
        return args.run(args)
    except SystemExit as stop:  # --help and --version print, then ask to exit
        return stop.code if isinstance(stop.code, int) else 0
    except SeganyError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
