"""The annotation server: `create_app(settings)` builds the FastAPI application (`segany serve`
runs it under uvicorn). OpenAPI at /openapi.json and /docs; the browser annotator at /."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

import segany
from segany.errors import (
    ConfigError,
    ConflictError,
    DataError,
    FormatError,
    GoneError,
    ImageError,
    InvalidValueError,
    NotFoundError,
    PromptError,
    SeganyError,
)
from segany.project.image_files import TooLargeError
from segany.project.workspace import Project
from segany.server.auth import TokenGuard, document_token
from segany.server.auto_jobs import AutoJobs, JobLimitError
from segany.server.body_limits import BodyLimitGuard
from segany.server.geo_service import make_geo_service
from segany.server.inference import ModelService
from segany.server.pre_encoding import PreEncoder
from segany.server.settings import ServerSettings

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("segany.server")

# Typed errors -> HTTP status; any other SeganyError is a 400.
_STATUS = (
    (GoneError, 410),  # before NotFoundError, its parent
    (NotFoundError, 404),
    (ConflictError, 409),
    (JobLimitError, 429),
    (TooLargeError, 413),
    (InvalidValueError, 422),
    (PromptError, 422),
    (ImageError, 422),
    (FormatError, 422),
    (DataError, 422),
    (ConfigError, 422),
)


@dataclass
class AppState:
    """What every request reaches through `request.app.state.segany`."""

    settings: ServerSettings
    project: Project
    model: ModelService
    encoder: PreEncoder | None
    samgis: Any = None  # segany.geo.samgis.SamgisService; None without the geo extra
    auto_jobs: AutoJobs | None = None  # /auto's jobs in this worker
    sequences: Any = None  # segany.server.sequence_service.SequenceService


def create_app(settings: ServerSettings) -> FastAPI:
    """The application for `settings`: migrates the database, loads the model, starts
    pre-encoding (unless `settings.pre_encode` is off) for the app's lifetime."""
    from segany.server.routes import (
        annotations,
        auto,
        categories,
        export,
        geo,
        geo_segment,
        images,
        predict,
        sequence_export,
        sequence_jobs,
        sequence_objects,
        sequences,
        system,
    )
    from segany.server.sequence_service import SequenceService

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        project = Project.open(settings.project)
        model = ModelService(settings)
        encoder = None
        if settings.pre_encode:
            encoder = PreEncoder(model, project.stored_images)
            encoder.start()
        samgis = make_geo_service(settings, model)
        auto_jobs = AutoJobs(settings.data_dir / "auto-jobs")
        tracking = SequenceService(settings, project, model.compute, model.model)
        app.state.segany = AppState(settings, project, model, encoder, samgis, auto_jobs, tracking)
        try:
            yield
        finally:
            tracking.close()
            auto_jobs.close()
            if encoder is not None:
                encoder.stop()
            model.close()
            project.close()

    app = FastAPI(
        title="segany annotation server",
        version=segany.__version__,
        description="SAM's data engine: assisted-manual and semi-automatic annotation.",
        lifespan=lifespan,
    )
    # The token guards every route but the pages, the static files and /health (auth.py).
    app.include_router(system.router)
    sequence_routes = (sequences, sequence_objects, sequence_jobs, sequence_export)
    for module in (images, predict, auto, annotations, categories, export, *sequence_routes):
        app.include_router(module.router, prefix="/api")
    app.include_router(system.api_router, prefix="/api")
    app.include_router(geo.router)  # /infer_samgis, /api/geo/source, /map
    app.include_router(geo_segment.router, prefix="/api")
    _add_guards(app, settings)
    _add_error_handlers(app)
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

        @app.get("/", include_in_schema=False)
        def index() -> FileResponse:
            return FileResponse(STATIC / "index.html")

    return app


# The routes whose body is a file (multipart): allowed Limits.upload_bytes, others json_bytes.
UPLOAD_ROUTES = (
    ("POST", "/api/images"),
    ("POST", "/api/geo/segment"),
    ("POST", "/api/sequences"),
)


def _add_guards(app: FastAPI, settings: ServerSettings) -> None:
    """The pure ASGI layers every request passes before any route, outermost first: the Host
    and Origin checks, CORS (only for --cors-origin origins; outside the token check, so that
    preflights, which carry no token, are answered), the token, the body size limits."""
    from starlette.middleware.cors import CORSMiddleware

    from segany.server.host_origin import AllowedHosts, HostOriginGuard

    limits = settings.limits
    app.add_middleware(
        BodyLimitGuard,
        upload_bytes=limits.upload_bytes,
        other_bytes=limits.json_bytes,
        upload_routes=UPLOAD_ROUTES,
    )
    app.add_middleware(TokenGuard, token=settings.token)
    if settings.token:
        document_token(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Segany-User"],
        )
    hosts = AllowedHosts(settings.host, settings.allowed_hosts)
    app.add_middleware(HostOriginGuard, hosts=hosts, trusted_origins=settings.cors_origins)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SeganyError)
    async def typed_error(request: Request, error: SeganyError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(error, kind)), 400)
        return JSONResponse({"detail": str(error)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # One readable line per problem ("body.points.0: a point's label must be 1 ..."), and
        # for a body of the wrong kind, what kind to send.
        problems = [_problem(item) for item in error.errors()]
        return JSONResponse({"detail": "; ".join(problems) or "invalid request"}, 422)


def _problem(item: dict) -> str:
    loc = tuple(item.get("loc", ()))
    kind = item.get("type", "")
    if kind == "json_invalid":
        where = item.get("ctx", {}).get("error", "")
        return f"the body is not valid JSON ({where}); send a JSON object"
    if loc == ("body",) and kind in ("dict_type", "model_attributes_type"):
        return "the body must be a JSON object, sent with Content-Type: application/json"
    if loc == ("body", "file") and kind == "missing":
        return "send the image as multipart/form-data with the file in the field 'file'"
    return f"{'.'.join(str(part) for part in loc)}: {item.get('msg', 'invalid')}"


def app_from_environment() -> FastAPI:
    """The app of the settings in $SEGANY_SERVER_SETTINGS: uvicorn's factory for workers."""
    return create_app(ServerSettings.from_environment())
