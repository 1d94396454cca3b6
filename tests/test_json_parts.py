"""json_parts: the pieces always join to exactly what orjson.dumps writes."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_proxy import json_parts
from codex_proxy.json_parts import dumps_parts
from codex_proxy.relay import coalesce, encode_chunks, json_response_parts

# Text with quotes, backslashes, control characters, non-ASCII and astral characters, all of
# which JSON escaping treats differently.
TEXT = st.text(alphabet=st.sampled_from('ab"\\\n\x00\x1f/é€😀 '), max_size=40)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON, large=st.integers(0, 12), piece=st.integers(1, 7))
def test_pieces_join_to_orjson_output(value: object, large: int, piece: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_parts, "SLICE", piece)
        parts = dumps_parts(value, large=large)
    assert b"".join(parts) == orjson.dumps(value)


def test_large_string_is_cut_into_slices() -> None:
    image = "A" * (3 * json_parts.SLICE + 5)
    parts = dumps_parts({"content": image, "n": 1})
    assert b"".join(parts) == orjson.dumps({"content": image, "n": 1})
    assert max(len(part) for part in parts) <= json_parts.SLICE + len(b'"}')
    assert len(parts) == 1 + 1 + 4 + 1  # head, opening quote, four slices, closing quote + tail


def test_small_document_is_one_piece() -> None:
    assert dumps_parts({"content": "hello"}) == [b'{"content":"hello"}']


def test_text_holding_the_placeholder_is_still_encoded_exactly() -> None:
    value = ["x" * 10, json_parts._PLACEHOLDER]
    assert b"".join(dumps_parts(value, large=5)) == orjson.dumps(value)


def test_coalesce_joins_small_pieces_and_keeps_large_ones_apart() -> None:
    assert coalesce([b"ab", b"cd", b"e"], target=4) == [b"abcd", b"e"]
    assert coalesce([b"a", b"xxxxxx", b"b"], target=4) == [b"a", b"xxxxxx", b"b"]
    assert coalesce([], target=4) == []


def test_image_chunk_goes_out_in_slices_with_the_same_bytes() -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "![x](data:image/png;base64,"}}]}
    chunk["choices"][0]["delta"]["content"] += "QUJD" * json_parts.SLICE + ")"
    small = {"choices": [{"index": 0, "delta": {"content": "hi"}}]}
    writes = encode_chunks([small, chunk], b"data: [DONE]\n\n")
    expected = (
        b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in (small, chunk))
        + b"data: [DONE]\n\n"
    )
    assert b"".join(writes) == expected
    assert len(writes) > 4
    assert all(len(write) <= json_parts.SLICE + 64 for write in writes)


def test_json_answer_with_an_image_has_the_right_length_and_body() -> None:
    payload = {"choices": [{"message": {"content": "B" * (2 * json_parts.SLICE)}}]}
    start, *bodies = json_response_parts(200, payload)
    body = b"".join(message["body"] for message in bodies)
    assert body == orjson.dumps(payload)
    assert dict(start["headers"])[b"content-length"] == str(len(body)).encode()
    assert [message["more_body"] for message in bodies] == [True] * (len(bodies) - 1) + [False]
