"""``GET /v1/models`` and ``/v1/models/{id}``: the backend catalog in chatgpt mode, a configured
list otherwise; and the default model every route uses (:meth:`ModelCatalog.default_model`)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from starlette.requests import Request

from codex_proxy.config import BUILTIN_MODELS, DEFAULT_MODEL, Settings
from codex_proxy.keys.policy import allowed_models
from codex_proxy.server.http import JSONResponse, error_response
from codex_proxy.server.keys import key_for
from codex_proxy.translate import errors
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.upstream.auth import CHATGPT, AuthProvider
from codex_proxy.upstream.client import UpstreamClient

log = logging.getLogger("codex_proxy")

MODEL_CREATED = 1735689600  # a fixed timestamp: the catalog has none, and ids must look stable


def model_object(model_id: str, owned_by: str = "openai") -> dict[str, Any]:
    """One entry in the OpenAI ``Model`` shape."""
    return {"id": model_id, "object": "model", "created": MODEL_CREATED, "owned_by": owned_by}


def catalog_ids(entries: list[dict[str, Any]]) -> list[str]:
    """Slugs the backend lists for users (``visibility == "list"``), in its priority order."""
    listed = [
        e for e in entries if e.get("visibility") == "list" and isinstance(e.get("slug"), str)
    ]
    listed.sort(
        key=lambda e: e.get("priority") if isinstance(e.get("priority"), int) else 1_000_000
    )
    return [e["slug"] for e in listed]


class ModelCatalog:
    """Model ids the gateway offers, with the backend catalog cached for ``CODEX_MODELS_TTL``."""

    def __init__(self, settings: Settings, auth: AuthProvider, client: UpstreamClient) -> None:
        self._settings = settings
        self._auth = auth
        self._client = client
        self._cached: list[str] | None = None
        self._from_backend = False  # whether _cached is the backend's catalog (not the fallback)
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._fallback_logged = False

    async def default_model(self) -> str:
        """The model a request without one (or with "default") gets: CODEX_MODEL when set,
        else the backend catalog's first model by priority (cached with the catalog), else the
        built-in fallback, which the log announces once. Every route asks this."""
        if self._settings.model:
            return self._settings.model
        if self._auth.mode() == CHATGPT:
            ids = await self._base_ids()
            if self._from_backend and ids:
                return ids[0]
            if not self._fallback_logged:
                self._fallback_logged = True
                log.warning(
                    "the model catalog could not be read; the default model is the built-in "
                    "%s until it can (set CODEX_MODEL to choose one)",
                    DEFAULT_MODEL,
                )
        return DEFAULT_MODEL

    async def offered(self) -> list[str]:
        """The backend catalog's ids, or none when only the fallback list is known."""
        ids = await self._base_ids()
        return ids if self._from_backend else []

    async def ids(self) -> list[str]:
        ids = await self._base_ids()
        extra = [alias for alias in self._settings.model_aliases if alias not in ids]
        return ids + extra

    async def list(self) -> dict[str, Any]:
        return {"object": "list", "data": [model_object(i) for i in await self.ids()]}

    async def get(self, model_id: str) -> dict[str, Any] | None:
        return model_object(model_id) if model_id in await self.ids() else None

    async def _base_ids(self) -> list[str]:
        if self._auth.mode() != CHATGPT:
            return list(self._settings.models)
        if self._cached is not None and time.monotonic() < self._expires:
            return self._cached
        async with self._lock:
            if self._cached is not None and time.monotonic() < self._expires:
                return self._cached
            try:
                creds = await self._auth.credentials()
                ids = catalog_ids(await self._client.fetch_models(creds))
                if not ids:
                    raise OpenAIError(502, "the catalog lists no models", "server_error")
            except OpenAIError as error:
                log.warning("model catalog unavailable, using the built-in list: %s", error.message)
                ids = self._cached or list(BUILTIN_MODELS)
                self._expires = time.monotonic() + min(self._settings.models_ttl, 30.0)
            else:
                self._from_backend = True
                self._expires = time.monotonic() + self._settings.models_ttl
            self._cached = ids
            return ids


async def default_model_for(body: Any, catalog: ModelCatalog) -> str:
    """The default model when ``body`` names none (or "default"); else an empty string, so
    a request that names its model never waits for the catalog."""
    named = body.get("model") if isinstance(body, dict) else None
    if isinstance(named, str) and named not in ("", "default"):
        return ""
    return await catalog.default_model()


async def list_models(request: Request) -> JSONResponse:
    catalog: ModelCatalog = request.app.state.models
    key = key_for(request)
    if key is None or not key.policy.models:
        return JSONResponse(await catalog.list())
    ids = allowed_models(key.policy, await catalog.ids(), request.app.state.settings.model_aliases)
    return JSONResponse({"object": "list", "data": [model_object(i) for i in ids]})


async def get_model(request: Request) -> JSONResponse:
    model_id = request.path_params["model_id"]
    found = await request.app.state.models.get(model_id)
    key = key_for(request)
    if found is not None and key is not None:
        aliases = request.app.state.settings.model_aliases
        if not allowed_models(key.policy, [model_id], aliases):
            found = None  # a model the key may not use does not exist for it
    if found is None:
        return error_response(
            errors.not_found(f"The model '{model_id}' does not exist.", "model", "model_not_found")
        )
    return JSONResponse(found)
