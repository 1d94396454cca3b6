"""``stream: true`` on ``/v1/images/generations`` and ``/v1/images/edits``: partial images as
they are drawn, then the finished image, as the public API's SSE events.

Only the image tool streams partial images, so this always takes the tool route: one Responses
call per image (one after another, so the ``n`` images arrive in order), each event fed to the
same :class:`ChatCompletionBuilder` as a non-streaming call (failures map to the same errors)
and to :class:`ImageEventTranslator` (partial images out). Keep-alive comments fill upstream
silences and a client that leaves cancels the upstream call, as in ``server/relay.py``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import aclosing
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from codex_proxy.server.relay import (
    KEEPALIVE,
    SSE_HEADERS,
    TICK,
    EventStream,
    encode_events,
    guarded,
    with_ticks,
)
from codex_proxy.translate.aggregate import ChatCompletionBuilder
from codex_proxy.translate.errors import OpenAIError, malformed_event
from codex_proxy.translate.images_api import ImageCollector, ImageRequest, no_image_error
from codex_proxy.translate.images_stream import PARTIAL_EVENT, ImageEventTranslator
from codex_proxy.upstream.auth import AuthProvider
from codex_proxy.upstream.client import UpstreamClient
from codex_proxy.upstream.sse import Cut
from codex_proxy.upstream.sse_cut import LargeValueCut

_TERMINAL = frozenset({"response.completed", "response.incomplete"})


AHEAD_BYTES = 1024 * 1024
"""How much of a cut-through image the upstream reader may have read that the client was not
yet sent. Reading the next piece while the last one is written keeps the stream moving; a
whole event (a final image of 20 MB) is never read ahead."""


class WriteWindow:
    """What the upstream reader handed on that the writer has not written yet."""

    __slots__ = ("_drained", "bytes", "items")

    def __init__(self) -> None:
        self.items = 0
        self.bytes = 0  # of cut-through pieces among them
        self._drained = asyncio.Event()
        self._drained.set()

    def handed(self, batch: list[Any]) -> bool:
        """Count ``batch`` in; whether the reader must wait for the writer before reading on
        (the batch holds a whole event, or too much is unwritten)."""
        self.items += len(batch)
        self._drained.clear()
        whole = False
        for item in batch:
            if type(item) is Cut:
                self.bytes += len(item.data)
            else:
                whole = True
        return whole or self.bytes > AHEAD_BYTES

    def written(self, items: int, size: int) -> None:
        """``items`` more went out, ``size`` bytes of pieces among them."""
        self.items -= items
        self.bytes -= size
        if not self.items:
            self._drained.set()

    async def drained(self) -> None:
        await self._drained.wait()


async def read_ahead(
    batches: AsyncIterator[list[Any]], window: WriteWindow
) -> AsyncIterator[list[Any]]:
    """The upstream's batches, read on while the writer is less than :data:`AHEAD_BYTES` of
    image pieces behind; after a batch with a whole event, only once everything was written,
    and that batch then emptied. Without this the keep-alive pump reads on while a slow client
    takes a 20 MB partial image, and every partial and the final image are in memory at once;
    emptying the batch drops the references the pump and its channel still hold."""
    async for batch in batches:
        wait = window.handed(batch)
        yield batch
        if wait:
            await window.drained()
            batch.clear()


PARTIAL_CUT = LargeValueCut(frozenset({PARTIAL_EVENT}), "partial_image_b64")
"""A partial image's base64 is passed on while its upstream line still arrives."""


class OpenImage:
    """Whether a partial image event is half written (its head and some base64 are out):
    a failure then has to close it before the error event."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = False


def _translate(
    batch: list[Any],
    translator: ImageEventTranslator,
    builder: ChatCompletionBuilder,
    out: list[Any],
    usage: list[Any],
    image: OpenImage,
) -> int:
    """One batch of upstream items: what to write into ``out`` in order (partial image
    events as dicts, the pieces of a cut-through partial image as bytes), every event into
    the builder, the last usage into ``usage[0]``; the bytes of pieces in the batch. A
    function of its own so that no loop variable keeps a 20 MB event alive while the next one
    is read."""
    pieces = 0
    for event in batch:
        if type(event) is Cut:
            if event.head is not None:
                image.open = True
                out.append(_event_line(translator) + translator.partial_head())
            if event.data:
                out.append(event.data)
                pieces += len(event.data)
            continue
        if image.open:  # the event whose image went out in pieces, with that image empty
            if event.get("type") != PARTIAL_EVENT or event.get("partial_image_b64") != "":
                raise malformed_event("a partial image event changed after its image was sent")
            out.append(translator.partial_tail(event) + b"\n\n")
            image.open = False
        else:
            partial = translator.feed(event)
            if partial is not None:
                out.append(partial)
        builder.feed(event)
        if event.get("type") in _TERMINAL:
            response = event.get("response")
            found = response.get("usage") if isinstance(response, dict) else None
            usage[0] = found or usage[0]
    return pieces


def _event_line(translator: ImageEventTranslator) -> bytes:
    return b"event: " + translator.prefix.encode() + b".partial_image\ndata: "


def _writes(items: list[Any]) -> Iterator[bytes]:
    """The writes for :func:`_translate`'s items: events encoded (an image in slices),
    pieces as they are."""
    for item in items:
        if type(item) is bytes:
            yield item
        else:
            yield from encode_events([item])


class ImageStreamRun:
    """One streaming Images API call, already validated: an ASGI app."""

    def __init__(
        self,
        *,
        client: UpstreamClient,
        auth: AuthProvider,
        job: ImageRequest,
        body: Mapping[str, Any],
        session_id: str,
        keepalive_seconds: float,
        limiter: asyncio.Semaphore,
    ) -> None:
        self.client = client
        self.auth = auth
        self.job = job
        self.body = body
        self.session_id = session_id
        self.keepalive_seconds = keepalive_seconds
        self.limiter = limiter
        self.image = OpenImage()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        out = EventStream(send)

        async def run() -> None:
            creds = await self.auth.credentials()
            async with self.limiter:
                for _ in range(self.job.n):
                    await self._one(out, creds)
            await out.write(b"", {}, more=False)

        async def fail(error: OpenAIError) -> None:
            event = b"event: error\ndata: " + orjson.dumps({"type": "error", **error.body()})
            if self.image.open:  # the half-sent partial image ends as an error, not an image
                closing = b'","error":' + orjson.dumps(error.body()["error"]) + b"}\n\n"
                event = closing + event
                self.image.open = False
            await out.fail(error, {}, event + b"\n\n", "image stream")

        await guarded(receive, run, fail, "streaming image request")

    async def _one(self, out: EventStream, creds: Any) -> None:
        """One image: its partial events as they come, then its completed event."""
        translator = ImageEventTranslator(self.job, int(time.time()))
        collector = ImageCollector()
        builder = ChatCompletionBuilder(
            completion_id="img-" + uuid.uuid4().hex,
            created=int(time.time()),
            model=str(self.body.get("model")),
            image_renderer=collector,
        )
        usage: list[Any] = [None]
        window = WriteWindow()
        async with self.client.open_stream(creds, self.body, self.session_id) as up:
            headers = {**up.headers, **SSE_HEADERS}
            batches = read_ahead(up.cut_batches(PARTIAL_CUT), window)
            ticking = with_ticks(batches, self.keepalive_seconds)
            async with aclosing(ticking) as items:
                async for item in items:
                    if item is TICK:
                        if not self.image.open:  # a comment inside a data line would break it
                            await out.write(KEEPALIVE, headers)
                        continue
                    writes: list[Any] = []
                    handed, pieces = len(item), 0
                    try:
                        pieces = _translate(item, translator, builder, writes, usage, self.image)
                    finally:  # what came before a failure still goes out first
                        item.clear()  # no 20 MB event is held while its partial is written
                        await out.write_all(_writes(writes), headers)
                        writes.clear()
                        window.written(handed, pieces)
            completion = builder.result()
        if not collector.items:
            raise no_image_error(completion)
        completed = translator.completed(collector.items[0], usage[0])
        await out.write_all(encode_events([completed]), headers)
