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

from codex_proxy.config import Settings, checks_host, load_settings
from codex_proxy.server import images, responses
from codex_proxy.server.chat import DROPPED_HEADER, chat_completions
from codex_proxy.server.http import JSONResponse, error_response
from codex_proxy.server.image_files import ImageStore, media_type, sweep_forever
from codex_proxy.server.images_native import NativeImages
from codex_proxy.server.keys import KeyGate
from codex_proxy.server.middleware import BodyLimit, GatewayAuth, HostGuard, OriginGuard
from codex_proxy.server.models import ModelCatalog, get_model, list_models
from codex_proxy.server.relay import internal_error
from codex_proxy.server.request_log import (
    RequestLog,
    RequestStats,
    note_upstream,
    setup_logging,
)
from codex_proxy.server.shutdown import Shutdown
from codex_proxy.server.status import status
from codex_proxy.store import open_store, prune_periodically
from codex_proxy.translate import errors
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.upstream import client_version
from codex_proxy.upstream.auth import CHATGPT, AuthProvider
from codex_proxy.upstream.client import UpstreamClient, make_http_client
from codex_proxy.upstream.usage import UsageReader

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
    path = await asyncio.to_thread(request.app.state.images.path, name)
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
            Route(f"{prefix}/responses", responses.create_response, methods=["POST"]),
            Route(f"{prefix}/responses/compact", responses.compact_response, methods=["POST"]),
            Route(f"{prefix}/responses/{{response_id}}", responses.get_response, methods=["GET"]),
            Route(
                f"{prefix}/responses/{{response_id}}",
                responses.delete_response,
                methods=["DELETE"],
            ),
            Route(
                f"{prefix}/responses/{{response_id}}/input_items",
                responses.list_input_items,
                methods=["GET"],
            ),
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
    # reads version.json and may run `codex --version`: once, in a thread, not at import
    version = await asyncio.to_thread(client_version.resolve, settings)
    client = UpstreamClient(settings, auth, http, on_answer=note_upstream, version=version)
    state.auth = auth
    state.client = client
    state.models = ModelCatalog(settings, auth, client)
    client.offered_models = state.models.offered
    state.usage = UsageReader(client, auth)
    state.images = ImageStore(settings.image_dir, settings.image_ttl_days)
    state.image_jobs = asyncio.Semaphore(settings.image_concurrency)
    state.native_images = NativeImages(settings.images_route)
    state.shutdown.hook_signals()
    store = state.store = open_store(settings)
    pruning = asyncio.create_task(prune_periodically(store)) if store is not None else None
    log.info(
        "codex-proxy ready: %s; upstream %s; client version %s",
        auth.describe(),
        settings.base_url_for(auth.mode() or CHATGPT),
        version.describe(),
    )
    sweeper = asyncio.create_task(sweep_forever(state.images)) if settings.image_ttl_days else None
    try:
        yield
    finally:
        await _stop(sweeper, pruning)
        state.shutdown.end()  # whatever still runs (uvicorn's own timeout cancelled it)
        state.shutdown.unhook_signals()
        if store is not None:
            await store.close()
        await http.aclose()


async def _stop(*tasks: asyncio.Task[None] | None) -> None:
    """Cancel the lifespan's background tasks and wait until they are gone."""
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


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
    app.state.shutdown = Shutdown(settings.shutdown_grace_seconds)
    app.add_middleware(BodyLimit, max_bytes=int(settings.max_request_mb * 1024 * 1024))
    app.state.keys = KeyGate.from_settings(settings)
    app.add_middleware(GatewayAuth, keys=app.state.keys)
    app.add_middleware(OriginGuard, allowed=settings.cors_origins)
    if settings.cors_origins:  # outside the guards: a preflight carries no gateway token
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"],
            expose_headers=list(EXPOSED_HEADERS),
        )
    if checks_host(settings):  # outside CORS: a rebinding page's preflight is refused too
        app.add_middleware(HostGuard, extra=settings.allowed_hosts)
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
