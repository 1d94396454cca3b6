"""The one upstream HTTP client: POST /responses as an event stream, POST JSON to the native
images endpoints, GET /models, GET the usage windows (``wham/usage``).

Every failure leaves here as an :class:`OpenAIError`, so the app never sees an httpx exception.
The read timeout is the idle gap allowed between two upstream events, not a total deadline.
"""

from __future__ import annotations

import logging
import platform
import re
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from codex_proxy import __version__
from codex_proxy._json import LARGE, loads_large
from codex_proxy.config import Settings
from codex_proxy.translate import errors
from codex_proxy.translate.errors import LOGIN_HINT, OpenAIError, UpstreamContext
from codex_proxy.upstream import client_version
from codex_proxy.upstream.auth import CHATGPT, AuthProvider, Credentials
from codex_proxy.upstream.client_version import ClientVersion
from codex_proxy.upstream.rate_limits import RateLimits
from codex_proxy.upstream.sse import Cut, Event, EventTooLarge, SSEDecoder
from codex_proxy.upstream.sse_cut import BadValue, LargeValueCut
from codex_proxy.upstream.wire import WireTransport

log = logging.getLogger("codex_proxy")

FORWARDED_HEADERS = ("x-request-id", "x-oai-request-id")
STALE_CONNECTION_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# A client-chosen session id goes into a header only when it is visible ASCII of sane length.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,256}")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # what a bearer token may hold (RFC 6750 is stricter)
FORWARDED_PREFIX = "x-codex-"
RATE_LIMITS_EVENT = "codex.rate_limits"
MAX_ERROR_BODY = 1024 * 1024  # an upstream error answer larger than this is not read on
MB = 1024 * 1024
RawEvent = tuple[dict[str, Any], bytes | bytearray | None]
"""An upstream event parsed, and its ``data:`` bytes as they came (None: it had no data)."""


class UpstreamStream:
    """An open upstream event stream: the headers worth forwarding, then the events."""

    def __init__(
        self,
        response: httpx.Response,
        idle_timeout: float,
        rate_limits: RateLimits | None = None,
        max_event_mb: float = 64.0,
    ) -> None:
        self._response = response
        self._idle_timeout = idle_timeout
        self._rate_limits = rate_limits
        self._max_event_mb = max_event_mb
        self.headers = forwarded_headers(response.headers)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Each event as a dict; ends after the stream closes. Raises OpenAIError on a stall,
        a dropped connection or a data line that is not a JSON object."""
        async for batch in self.batches():
            for event in batch:
                yield event

    def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        """The events as :meth:`events` has them, in lists: all the events one network read
        completed, so a relay can write them to its client at once."""
        return self._read(keep_raw=False)

    def raw_batches(self) -> AsyncIterator[list[RawEvent]]:
        """As :meth:`batches`, each event next to the data bytes it came as (None for an
        event without data), for a relay that passes events on untouched. Not for the chat
        path: there the bytes of a 20 MB image would live as long as its parsed string."""
        return self._read(keep_raw=True)

    def cut_batches(self, cut: LargeValueCut) -> AsyncIterator[list[dict[str, Any] | Cut]]:
        """As :meth:`batches`, but the large values ``cut`` picks come in :class:`Cut` pieces
        while their line still arrives (then the event, with that value empty), so a relay
        can pass a 20 MB image on as it comes. Pieces are valid base64 or the stream fails
        as malformed."""
        return self._read(keep_raw=False, cut=cut)

    async def _read(
        self, *, keep_raw: bool, cut: LargeValueCut | None = None
    ) -> AsyncIterator[list[Any]]:
        decoder = SSEDecoder(int(self._max_event_mb * MB), cut)
        parse = _parse_events if cut is None else _parse_with_cuts
        try:
            async for raw in self._response.aiter_bytes():
                batch, done = parse(decoder.feed(raw), self._rate_limits, keep_raw)
                if batch:
                    yield batch
                if done:
                    return
        except BadValue as exc:
            raise errors.malformed_event(str(exc)) from None
        except EventTooLarge:
            log.warning("upstream event over CODEX_MAX_EVENT_MB (%g MB)", self._max_event_mb)
            raise errors.event_too_large(self._max_event_mb) from None
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
        except httpx.HTTPError as exc:  # a body that does not decode (a corrupt gzip)
            log.warning("upstream answer unreadable: %s: %s", type(exc).__name__, exc)
            raise errors.stream_failed(type(exc).__name__, str(exc)) from None


def _parse_events(
    events: list[Event], rate_limits: RateLimits | None, keep_raw: bool
) -> tuple[list[Any], bool]:
    """The events one read completed, parsed (with their data bytes when ``keep_raw``: a
    :data:`RawEvent` each), and whether ``[DONE]`` ended the stream. The usage windows sent
    inside the stream go to ``rate_limits``. A function of its own so that, without
    ``keep_raw``, no raw data line (a 20 MB image) outlives it."""
    batch: list[Any] = []
    for name, data in events:
        if not data:
            if name and name != "message":
                batch.append(({"type": name}, None) if keep_raw else {"type": name})
            continue
        if data == b"[DONE]":
            return batch, True
        event = _parse_event(data)
        if rate_limits is not None and event["type"] == RATE_LIMITS_EVENT:
            rate_limits.update_from_event(event)
        batch.append((event, data) if keep_raw else event)
    return batch, False


def _parse_with_cuts(
    items: list[Any], rate_limits: RateLimits | None, keep_raw: bool
) -> tuple[list[Any], bool]:
    """:func:`_parse_events` for a decoder with a cut: its :class:`Cut` pieces pass as they
    are, in order with the events."""
    batch: list[Any] = []
    events: list[Event] = []
    for item in items:
        if type(item) is Cut:
            if events:
                parsed, done = _parse_events(events, rate_limits, keep_raw)
                batch += parsed
                if done:
                    return batch, True
                events = []
            batch.append(item)
        else:
            events.append(item)
    parsed, done = _parse_events(events, rate_limits, keep_raw)
    return batch + parsed, done


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
        version: ClientVersion | None = None,
    ) -> None:
        self.settings = settings
        self.auth = auth
        # the Codex version claimed to the backend; the server resolves it once at startup
        self.version = version or client_version.configured(settings)
        # the catalog's model ids, asked only to explain a refused model (set by the server)
        self.offered_models: Callable[[], Awaitable[Sequence[str]]] | None = None
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
        async with self._answered(creds, "/responses", encode_body(body), session_id) as response:
            await self._raise_for_status(response)
            yield UpstreamStream(
                response,
                self.settings.upstream_idle_timeout,
                self.rate_limits,
                self.settings.max_event_mb,
            )

    async def post_json(
        self, creds: Credentials, path: str, body: Mapping[str, Any], session_id: str | None
    ) -> tuple[Any, dict[str, str]]:
        """POST a JSON body to ``{base}{path}`` (the native images endpoints) and return the
        parsed JSON answer and the headers worth forwarding. Same headers, the same one retry
        after a 401 and the same error mapping as :meth:`open_stream`; raises OpenAIError."""
        accept = "application/json"
        async with self._answered(creds, path, encode_body(body), session_id, accept) as response:
            ok = response.status_code == 200
            limit = int(self.settings.max_event_mb * MB) if ok else MAX_ERROR_BODY
            try:
                raw, complete = await read_capped(response, limit)
            except httpx.TimeoutException:
                raise errors.upstream_timeout(self.settings.upstream_idle_timeout) from None
            except httpx.TransportError as exc:
                raise errors.connection_failed(_reason(exc)) from None
            if not ok:
                error = (
                    errors.from_upstream_response(
                        response.status_code, raw, response.headers, self._context()
                    )
                    if complete
                    else errors.error_body_too_large(response.status_code, MAX_ERROR_BODY)
                )
                error.headers.update(forwarded_headers(response.headers))
                raise error
            if not complete:
                raise errors.event_too_large(self.settings.max_event_mb)
            try:
                data = loads_large(raw) if len(raw) >= LARGE else orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise errors.malformed_event(f"{path} answered with no JSON") from None
            return data, forwarded_headers(response.headers)

    @asynccontextmanager
    async def _answered(
        self,
        creds: Credentials,
        path: str,
        content: bytes,
        session_id: str | None,
        accept: str = "text/event-stream",
    ) -> AsyncIterator[httpx.Response]:
        """POST ``content`` to ``{base}{path}``, read up to the answer's headers, with one retry
        after a 401 when the auth provider has fresher credentials; closed on exit."""
        response = await self._post(creds, path, content, session_id, accept)
        try:
            if response.status_code == 401:
                fresh = await self.auth.after_unauthorized(creds)
                if fresh is not None:
                    await response.aclose()
                    response = await self._post(fresh, path, content, session_id, accept)
            self._observe(response)
            yield response
        finally:
            await response.aclose()

    async def fetch_models(self, creds: Credentials) -> list[dict[str, Any]]:
        """The backend's model catalog (``{"models": [...]}``); raises OpenAIError on failure."""
        url = f"{self.settings.base_url_for(creds.mode)}/models"
        params = {"client_version": self.version.value}
        data = await self._get_json(creds, url, "model catalog", params)
        models = data.get("models")
        if not isinstance(models, list):
            raise errors.malformed_event("model catalog has no models list")
        return [m for m in models if isinstance(m, dict)]

    async def fetch_usage(self, creds: Credentials) -> dict[str, Any]:
        """The ChatGPT backend's usage windows (``GET .../wham/usage``), without spending a
        request on /responses; raises OpenAIError on failure."""
        url = usage_url(self.settings.base_url_for(creds.mode))
        return await self._get_json(creds, url, "usage endpoint")

    async def _get_json(
        self, creds: Credentials, url: str, what: str, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """GET a JSON object, read as a stream and capped (``CODEX_MAX_EVENT_MB`` for an
        answer, 1 MB for an error), so a runaway body never sits in memory; any failure as
        its OpenAIError."""
        request = self._http.build_request(
            "GET", url, params=params, headers=self._headers(creds, None, accept="application/json")
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TimeoutException:
            raise errors.upstream_timeout(self.settings.upstream_idle_timeout) from None
        except httpx.TransportError as exc:
            raise errors.connection_failed(_reason(exc)) from None
        try:
            self._observe(response)
            ok = response.status_code == 200
            limit = int(self.settings.max_event_mb * MB) if ok else MAX_ERROR_BODY
            content, complete = await read_capped(response, limit)
        except httpx.TimeoutException:
            raise errors.upstream_timeout(self.settings.upstream_idle_timeout) from None
        except httpx.HTTPError as exc:
            raise errors.stream_failed(type(exc).__name__, str(exc)) from None
        finally:
            await response.aclose()
        if not ok:
            if not complete:
                raise errors.error_body_too_large(response.status_code, MAX_ERROR_BODY)
            raise errors.from_upstream_response(
                response.status_code, content, response.headers, self._context()
            )
        if not complete:
            raise errors.event_too_large(self.settings.max_event_mb)
        try:
            data = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise errors.malformed_event(f"{what} is not JSON") from None
        if not isinstance(data, dict):
            raise errors.malformed_event(f"{what} is not a JSON object")
        return data

    def _context(self, models: Sequence[str] | None = None) -> UpstreamContext:
        return UpstreamContext(self.version.value, self.version.source, models)

    async def _raise_for_status(self, response: httpx.Response) -> None:
        """Turn a non-200 or non-event-stream answer into the OpenAIError our client gets."""
        status = response.status_code
        if status == 200 and "text/event-stream" in response.headers.get("content-type", ""):
            return
        limit = MAX_ERROR_BODY
        try:
            body, complete = await read_capped(response, limit)
        except httpx.HTTPError:  # a dropped connection, a corrupt gzip: the status still speaks
            body, complete = b"", True
        if not complete:
            log.warning("upstream HTTP %s error body over %d bytes: not read", status, limit)
            error = errors.error_body_too_large(status, MAX_ERROR_BODY)
            error.headers.update(forwarded_headers(response.headers))
            raise error
        if status == 200:
            raise OpenAIError(
                502,
                "Upstream answered 200 without an event stream "
                f"(content-type {response.headers.get('content-type', 'none')!r}).",
                "server_error",
                None,
                "upstream_not_streaming",
            )
        models = None
        if status == 400 and self.offered_models is not None and errors.refused_model(body):
            models = await self.offered_models()
        error = errors.from_upstream_response(status, body, response.headers, self._context(models))
        error.headers.update(forwarded_headers(response.headers))
        raise error

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

    async def _post(
        self,
        creds: Credentials,
        path: str,
        content: bytes,
        session_id: str | None,
        accept: str = "text/event-stream",
    ) -> httpx.Response:
        url = f"{self.settings.base_url_for(creds.mode)}{path}"
        headers = self._headers(creds, session_id, accept)
        for attempt in (1, 2):
            connected: list[str] = []
            try:
                return await self._send_stream(url, content, headers, connected)
            except httpx.TimeoutException:
                raise errors.upstream_timeout(self.settings.upstream_idle_timeout) from None
            except STALE_CONNECTION_ERRORS as exc:
                # A generation must not run twice: only a request that went out on a reused
                # kept-alive connection, which the upstream closed as we reused it, is sent
                # again. The wire transport does that itself (it knows no byte came back);
                # through httpx's transport, a request whose trace shows no new connection.
                if attempt == 2 or self._wire is not None or connected != ["reused"]:
                    raise errors.connection_failed(_reason(exc)) from None
            except httpx.TransportError as exc:
                raise errors.connection_failed(_reason(exc)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send_stream(
        self, url: str, content: bytes, headers: dict[str, str], connected: list[str]
    ) -> httpx.Response:
        """POST, answer read up to its headers. Straight to the wire transport when there is
        one: httpx's client layer (redirects, auth flows, the cookie jar) does nothing for this
        call and was a fifth of the gateway's CPU per request. ``connected`` gets "reused" when
        httpx's transport sent the request on a kept-alive connection, "new" when it opened
        one."""
        if self._wire is None:

            async def trace(event: str, info: object) -> None:
                if event == "connection.connect_tcp.started":
                    connected.append("new")
                elif event == "http11.send_request_headers.started" and not connected:
                    connected.append("reused")

            request = self._http.build_request(
                "POST", url, content=content, headers=headers, extensions={"trace": trace}
            )
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
            headers["version"] = self.version.value
            headers["User-Agent"] = settings.user_agent or user_agent(
                settings.originator, self.version.value
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


def usage_url(base: str) -> str:
    """Where the usage windows are: ``.../backend-api/codex`` -> ``.../backend-api/wham/usage``
    (any other base: ``{base}/wham/usage``)."""
    base = base.rstrip("/")
    return f"{base.removesuffix('/codex')}/wham/usage"


def forwarded_headers(headers: httpx.Headers) -> dict[str, str]:
    """Rate-limit snapshots and request ids, copied onto our answer."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered.startswith(FORWARDED_PREFIX) or lowered in FORWARDED_HEADERS:
            out[lowered] = value
    return out


async def read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of a streamed body, and whether that was all of it; read no
    further, so a huge body never sits in memory."""
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return b"".join(parts), False
        parts.append(chunk)
    return b"".join(parts), True


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
