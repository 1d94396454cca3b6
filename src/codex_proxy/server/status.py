"""``GET /v1/status``: what a running gateway knows about itself.

Login (mode, account, plan, token expiry: never a token), the usage-limit snapshot (from the
upstream's latest answer headers or in-stream event; when none is recent, from the usage
endpoint, asked at most once a minute), the default model and the client version the gateway
sends, the image flag, uptime and request counts.
``codex-proxy status`` (``cli/status.py``) prints it.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request

from codex_proxy import __version__
from codex_proxy.config import Settings
from codex_proxy.server.http import JSONResponse
from codex_proxy.server.keys import KeyGate, key_for
from codex_proxy.upstream.auth import CHATGPT
from codex_proxy.upstream.auth_store import AuthFileError, read_auth_file


def auth_summary(settings: Settings, mode: str | None) -> dict[str, Any]:
    """The login as the gateway uses it: mode, account, plan, access-token expiry."""
    out: dict[str, Any] = {"mode": mode or "none"}
    if settings.mock:
        out["mock"] = True
        return out
    if mode != CHATGPT:
        return out
    try:
        file = read_auth_file(settings.auth_file)
    except AuthFileError as exc:
        out["error"] = str(exc)
        return out
    if file is None:
        return out
    expires = file.access_expires_at
    out.update(
        email=file.email,
        plan=file.plan,
        account_id=file.account_id,
        access_token_expires_at=int(expires) if expires else None,
        access_token_expires_in_seconds=int(expires - time.time()) if expires else None,
    )
    return out


async def status_payload(settings: Settings, state: Any) -> dict[str, Any]:
    """The ``/v1/status`` body, from the app's state (auth, upstream client, counters)."""
    auth = state.auth
    mode = auth.mode()
    stats = state.requests
    await state.usage.refresh()
    version = state.client.version
    limits = state.client.rate_limits.snapshot()
    error = state.usage.error  # shown until a newer snapshot replaces what it could not read
    if error and limits and limits["updated_at"] >= error["at"]:
        error = None
    return {
        "object": "codex_proxy.status",
        "version": __version__,
        "auth": auth_summary(settings, mode),
        "upstream": settings.base_url_for(mode or CHATGPT),
        "client_version": {"value": version.value, "source": version.source},
        "default_model": await state.models.default_model(),
        "rate_limits": limits,
        "rate_limits_error": error,
        "image_generation": settings.enable_image_gen,
        "started_at": int(stats.started_at),
        "uptime_seconds": round(stats.uptime, 1),
        "requests": stats.snapshot(),
    }


async def status(request: Request) -> JSONResponse:
    """The route; gateway auth applies to it like to every route but /healthz. A client key
    sees its own name, counts and remaining limits; only the admin token sees every key's."""
    payload = await status_payload(request.app.state.settings, request.app.state)
    key = key_for(request)
    keys: KeyGate = request.app.state.keys
    if key is not None:
        payload["key"] = {"name": key.name, "admin": True} if key.admin else await keys.figures(key)
    if key is not None and key.admin and keys.ring is not None:
        payload["keys"] = [await keys.figures(k) for k in keys.ring.keys().values()]
        if keys.ring.error:
            payload["keys_file_error"] = keys.ring.error  # the gateway runs on the last good keys
    return JSONResponse(payload)
