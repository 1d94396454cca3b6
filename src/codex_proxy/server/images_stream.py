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
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import aclosing
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from codex_proxy._json import dumps_parts
from codex_proxy.server.relay import (
    _TICK,  # the keep-alive machinery is the chat relay's own, shared on purpose
    KEEPALIVE,
    SSE_HEADERS,
    _start_event_stream,
    _with_ticks,
    cancelled_on_disconnect,
    coalesce,
    internal_error,
    send_error,
)
from codex_proxy.translate.aggregate import ChatCompletionBuilder
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.images_api import ImageCollector, ImageRequest, no_image_error
from codex_proxy.translate.images_stream import ImageEventTranslator
from codex_proxy.upstream.auth import AuthProvider
from codex_proxy.upstream.client import UpstreamClient

log = logging.getLogger("codex_proxy")

_TERMINAL = frozenset({"response.completed", "response.incomplete"})


def encode_events(events: list[dict[str, Any]]) -> Iterator[bytes]:
    """Events as ``event:``/``data:`` SSE messages, in writes of about a slice: a 20 MB image
    is encoded in slices, never copied whole."""

    def pieces() -> Iterator[bytes]:
        for event in events:
            yield b"event: " + event["type"].encode() + b"\ndata: "
            yield from dumps_parts(event)
            yield b"\n\n"

    return coalesce(pieces())


async def one_at_a_time(
    batches: AsyncIterator[list[dict[str, Any]]], written: asyncio.Event
) -> AsyncIterator[list[dict[str, Any]]]:
    """The upstream's batches, the next one read only once ``written`` says the last one went
    out, and then emptied. Without this the keep-alive pump reads ahead while a slow client
    takes a 20 MB partial image, and every partial and the final image are in memory at once;
    emptying the batch here drops the references the pump and its channel still hold."""
    async for batch in batches:
        written.clear()
        yield batch
        await written.wait()
        batch.clear()


def _translate(
    batch: list[dict[str, Any]],
    translator: ImageEventTranslator,
    builder: ChatCompletionBuilder,
    out: list[dict[str, Any]],
    usage: list[Any],
) -> None:
    """One batch of upstream events: partial image events into ``out``, everything into the
    builder, the last usage into ``usage[0]``. A function of its own so that no loop variable
    keeps a 20 MB event alive while the next one is read."""
    for event in batch:
        partial = translator.feed(event)
        if partial is not None:
            out.append(partial)
        builder.feed(event)
        if event.get("type") in _TERMINAL:
            response = event.get("response")
            found = response.get("usage") if isinstance(response, dict) else None
            usage[0] = found or usage[0]


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
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with cancelled_on_disconnect(receive):
            try:
                creds = await self.auth.credentials()
                async with self.limiter:
                    for _ in range(self.job.n):
                        await self._one(send, creds)
                await self._write(send, b"", {}, more=False)
            except OpenAIError as error:
                await self._fail(send, error)
            except Exception:
                log.exception("streaming image request failed")
                await self._fail(send, internal_error())

    async def _one(self, send: Send, creds: Any) -> None:
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
        written = asyncio.Event()
        async with self.client.open_stream(creds, self.body, self.session_id) as up:
            headers = {**up.headers, **SSE_HEADERS}
            ticking = _with_ticks(one_at_a_time(up.batches(), written), self.keepalive_seconds)
            async with aclosing(ticking) as items:
                async for item in items:
                    if item is _TICK:
                        await self._write(send, KEEPALIVE, headers)
                        continue
                    out: list[dict[str, Any]] = []
                    try:
                        _translate(item, translator, builder, out, usage)
                    finally:  # what came before a failure still goes out first
                        item.clear()  # no 20 MB event is held while its partial is written
                        for piece in encode_events(out):
                            await self._write(send, piece, headers)
                        out.clear()
                        written.set()
            completion = builder.result()
        if not collector.items:
            raise no_image_error(completion)
        for piece in encode_events([translator.completed(collector.items[0], usage[0])]):
            await self._write(send, piece, headers)

    async def _write(
        self, send: Send, payload: bytes, headers: Mapping[str, str], more: bool = True
    ) -> None:
        if not self._started:
            await _start_event_stream(send, headers)
            self._started = True
        await send({"type": "http.response.body", "body": payload, "more_body": more})

    async def _fail(self, send: Send, error: OpenAIError) -> None:
        """Before the first byte: a JSON error with its status. After: an ``error`` event."""
        if not self._started:
            await send_error(send, error)
            return
        log.warning("image stream failed after it started: %s", error.message)
        payload = b"event: error\ndata: " + orjson.dumps({"type": "error", **error.body()})
        await send({"type": "http.response.body", "body": payload + b"\n\n", "more_body": False})
