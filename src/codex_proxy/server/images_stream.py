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
from collections.abc import AsyncIterator, Mapping
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
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.images_api import ImageCollector, ImageRequest, no_image_error
from codex_proxy.translate.images_stream import ImageEventTranslator
from codex_proxy.upstream.auth import AuthProvider
from codex_proxy.upstream.client import UpstreamClient

_TERMINAL = frozenset({"response.completed", "response.incomplete"})


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
        written = asyncio.Event()
        async with self.client.open_stream(creds, self.body, self.session_id) as up:
            headers = {**up.headers, **SSE_HEADERS}
            ticking = with_ticks(one_at_a_time(up.batches(), written), self.keepalive_seconds)
            async with aclosing(ticking) as items:
                async for item in items:
                    if item is TICK:
                        await out.write(KEEPALIVE, headers)
                        continue
                    partials: list[dict[str, Any]] = []
                    try:
                        _translate(item, translator, builder, partials, usage)
                    finally:  # what came before a failure still goes out first
                        item.clear()  # no 20 MB event is held while its partial is written
                        await out.write_all(encode_events(partials), headers)
                        partials.clear()
                        written.set()
            completion = builder.result()
        if not collector.items:
            raise no_image_error(completion)
        completed = translator.completed(collector.items[0], usage[0])
        await out.write_all(encode_events([completed]), headers)
