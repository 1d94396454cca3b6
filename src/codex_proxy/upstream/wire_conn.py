"""One upstream HTTP/1.1 connection as an asyncio protocol: each read goes straight into llhttp
(the parser in ``httptools``, at least as strict as h11) from the socket callback, and whoever
waits for the answer's head or body is woken. Errors are httpx's own exceptions."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import httptools
import httpx

MAX_HEAD = 100 * 1024  # what httpcore lets h11 buffer for one head
PAUSE_AT = 64 * 1024
"""Stop reading the socket once this much body waits unread, and read again only once all of
it was taken. A large answer (a 20 MB image) then moves one read at a time, each piece passed
on before the next is read, and the kernel's socket buffer, not this process, holds what the
reader is not ready for. (Pausing at 1 MB and resuming at 256 KB made the first partial
image reach the client 1.5-2 ms later.)"""
READ_SIZE = 256 * 1024  # the most one socket read takes


class _Stray(Exception):
    """A second answer began after the one asked for: the server is out of step."""


def read_buffer() -> memoryview:
    """Where the connections of one pool read into. One buffer serves them all: a read is
    parsed before the next one starts, and the parser copies out what it keeps."""
    return memoryview(bytearray(READ_SIZE))


class Wire(asyncio.BufferedProtocol):
    """One upstream connection, and the answer being read on it (parsed as it arrives)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_lost: Callable[[], None],
        buffer: memoryview,
    ) -> None:
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
        self._buffer = buffer  # shared with the pool's other connections (read_buffer)
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

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._buffer[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
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
        if self._reading_paused and not self.queued and self.transport is not None:
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
