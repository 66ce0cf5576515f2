"""The `segany` command line: `segany models`, `download`, `predict`, `amg`.

Each subcommand lives in its own module with an `add_parser(subparsers)` that registers it and
a `run(args) -> int`; `segany.cli.main.main` parses the arguments and turns user errors into
one `error: ...` line and exit status 2.
"""
