"""_json: the pieces always join to exactly what orjson.dumps writes."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_proxy import _json as json_parts
from codex_proxy._json import dumps_parts, loads_large
from codex_proxy.server.relay import coalesce, encode_chunks, json_response_parts

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
        parts = list(dumps_parts(value, large=large))
    assert b"".join(parts) == orjson.dumps(value)


def test_large_string_is_cut_into_slices() -> None:
    image = "A" * (3 * json_parts.SLICE + 5)
    parts = list(dumps_parts({"content": image, "n": 1}))
    assert b"".join(parts) == orjson.dumps({"content": image, "n": 1})
    assert max(len(part) for part in parts) <= json_parts.SLICE + len(b'"}')
    assert len(parts) == 1 + 1 + 4 + 1  # head, opening quote, four slices, closing quote + tail


def test_small_document_is_one_piece() -> None:
    assert list(dumps_parts({"content": "hello"})) == [b'{"content":"hello"}']


def test_text_holding_the_placeholder_is_still_encoded_exactly() -> None:
    value = ["x" * 10, json_parts._PLACEHOLDER]
    assert b"".join(dumps_parts(value, large=5)) == orjson.dumps(value)


def test_coalesce_joins_small_pieces_and_keeps_large_ones_apart() -> None:
    assert list(coalesce([b"ab", b"cd", b"e"], target=4)) == [b"abcd", b"e"]
    assert list(coalesce([b"a", b"xxxxxx", b"b"], target=4)) == [b"a", b"xxxxxx", b"b"]
    assert list(coalesce([], target=4)) == []


def test_image_chunk_goes_out_in_slices_with_the_same_bytes() -> None:
    chunk = {"choices": [{"index": 0, "delta": {"content": "![x](data:image/png;base64,"}}]}
    chunk["choices"][0]["delta"]["content"] += "QUJD" * json_parts.SLICE + ")"
    small = {"choices": [{"index": 0, "delta": {"content": "hi"}}]}
    writes = list(encode_chunks([small, chunk], b"data: [DONE]\n\n"))
    expected = (
        b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in (small, chunk))
        + b"data: [DONE]\n\n"
    )
    assert b"".join(writes) == expected
    assert len(writes) > 4
    assert all(len(write) <= json_parts.SLICE + 64 for write in writes)


def test_json_answer_with_an_image_is_sent_in_slices_without_a_length() -> None:
    payload = {"choices": [{"message": {"content": "B" * (2 * json_parts.SLICE)}}]}
    start, *bodies = json_response_parts(200, payload)
    assert b"".join(message["body"] for message in bodies) == orjson.dumps(payload)
    assert b"content-length" not in dict(start["headers"])  # chunked: the size is not known
    assert len(bodies) > 2
    assert [message["more_body"] for message in bodies] == [True] * (len(bodies) - 1) + [False]


def test_small_json_answer_is_one_body_with_its_length() -> None:
    start, body = json_response_parts(400, {"error": {"message": "no"}})
    assert dict(start["headers"])[b"content-length"] == str(len(body["body"])).encode()
    assert body == {"type": "http.response.body", "body": body["body"], "more_body": False}


IMAGE_DOC = st.recursive(
    JSON,
    lambda inner: (
        st.dictionaries(
            st.sampled_from(["result", "partial_image_b64", "type", 'x"result']), inner, max_size=4
        )
        | st.lists(inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(value=IMAGE_DOC, large=st.integers(0, 6), indent=st.booleans())
def test_loads_large_reads_what_orjson_reads(value: object, large: int, indent: bool) -> None:
    raw = orjson.dumps(value, option=orjson.OPT_INDENT_2 if indent else 0)
    assert loads_large(raw, large=large) == orjson.loads(raw)


def test_loads_large_takes_the_image_out_without_the_parser() -> None:
    image = "QUJD" * 1000
    raw = orjson.dumps({"type": "done", "item": {"result": image, "n": [1, {"result": "x"}]}})
    value = loads_large(raw, large=100)
    assert value == {"type": "done", "item": {"result": image, "n": [1, {"result": "x"}]}}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"result":"' + b"A" * 50,  # cut off
        b'{"result":"' + b"A" * 50 + b'"',  # no closing brace
        b'{"result":"' + b"A" * 50 + b'" "x":1}',  # no comma
        b'{"result":"' + b"\xff" * 50 + b'"}',  # not UTF-8
    ],
)
def test_loads_large_fails_where_orjson_fails(raw: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)
    with pytest.raises(orjson.JSONDecodeError):
        loads_large(raw, large=10)
