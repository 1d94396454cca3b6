"""The Starlette application: routes, gateway auth, OpenAI-shaped errors, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import Settings, load_settings
from .guards import BodyLimit, OriginGuard
from .image_routes import ImageRoutes
from .image_store import FILES_PATH, ImageStore, image_renderer, media_type
from .images import IMAGE_TOOL, apply_image_tool, restore_image_history
from .models import ModelCatalog
from .relay import ChatCompletionRun, internal_error, json_response_parts
from .request_log import RequestLog, RequestStats, note, setup_logging
from .responses import JSONResponse, error_response
from .status import status_endpoint
from .translate import errors
from .translate.errors import OpenAIError
from .translate.request import RequestOptions, translate_request
from .upstream.auth import CHATGPT, AuthProvider
from .upstream.client import UpstreamClient, make_http_client

log = logging.getLogger("codex_proxy")

PUBLIC_PATHS = frozenset({"/healthz"})
PUBLIC_PREFIXES = (FILES_PATH, FILES_PATH.removeprefix("/v1"))  # the file name is the capability
DROPPED_HEADER = "x-codex-proxy-dropped-params"
# Answer headers a browser client may read when CORS is on.
EXPOSED_HEADERS = (
    DROPPED_HEADER,
    "x-codex-proxy-images-linked",
    "x-request-id",
    "retry-after",
    "x-should-retry",
)


class GatewayAuth:
    """Requires ``Authorization: Bearer <CODEX_GATEWAY_TOKEN>`` on every route but /healthz."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            self.expected is None
            or scope["type"] != "http"
            or path in PUBLIC_PATHS
            or path.startswith(PUBLIC_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        presented = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                presented = value
                break
        if hmac.compare_digest(presented, self.expected):
            await self.app(scope, receive, send)
            return
        message = (
            "Missing gateway token: send Authorization: Bearer <CODEX_GATEWAY_TOKEN>."
            if not presented
            else "Invalid gateway token."
        )
        for part in json_response_parts(401, errors.unauthorized(message).body()):
            await send(part)


def create_app(
    settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    """The gateway app; ``transport`` lets tests route upstream calls without sockets."""
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        http = make_http_client(settings, transport)
        auth = AuthProvider(settings, http)
        client = UpstreamClient(settings, auth, http)
        app.state.auth = auth
        app.state.client = client
        app.state.models = ModelCatalog(settings, auth, client)
        app.state.images = ImageStore(settings.image_dir)
        app.state.image_jobs = asyncio.Semaphore(settings.image_concurrency)
        log.info(
            "codex-proxy ready: %s; upstream %s",
            auth.describe(),
            settings.base_url_for(auth.mode() or CHATGPT),
        )
        try:
            yield
        finally:
            await http.aclose()

    async def chat_completions(request: Request) -> Any:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return error_response(
                errors.invalid_request(
                    f"Request body is not valid JSON: {exc}", None, "invalid_json"
                )
            )
        state = request.app.state
        store: ImageStore = state.images
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            note(model=body["model"], stream=body.get("stream") is True)  # for a refused request
        if isinstance(body, dict) and "messages" in body:
            messages = restore_image_history(
                body["messages"], settings.image_history, store.data_uri
            )
            body = {**body, "messages": messages}
        try:
            creds = await state.auth.credentials()
            options = RequestOptions(
                chatgpt_backend=creds.mode == CHATGPT,
                default_model=settings.model,
                instructions=settings.instructions,
                reasoning_summary=settings.reasoning_summary,
                model_aliases=settings.model_aliases,
                session_id=request.headers.get("x-session-id") or None,
                max_messages=settings.max_messages,
                max_images=settings.max_images,
            )
            translated = translate_request(body, options)
            image_format = apply_image_tool(
                translated.body,
                body,
                enabled=settings.enable_image_gen,
                defaults=settings.image_options,
            )
        except OpenAIError as error:
            return error_response(error)
        headers = {DROPPED_HEADER: ",".join(translated.dropped)} if translated.dropped else {}
        choice = translated.body.get("tool_choice")
        forces_image = isinstance(choice, dict) and choice.get("type") == IMAGE_TOOL
        renderer = image_renderer(settings, store, request, image_format)
        note(model=translated.model, stream=translated.stream, image_counter=renderer)
        return ChatCompletionRun(
            client=state.client,
            creds=creds,
            request=translated,
            keepalive_seconds=settings.sse_keepalive_seconds,
            headers=headers,
            image_renderer=renderer,
            limiter=state.image_jobs if forces_image else None,
        )

    async def image_file(request: Request) -> Response:
        name = request.path_params["name"]
        path = request.app.state.images.path(name)
        if path is None:
            return error_response(errors.not_found(f"No image named {name!r}."))
        return FileResponse(path, media_type=media_type(name))

    async def list_models(request: Request) -> JSONResponse:
        return JSONResponse(await request.app.state.models.list())

    async def get_model(request: Request) -> JSONResponse:
        model_id = request.path_params["model_id"]
        found = await request.app.state.models.get(model_id)
        if found is None:
            return error_response(
                errors.not_found(
                    f"The model '{model_id}' does not exist.", "model", "model_not_found"
                )
            )
        return JSONResponse(found)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    image_api = ImageRoutes(settings)
    status = status_endpoint(settings)
    routes = [Route("/healthz", healthz, methods=["GET"])]
    for prefix in ("/v1", ""):
        routes += [
            Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]),
            Route(f"{prefix}/images/generations", image_api.generations, methods=["POST"]),
            Route(f"{prefix}/images/edits", image_api.edits, methods=["POST"]),
            Route(f"{prefix}/models", list_models, methods=["GET"]),
            Route(f"{prefix}/status", status, methods=["GET"]),
            Route(f"{prefix}/models/{{model_id:path}}", get_model, methods=["GET"]),
            Route(f"{prefix}/images/files/{{name:path}}", image_file, methods=["GET"]),
        ]

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            error = errors.not_found(f"Unknown path: {request.method} {request.url.path}")
        elif exc.status_code == 405:
            error = OpenAIError(
                405, f"Method {request.method} is not allowed on {request.url.path}."
            )
        else:
            error = OpenAIError(exc.status_code, str(exc.detail))
        return error_response(error)

    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path, exc_info=exc)
        return error_response(internal_error())

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, Exception: unexpected_error},
    )
    app.add_middleware(BodyLimit, max_bytes=int(settings.max_request_mb * 1024 * 1024))
    app.add_middleware(GatewayAuth, token=settings.gateway_token)
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
