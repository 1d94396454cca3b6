"""A lean HTTP/1.1 transport for the upstream: one asyncio protocol per connection, one list
of idle connections per origin.

httpcore's pool and h11 were about half of the gateway's CPU per request (py-spy at one and at
64 streams): the pool walks every connection with a socket check on each request, and h11
turns every read into several event objects. Here each read goes straight into llhttp (the
parser in ``httptools``, as strict as h11 or stricter, checked by
tests/upstream/test_wire_conformance.py) from the socket callback. httpx stays the client on
top (headers, timeouts, content decoding), so this is only the wire, and it raises httpx's own
exceptions, just as httpx's transport would.

Here: the pool and the request/answer exchange. ``wire_conn`` is one connection and its
parsing, ``wire_request`` the request's head and body framing, ``wire_connect`` Happy Eyeballs.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx

from .wire_conn import Wire, read_buffer
from .wire_connect import open_socket
from .wire_request import SMALL_BODY, Outgoing, body_pieces, encode_request

RETRYABLE = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)

Origin = tuple[str, str, int]


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
        self._read_buffer = read_buffer()

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
                lambda: Wire(loop, self._lost, self._read_buffer),
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
