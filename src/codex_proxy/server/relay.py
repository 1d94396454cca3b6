"""Runs one chat completion against the upstream and writes it to the client.

The I/O shell around the pure translators. It is an ASGI callable rather than a Starlette
response so that it can (1) pick the HTTP status only once the upstream has said something
meaningful, (2) keep a streaming client alive with SSE comments during long upstream silences,
and (3) watch for the client going away at every moment, including while a non-streaming request
is still waiting, and then cancel the upstream request at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import aclosing
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from codex_proxy._json import SLICE, dumps_parts
from codex_proxy.server.image_files import flush_saves
from codex_proxy.server.shutdown import Shutdown
from codex_proxy.translate.aggregate import ChatCompletionBuilder
from codex_proxy.translate.errors import OpenAIError, shutting_down, stream_failed
from codex_proxy.translate.images import ImageRenderer
from codex_proxy.translate.request import TranslatedRequest
from codex_proxy.translate.stream import ChatStreamTranslator
from codex_proxy.upstream.auth import Credentials
from codex_proxy.upstream.client import UpstreamClient

log = logging.getLogger("codex_proxy")

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
IMAGES_LINKED_HEADER = "x-codex-proxy-images-linked"
_END = object()
TICK = object()
"""What :func:`with_ticks` yields when the upstream was silent for an interval."""


def json_response_parts(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """The ASGI messages of a complete JSON answer, made as they are sent: the body in one
    piece with its length, or, when it carries a huge string (an image), in slices without a
    length (chunked), so that the string is never copied whole."""
    pieces = coalesce(dumps_parts(payload))
    first = next(pieces)
    second = next(pieces, None)
    raw = [(b"content-type", b"application/json")]
    if second is None:
        raw.append((b"content-length", str(len(first)).encode()))
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    yield {"type": "http.response.start", "status": status, "headers": raw}
    if second is None:
        yield {"type": "http.response.body", "body": first, "more_body": False}
        return
    yield {"type": "http.response.body", "body": first, "more_body": True}
    for piece in pieces:
        yield {"type": "http.response.body", "body": second, "more_body": True}
        second = piece
    yield {"type": "http.response.body", "body": second, "more_body": False}


async def send_error(
    send: Send, error: OpenAIError, headers: Mapping[str, str] | None = None
) -> None:
    """An OpenAI-shaped JSON error answer."""
    for message in json_response_parts(
        error.status, error.body(), {**(headers or {}), **error.headers}
    ):
        await send(message)


def encode_chunks(chunks: list[dict[str, Any]], tail: bytes = b"") -> Iterator[bytes]:
    """Chat chunks as SSE ``data:`` lines, then ``tail``, as the writes to make, made as they
    are taken: one for a batch of ordinary chunks, slices of about ``SLICE`` bytes for a chunk
    that carries an image, so that only one slice of it exists at a time."""
    return coalesce(_sse_pieces(chunks, tail))


def _sse_pieces(chunks: list[dict[str, Any]], tail: bytes) -> Iterator[bytes]:
    for chunk in chunks:
        yield b"data: "
        yield from dumps_parts(chunk)
        yield b"\n\n"
    if tail:
        yield tail


def encode_events(events: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    """Events as named SSE messages (``event: <type>`` and one ``data:`` line: the Responses
    and Images streams), in writes of about a slice: a 20 MB image is encoded in slices,
    never copied whole."""

    def pieces() -> Iterator[bytes]:
        for event in events:
            yield b"event: " + event["type"].encode() + b"\ndata: "
            yield from dumps_parts(event)
            yield b"\n\n"

    return coalesce(pieces())


def coalesce(pieces: Iterable[bytes], target: int = SLICE) -> Iterator[bytes]:
    """Consecutive pieces joined into writes of at most ``target`` bytes (a larger piece is a
    write of its own), so small pieces cost one write and large ones are not copied again."""
    group: list[bytes] = []
    size = 0
    for piece in pieces:
        if group and size + len(piece) > target:
            yield group[0] if len(group) == 1 else b"".join(group)
            group, size = [], 0
        group.append(piece)
        size += len(piece)
    if group:
        yield group[0] if len(group) == 1 else b"".join(group)


def completion_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)


class ChatCompletionRun:
    """One ``/v1/chat/completions`` call, already validated and translated."""

    def __init__(
        self,
        *,
        client: UpstreamClient,
        creds: Credentials,
        request: TranslatedRequest,
        keepalive_seconds: float,
        headers: Mapping[str, str],
        image_renderer: ImageRenderer | None = None,
        limiter: asyncio.Semaphore | None = None,
        shutdown: Shutdown | None = None,
    ) -> None:
        self.client = client
        self.creds = creds
        self.request = request
        self.keepalive_seconds = keepalive_seconds
        self.headers = dict(headers)
        self.image_renderer = image_renderer
        self.limiter = limiter
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        out = EventStream(send)

        async def run() -> None:
            if self.request.stream:
                await self._stream(out)
            else:
                await self._complete(send)

        async def fail(error: OpenAIError) -> None:
            payload = b"data: " + orjson.dumps(error.body()) + b"\n\n"
            await out.fail(error, self.headers, payload, "stream")

        await guarded(
            receive, run, fail, "chat completion", limiter=self.limiter, shutdown=self.shutdown
        )

    async def _complete(self, send: Send) -> None:
        """Non-streaming: fold every event into one chat.completion."""
        request = self.request
        builder = ChatCompletionBuilder(
            completion_id=completion_id(),
            created=int(time.time()),
            model=request.model,
            image_renderer=self.image_renderer,
        )
        async with self.client.open_stream(self.creds, request.body, request.session_id) as up:
            headers = {**self.headers, **up.headers}
            async with aclosing(_reported(up.events())) as events:
                async for event in events:
                    builder.feed(event)
            result = builder.result()
        renderer = self.image_renderer
        await flush_saves(renderer)
        if renderer is not None and renderer.linked_because_large:
            headers[IMAGES_LINKED_HEADER] = str(renderer.linked_because_large)
        for message in json_response_parts(200, result, headers):
            await send(message)

    async def _stream(self, out: EventStream) -> None:
        """Streaming: chunks as they come; the status is chosen at the first chunk, so an
        upstream failure before any content is still a proper HTTP error."""
        request = self.request
        translator = ChatStreamTranslator(
            completion_id=completion_id(),
            created=int(time.time()),
            model=request.model,
            include_usage=request.include_usage,
            image_renderer=self.image_renderer,
        )
        async with self.client.open_stream(self.creds, request.body, request.session_id) as up:
            headers = {**self.headers, **up.headers, **SSE_HEADERS}
            ticking = with_ticks(_reported(up.batches()), self.keepalive_seconds)
            async with aclosing(ticking) as items:
                async for item in items:
                    if item is TICK:
                        await out.write(KEEPALIVE, headers)
                        continue
                    chunks: list[dict[str, Any]] = []
                    try:
                        _translate_batch(translator, item, chunks)
                    finally:  # what came before a failure still goes out first
                        if chunks:
                            await flush_saves(self.image_renderer)
                            await out.write_all(encode_chunks(chunks), headers)
            tail = encode_chunks(translator.finish(), DONE)
            await flush_saves(self.image_renderer)
            await out.write_all(tail, headers, more=False)


def _translate_batch(
    translator: ChatStreamTranslator, batch: list[dict[str, Any]], chunks: list[dict[str, Any]]
) -> None:
    """Feed ``batch`` to the translator, adding its chunks to ``chunks`` (kept on failure),
    and empty ``batch``, so that an image event (20 MB) is not held while its chunk is sent."""
    try:
        for event in batch:
            chunks += translator.feed(event)
    finally:
        batch.clear()


def internal_error() -> OpenAIError:
    """A bug of ours: say so without leaking a traceback."""
    return OpenAIError(
        500, "The gateway failed unexpectedly; see its log.", "server_error", None, "internal_error"
    )


async def start_event_stream(send: Send, headers: Mapping[str, str]) -> None:
    raw = [(b"content-type", b"text/event-stream; charset=utf-8")]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": 200, "headers": raw})


class EventStream:
    """The ``text/event-stream`` answer of one request (chat, Responses, Images), begun at its
    first write: until then a failure can still be a JSON error with its own status."""

    __slots__ = ("send", "started")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def write(self, payload: bytes, headers: Mapping[str, str], more: bool = True) -> None:
        """One body write; the first one sends the status and ``headers`` before it."""
        if not self.started:
            await start_event_stream(self.send, headers)
            self.started = True
        await self.send({"type": "http.response.body", "body": payload, "more_body": more})

    async def write_all(
        self, writes: Iterable[bytes], headers: Mapping[str, str], more: bool = True
    ) -> None:
        """Each write as soon as it is made; ``more`` tells whether the last one ends the body
        (with no writes at all and ``more`` false, an empty one ends it)."""
        held: bytes | None = None
        for payload in writes:
            if held is not None:
                await self.write(held, headers)
            held = payload
        if held is not None:
            await self.write(held, headers, more)
        elif not more:
            await self.write(b"", headers, more=False)

    async def fail(
        self, error: OpenAIError, headers: Mapping[str, str], event: bytes, what: str
    ) -> None:
        """Before the first byte: ``error`` as a JSON answer with its status (and
        ``headers``). After: ``event`` (the route's own error event) ends the stream."""
        if not self.started:
            await send_error(self.send, error, headers)
            return
        log.warning("%s failed after it started: %s", what, error.message)
        await self.send({"type": "http.response.body", "body": event, "more_body": False})


async def guarded(
    receive: Receive,
    run: Callable[[], Awaitable[None]],
    fail: Callable[[OpenAIError], Awaitable[None]],
    what: str,
    *,
    limiter: asyncio.Semaphore | None = None,
    shutdown: Shutdown | None = None,
) -> None:
    """``run()`` (holding a ``limiter`` slot, when given) until it ends, the client leaves or
    the shutdown grace period is over (:func:`cancelled_on_disconnect`). Every failure reaches
    ``fail``: an OpenAIError as it is, a bug of ours logged and as :func:`internal_error`, a
    shutdown as :func:`~codex_proxy.translate.errors.shutting_down`."""
    async with cancelled_on_disconnect(receive, shutdown) as watch:
        try:
            async with limiter or contextlib.nullcontext():
                await run()
        except OpenAIError as error:
            await fail(error)
        except Exception:
            log.exception("%s failed", what)
            await fail(internal_error())
    if watch.shutting_down:
        await fail(shutting_down())


class Watch:
    """What ended the body of :func:`cancelled_on_disconnect` early, if anything."""

    __slots__ = ("gone", "shutting_down")

    def __init__(self) -> None:
        self.gone = False  # the client went away
        self.shutting_down = False  # the gateway is stopping and the grace period is over


@contextlib.asynccontextmanager
async def cancelled_on_disconnect(
    receive: Receive, shutdown: Shutdown | None = None
) -> AsyncIterator[Watch]:
    """Runs the body of the ``async with`` until it ends, the client goes away, or the
    gateway's shutdown grace period is over, whichever comes first; the last two cancel the
    body (and so its upstream requests) silently. After a shutdown the caller answers with
    :func:`~codex_proxy.translate.errors.shutting_down` (``watch.shutting_down``).

    Only for handlers that have read the whole request body already. Plain asyncio (one
    watcher task, a cancel of this task) rather than a task group: this wraps every request,
    and an anyio task group and its cancel scopes cost several percent of one.
    """
    task = asyncio.current_task()
    assert task is not None
    watch = Watch()

    async def watch_client() -> None:
        """The request body is already read, so the next message is the client leaving."""
        while (await receive())["type"] != "http.disconnect":
            pass
        watch.gone = True
        task.cancel()

    def end() -> None:
        if not watch.gone:
            watch.shutting_down = True
            task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch_client())
    undo = shutdown.on_end(end) if shutdown is not None else None
    try:
        yield watch
    except asyncio.CancelledError:
        if not (watch.gone or watch.shutting_down):
            raise  # cancelled from elsewhere: not ours to swallow
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+: the cancel is handled
        if uncancel is not None:
            uncancel()
    finally:
        # No await between the body's end and here, so the watchers cannot cancel us later.
        watcher.cancel()
        if undo is not None:
            undo()


async def _reported(items: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The upstream's events, where any failure to read them is an OpenAIError (a 502 before
    the first byte, an ``error`` event after) and a log line, never a silent end."""
    try:
        async with aclosing(items):
            async for item in items:
                yield item
    except OpenAIError:
        raise
    except Exception as exc:
        log.exception("reading the upstream answer failed")
        raise stream_failed(type(exc).__name__, str(exc)) from None


async def with_ticks(
    batches: AsyncIterator[list[dict[str, Any]]], interval: float
) -> AsyncIterator[list[dict[str, Any]] | object]:
    """The upstream events in lists, with a ``TICK`` whenever ``interval`` passes without any.

    A reader task fills a small channel so that the wait for the next event can time out
    without cancelling a read in the middle of the upstream connection. Every batch already
    waiting goes out as one list, so a client that reads slower than the upstream writes gets
    fewer, larger writes.
    """
    loop = asyncio.get_running_loop()
    channel = _Channel(loop, limit=64)

    async def pump() -> None:
        try:
            async for batch in batches:
                await channel.put(batch)
            await channel.put(_END)
        except Exception as error:  # every failure reaches the relay: a silent end would hang it
            await channel.put(error)

    reader = loop.create_task(pump())
    try:
        while True:
            if not await channel.wait(interval):
                yield TICK
                continue
            merged: list[dict[str, Any]] = []
            last: Any = None  # the end or an error, which comes after every batch
            for item in channel.take_all():
                if isinstance(item, list):
                    merged += item
                else:
                    last = item
            if merged:
                yield merged
            if last is _END:
                return
            if last is not None:
                raise last
    finally:
        reader.cancel()
        await asyncio.wait([reader])  # the upstream stream is closed before we go on


class _Channel:
    """A bounded hand-over from the reader task to the relay: like an ``asyncio.Queue`` whose
    wait can time out without a task or a cancel scope (it runs once per upstream read)."""

    __slots__ = ("_getter", "_items", "_limit", "_loop", "_putter")

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._loop = loop
        self._limit = limit
        self._items: deque[Any] = deque()
        self._getter: asyncio.Future[bool] | None = None
        self._putter: asyncio.Future[None] | None = None

    async def put(self, item: Any) -> None:
        while len(self._items) >= self._limit:
            self._putter = self._loop.create_future()
            await self._putter
        self._items.append(item)
        if self._getter is not None and not self._getter.done():
            self._getter.set_result(True)

    async def wait(self, timeout: float) -> bool:
        """Whether something waits to be taken, after at most ``timeout`` seconds."""
        if self._items:
            return True
        getter = self._getter = self._loop.create_future()
        timer = self._loop.call_later(timeout, _resolve, getter)
        try:
            await getter
        finally:
            timer.cancel()
            self._getter = None
        return bool(self._items)

    def take_all(self) -> list[Any]:
        items = list(self._items)
        self._items.clear()
        if self._putter is not None and not self._putter.done():
            self._putter.set_result(None)
        return items


def _resolve(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)
