"""The Starlette application: the route table, the middleware stack, the lifespan.

Handlers are module-level functions that find what they need on ``request.app.state``
(settings, upstream client, credentials, model catalog, image files, job slots), set up once
per process in :func:`lifespan`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from codex_proxy.config import Settings, load_settings
from codex_proxy.server import images
from codex_proxy.server.chat import DROPPED_HEADER, chat_completions
from codex_proxy.server.http import JSONResponse, error_response
from codex_proxy.server.image_files import ImageStore, media_type
from codex_proxy.server.keys import KeyGate
from codex_proxy.server.middleware import BodyLimit, GatewayAuth, OriginGuard
from codex_proxy.server.models import ModelCatalog, get_model, list_models
from codex_proxy.server.relay import internal_error
from codex_proxy.server.request_log import (
    RequestLog,
    RequestStats,
    note_upstream,
    setup_logging,
)
from codex_proxy.server.status import status
from codex_proxy.translate import errors
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.upstream.auth import CHATGPT, AuthProvider
from codex_proxy.upstream.client import UpstreamClient, make_http_client

log = logging.getLogger("codex_proxy")

# Answer headers a browser client may read when CORS is on.
EXPOSED_HEADERS = (
    DROPPED_HEADER,
    "x-codex-proxy-images-linked",
    "x-request-id",
    "retry-after",
    "x-should-retry",
)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def image_file(request: Request) -> Response:
    name = request.path_params["name"]
    path = request.app.state.images.path(name)
    if path is None:
        return error_response(errors.not_found(f"No image named {name!r}."))
    return FileResponse(path, media_type=media_type(name))


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = errors.not_found(f"Unknown path: {request.method} {request.url.path}")
    elif exc.status_code == 405:
        error = OpenAIError(405, f"Method {request.method} is not allowed on {request.url.path}.")
    else:
        error = OpenAIError(exc.status_code, str(exc.detail))
    return error_response(error)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return error_response(internal_error())


def routes() -> list[Route]:
    """Every route, with and without the ``/v1`` prefix (some clients drop it)."""
    table = [Route("/healthz", healthz, methods=["GET"])]
    for prefix in ("/v1", ""):
        table += [
            Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]),
            Route(f"{prefix}/images/generations", images.generations, methods=["POST"]),
            Route(f"{prefix}/images/edits", images.edits, methods=["POST"]),
            Route(f"{prefix}/models", list_models, methods=["GET"]),
            Route(f"{prefix}/status", status, methods=["GET"]),
            Route(f"{prefix}/models/{{model_id:path}}", get_model, methods=["GET"]),
            Route(f"{prefix}/images/files/{{name:path}}", image_file, methods=["GET"]),
        ]
    return table


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """One upstream client per process: created here, closed on shutdown."""
    state = app.state
    settings: Settings = state.settings
    http = make_http_client(settings, state.transport)
    auth = AuthProvider(settings, http)
    client = UpstreamClient(settings, auth, http, on_answer=note_upstream)
    state.auth = auth
    state.client = client
    state.models = ModelCatalog(settings, auth, client)
    state.images = ImageStore(settings.image_dir)
    state.image_jobs = asyncio.Semaphore(settings.image_concurrency)
    log.info(
        "codex-proxy ready: %s; upstream %s",
        auth.describe(),
        settings.base_url_for(auth.mode() or CHATGPT),
    )
    try:
        yield
    finally:
        await http.aclose()


def create_app(
    settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """The gateway app; ``transport`` lets tests route upstream calls without sockets."""
    settings = settings or load_settings()
    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: unexpected_error},
    )
    app.state.settings = settings
    app.state.transport = transport
    app.add_middleware(BodyLimit, max_bytes=int(settings.max_request_mb * 1024 * 1024))
    app.state.keys = KeyGate.from_settings(settings)
    app.add_middleware(GatewayAuth, keys=app.state.keys)
    app.add_middleware(OriginGuard, allowed=settings.cors_origins)
    if settings.cors_origins:  # outside the guards: a preflight carries no gateway token
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=list(EXPOSED_HEADERS),
        )
    stats = RequestStats()
    app.state.requests = stats
    app.add_middleware(RequestLog, stats=stats)  # outermost: 401s, 413s, preflights get a line
    return app


def create_app_from_env() -> Starlette:
    """Factory for uvicorn workers: each builds its Settings (and its logging: a worker is a
    fresh process) from the environment."""
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format)
    return create_app(settings)
