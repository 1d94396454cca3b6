"""Admission guards that run before any route: the gateway token, web pages, oversized bodies.

:class:`GatewayAuth` requires the gateway token on every route but ``/healthz`` and the image
files (whose unguessable name is the capability).

:class:`OriginGuard` refuses requests that a web page made (they carry an ``Origin`` header)
unless ``CODEX_CORS_ORIGINS`` lists that origin. Without it, any site the user visits could
drive a loopback gateway that has no token: a cross-site "simple" POST needs no preflight,
and DNS rebinding even lets the page read the answers. SDKs, curl and servers send no Origin.

:class:`BodyLimit` enforces ``CODEX_MAX_REQUEST_MB`` before the body is read. A declared
``Content-Length`` over the limit is answered 413 at once, without reading a byte of the body.
A chunked body (no length) is counted while the app reads it; the read that crosses the limit
stops the app, and the client gets the same 413. Either way the gateway never holds more than
the limit (plus one chunk) of a client's body in memory.

:class:`HostGuard` refuses a ``Host`` header that is not a loopback name (or one of
``CODEX_ALLOWED_HOSTS``). DNS rebinding points a site's own name at 127.0.0.1, so its pages
can read the gateway's answers as same-origin: their GETs carry no ``Origin``, but every
request carries the site's name in ``Host``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codex_proxy.server.image_files import FILES_PATH
from codex_proxy.server.keys import KeyGate, count_request_for, is_expired, set_key
from codex_proxy.server.relay import json_response_parts, send_error
from codex_proxy.server.request_log import note
from codex_proxy.translate import errors
from codex_proxy.translate.errors import OpenAIError

PUBLIC_PATHS = frozenset({"/healthz"})
PUBLIC_PREFIXES = (FILES_PATH, FILES_PATH.removeprefix("/v1"))  # the file name is the capability


class GatewayAuth:
    """Requires ``Authorization: Bearer <token>`` on every route but /healthz, where the token
    is ``CODEX_GATEWAY_TOKEN`` (the admin: no limits) or a client key of ``CODEX_KEYS_FILE``.
    The matched key goes on the request (``scope["state"]["key"]``) and its access-log line,
    and its request is counted against the key's per-minute limit."""

    def __init__(self, app: ASGIApp, token: str | None = None, keys: KeyGate | None = None) -> None:
        self.app = app
        self.keys = keys or KeyGate(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        keys = self.keys
        if (
            scope["type"] != "http"
            or path in PUBLIC_PATHS
            or path.startswith(PUBLIC_PREFIXES)
            or not keys.required
        ):
            await self.app(scope, receive, send)
            return
        presented = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                presented = value
                break
        key = keys.identify(presented)
        if key is None or is_expired(key):
            if not presented:
                message = "Missing gateway token: send Authorization: Bearer <CODEX_GATEWAY_TOKEN>."
            elif key is None:
                message = "Invalid gateway token."
            else:
                message = f"The key {key.name!r} has expired."
            for part in json_response_parts(401, errors.unauthorized(message).body()):
                await send(part)
            return
        set_key(scope, key)
        note(key=key.name)
        if not key.admin:
            try:
                await count_request_for(keys, key)
            except OpenAIError as error:
                await send_error(send, error)
                return
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    """Raised out of ``receive`` when a streamed body crosses the limit."""


def too_large(max_bytes: int) -> OpenAIError:
    """The 413 answer; names the knob so the operator knows what to raise."""
    limit = f"{max_bytes / (1024 * 1024):.3g} MB"
    return OpenAIError(
        413,
        f"Request body is larger than the gateway accepts ({limit}, CODEX_MAX_REQUEST_MB).",
        "invalid_request_error",
        None,
        "request_too_large",
    )


class BodyLimit:
    """ASGI middleware: 413 for bodies over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await send_error(send, too_large(self.max_bytes), {"connection": "close"})
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        try:
            # Every route reads its whole body before it answers, so the 413 always goes out
            # before any other response has started; send is not wrapped (it is on the hot path).
            await self.app(scope, counting_receive, send)
        except BodyTooLarge:
            await send_error(send, too_large(self.max_bytes), {"connection": "close"})


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


class HostGuard:
    """ASGI middleware: 403 for a ``Host`` that is not a loopback name or an allowed one.

    Every path is checked, ``/healthz`` too: nothing legitimate reaches a loopback gateway
    by a foreign name, and a rebinding page should not learn that a gateway runs here. A
    request without ``Host`` (HTTP/1.0) passes: browsers always send one.
    """

    def __init__(self, app: ASGIApp, extra: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = {name.encode("latin-1") for name in LOOPBACK_NAMES | set(extra)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = _header(scope, b"host")
            if host is not None and host_name(host) not in self.allowed:
                await send_error(send, host_refused(host.decode("latin-1")))
                return
        await self.app(scope, receive, send)


def host_name(host: bytes) -> bytes:
    """``Host`` without its port, in lower case: ``LocalHost:8000`` -> ``localhost``."""
    host = host.strip().lower()
    if host.startswith(b"["):
        end = host.find(b"]")
        return host[: end + 1] if end > 0 else host
    return host.split(b":", 1)[0]


def host_refused(host: str) -> OpenAIError:
    """The 403 answer; names the knob that admits another name."""
    return OpenAIError(
        403,
        f"Host {host[:100]!r} is not allowed: this gateway answers only to localhost, "
        "127.0.0.1 and [::1] (and CODEX_ALLOWED_HOSTS), which stops DNS rebinding.",
        "permission_error",
        None,
        "host_not_allowed",
    )


class OriginGuard:
    """ASGI middleware: 403 for requests from web pages whose origin is not allowed."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allow_all = "*" in allowed
        self.allowed = {origin.encode("latin-1") for origin in allowed}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.allow_all:
            origin = _header(scope, b"origin")
            if origin is not None and origin not in self.allowed:
                await send_error(send, origin_refused(origin.decode("latin-1")))
                return
        await self.app(scope, receive, send)


def origin_refused(origin: str) -> OpenAIError:
    """The 403 answer; names the knob that lets a browser app in."""
    return OpenAIError(
        403,
        f"Requests from web pages are refused: the origin {origin[:100]!r} is not in "
        "CODEX_CORS_ORIGINS.",
        "permission_error",
        None,
        "origin_not_allowed",
    )


def _header(scope: Scope, wanted: bytes) -> bytes | None:
    """The first value of a (lower-case) header, straight from the ASGI scope."""
    for name, value in scope["headers"]:
        if name == wanted:
            return value
    return None


def _content_length(scope: Scope) -> int | None:
    """The declared body length, or None for a chunked (or bodiless) request."""
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # the HTTP server already refuses a malformed length
