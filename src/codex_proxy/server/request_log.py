"""One access-log line per request, and the request counters behind ``/v1/status``.

:class:`RequestLog` is a thin ASGI middleware: it watches the ``http.response.start`` and
``http.response.body`` messages going out (status, bytes, time to first byte) and, when the
request is over, writes one line to the ``codex_proxy.access`` logger. What only the handlers
know (model, stream, upstream status, images) they put on the request's :class:`RequestRecord`
through :func:`note` / :func:`note_upstream`, found via a context variable, so neither the relay
nor the upstream client has to carry it around. Per body chunk the middleware does one length
addition: nothing is copied or allocated.

The line never holds a header value, a query string or a body: only the fields below, so a
token or an image's base64 cannot reach the log through it. Stored-image paths are shortened,
because their file name is the capability that grants access.

``CODEX_LOG_FORMAT=json`` makes every log line of the gateway (not only these) one JSON object.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
import uuid
from typing import Any, Protocol

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("codex_proxy.access")

REQUEST_ID_HEADER = b"x-request-id"
CLIENT_GONE = 499  # nginx's "client closed request": logged when no answer was started
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_FILES_MARKER = "/images/files/"


class _Counted(Protocol):
    count: int


class RequestRecord:
    """What is known about one request; the handlers fill in the parts only they know."""

    __slots__ = (
        "bytes",
        "first_byte",
        "image_counter",
        "images",
        "key",
        "method",
        "model",
        "path",
        "request_id",
        "started",
        "status",
        "stream",
        "upstream_request_id",
        "upstream_status",
    )

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path
        self.status: int | None = None
        self.model: str | None = None
        self.stream: bool | None = None
        self.upstream_status: int | None = None
        self.upstream_request_id: str | None = None
        self.request_id: str | None = None
        self.images = 0
        self.key: str | None = None
        self.image_counter: _Counted | None = None
        self.bytes = 0
        self.started = time.perf_counter()
        self.first_byte: float | None = None

    def image_count(self) -> int:
        counter = self.image_counter
        return self.images + (counter.count if counter is not None else 0)

    def fields(self, now: float) -> dict[str, Any]:
        """The log line's fields, in the order the text line shows them."""
        ttfb = None if self.first_byte is None else round((self.first_byte - self.started) * 1e3, 1)
        return {
            "method": self.method,
            "path": _loggable_path(self.path),
            "status": self.status,
            "model": self.model,
            "stream": self.stream,
            "upstream_status": self.upstream_status,
            "ttfb_ms": ttfb,
            "total_ms": round((now - self.started) * 1e3, 1),
            "bytes": self.bytes,
            "images": self.image_count(),
            "request_id": self.request_id,
            "key": self.key,
        }


_current: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar(
    "codex_proxy_request", default=None
)


def current() -> RequestRecord | None:
    """The record of the request being handled (``None`` outside a request)."""
    return _current.get()


def note(
    *,
    model: str | None = None,
    stream: bool | None = None,
    images: int | None = None,
    image_counter: _Counted | None = None,
    key: str | None = None,
) -> None:
    """Attach what a handler learned to the current request's log line (``key``: the client
    key's name, never its token)."""
    record = _current.get()
    if record is None:
        return
    if key is not None:
        record.key = key
    if model is not None:
        record.model = model
    if stream is not None:
        record.stream = stream
    if images is not None:
        record.images = images
    if image_counter is not None:
        record.image_counter = image_counter


def note_upstream(status: int, request_id: str | None) -> None:
    """The upstream's answer status and request id (the last upstream call wins)."""
    record = _current.get()
    if record is None:
        return
    record.upstream_status = status
    if request_id:
        record.upstream_request_id = request_id


class RequestStats:
    """Counters for ``/v1/status``: one process, one event loop, so plain integers do."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self._started = time.monotonic()
        self.total = 0
        self.in_flight = 0
        self.streaming = 0
        self.by_status: dict[str, int] = {}

    @property
    def uptime(self) -> float:
        return time.monotonic() - self._started

    def finished(self, record: RequestRecord) -> None:
        self.total += 1
        if record.stream:
            self.streaming += 1
        status = record.status
        key = f"{status // 100}xx" if status else "none"
        self.by_status[key] = self.by_status.get(key, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "in_flight": self.in_flight,
            "streaming": self.streaming,
            "by_status": dict(sorted(self.by_status.items())),
        }


class RequestLog:
    """ASGI middleware: a request id on every answer, one log line and the counters."""

    def __init__(self, app: ASGIApp, stats: RequestStats | None = None) -> None:
        self.app = app
        self.stats = stats or RequestStats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = RequestRecord(scope.get("method", "-"), scope.get("path", ""))
        token = _current.set(record)
        stats = self.stats
        stats.in_flight += 1

        async def watching_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.body":
                if record.first_byte is None:
                    record.first_byte = time.perf_counter()
                record.bytes += len(message.get("body", b""))
            elif kind == "http.response.start":
                record.status = message["status"]
                headers = _with_request_id(record, message.get("headers") or [])
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except Exception:
            if record.status is None:
                record.status = 500  # what the server's error handler is about to answer
            raise
        finally:
            if record.status is None:
                record.status = CLIENT_GONE  # nothing was answered: the client left first
            stats.in_flight -= 1
            stats.finished(record)
            _current.reset(token)
            _write_line(record)


def _with_request_id(record: RequestRecord, headers: Any) -> list[tuple[bytes, bytes]]:
    """The answer's headers, with an ``x-request-id``: the one already there (the upstream's,
    forwarded), else the upstream's from :func:`note_upstream`, else a new ``req_...``."""
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER:
            record.request_id = value.decode("latin-1")
            return list(headers)
    request_id = record.upstream_request_id or f"req_{uuid.uuid4().hex}"
    record.request_id = request_id
    return [*headers, (REQUEST_ID_HEADER, request_id.encode("latin-1"))]


def _write_line(record: RequestRecord) -> None:
    status = record.status or 0
    level = logging.WARNING if status >= 500 else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    fields = record.fields(time.perf_counter())
    access_log.log(level, _TextLine(fields), extra={"request": fields})


class _TextLine:
    """The human-readable line, rendered only if a handler formats it as text."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        f = self.fields
        parts = [f"{f['method']} {f['path']}"]
        for key, value in f.items():
            if key in ("method", "path"):
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            parts.append(f"{key}={'-' if value is None else value}")
        return " ".join(parts)


def _loggable_path(path: str) -> str:
    """The path, minus a stored image's name (whoever has the name can fetch the image)."""
    at = path.find(_FILES_MARKER)
    if at < 0 or len(path) == at + len(_FILES_MARKER):
        return path
    return path[: at + len(_FILES_MARKER)] + "..."


class JsonFormatter(logging.Formatter):
    """Every log record as one JSON object; access lines carry their fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        moment = time.gmtime(record.created)
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "request", None)
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def setup_logging(level: str, fmt: str = "text") -> None:
    """Configure the root logger for the gateway process: level, text or JSON lines on stderr.

    uvicorn's own loggers propagate here (serve passes ``log_config=None``), so its lines have
    the same format; httpx's per-request INFO lines are hidden unless the level is debug, since
    the access line already covers each request.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    quiet = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(quiet)
