"""A lean HTTP/1.1 transport for the upstream: one asyncio protocol per connection, one list
of idle connections per origin.

httpcore's pool and h11 were about half of the gateway's CPU per request (py-spy at one and at
64 streams): the pool walks every connection with a socket check on each request, and h11
turns every read into several event objects. Here each read goes straight into llhttp (the
parser in ``httptools``, as strict as h11 or stricter, checked by
tests/upstream/test_wire_conformance.py) from the socket callback. httpx stays the client on
top (headers, timeouts, content decoding), so this is only the wire, and it raises httpx's own
exceptions, just as httpx's transport would.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import httptools
import httpx

from .wire_connect import open_socket
from .wire_request import SMALL_BODY, Outgoing, body_pieces, encode_request

MAX_HEAD = 100 * 1024  # what httpcore lets h11 buffer for one head
PAUSE_AT = 1024 * 1024  # stop reading the socket while this much body waits unread
RESUME_AT = 256 * 1024
RETRYABLE = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)

Origin = tuple[str, str, int]


class _Stray(Exception):
    """A second answer began after the one asked for: the server is out of step."""


class Wire(asyncio.Protocol):
    """One upstream connection, and the answer being read on it (parsed as it arrives)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[], None]) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.eof = False
        self.error: BaseException | None = None
        self.stray = False  # bytes came that no request asked for
        self.idle_since = 0.0
        self._on_lost = on_lost
        self._reader: asyncio.Future[None] | None = None
        self._writer: asyncio.Future[None] | None = None
        self._reading_paused = False
        self.parser: httptools.HttpResponseParser | None = None  # None while idle
        self._reset(False)

    def start(self, head_only: bool) -> None:
        """Get ready to read the answer to a request (``head_only`` for HEAD)."""
        self._reset(head_only)
        self.parser = httptools.HttpResponseParser(self)

    def _reset(self, head_only: bool) -> None:
        self.head_only = head_only
        self.received = 0  # bytes of this answer so far
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.framed = False  # a Content-Length or Transfer-Encoding: not close-delimited
        self.head = False  # the final (non-1xx) head was parsed
        self.done = False  # the whole answer was parsed
        self.keep_alive = False
        self.failure: httpx.TransportError | None = None
        self.body: deque[bytes] = deque()
        self.queued = 0

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None or self.failure is not None:
            self.stray = True  # while idle, or after a broken answer
            return
        self.received += len(data)
        try:
            parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self.done:
                self.stray = True
            else:
                self._fail(exc)
        else:
            if not self.head and self.received > MAX_HEAD:
                self._fail(httpx.RemoteProtocolError("upstream response head is too large"))
        if self.done:
            self.parser = None
        if self.queued >= PAUSE_AT and not self._reading_paused and self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        if self._writer is not None and not self._writer.done():
            self._writer.set_result(None)
        self._on_lost()

    def pause_writing(self) -> None:
        self._writer = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._writer is not None and not self._writer.done():
            self._writer.set_result(None)
        self._writer = None

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    # -- llhttp callbacks (the parser calls these on this object) ------------------------

    def on_message_begin(self) -> None:
        if self.done:
            raise _Stray
        self.reason, self.headers, self.framed = b"", [], False

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head:
            return  # a trailer after a chunked body: httpx has no place for it either
        lower = name.lower()
        if lower == b"content-length":
            self.framed = True
        elif lower == b"transfer-encoding":
            if self.framed or value.lower() != b"chunked":  # h11 refuses other codings too
                raise httpx.RemoteProtocolError("Only Transfer-Encoding: chunked is supported")
            self.framed = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            if status == 101:
                raise httpx.RemoteProtocolError("101 Switching Protocols was not asked for")
            return  # an interim answer; the final one follows
        self.status, self.head = status, True
        self.keep_alive = self.parser.should_keep_alive()
        if self.head_only:  # llhttp cannot know that a HEAD answer has no body
            self.done = True

    def on_body(self, piece: bytes) -> None:
        if self.done:
            self.stray = True
            return
        self.body.append(piece)
        self.queued += len(piece)

    def on_message_complete(self) -> None:
        if self.head:
            self.done = True

    # -- used by the transport -----------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        cause = exc.__context__ if isinstance(exc.__context__, httpx.TransportError) else None
        self.failure = cause or httpx.RemoteProtocolError(f"malformed upstream answer: {exc}")
        self.parser = None

    @property
    def usable(self) -> bool:
        """Idle and still open: nothing unasked for came, no end seen from the server."""
        return (
            not self.eof
            and not self.stray
            and self.transport is not None
            and (not self.transport.is_closing())
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def write(self, data: bytes, timeout: float | None) -> None:
        if self.eof or self.transport is None or self.transport.is_closing():
            raise self.broken("connection closed", httpx.WriteError)
        self.transport.write(data)
        waiter = self._writer
        if waiter is not None:
            await _wait(waiter, timeout, httpx.WriteTimeout, self.loop)
            if self.eof:
                raise self.broken("connection closed while writing", httpx.WriteError)

    async def read_head(self, timeout: float | None) -> None:
        """Wait until the final head was parsed."""
        while not self.head:
            if self.failure is not None:
                raise self.failure
            if self.eof:
                if not self.received:
                    raise self.broken("Server disconnected without sending a response.")
                raise self.broken("Server disconnected in the middle of the response head.")
            await self.more(timeout)

    async def more(self, timeout: float | None) -> None:
        """Wait until something new arrived or the connection ended."""
        if self.eof:
            return
        self._reader = self.loop.create_future()
        try:
            await _wait(self._reader, timeout, httpx.ReadTimeout, self.loop)
        finally:
            self._reader = None

    def take(self) -> bytes:
        """The next piece of body as llhttp handed it (one per chunk, as a chunk came), so an
        event in a later chunk never holds back the ones before it."""
        data = self.body.popleft()
        self.queued -= len(data)
        if self._reading_paused and self.queued <= RESUME_AT and self.transport is not None:
            self.transport.resume_reading()
            self._reading_paused = False
        return data

    def broken(
        self, what: str, otherwise: type[httpx.TransportError] = httpx.RemoteProtocolError
    ) -> httpx.TransportError:
        """The exception for a connection that ended while ``what`` was still expected."""
        if isinstance(self.error, OSError):
            error = httpx.WriteError if otherwise is httpx.WriteError else httpx.ReadError
            return error(f"{what}: {self.error}")
        return otherwise(what)


async def _wait(
    future: asyncio.Future[None],
    timeout: float | None,
    error: type[httpx.TimeoutException],
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Await ``future``; ``error`` if ``timeout`` passes first. A timer, not a task."""
    if timeout is None:
        await future
        return
    timer = loop.call_later(timeout, _expire, future, error)
    try:
        await future
    finally:
        timer.cancel()


def _expire(future: asyncio.Future[None], error: type[httpx.TimeoutException]) -> None:
    if not future.done():
        future.set_exception(error("timed out waiting for the upstream"))


class WireTransport(httpx.AsyncBaseTransport):
    """httpx transport over :class:`Wire` connections, kept alive per origin, at most
    ``limits.max_connections`` open at once (others wait, up to the pool timeout)."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._keep = limits.max_keepalive_connections or 0
        self._expiry = limits.keepalive_expiry or 0.0
        self._max = limits.max_connections
        self._count = 0  # connections open or being opened
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle: dict[Origin, list[Wire]] = {}
        self._ssl = ssl_context
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        outgoing = encode_request(request)
        wire, reused = await self._connection(origin, timeouts)
        try:
            await self._exchange(wire, request, outgoing, timeouts)
        except RETRYABLE:
            wire.close()
            # Only a kept-alive connection the server closed as it was reused, with not one
            # byte back, is safe to try again: the request cannot have been answered (or, by
            # HTTP/1.1's rules, acted on: RFC 9112 9.3.1). A fresh connection never is.
            if not (reused and not wire.received and outgoing.content is not None):
                raise
            wire, _ = await self._connection(origin, timeouts, fresh=True)
            try:
                await self._exchange(wire, request, outgoing, timeouts)
            except BaseException:
                wire.close()
                raise
        except BaseException:
            wire.close()
            raise
        stream = Body(self, origin, wire, timeouts.get("read"))
        return httpx.Response(
            wire.status,
            headers=wire.headers,
            stream=stream,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": wire.reason},
        )

    async def _exchange(
        self, wire: Wire, request: httpx.Request, outgoing: Outgoing, timeouts: dict[str, Any]
    ) -> None:
        """Send the request; return once the final head of the answer was parsed."""
        wire.start(outgoing.method == b"HEAD")
        write = timeouts.get("write")
        if outgoing.content is not None and outgoing.length and outgoing.length <= SMALL_BODY:
            await wire.write(outgoing.head + outgoing.content, write)
        else:
            await wire.write(outgoing.head, write)
            async for piece in body_pieces(request, outgoing):
                await wire.write(piece, write)
        await wire.read_head(timeouts.get("read"))

    async def _connection(
        self, origin: Origin, timeouts: dict[str, Any], fresh: bool = False
    ) -> tuple[Wire, bool]:
        """An idle connection to ``origin`` (and True), else a new one once there is room."""
        while True:
            idle = self._idle.get(origin)
            now = time.monotonic()
            while idle and not fresh:
                wire = idle.pop()
                if wire.usable and now - wire.idle_since < self._expiry:
                    return wire, True
                wire.close()
            if self._max is None or self._count < self._max:
                break
            if not self._close_one_idle():
                await self._wait_for_room(timeouts.get("pool"))
        self._count += 1
        try:
            return await self._connect(origin, timeouts.get("connect")), False
        except BaseException:
            self._lost()
            raise

    def _close_one_idle(self) -> bool:
        """Make room: close an idle connection (to any origin). False if there is none."""
        for idle in self._idle.values():
            if idle:
                idle.pop(0).close()
                return True
        return False

    async def _wait_for_room(self, timeout: float | None) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            raise httpx.PoolTimeout("no connection free within the pool timeout") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _lost(self) -> None:
        self._count -= 1
        self._wake_one()

    async def _connect(self, origin: Origin, timeout: float | None) -> Wire:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
                self._ssl.set_alpn_protocols(["http/1.1"])
            context = self._ssl
        try:
            return await asyncio.wait_for(self._open(loop, host, port, context), timeout)
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None

    async def _open(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        context: ssl.SSLContext | None,
    ) -> Wire:
        sock = await open_socket(host, port)
        try:
            _, wire = await loop.create_connection(
                lambda: Wire(loop, self._lost),
                sock=sock,
                ssl=context,
                server_hostname=host if context else None,
            )
        except BaseException:
            sock.close()
            raise
        return wire

    def release(self, origin: Origin, wire: Wire) -> None:
        """A connection whose answer was read to the end: kept for the next request."""
        idle = self._idle.setdefault(origin, [])
        if self._closed or not wire.usable or len(idle) >= self._keep:
            wire.close()
            return
        wire.idle_since = time.monotonic()
        idle.append(wire)
        self._wake_one()

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for wire in idle:
                wire.close()
        self._idle.clear()


class Body(httpx.AsyncByteStream):
    """The answer's body as it arrives; the connection goes back to the pool once it was read
    to its end, and is closed otherwise."""

    def __init__(
        self, transport: WireTransport, origin: Origin, wire: Wire, timeout: float | None
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._wire = wire
        self._timeout = timeout
        self._complete = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        wire = self._wire
        while True:
            if wire.body:
                yield wire.take()
            elif wire.done:
                break
            elif wire.failure is not None:
                raise wire.failure
            elif wire.eof:
                if wire.framed or isinstance(wire.error, OSError):
                    raise wire.broken(
                        "peer closed connection without sending complete message body"
                    )
                break  # a body that ends with the connection: this was all of it
            else:
                await wire.more(self._timeout)
        self._complete = True

    async def aclose(self) -> None:
        wire = self._wire
        if self._complete and wire.done and wire.keep_alive:
            self._transport.release(self._origin, wire)
        else:
            wire.close()
