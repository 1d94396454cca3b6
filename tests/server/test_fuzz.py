"""Generated bad input against the running gateway (hypothesis; bounded so CI stays fast).

Invariant for every body: the answer is a well-formed OpenAI error with a 4xx status, or a valid
completion; never a 5xx, never a traceback in the body, never a hung connection (each request
has a hard client timeout). The fake upstream answers whatever gets through, with the ChatGPT
backend's own validation, so a request the gateway lets pass is answered too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codex_proxy.mock.server import FakeUpstream

from ..conftest import Gateway

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: CI failures reproduce
)
ERROR_KEYS = {"message", "type", "param", "code"}
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "codex_proxy/")

# -- strategies ------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # past 64 bits: orjson refuses those
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
big_text = st.sampled_from([0, 1, 4_000, 300_000, 3_000_000]).map(lambda n: "x" * n)
texts = st.text(max_size=40) | big_text
roles = (
    st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"])
    | st.sampled_from(["critic", "", "USER", "model", "user "])
    | json_values
)
b64_payloads = st.sampled_from(["", "!!not-base64!!", "iVBORw0KGgo=", "====", "A", "%%%", "ÿþ"])
data_uris = st.builds(
    lambda fmt, payload: f"data:image/{fmt};base64,{payload}",
    st.sampled_from(["png", "jpeg", "gif", "", "svg+xml"]),
    b64_payloads,
)
urls = (
    st.sampled_from(
        [
            "https://example.com/cat.png",
            "http://127.0.0.1:9/private.png",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "data:text/plain;base64,aGk=",
            "",
        ]
    )
    | data_uris
)
image_part = st.fixed_dictionaries(
    {"type": st.just("image_url")},
    optional={
        "image_url": urls
        | st.fixed_dictionaries(
            {"url": urls | json_values},
            optional={"detail": st.sampled_from(["auto", "low", "high", "ultra"]) | json_values},
        )
        | json_values
    },
)
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text")}, optional={"text": texts | json_values}),
    image_part,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["input_audio", "file", "video", "refusal", "", "image"])},
        optional={"file": json_values, "input_audio": json_values, "refusal": json_values},
    ),
    json_values,
)
tool_call = st.fixed_dictionaries(
    {"id": st.text(max_size=8) | json_values},
    optional={
        "type": st.sampled_from(["function", "custom", "weird"]) | json_values,
        "function": st.fixed_dictionaries(
            {}, optional={"name": st.text(max_size=8) | json_values, "arguments": json_values}
        )
        | json_values,
    },
)
message = st.fixed_dictionaries(
    {"role": roles},
    optional={
        "content": texts | st.lists(part, max_size=4) | json_values,
        "name": json_values,
        "tool_calls": st.lists(tool_call, max_size=2) | json_values,
        "tool_call_id": st.text(max_size=8) | json_values,
        "function_call": json_values,
        "refusal": json_values,
        "images": json_values,
    },
)
tool = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("function")},
        optional={
            "function": st.fixed_dictionaries(
                {"name": st.text(max_size=10) | json_values},
                optional={"parameters": json_values, "strict": json_values},
            )
            | json_values
        },
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["image_generation", "web_search", "custom", "nope"])},
        optional={
            "size": st.sampled_from(["1x1", "64x64", "huge", "0x0"]) | json_values,
            "quality": json_values,
            "output_format": st.sampled_from(["png", "gif"]) | json_values,
        },
    ),
    json_values,
)
chat_bodies = st.fixed_dictionaries(
    {"messages": st.lists(message, min_size=1, max_size=5) | json_values},
    optional={
        "model": st.sampled_from(["gpt-5.2-codex", "default", "gpt-5.2-codex-high", ""])
        | json_values,
        "stream": st.booleans() | json_values,
        "stream_options": st.fixed_dictionaries({}, optional={"include_usage": json_values})
        | json_values,
        "tools": st.lists(tool, max_size=3) | json_values,
        "tool_choice": st.sampled_from(["auto", "none", "required", "sometimes"])
        | st.fixed_dictionaries({"type": st.sampled_from(["function", "image_generation"])})
        | json_values,
        "response_format": st.fixed_dictionaries(
            {"type": st.sampled_from(["json_schema", "json_object", "text", "xml"])},
            optional={"json_schema": json_values},
        )
        | json_values,
        "n": json_values,
        "reasoning_effort": st.sampled_from(["low", "max", "extreme"]) | json_values,
        "temperature": json_values,
        "max_tokens": json_values,
        "prompt_cache_key": st.text(max_size=20) | json_values,
        "image_generation": json_values,
        "modalities": json_values,
        "metadata": json_values,
        "logprobs": json_values,
    },
)

# Near-valid bodies reach the deeper layers (history images, the image tool, the upstream call,
# its headers); mutating one field of them probes each validator in a realistic context.
STORED = "0123456789abcdef0123456789abcdef.png"
assistant_texts = texts | st.sampled_from(
    [
        "Here: ![a fox](data:image/png;base64,iVBORw0KGgo=)",
        "![broken](data:image/png;base64,!!!)",
        f"![stored](http://127.0.0.1:9/v1/images/files/{STORED})",
        f"![x](/v1/images/files/{STORED}) and ![y](data:image/webp;base64,UklGRg==)",
        "![](",
    ]
)
valid_part = st.fixed_dictionaries(
    {"type": st.just("text"), "text": texts}
) | st.fixed_dictionaries(
    {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": urls})}
)
valid_message = st.one_of(
    st.fixed_dictionaries(
        {"role": st.just("user"), "content": texts | st.lists(valid_part, min_size=1, max_size=3)}
    ),
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "developer"]), "content": st.text(max_size=30)}
    ),
    st.fixed_dictionaries(
        {"role": st.just("assistant"), "content": assistant_texts},
        optional={"images": st.lists(st.fixed_dictionaries({"image_url": urls}), max_size=2)},
    ),
)
valid_tool = st.fixed_dictionaries(
    {
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": st.sampled_from(["get_weather", "f"])},
            optional={"parameters": st.just({"type": "object", "properties": {}})},
        ),
    }
) | st.fixed_dictionaries(
    {"type": st.just("image_generation")},
    optional={"size": st.sampled_from(["64x64", "32x48"]), "output_format": st.just("png")},
)
VALID_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "tools": st.lists(valid_tool, max_size=2),
    "tool_choice": st.sampled_from(["auto", "none"]),
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
    "reasoning_effort": st.sampled_from(["low", "medium", "high"]),
    "temperature": st.floats(0, 2),
    "max_tokens": st.integers(1, 100),
    "prompt_cache_key": st.text(max_size=20),
    "image_generation": st.booleans(),
    "metadata": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    "user": st.text(max_size=10),
}
near_valid_bodies = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["gpt-5.2-codex", "default", "gpt-5.2-codex-high"]),
        "messages": st.lists(valid_message, max_size=4).map(
            lambda history: [*history, {"role": "user", "content": "Draw a fox"}]
        ),
    },
    optional=VALID_FIELDS,
)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A near-valid body with one field (top level or in a message) replaced by anything."""
    body = draw(near_valid_bodies)
    if draw(st.booleans()):
        body[draw(st.sampled_from(["model", "messages", *VALID_FIELDS]))] = draw(json_values)
    else:
        messages = body["messages"]
        index = draw(st.integers(0, len(messages) - 1))
        key = draw(st.sampled_from(["role", "content", "name", "tool_calls", "images"]))
        messages[index] = {**messages[index], key: draw(json_values | st.lists(part, max_size=2))}
    return body


# -- the invariant ---------------------------------------------------------------------------


@pytest.fixture
def http(gateway: Gateway, upstream: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=httpx.Timeout(30, connect=5)) as client:
        yield client


def check_answer(http: httpx.Client, content: bytes, headers: dict[str, str] | None = None) -> int:
    """POST one body and assert the invariant; returns the status."""
    sent = {"content-type": "application/json", **(headers or {})}
    with http.stream("POST", "/v1/chat/completions", content=content, headers=sent) as response:
        raw = response.read()  # a hung connection fails here with a timeout
    status = response.status_code
    text = raw.decode("utf-8", "replace")
    assert not any(marker in text for marker in TRACEBACK_MARKERS), text[:500]
    if status != 200:
        assert 400 <= status < 500, (status, text[:500])
        assert response.headers["content-type"] == "application/json"
        error = json.loads(raw)["error"]
        assert set(error) == ERROR_KEYS, error
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str)
        assert len(error["message"]) < 2000  # a huge bad value is never echoed whole
        return status
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [line[6:] for line in text.split("\n") if line.startswith("data: ")]
        assert events[-1] == "[DONE]", events[-3:]
        for event in events[:-1]:
            chunk = json.loads(event)
            assert "error" not in chunk, chunk
            assert chunk["object"] == "chat.completion.chunk"
    else:
        completion = json.loads(raw)
        assert completion["object"] == "chat.completion"
        assert completion["choices"][0]["message"]["role"] == "assistant"
    return status


def encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


# -- the tests -------------------------------------------------------------------------------


@FUZZ
@given(body=st.one_of(near_valid_bodies, mutated_bodies(), chat_bodies))
def test_generated_chat_bodies(http: httpx.Client, body: dict[str, Any]) -> None:
    check_answer(http, encode(body))


@settings(FUZZ, max_examples=40)
@given(
    depth=st.sampled_from([30, 200, 254, 255, 256, 600, 1000, 1023, 1024, 1100, 20_000]),
    shape=st.sampled_from(["[", '{"a":']),
    where=st.sampled_from(["schema", "parameters", "metadata", "content", "message", "top"]),
)
def test_deep_nesting(http: httpx.Client, depth: int, shape: str, where: str) -> None:
    closing = "]" if shape == "[" else "}"
    deep = shape * depth + "1" + closing * depth
    user = {"role": "user", "content": "hi"}
    bodies = {
        "schema": {
            "messages": [user],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "object", "x": "DEEP"}},
            },
        },
        "parameters": {
            "messages": [user],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": "DEEP"}}],
        },
        "metadata": {"messages": [user], "metadata": "DEEP"},
        "content": {"messages": [{"role": "user", "content": "DEEP"}]},
        "message": {"messages": [user, "DEEP"]},
        "top": "DEEP",
    }
    content = encode(bodies[where]).replace(b'"DEEP"', deep.encode())
    check_answer(http, content)


@settings(FUZZ, max_examples=60)
@given(
    body=chat_bodies,
    junk=st.sampled_from(
        [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\\ud800", b"\x80"]
    ),
    cut=st.integers(min_value=0, max_value=400),
)
def test_invalid_utf8_and_broken_json(
    http: httpx.Client, body: dict[str, Any], junk: bytes, cut: int
) -> None:
    valid = encode({**body, "messages": [{"role": "user", "content": "PLACE"}]})
    assert check_answer(http, valid.replace(b"PLACE", junk)) == 400
    if cut < len(valid):
        assert check_answer(http, valid[:cut]) == 400  # truncated: never valid JSON


@pytest.mark.parametrize(
    "content",
    [b"", b"null", b"[]", b"42", b'"text"', b"{", b"{}", b"[" * 5000, b'{"messages": NaN}'],
    ids=["empty", "null", "list", "number", "string", "open", "empty-object", "deep", "nan"],
)
def test_not_an_object(http: httpx.Client, content: bytes) -> None:
    assert check_answer(http, content) == 400


@settings(FUZZ, max_examples=25)
@given(session=st.text(max_size=30) | st.binary(max_size=30))
def test_session_header_of_any_bytes(http: httpx.Client, session: str | bytes) -> None:
    """The client's x-session-id becomes an upstream header: any bytes must be survivable."""
    raw = session if isinstance(session, bytes) else session.encode("utf-8")
    if any(b in raw for b in b"\r\n\x00") or raw.strip() != raw:
        return  # the HTTP layer refuses those before the gateway sees them
    body = encode({"model": "gpt-5.2-codex", "messages": [{"role": "user", "content": "hi"}]})
    with http.stream(
        "POST",
        "/v1/chat/completions",
        content=body,
        headers=[(b"content-type", b"application/json"), (b"x-session-id", raw)],
    ) as response:
        response.read()
    if any((b < 0x20 and b != 0x09) or b == 0x7F for b in raw):
        # Control characters: the HTTP parser may refuse them (httptools does, h11 does not),
        # but never the gateway itself with a 500.
        assert response.status_code in (200, 400), response.text[:300]
        return
    assert response.status_code == 200, response.text[:300]
