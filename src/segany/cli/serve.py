"""`segany serve`: the annotation app (SAM's data engine in a browser) on a local database.

Needs the server extra: pip install "segany[server]".
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from segany.byte_sizes import format_bytes, parse_byte_size
from segany.cli.errors import UsageError
from segany.cli.model_options import add_model_arguments, resolve_model
from segany.errors import ConfigError
from segany.server.cache_budget import DEFAULT_DISK_BYTES, DEFAULT_MEMORY_BYTES

if TYPE_CHECKING:
    from segany.server.settings import ServerSettings

DEFAULT_DATA = Path("segany-data")


def add_project_arguments(parser: argparse.ArgumentParser) -> None:
    """--data and --db, shared by serve, import and export."""
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        metavar="DIR",
        help=f"the project folder: images, database, embedding cache (default ./{DEFAULT_DATA})",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="database URL, e.g. postgresql://user@host/name (default: SQLite in DIR)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="the browser annotation app (assisted-manual and semi-automatic)",
        description="Serve the annotation app: open http://HOST:PORT/ in a browser, click on "
        "an object and the model proposes its mask at once. OpenAPI at /docs. Binds to "
        "loopback unless --host is given, which then needs --token.",
    )
    add_model_arguments(parser)
    add_project_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="worker processes (default 1)"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("SEGANY_TOKEN") or None,
        help="access token every API request must send (default $SEGANY_TOKEN); required "
        "beyond loopback",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name browsers may reach the server by, besides loopback names and IP "
        "addresses (repeatable; .example.org: it and every name under it); others are refused "
        "(400), which stops DNS rebinding",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an origin (https://app.example.org) whose pages may call the API across sites "
        "(repeatable; default none: CORS off, only the server's own pages may change data)",
    )
    parser.add_argument(
        "--import-root",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a server folder POST /api/import may read (repeatable; default DATA/import)",
    )
    parser.add_argument(
        "--demo", action="store_true", help="load the sample images and a few categories first"
    )
    parser.add_argument(
        "--threads", type=int, metavar="N", help="torch threads per worker (default: torch's)"
    )
    parser.add_argument(
        "--tile-url",
        metavar="TEMPLATE",
        help="map tiles for /infer_samgis and /map from this URL template, e.g. "
        "http://127.0.0.1:9000/{z}/{x}/{y}.png, instead of every named source (offline use)",
    )
    parser.add_argument(
        "--no-pre-encode",
        action="store_true",
        help="do not compute embeddings in the background (first clicks are then slower)",
    )
    parser.add_argument(
        "--cache-size",
        type=byte_size,
        default=DEFAULT_MEMORY_BYTES,
        metavar="SIZE",
        help="memory for caches per worker: image embeddings 2/3, decoded images 1/6, previous "
        f"answers 1/6 (e.g. 512M, 2G; default {format_bytes(DEFAULT_MEMORY_BYTES)})",
    )
    parser.add_argument(
        "--disk-cache-size",
        type=byte_size,
        default=DEFAULT_DISK_BYTES,
        metavar="SIZE",
        help="disk for caches in DIR, shared by the workers: embeddings 80%%, previous answers "
        f"10%%, map tiles 10%% (default {format_bytes(DEFAULT_DISK_BYTES)})",
    )
    parser.set_defaults(run=run)


def byte_size(text: str) -> int:
    """argparse type of --cache-size and --disk-cache-size: bytes, or a size like "2G"."""
    try:
        return parse_byte_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def access_line(settings: ServerSettings) -> str:
    """Who may reach the server, in one line for the start-up output."""
    from segany.server.host_origin import AllowedHosts

    hosts = AllowedHosts(settings.host, settings.allowed_hosts).describe()
    token = "the token on every API request" if settings.token else "no token (loopback only)"
    cors = ", ".join(settings.cors_origins) or "none"
    return f"access: {token}; Host must be {hosts}; cross-origin pages allowed: {cors}"


def import_server() -> None:
    """Fail with the install command when the server extra is missing."""
    try:
        import fastapi  # noqa: F401
        import sqlalchemy  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise UsageError(
            f"the annotation server needs {e.name}: pip install 'segany[server]'"
        ) from None


def run(args: argparse.Namespace) -> int:
    import_server()
    import uvicorn

    from segany.devices import resolve_device
    from segany.server.settings import SETTINGS_ENV, ServerSettings

    spec, checkpoint = resolve_model(args)
    device = resolve_device(args.device)
    settings = ServerSettings(
        data_dir=args.data,
        model=spec.name,
        checkpoint=checkpoint,
        random_weights=checkpoint is None,
        db_url=args.db,
        host=args.host,
        port=args.port,
        workers=args.workers,
        token=args.token,
        import_roots=tuple(args.import_root),
        device=str(device),
        threads=args.threads,
        pre_encode=not args.no_pre_encode,
        edge_refinement=args.edge_refinement,
        tile_url=args.tile_url,
        allowed_hosts=tuple(args.allowed_host),
        cors_origins=tuple(args.cors_origin),
        cache_memory_bytes=args.cache_size,
        cache_disk_bytes=args.disk_cache_size,
    )
    if args.demo:
        from segany.project.workspace import Project
        from segany.server.demo import load_demo

        project = Project.open(settings.project)
        try:
            added = load_demo(project)
        finally:
            project.close()
        print(f"demo: {added} images added to {settings.data_dir}", file=sys.stderr)
    os.environ[SETTINGS_ENV] = settings.to_json()  # the workers read their settings here
    print(f"segany: annotation app on http://{settings.host}:{settings.port}/", file=sys.stderr)
    print(f"segany: {settings.cache_budget.describe()}", file=sys.stderr)
    print(f"segany: {access_line(settings)}", file=sys.stderr)
    uvicorn.run(
        "segany.server.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="warning",
    )
    return 0
