"""Cut-through of large values: however the stream is split, the decoder with a cut hands
out the same events as without one, the cut value in checked pieces ahead of its event."""

from __future__ import annotations

import base64
import itertools
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_proxy.upstream.sse import Cut, EventTooLarge, SSEDecoder
from codex_proxy.upstream.sse_cut import NEVER, UNDECIDED, BadValue, LargeValueCut

KIND = "response.image_generation_call.partial_image"
CUT = LargeValueCut(frozenset({KIND}), "partial_image_b64", threshold=256, head_limit=512)


def image_line(b64: str, index_first: bool = True) -> bytes:
    """A partial image event's SSE message, its ``/`` escaped as ``\\/`` (legal JSON)."""
    loc = {"type": KIND, "item_id": "ig_1", "output_index": 1}
    fields = (
        {**loc, "partial_image_index": 2, "partial_image_b64": b64}
        if index_first
        else {**loc, "partial_image_b64": b64, "partial_image_index": 2, "size": "1x1"}
    )
    data = orjson.dumps(fields).replace(b"/", b"\\/")
    return b"event: " + KIND.encode() + b"\ndata: " + data + b"\n\n"


def parse(data: bytes | bytearray) -> object:
    return "[DONE]" if data == b"[DONE]" else orjson.loads(data)


def plain(stream: bytes) -> list[tuple[str, object]]:
    return [(name, parse(data)) for name, data in SSEDecoder().feed(stream)]


def with_cut(pieces: list[bytes], cut: LargeValueCut = CUT) -> tuple[list, int]:
    """The events the cut decoder gives, each cut value put back; and how many were cut."""
    decoder, out, value, cuts = SSEDecoder(cut=cut), [], None, 0
    for piece in pieces:
        for item in decoder.feed(piece):
            if isinstance(item, Cut):
                if item.head is not None:
                    assert value is None
                    value, cuts = b"", cuts + 1
                    assert item.head["type"] == KIND
                value += item.data
                continue
            name, data = item
            event = parse(data)
            if value is not None:
                assert isinstance(event, dict)
                assert event["partial_image_b64"] == ""
                event["partial_image_b64"] = value.decode()
                value = None
            out.append((name, event))
    assert value is None
    return out, cuts


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    return [stream[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 3000),
    seed=st.integers(0, 1 << 30),
    index_first=st.booleans(),
    end=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    points=st.lists(st.integers(0, 10_000), max_size=30),
)
def test_same_events_however_split(
    size: int, seed: int, index_first: bool, end: bytes, points: list[int]
) -> None:
    b64 = base64.b64encode(random.Random(seed).randbytes(size)).decode()
    before = b'event: a\ndata: {"type":"a"}\n\n: keep-alive\n\n'
    after = b'data: {"type":"b","n":1}\n\ndata: [DONE]\n\n'
    stream = (before + image_line(b64, index_first) + after).replace(b"\n", end)
    events, cuts = with_cut(split(stream, points))
    assert events == plain(stream.replace(end, b"\n"))
    # cut only when the line was still arriving past the threshold
    assert cuts <= 1


def test_a_large_line_in_many_reads_is_cut() -> None:
    b64 = base64.b64encode(bytes(range(256)) * 40).decode()
    stream = image_line(b64)
    pieces = [stream[i : i + 100] for i in range(0, len(stream), 100)]
    events, cuts = with_cut(pieces)
    assert cuts == 1
    assert events == plain(stream)


def test_the_cut_starts_before_the_line_ends() -> None:
    b64 = base64.b64encode(bytes(3000)).decode()
    stream = image_line(b64)
    decoder = SSEDecoder(cut=CUT)
    out = decoder.feed(stream[:1000])
    assert [type(item) for item in out] == [Cut, Cut]
    assert out[0].head["partial_image_index"] == 2 and out[0].name == KIND
    assert b64.startswith(out[1].data.decode())


@pytest.mark.parametrize(
    "head",
    [
        b'{"item_id":"x","partial_image_b64":"',  # no type before the value
        b'{"type":"other","partial_image_b64":"',  # not the event asked for
        b'{"partial_image_b64":"',  # the value first
        b'{"type":"' + KIND.encode() + b'","x":{"partial_image_b64":"',  # nested
        b'{"type":"' + KIND.encode() + b'","partial_image_b64":"","partial_image_b64":"',
        b'{"type":"' + KIND.encode() + b'","partial_image_b64":""',  # empty value
    ],
)
def test_lines_read_whole(head: bytes) -> None:
    assert CUT.start(head + b"AAAA" * 100) == NEVER


def test_start_waits_for_the_value() -> None:
    head = b'{"type":"' + KIND.encode() + b'","item_id":"ig_1",'
    assert CUT.start(head) == UNDECIDED
    assert CUT.start(head + b'"partial_image_b64":"') == UNDECIDED
    begin, parsed = CUT.start(head + b'"partial_image_b64":"QQ')  # type: ignore[misc]
    assert begin == len(head) + len(b'"partial_image_b64":"')
    assert parsed == {"type": KIND, "item_id": "ig_1"}
    assert CUT.start(b"{" + b" " * 600) == NEVER  # past the head limit


@pytest.mark.parametrize("bad", [b"AA!A", b"AA\\nA", b"AA\\u0041", b"AA\\\\", b"A A", b"\xc3\xa9"])
def test_pieces_are_base64(bad: bytes) -> None:
    with pytest.raises(BadValue):
        LargeValueCut.piece(bad, b"")


def test_an_escape_split_between_pieces() -> None:
    data, carry = LargeValueCut.piece(b"AB\\", b"")
    assert (data, carry) == (b"AB", b"\\")
    assert LargeValueCut.piece(b"/CD", carry) == (b"/CD", b"")
    with pytest.raises(BadValue):
        LargeValueCut.piece(b"nCD", carry)


def test_bad_base64_fails_the_stream() -> None:
    stream = image_line(base64.b64encode(bytes(3000)).decode())
    bad = stream[:2000] + b"!" + stream[2001:]
    decoder = SSEDecoder(cut=CUT)
    decoder.feed(bad[:1000])
    with pytest.raises(BadValue):
        decoder.feed(bad[1000:])


def test_an_escaped_quote_ends_nothing() -> None:
    head = b'data: {"type":"' + KIND.encode() + b'","partial_image_b64":"'
    decoder = SSEDecoder(cut=CUT)
    decoder.feed(head + b"A" * 500)
    with pytest.raises(BadValue):
        decoder.feed(b'AA\\"}\n\n')


def test_the_limit_counts_the_value_passed_on() -> None:
    stream = image_line(base64.b64encode(bytes(3000)).decode())
    decoder = SSEDecoder(max_bytes=2000, cut=CUT)
    with pytest.raises(EventTooLarge):
        for i in range(0, len(stream), 300):
            decoder.feed(stream[i : i + 300])
    # the same limit as without a cut
    with pytest.raises(EventTooLarge):
        plain_decoder = SSEDecoder(max_bytes=2000)
        for i in range(0, len(stream), 300):
            plain_decoder.feed(stream[i : i + 300])
