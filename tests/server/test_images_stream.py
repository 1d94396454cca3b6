"""Streaming partial images end to end: ``images.generate(stream=True)`` and
``images.edit(stream=True)`` with the openai SDK against the gateway and the fake upstream."""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from PIL import Image

from codex_proxy.mock.events import ResponseScript
from codex_proxy.mock.images import render_image
from codex_proxy.mock.server import FakeUpstream, Gate, Pause, RawData, Reply, encode_event
from codex_proxy.server.images_stream import AHEAD_BYTES, WriteWindow, read_ahead
from codex_proxy.upstream.sse import Cut

from ..conftest import Gateway, wait_for


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_generate_streams_partials_then_the_image(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    stream = client.images.generate(
        prompt="Draw a fox", stream=True, partial_images=2, size="96x64", quality="low"
    )
    events = list(stream)
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    partials, completed = events[:2], events[2]
    assert [p.partial_image_index for p in partials] == [0, 1]  # type: ignore[union-attr]
    for partial in partials:
        assert decode(partial.b64_json).format == "PNG"
        assert (partial.size, partial.quality, partial.output_format) == ("96x64", "low", "png")
        assert partial.background == "auto"
        assert isinstance(partial.created_at, int)
    image = decode(completed.b64_json)
    assert (image.format, image.size) == ("PNG", (96, 64))
    assert (completed.size, completed.quality, completed.background) == ("96x64", "low", "opaque")
    assert completed.usage.input_tokens > 0  # type: ignore[union-attr]
    assert completed.usage.input_tokens_details.text_tokens == 0  # type: ignore[union-attr]
    assert upstream.images_requests == []  # only the tool streams partial images
    tool = upstream.responses_requests[-1].body["tools"][0]
    assert tool["partial_images"] == 2


def test_edit_streams_edit_events(
    client: openai.OpenAI, upstream: FakeUpstream, tmp_path: Path
) -> None:
    (tmp_path / "a.png").write_bytes(render_image(32, 32))
    with open(tmp_path / "a.png", "rb") as image:
        stream = client.images.edit(
            image=image, prompt="Add a hat", stream=True, partial_images=1, size="64x48"
        )
        events = list(stream)
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert events[0].partial_image_index == 0  # type: ignore[union-attr]
    assert decode(events[1].b64_json).size == (64, 48)
    body = upstream.responses_requests[-1].body
    assert body["tools"][0]["action"] == "edit"
    assert body["tools"][0]["partial_images"] == 1
    assert body["input"][0]["content"][1]["type"] == "input_image"


def test_configured_partial_images_is_the_default(make_gateway, upstream: FakeUpstream) -> None:
    gw = make_gateway(image_options={"output_format": "png", "partial_images": 3})
    events = list(gw.client().images.generate(prompt="Draw", stream=True, size="64x64"))
    assert [getattr(e, "partial_image_index", None) for e in events] == [0, 1, 2, None]


def test_async_client_and_n_images_in_order(make_gateway, upstream: FakeUpstream) -> None:
    import asyncio

    gw = make_gateway()

    async def run() -> list:
        client = gw.async_client()
        stream = await client.images.generate(
            prompt="Draw", stream=True, partial_images=1, n=2, size="64x64"
        )
        return [event async for event in stream]

    events = asyncio.run(run())
    assert [e.type.rsplit(".", 1)[1] for e in events] == [
        "partial_image",
        "completed",
        "partial_image",
        "completed",
    ]
    assert len(upstream.responses_requests) == 2


def image_script(pause: float = 0, partials: int = 1) -> list:
    s = ResponseScript()
    s.start()
    head = list(s.events)
    s.image(
        b64(render_image(40, 40, seed=1)),
        partials=[b64(render_image(8, 8, seed=i)) for i in range(partials)],
        size="40x40",
    )
    s.completed()
    # the pause falls after the partial image, while the final image is "generating"
    cut = len(head) + 3 + partials
    return [*s.events[:cut], *([Pause(pause)] if pause else []), *s.events[cut:]]


def test_keepalives_during_silences(make_gateway, upstream: FakeUpstream) -> None:
    gw: Gateway = make_gateway(sse_keepalive_seconds=0.1)
    upstream.enqueue(Reply(events=image_script(pause=0.5)))
    body = {"prompt": "x", "stream": True, "partial_images": 1}
    with httpx.stream("POST", f"{gw.url}/v1/images/generations", json=body, timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines.count(": keep-alive") >= 2
    kinds = [line[7:] for line in lines if line.startswith("event: ")]
    assert kinds == ["image_generation.partial_image", "image_generation.completed"]
    first_keepalive = lines.index(": keep-alive")
    assert lines.index("event: image_generation.partial_image") < first_keepalive


def test_upstream_failure_before_any_event_is_a_status(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    s = ResponseScript()
    s.start()
    s.failed("content_policy_violation", "Rejected by the safety system.")
    upstream.enqueue(Reply(events=s.events))
    with pytest.raises(openai.BadRequestError) as info:
        list(client.images.generate(prompt="x", stream=True))
    assert info.value.code == "content_policy_violation"


def test_upstream_failure_mid_stream_is_an_error_event(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    s = ResponseScript()
    s.start()
    events = image_script(partials=1)
    cut = next(i for i, e in enumerate(events) if e["type"].endswith("partial_image")) + 1
    s.failed("server_error", "The image model crashed.")
    upstream.enqueue(Reply(events=[*events[:cut], s.events[-1]]))
    seen = []
    with pytest.raises(openai.APIError) as info:
        for event in client.images.generate(prompt="x", stream=True, partial_images=1):
            seen.append(event.type)
    assert seen == ["image_generation.partial_image"]
    assert "The image model crashed." in info.value.message


def test_error_event_shape(gateway: Gateway, upstream: FakeUpstream) -> None:
    events = image_script(partials=1)
    cut = next(i for i, e in enumerate(events) if e["type"].endswith("partial_image")) + 1
    upstream.enqueue(Reply(events=events[:cut]))  # the upstream stops without an end
    body = {"prompt": "x", "stream": True, "partial_images": 1}
    response = httpx.post(f"{gateway.url}/v1/images/generations", json=body, timeout=10)
    assert response.status_code == 200
    last = response.text.strip().split("\n\n")[-1]
    name, data = last.split("\n")
    assert name == "event: error"
    error = orjson.loads(data[6:])
    assert error["type"] == "error"
    assert error["error"]["code"] == "upstream_stream_truncated"


def test_client_leaving_cancels_the_upstream_call(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=image_script(pause=10)))
    before = upstream.disconnects
    body = {"prompt": "x", "stream": True, "partial_images": 1}
    with httpx.stream("POST", f"{gateway.url}/v1/images/generations", json=body, timeout=10) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                break  # the partial image arrived; leave while the final one "generates"
    closed_at = time.monotonic()
    assert wait_for(lambda: upstream.disconnects >= before + 1)
    assert time.monotonic() - closed_at < 3
    assert wait_for(lambda: upstream.open_streams == 0)


def test_a_whole_event_is_read_only_after_everything_before_was_written() -> None:
    """After a batch with a whole event the next one is read only once the writer caught up,
    and the written batch is emptied: the keep-alive pump holds no 20 MB image while the next
    arrives."""
    import asyncio

    async def run() -> None:
        pulled: list[int] = []

        async def source():  # type: ignore[no-untyped-def]
            for n in range(2):
                pulled.append(n)
                yield [{"n": n}]

        window = WriteWindow()
        batches = read_ahead(source(), window)
        first = await batches.__anext__()
        assert (first, pulled) == ([{"n": 0}], [0])
        following = asyncio.ensure_future(batches.__anext__())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not following.done() and pulled == [0]
        window.written(1, 0)
        assert await following == [{"n": 1}]
        assert (first, pulled) == ([], [0, 1])
        window.written(1, 0)
        with pytest.raises(StopAsyncIteration):
            await batches.__anext__()

    asyncio.run(run())


def test_image_pieces_are_read_ahead_up_to_a_limit() -> None:
    """Pieces of a cut-through image are read on while the writer is less than
    ``AHEAD_BYTES`` behind, then only as it catches up."""
    import asyncio

    piece = b"A" * (AHEAD_BYTES // 4)

    async def run() -> None:
        pulled: list[int] = []

        async def source():  # type: ignore[no-untyped-def]
            for n in range(8):
                pulled.append(n)
                yield [Cut("", None, piece)]

        window = WriteWindow()
        batches = read_ahead(source(), window)
        handed = [await batches.__anext__() for _ in range(5)]  # 5 of 4: over by one
        following = asyncio.ensure_future(batches.__anext__())
        for _ in range(5):
            await asyncio.sleep(0)
        assert not following.done() and pulled == [0, 1, 2, 3, 4]
        assert window.bytes == 5 * len(piece)
        window.written(5, 5 * len(piece))
        handed.append(await following)
        assert pulled == [0, 1, 2, 3, 4, 5] and len(handed) == 6

    asyncio.run(run())


def cut_through_script(partial: bytes, gate: Gate, tail: list | None = None) -> list:
    """A stream whose one partial image (``partial``, about 1 MB so the gateway cuts it
    through) arrives in 64 KB writes with ``gate`` after the first 256 KB of its line, and
    every ``/`` of its base64 JSON-escaped as ``\\/`` (legal, and a slice may end between
    the two). ``tail`` replaces what follows the gate (for malformed lines)."""
    s = ResponseScript()
    s.start()
    s.image(b64(render_image(40, 40, seed=1)), partials=[b64(partial)], size="40x40")
    s.completed()
    at = next(i for i, e in enumerate(s.events) if e["type"].endswith("partial_image"))
    line = encode_event(s.events[at]).replace(b"/", b"\\/")
    step = 64 * 1024
    pieces = [RawData(line[i : i + step]) for i in range(0, 4 * step, step)]
    rest = [RawData(line[i : i + step]) for i in range(4 * step, len(line), step)]
    return [*s.events[:at], *pieces, gate, *(rest if tail is None else tail), *s.events[at + 1 :]]


def read_until(chunks, marker: bytes) -> bytes:  # type: ignore[no-untyped-def]
    got = b""
    for chunk in chunks:
        got += chunk
        if marker in got:
            return got
    raise AssertionError(f"the stream ended before {marker[:40]!r}")


def test_partial_image_passes_through_while_its_line_arrives(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    partial = os.urandom(768 * 1024)
    encoded = b64(partial).encode()
    gate = Gate()
    upstream.enqueue(Reply(events=cut_through_script(partial, gate)))
    body = {"prompt": "x", "stream": True, "partial_images": 1}
    with httpx.stream("POST", f"{gateway.url}/v1/images/generations", json=body, timeout=10) as r:
        chunks = r.iter_raw()
        got = read_until(chunks, b'"b64_json":"' + encoded[:100_000])
        # the upstream is held mid-line until now: these bytes came before its line ended
        assert not gate.passed.is_set()
        gate.opened.set()
        got += b"".join(chunks)
    assert not gate.timed_out.is_set()
    messages = [m.split(b"\n", 1) for m in got.strip().split(b"\n\n")]
    assert [m[0] for m in messages] == [
        b"event: image_generation.partial_image",
        b"event: image_generation.completed",
    ]
    event = orjson.loads(messages[0][1].removeprefix(b"data: "))
    assert base64.b64decode(event["b64_json"]) == partial
    assert event["partial_image_index"] == 0
    assert list(event) == [
        "type",
        "b64_json",
        "partial_image_index",
        "size",
        "quality",
        "background",
        "output_format",
        "created_at",
    ]
    completed = orjson.loads(messages[1][1].removeprefix(b"data: "))
    assert decode(completed["b64_json"]).size == (40, 40)


def test_cut_through_image_with_the_sdk(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    partial = os.urandom(768 * 1024)
    gate = Gate()
    gate.opened.set()
    upstream.enqueue(Reply(events=cut_through_script(partial, gate)))
    events = list(client.images.generate(prompt="x", stream=True, partial_images=1))
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert base64.b64decode(events[0].b64_json) == partial  # type: ignore[union-attr]


def test_bad_base64_mid_image_is_an_error(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    gate = Gate()
    gate.opened.set()
    tail = [RawData(b"AAAA!AAAA"), RawData(b'","partial_image_index":0}\n\n')]
    upstream.enqueue(Reply(events=cut_through_script(os.urandom(768 * 1024), gate, tail)))
    with pytest.raises(openai.APIError) as info:
        list(client.images.generate(prompt="x", stream=True, partial_images=1))
    assert "malformed" in info.value.message


def test_bad_base64_mid_image_raw_stream(gateway: Gateway, upstream: FakeUpstream) -> None:
    """The half-sent partial event is closed as valid JSON that carries the error (never a
    truncated image), then the usual error event ends the stream."""
    gate = Gate()
    gate.opened.set()
    tail = [RawData(b"AAAA\\u0041AAAA"), RawData(b'","partial_image_index":0}\n\n')]
    upstream.enqueue(Reply(events=cut_through_script(os.urandom(768 * 1024), gate, tail)))
    body = {"prompt": "x", "stream": True, "partial_images": 1}
    response = httpx.post(f"{gateway.url}/v1/images/generations", json=body, timeout=10)
    messages = [m.split(b"\n", 1) for m in response.content.strip().split(b"\n\n")]
    assert [m[0] for m in messages] == [b"event: image_generation.partial_image", b"event: error"]
    closed = orjson.loads(messages[0][1].removeprefix(b"data: "))
    assert closed["error"]["code"] == "upstream_malformed_event"
    error = orjson.loads(messages[1][1].removeprefix(b"data: "))
    assert error["error"]["code"] == "upstream_malformed_event"


def test_client_leaving_mid_image_cancels_the_upstream_call(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    gate = Gate()
    upstream.enqueue(Reply(events=cut_through_script(os.urandom(768 * 1024), gate)))
    before = upstream.disconnects
    body = {"prompt": "x", "stream": True, "partial_images": 1}
    with httpx.stream("POST", f"{gateway.url}/v1/images/generations", json=body, timeout=10) as r:
        read_until(r.iter_raw(), b'"b64_json":"')
    assert wait_for(lambda: upstream.disconnects >= before + 1)
    assert not gate.passed.is_set()  # cancelled while held mid-line
    assert wait_for(lambda: upstream.open_streams == 0)
