"""The bytes SSE decoder reads every stream exactly as httpx-sse does, however it is split."""

from __future__ import annotations

import pytest
from httpx_sse._decoders import SSEDecoder as TextDecoder
from httpx_sse._decoders import SSELineDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_proxy.config import load_settings
from codex_proxy.upstream.sse import EventTooLarge, SSEDecoder

LINES = st.sampled_from(
    [
        "event: response.output_text.delta",
        'data: {"type":"x","delta":"hé"}',
        "data:no-space",
        "data",
        "data: ",
        ": keep-alive",
        "id: 7",
        "id: a\0b",
        "retry: 1000",
        "retry: -3",
        "retry: soon",
        "event",
        "other: field",
        "",
        "data: [DONE]",
    ]
)
ENDS = st.sampled_from(["\n", "\r\n", "\r"])


def reference(text: str) -> list[tuple[str, str]]:
    """What httpx-sse makes of the whole text (its event name, its data)."""
    lines, decoder, out = SSELineDecoder(), TextDecoder(), []
    for line in [*lines.decode(text), *lines.flush()]:
        sse = decoder.decode(line.rstrip("\n"))
        if sse is not None:
            out.append((sse.event, sse.data))
    return out


def ours(raw: bytes, cuts: list[int]) -> list[tuple[str, str]]:
    decoder, out, start = SSEDecoder(), [], 0
    for cut in [*sorted(cuts), len(raw)]:
        for name, data in decoder.feed(raw[start:cut]):
            out.append((name or "message", bytes(data).decode()))
        start = cut
    return out


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(LINES, ENDS), max_size=30),
    st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_same_events_as_httpx_sse(lines: list[tuple[str, str]], cuts: list[int]) -> None:
    text = "".join(line + end for line, end in lines)
    raw = text.encode()
    assert ours(raw, [c for c in cuts if c <= len(raw)]) == reference(text)


def test_huge_line_in_many_pieces() -> None:
    payload = b"A" * 3_000_000
    raw = b"event: big\ndata: " + payload + b"\n\n"
    decoder = SSEDecoder()
    events = []
    for i in range(0, len(raw), 65536):
        events += decoder.feed(raw[i : i + 65536])
    assert [(name, bytes(data)) for name, data in events] == [("big", payload)]


def test_an_event_over_the_limit_raises() -> None:
    """The limit counts a line still arriving and an event's data lines together."""
    decoder = SSEDecoder(max_bytes=100)
    assert decoder.feed(b"data: " + b"a" * 90 + b"\n\n") == [("", b"a" * 90)]
    with pytest.raises(EventTooLarge):
        for _ in range(20):
            decoder.feed(b"b" * 10)  # one line that never ends
    decoder = SSEDecoder(max_bytes=100)
    decoder.feed(b"data: " + b"c" * 60 + b"\n")
    with pytest.raises(EventTooLarge):
        decoder.feed(b"data: " + b"d" * 60 + b"\n")
    assert SSEDecoder().feed(b"data: " + b"e" * 10_000 + b"\n\n")[0][1] == b"e" * 10_000


def test_max_event_setting() -> None:
    assert load_settings(environ={}).max_event_mb == 64
    assert load_settings(environ={"CODEX_MAX_EVENT_MB": "8"}).max_event_mb == 8
