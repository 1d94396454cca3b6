"""The one upstream HTTP client: POST /responses as an event stream, GET /models.

Every failure leaves here as an :class:`OpenAIError`, so the app never sees an httpx exception.
The read timeout is the idle gap allowed between two upstream events, not a total deadline.
"""

from __future__ import annotations

import platform
import re
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from codex_proxy import __version__
from codex_proxy._json import LARGE, loads_large
from codex_proxy.config import Settings
from codex_proxy.translate import errors
from codex_proxy.translate.errors import LOGIN_HINT, OpenAIError
from codex_proxy.upstream.auth import CHATGPT, AuthProvider, Credentials
from codex_proxy.upstream.rate_limits import RateLimits
from codex_proxy.upstream.sse import Event, SSEDecoder
from codex_proxy.upstream.wire import WireTransport

FORWARDED_HEADERS = ("x-request-id", "x-oai-request-id")
STALE_CONNECTION_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# A client-chosen session id goes into a header only when it is visible ASCII of sane length.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,256}")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # what a bearer token may hold (RFC 6750 is stricter)
FORWARDED_PREFIX = "x-codex-"


class UpstreamStream:
    """An open upstream event stream: the headers worth forwarding, then the events."""

    def __init__(self, response: httpx.Response, idle_timeout: float) -> None:
        self._response = response
        self._idle_timeout = idle_timeout
        self.headers = forwarded_headers(response.headers)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Each event as a dict; ends after the stream closes. Raises OpenAIError on a stall,
        a dropped connection or a data line that is not a JSON object."""
        async for batch in self.batches():
            for event in batch:
                yield event

    async def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The events as :meth:`events` has them, in lists: all the events one network read
        completed, so a relay can write them to its client at once."""
        decoder = SSEDecoder()
        try:
            async for raw in self._response.aiter_bytes():
                batch, done = _parse_events(decoder.feed(raw))
                if batch:
                    yield batch
                if done:
                    return
        except httpx.TimeoutException:
            raise errors.upstream_timeout(self._idle_timeout) from None
        except httpx.TransportError as exc:
            raise OpenAIError(
                502,
                f"Upstream connection broke mid-stream ({type(exc).__name__}); "
                "the answer is incomplete.",
                "server_error",
                None,
                "upstream_stream_truncated",
            ) from None


def _parse_events(events: list[Event]) -> tuple[list[dict[str, Any]], bool]:
    """The events one read completed, parsed, and whether ``[DONE]`` ended the stream. A
    function of its own so that no raw data line (a 20 MB image) outlives it."""
    batch: list[dict[str, Any]] = []
    for name, data in events:
        if not data:
            if name and name != "message":
                batch.append({"type": name})
            continue
        if data == b"[DONE]":
            return batch, True
        batch.append(_parse_event(data))
    return batch, False


def _parse_event(data: bytes | bytearray) -> dict[str, Any]:
    """One ``data:`` payload: a JSON object with a string ``type``, else OpenAIError."""
    try:
        event = loads_large(data) if len(data) >= LARGE else orjson.loads(data)
    except orjson.JSONDecodeError:
        try:  # bytes that are not UTF-8: read them as text would have (with U+FFFD)
            event = orjson.loads(bytes(data).decode("utf-8", "replace"))
        except orjson.JSONDecodeError:
            raise errors.malformed_event(f"data line is not JSON: {_head(data)!r}") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise errors.malformed_event(f"event has no type: {_head(data)!r}")
    return event


def _head(data: bytes | bytearray) -> str:
    """The first 80 characters of a data line, for an error message."""
    return bytes(data[:320]).decode("utf-8", "replace")[:80]


def make_http_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> UpstreamHTTP:
    """The process-wide HTTP client; its read timeout is the allowed idle gap between events."""
    timeout = httpx.Timeout(
        connect=settings.upstream_connect_timeout,
        read=settings.upstream_idle_timeout,
        write=60.0,
        pool=settings.upstream_connect_timeout,
    )
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    wire = None
    if transport is None and settings.upstream_transport == "wire" and not proxies_configured():
        transport = wire = WireTransport(limits)
    client = UpstreamHTTP(
        timeout=timeout, transport=transport, limits=limits, follow_redirects=False
    )
    client.wire = wire
    return client


class UpstreamHTTP(httpx.AsyncClient):
    """The process-wide client, and the wire transport under it (None when a proxy or a test
    transport is in use), which the event-stream POST uses directly."""

    wire: WireTransport | None = None


def proxies_configured() -> bool:
    """Whether ``HTTP(S)_PROXY``/``ALL_PROXY`` (or, on macOS, the system settings) name a
    proxy. httpx honours those only for the transports it builds itself, so then the client
    uses those and goes through the proxy, rather than the faster wire transport that would
    ignore it."""
    found = urllib.request.getproxies()
    return any(found.get(scheme) for scheme in ("http", "https", "all"))


class UpstreamClient:
    """Calls the upstream over the shared ``httpx.AsyncClient`` (one per process)."""

    def __init__(
        self,
        settings: Settings,
        auth: AuthProvider,
        http: httpx.AsyncClient,
        on_answer: Callable[[int, str | None], None] | None = None,
    ) -> None:
        self.settings = settings
        self.auth = auth
        # told each upstream answer's status and request id (the server's access log)
        self._on_answer = on_answer
        self._http = http
        self._wire = http.wire if isinstance(http, UpstreamHTTP) else None
        self._timeouts = http.timeout.as_dict()
        self.rate_limits = RateLimits()  # the newest x-codex-* usage snapshot, for /v1/status

    @asynccontextmanager
    async def open_stream(
        self, creds: Credentials, body: Mapping[str, Any], session_id: str
    ) -> AsyncIterator[UpstreamStream]:
        """POST /responses; yields once the upstream answered 200 with an event stream.

        An upstream 401 gets one transparent retry when the auth provider has fresher
        credentials; the client never sees the first 401.
        """
        content = encode_body(body)
        response = await self._post(creds, content, session_id)
        try:
            if response.status_code == 401:
                fresh = await self.auth.after_unauthorized(creds)
                if fresh is not None:
                    await response.aclose()
                    response = await self._post(fresh, content, session_id)
            self._observe(response)
            await _raise_for_status(response)
            yield UpstreamStream(response, self.settings.upstream_idle_timeout)
        finally:
            await response.aclose()

    async def fetch_models(self, creds: Credentials) -> list[dict[str, Any]]:
        """The backend's model catalog (``{"models": [...]}``); raises OpenAIError on failure."""
        url = f"{self.settings.base_url_for(creds.mode)}/models"
        try:
            response = await self._http.get(
                url,
                params={"client_version": self.settings.client_version},
                headers=self._headers(creds, None, accept="application/json"),
            )
        except httpx.TimeoutException:
            raise errors.upstream_timeout(self.settings.upstream_idle_timeout) from None
        except httpx.TransportError as exc:
            raise errors.connection_failed(_reason(exc)) from None
        self._observe(response)
        if response.status_code != 200:
            raise errors.from_upstream_response(
                response.status_code, response.content, response.headers
            )
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise errors.malformed_event("model catalog is not JSON") from None
        models = data.get("models") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise errors.malformed_event("model catalog has no models list")
        return [m for m in models if isinstance(m, dict)]

    async def request_json(
        self,
        creds: Credentials,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Any:
        """One plain JSON call to ``{base}{path}`` (``/responses/compact``, and in api_key mode
        ``GET``/``DELETE /responses/{id}``): same headers, one transparent retry after a 401
        when fresher credentials exist, errors as ``OpenAIError``. Returns the parsed answer
        (None for an empty body)."""
        content = None if body is None else encode_body(body)
        response = await self._json_call(creds, method, path, content, params, session_id)
        if response.status_code == 401:
            fresh = await self.auth.after_unauthorized(creds)
            if fresh is not None:
                response = await self._json_call(fresh, method, path, content, params, session_id)
        self._observe(response)
        if response.status_code >= 300:
            error = errors.from_upstream_response(
                response.status_code, response.content, response.headers
            )
            error.headers.update(forwarded_headers(response.headers))
            raise error
        if not response.content:
            return None
        try:
            return loads_large(response.content)
        except orjson.JSONDecodeError:
            raise errors.malformed_event(f"{path} answer is not JSON") from None

    async def _json_call(
        self,
        creds: Credentials,
        method: str,
        path: str,
        content: bytes | None,
        params: Mapping[str, Any] | None,
        session_id: str | None,
    ) -> httpx.Response:
        url = f"{self.settings.base_url_for(creds.mode)}{path}"
        headers = self._headers(creds, session_id, accept="application/json")
        if content is None:
            headers.pop("Content-Type", None)
        try:
            return await self._http.request(
                method, url, content=content, params=params, headers=headers
            )
        except httpx.TimeoutException:
            raise errors.upstream_timeout(self.settings.upstream_idle_timeout) from None
        except httpx.TransportError as exc:
            raise errors.connection_failed(_reason(exc)) from None

    def _observe(self, response: httpx.Response) -> None:
        """Tell the access log what the upstream answered; keep its usage-limit headers."""
        if self._on_answer is not None:
            self._on_answer(response.status_code, response.headers.get("x-request-id"))
        self.rate_limits.update(response.headers)

    async def _post(self, creds: Credentials, content: bytes, session_id: str) -> httpx.Response:
        url = f"{self.settings.base_url_for(creds.mode)}/responses"
        headers = self._headers(creds, session_id)
        for attempt in (1, 2):
            try:
                return await self._send_stream(url, content, headers)
            except httpx.TimeoutException:
                raise errors.upstream_timeout(self.settings.upstream_idle_timeout) from None
            except STALE_CONNECTION_ERRORS as exc:
                # A kept-alive connection the upstream closed as we reused it: the request
                # never got an answer, so one more try on a fresh connection is safe.
                if attempt == 2:
                    raise errors.connection_failed(_reason(exc)) from None
            except httpx.TransportError as exc:
                raise errors.connection_failed(_reason(exc)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_stream(
        self, url: str, content: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        """POST, answer read up to its headers. Straight to the wire transport when there is
        one: httpx's client layer (redirects, auth flows, the cookie jar) does nothing for this
        call and was a fifth of the gateway's CPU per request."""
        if self._wire is None:
            request = self._http.build_request("POST", url, content=content, headers=headers)
            return await self._http.send(request, stream=True)
        request = httpx.Request(
            "POST", url, content=content, headers=headers, extensions={"timeout": self._timeouts}
        )
        response = await self._wire.handle_async_request(request)
        response.request = request
        return response

    def _headers(
        self, creds: Credentials, session_id: str | None, accept: str = "text/event-stream"
    ) -> dict[str, str]:
        """Headers as the Codex CLI sends them (protocol.md 3.2)."""
        if not _TOKEN.fullmatch(creds.token):
            raise _unsendable(creds)
        headers = {
            "Authorization": f"Bearer {creds.token}",
            "Content-Type": "application/json",
            "Accept": accept,
        }
        settings = self.settings
        if creds.mode == CHATGPT:
            headers["originator"] = settings.originator
            headers["version"] = settings.client_version
            headers["User-Agent"] = settings.user_agent or user_agent(
                settings.originator, settings.client_version
            )
            if settings.openai_beta:
                headers["OpenAI-Beta"] = settings.openai_beta
            if creds.account_id:
                headers["chatgpt-account-id"] = creds.account_id
        else:
            headers["User-Agent"] = settings.user_agent or f"codex-proxy/{__version__}"
        if session_id and _HEADER_SAFE.fullmatch(session_id):
            headers["session_id"] = session_id  # else only the body's prompt_cache_key
        headers.update(settings.extra_headers)
        return headers


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The request body as JSON; a client structure too deep to encode is a 400 (orjson stops
    at 255 levels, although it parses up to 1024)."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        raise errors.invalid_request(
            f"The request cannot be forwarded: {exc} (JSON nested too deeply).",
            None,
            "nesting_too_deep",
        ) from None


def user_agent(originator: str, version: str) -> str:
    """A Codex-style User-Agent: ``originator/version (OS release; arch) codex-proxy/x``."""
    system = platform.system()
    os_name = {"Darwin": "Mac OS", "Linux": "Linux", "Windows": "Windows"}.get(system, system)
    release = platform.mac_ver()[0] if system == "Darwin" else platform.release()
    arch = platform.machine()
    return f"{originator}/{version} ({os_name} {release}; {arch}) codex-proxy/{__version__}"


def forwarded_headers(headers: httpx.Headers) -> dict[str, str]:
    """Rate-limit snapshots and request ids, copied onto our answer."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith(FORWARDED_PREFIX) or lowered in FORWARDED_HEADERS:
            out[lowered] = value
    return out


async def _raise_for_status(response: httpx.Response) -> None:
    """Turn a non-200 or non-event-stream answer into the OpenAIError our client gets."""
    status = response.status_code
    if status == 200 and "text/event-stream" in response.headers.get("content-type", ""):
        return
    try:
        body = await response.aread()
    except httpx.TimeoutException:
        body = b""
    except httpx.TransportError:
        body = b""
    if status == 200:
        raise OpenAIError(
            502,
            "Upstream answered 200 without an event stream "
            f"(content-type {response.headers.get('content-type', 'none')!r}).",
            "server_error",
            None,
            "upstream_not_streaming",
        )
    error = errors.from_upstream_response(status, body, response.headers)
    error.headers.update(forwarded_headers(response.headers))
    raise error


def _reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.LocalProtocolError):  # its text quotes the offending header
        return "the request could not be encoded (LocalProtocolError)"
    text = str(exc) or type(exc).__name__
    return text[:200]


def _unsendable(creds: Credentials) -> OpenAIError:
    """Credentials no HTTP header can carry (a stray newline in a key): say where, never what."""
    where = "OPENAI_API_KEY" if creds.mode != CHATGPT else "the access token in auth.json"
    return OpenAIError(
        401,
        f"The upstream credentials ({where}) contain characters an HTTP header cannot carry. "
        f"Fix them, or sign in again. {LOGIN_HINT}",
        "authentication_error",
        None,
        "invalid_upstream_credentials",
    )
