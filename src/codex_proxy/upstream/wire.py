"""A lean HTTP/1.1 transport for the upstream: one asyncio protocol per connection, one list
of idle connections per origin.

httpcore's pool and h11 were about half of the gateway's CPU per request (py-spy at one and at
64 streams): the pool walks every connection with a socket check on each request, and h11
turns every read into several event objects. The upstream speaks plain HTTP/1.1 with chunked
event streams, which a protocol that reacts to socket callbacks serves with a few byte
searches. httpx stays the client on top (headers, timeouts, content decoding), so this is only
the wire, and it raises httpx's own exceptions, just as httpx's transport would.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx

MAX_HEAD = 64 * 1024
PAUSE_AT = 1024 * 1024  # stop reading the socket while this much waits unread
RESUME_AT = 256 * 1024
NO_BODY_STATUS = frozenset({204, 304})

Origin = tuple[str, str, int]


class Wire(asyncio.Protocol):
    """One upstream connection: what the socket delivered, and whoever waits for more."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self._buf = b""  # unread data starts at _pos in _buf, then continues in _pieces
        self._pos = 0
        self._pieces: deque[bytes] = deque()
        self.size = 0  # unread bytes in all
        self.eof = False
        self.error: BaseException | None = None
        self.idle_since = 0.0
        self._reader: asyncio.Future[None] | None = None
        self._writer: asyncio.Future[None] | None = None
        self._reading_paused = False

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._pieces.append(data)
        self.size += len(data)
        if self.size >= PAUSE_AT and not self._reading_paused and self.transport is not None:
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

    def pause_writing(self) -> None:
        self._writer = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._writer is not None and not self._writer.done():
            self._writer.set_result(None)
        self._writer = None

    def _wake_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(None)

    # -- used by the transport -----------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Idle and still open: nothing unread, no end seen from the server."""
        return (
            not self.eof
            and not self.size
            and self.transport is not None
            and (not self.transport.is_closing())
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def write(self, data: bytes, timeout: float | None) -> None:
        if self.eof or self.transport is None or self.transport.is_closing():
            raise httpx.WriteError("connection closed")
        self.transport.write(data)
        waiter = self._writer
        if waiter is not None:
            await _wait(waiter, timeout, httpx.WriteTimeout, self.loop)
            if self.eof:
                raise httpx.WriteError("connection closed while writing")

    async def more(self, timeout: float | None) -> None:
        """Wait until something new arrived or the connection ended."""
        if self.eof:
            return
        self._reader = self.loop.create_future()
        try:
            await _wait(self._reader, timeout, httpx.ReadTimeout, self.loop)
        finally:
            self._reader = None

    def read_until(self, needle: bytes) -> bytes | None:
        """The unread data up to ``needle`` (consumed with it), or None while it has not come."""
        end = self._buf.find(needle, self._pos)
        if end < 0 and self._pieces:
            self._merge()
            end = self._buf.find(needle, self._pos)
        if end < 0:
            return None
        data = self._buf[self._pos : end]
        self._advance(end + len(needle) - self._pos)
        return data

    def take(self, limit: int) -> bytes:
        """Up to ``limit`` unread bytes, as they came: a whole read is handed on uncopied."""
        if self._pos >= len(self._buf):
            if not self._pieces:
                return b""
            self._buf, self._pos = self._pieces.popleft(), 0
        end = min(len(self._buf), self._pos + limit)
        whole = self._pos == 0 and end == len(self._buf)
        data = self._buf if whole else self._buf[self._pos : end]
        self._advance(end - self._pos)
        return data

    def _merge(self) -> None:
        """All unread data into one buffer, for a search across reads (heads, chunk lines)."""
        rest = self._buf[self._pos :] if self._pos < len(self._buf) else b""
        self._buf = b"".join([rest, *self._pieces])
        self._pos = 0
        self._pieces.clear()

    def _advance(self, count: int) -> None:
        self._pos += count
        self.size -= count
        if self._reading_paused and self.size <= RESUME_AT and self.transport is not None:
            self.transport.resume_reading()
            self._reading_paused = False

    def broken(self, what: str) -> httpx.TransportError:
        """The exception for a connection that ended while ``what`` was still expected."""
        if isinstance(self.error, OSError):
            return httpx.ReadError(f"{what}: {self.error}")
        return httpx.RemoteProtocolError(what)


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
    """httpx transport over :class:`Wire` connections, kept alive per origin."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        self._keep = limits.max_keepalive_connections or 0
        self._expiry = limits.keepalive_expiry or 0.0
        self._idle: dict[Origin, list[Wire]] = {}
        self._ssl = ssl_context
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        wire = await self._connection(origin, timeouts.get("connect"))
        try:
            body = await request.aread()
            head = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
            for name, value in request.headers.raw:
                head += (name, b": ", value, b"\r\n")
            head.append(b"\r\n")
            if len(body) <= 64 * 1024:
                await wire.write(b"".join([*head, body]), timeouts.get("write"))
            else:
                await wire.write(b"".join(head), timeouts.get("write"))
                await wire.write(body, timeouts.get("write"))
            status, reason, headers = await _read_head(wire, timeouts.get("read"))
            stream = Body(self, origin, wire, request.method, status, headers, timeouts.get("read"))
        except BaseException:
            wire.close()
            raise
        return httpx.Response(
            status,
            headers=headers,
            stream=stream,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def _connection(self, origin: Origin, timeout: float | None) -> Wire:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            wire = idle.pop()
            if wire.usable and now - wire.idle_since < self._expiry:
                return wire
            wire.close()
        return await self._connect(origin, timeout)

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
            _, wire = await asyncio.wait_for(
                loop.create_connection(
                    lambda: Wire(loop),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context else None,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from None
        return wire

    def release(self, origin: Origin, wire: Wire) -> None:
        """A connection whose answer was read to the end: kept for the next request."""
        idle = self._idle.setdefault(origin, [])
        if self._closed or not wire.usable or len(idle) >= self._keep:
            wire.close()
            return
        wire.idle_since = time.monotonic()
        idle.append(wire)

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for wire in idle:
                wire.close()
        self._idle.clear()


async def _read_head(
    wire: Wire, timeout: float | None
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The status line and headers of the answer (after any 1xx interim answers)."""
    while True:
        head = wire.read_until(b"\r\n\r\n")
        if head is None:
            if wire.size > MAX_HEAD:
                raise httpx.RemoteProtocolError("upstream response head is too large")
            if wire.eof:
                if not wire.size:
                    raise wire.broken("Server disconnected without sending a response.")
                raise wire.broken("Server disconnected in the middle of the response head.")
            await wire.more(timeout)
            continue
        status, reason, headers = _parse_head(head)
        if not 100 <= status < 200:
            return status, reason, headers


def _parse_head(raw: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"malformed status line: {lines[0][:80]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise httpx.RemoteProtocolError(f"malformed header line: {line[:80]!r}")
        headers.append((name, value.strip()))
    return int(parts[1]), parts[2] if len(parts) > 2 else b"", headers


class Body(httpx.AsyncByteStream):
    """The answer's body as it arrives; the connection goes back to the pool once it was read
    to its end, and is closed otherwise."""

    def __init__(
        self,
        transport: WireTransport,
        origin: Origin,
        wire: Wire,
        method: str,
        status: int,
        headers: list[tuple[bytes, bytes]],
        timeout: float | None,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._wire = wire
        self._timeout = timeout
        self._complete = False
        self._reusable = True
        self._length: int | None = None
        self._chunked = False
        for name, value in headers:
            lower = name.lower()
            if lower == b"transfer-encoding":
                self._chunked = value.lower().endswith(b"chunked")
            elif lower == b"content-length":
                try:
                    self._length = int(value)
                except ValueError:
                    raise httpx.RemoteProtocolError("malformed content-length") from None
            elif lower == b"connection" and b"close" in value.lower():
                self._reusable = False
        if method == "HEAD" or status in NO_BODY_STATUS:
            self._chunked, self._length = False, 0
        elif not self._chunked and self._length is None:
            self._reusable = False  # the body ends when the connection does

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._chunked:
            async for piece in self._chunks():
                yield piece
        elif self._length is not None:
            async for piece in self._sized(self._length):
                yield piece
        else:
            async for piece in self._until_close():
                yield piece
        self._complete = True

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            line = await self._line()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise httpx.RemoteProtocolError(f"malformed chunk size: {line[:40]!r}") from None
            if size < 0:
                raise httpx.RemoteProtocolError("malformed chunk size")
            if size == 0:
                while await self._line():  # trailers, up to the blank line
                    pass
                return
            async for piece in self._sized(size):
                yield piece
            if await self._line():
                raise httpx.RemoteProtocolError("chunk data longer than its size")

    async def _line(self) -> bytes:
        wire = self._wire
        while True:
            line = wire.read_until(b"\r\n")
            if line is not None:
                return line
            if wire.size > MAX_HEAD:
                raise httpx.RemoteProtocolError("chunk header line too long")
            if wire.eof:
                raise wire.broken("peer closed connection without sending complete message body")
            await wire.more(self._timeout)

    async def _sized(self, remaining: int) -> AsyncIterator[bytes]:
        wire = self._wire
        while remaining:
            if not wire.size:
                if wire.eof:
                    raise wire.broken(
                        "peer closed connection without sending complete message body"
                    )
                await wire.more(self._timeout)
                continue
            piece = wire.take(remaining)
            remaining -= len(piece)
            yield piece

    async def _until_close(self) -> AsyncIterator[bytes]:
        wire = self._wire
        while True:
            if wire.size:
                yield wire.take(wire.size)
            elif wire.eof:
                if isinstance(wire.error, OSError):
                    raise wire.broken("connection broke")
                return
            else:
                await wire.more(self._timeout)

    async def aclose(self) -> None:
        if self._complete and self._reusable:
            self._transport.release(self._origin, self._wire)
        else:
            self._wire.close()
