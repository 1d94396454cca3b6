"""ChatCompletionBuilder: all events of one response -> one chat.completion."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_proxy.mock.events import ResponseScript, text_response, usage
from codex_proxy.translate.aggregate import ChatCompletionBuilder
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.stream import ChatStreamTranslator

from .helpers import CID, CREATED, DEFAULT_CHAT_USAGE, MODEL

# shared/protocol.md 1.4.1 without the lifecycle events' echoed settings.
TRANSCRIPT_ITEMS = r"""
{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1760000000,"status":"in_progress","model":"gpt-5","output":[],"usage":null}}
{"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_1","type":"message","role":"assistant","status":"in_progress","content":[]}}
{"type":"response.content_part.added","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}
{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Checking.","logprobs":[]}
{"type":"response.output_text.done","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"text":"Checking.","logprobs":[]}
{"type":"response.output_item.done","sequence_number":7,"output_index":0,"item":{"id":"msg_1","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Checking.","annotations":[]}]}}
{"type":"response.output_item.added","sequence_number":8,"output_index":1,"item":{"id":"fc_1","type":"function_call","call_id":"call_1","name":"get_weather","arguments":"","status":"in_progress"}}
{"type":"response.function_call_arguments.delta","sequence_number":9,"item_id":"fc_1","output_index":1,"delta":"{\"city\":\"Paris\"}"}
{"type":"response.function_call_arguments.done","sequence_number":10,"item_id":"fc_1","output_index":1,"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}
{"type":"response.output_item.done","sequence_number":11,"output_index":1,"item":{"id":"fc_1","type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"}}
{"type":"response.completed","sequence_number":12,"response":{"id":"resp_1","object":"response","created_at":1760000000,"status":"completed","model":"gpt-5","output":[],"usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":0},"output_tokens":12,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":32}}}
"""


def builder() -> ChatCompletionBuilder:
    return ChatCompletionBuilder(completion_id=CID, created=CREATED, model=MODEL)


def build(events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    b = builder()
    for event in events:
        b.feed(event)
    return b.result()


def completion(
    message: dict[str, Any], finish: str, chat_usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The expected completion; ``message`` gets the default refusal and annotations."""
    return {
        "id": CID,
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "refusal": None, "annotations": [], **message},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": DEFAULT_CHAT_USAGE if chat_usage is None else chat_usage,
    }


def call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_plain_text() -> None:
    assert build(text_response("Hello there, world")) == completion(
        {"content": "Hello there, world"}, "stop"
    )


def test_protocol_transcript_text_and_one_call() -> None:
    events = [json.loads(line) for line in TRANSCRIPT_ITEMS.strip().splitlines()]
    assert build(events) == completion(
        {
            "content": "Checking.",
            "tool_calls": [call("call_1", "get_weather", '{"city":"Paris"}')],
        },
        "tool_calls",
    )


def test_parallel_calls_after_reasoning() -> None:
    s = ResponseScript()
    s.start()
    s.reasoning([["Plan", " it"], ["Go"]])
    s.function_call("get_weather", ['{"city":', '"Paris"}'], call_id="call_a")
    s.function_call("get_time", ['{"tz":"CET"}'], call_id="call_b")
    s.completed(usage(30, 9, cached=10, reasoning=4))
    assert build(s.events) == completion(
        {
            "content": None,
            "tool_calls": [
                call("call_a", "get_weather", '{"city":"Paris"}'),
                call("call_b", "get_time", '{"tz":"CET"}'),
            ],
            "reasoning_content": "Plan it\n\nGo",
        },
        "tool_calls",
        {
            "prompt_tokens": 30,
            "completion_tokens": 9,
            "total_tokens": 39,
            "prompt_tokens_details": {"cached_tokens": 10},
            "completion_tokens_details": {"reasoning_tokens": 4},
        },
    )


def test_several_messages_joined() -> None:
    s = ResponseScript()
    s.start()
    s.message(["Working."], phase="commentary")
    s.message(["Done", "."], phase="final_answer")
    s.completed()
    assert build(s.events) == completion({"content": "Working.\n\nDone."}, "stop")


def test_refusal() -> None:
    s = ResponseScript()
    s.start()
    s.message([], refusal=["I can't", " help."])
    s.completed()
    assert build(s.events) == completion({"content": None, "refusal": "I can't help."}, "stop")


@pytest.mark.parametrize(
    ("reason", "finish"), [("max_output_tokens", "length"), ("content_filter", "content_filter")]
)
def test_incomplete(reason: str, finish: str) -> None:
    s = ResponseScript()
    s.start()
    s.message(["Cu", "t"])
    s.incomplete(reason)
    assert build(s.events) == completion({"content": "Cut"}, finish)


def test_nothing_at_all_is_empty_content() -> None:
    s = ResponseScript()
    s.start()
    s.completed()
    assert build(s.events) == completion({"content": ""}, "stop")


def test_null_usage_details_and_absent_usage() -> None:
    raw = {
        "input_tokens": 5,
        "input_tokens_details": None,
        "output_tokens": 3,
        "output_tokens_details": None,
        "total_tokens": 8,
    }
    mapped = {
        "prompt_tokens": 5,
        "completion_tokens": 3,
        "total_tokens": 8,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert build(text_response("Hi", usage_=raw)) == completion({"content": "Hi"}, "stop", mapped)
    bare = [{"type": "response.completed", "response": {"usage": None}}]
    zeros = {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert build(bare) == completion({"content": ""}, "stop", zeros)


@pytest.mark.parametrize(
    ("code", "status"), [("rate_limit_exceeded", 429), ("context_length_exceeded", 400)]
)
def test_response_failed_raises_on_feed(code: str, status: int) -> None:
    s = ResponseScript()
    s.start()
    s.failed(code)
    b = builder()
    with pytest.raises(OpenAIError) as info:
        for event in s.events:
            b.feed(event)
    assert (info.value.status, info.value.code) == (status, code)


@pytest.mark.parametrize("nested", [True, False])
def test_error_event_both_shapes(nested: bool) -> None:
    s = ResponseScript()
    s.start()
    s.error("context_length_exceeded", "Too long", nested=nested)
    with pytest.raises(OpenAIError) as info:
        build(s.events)
    assert (info.value.status, info.value.message) == (400, "Too long")


def test_result_without_terminal_event_is_truncation() -> None:
    b = builder()
    for event in text_response("Hi there")[:-1]:
        b.feed(event)
    with pytest.raises(OpenAIError) as info:
        b.result()
    assert info.value.code == "upstream_stream_truncated"


def test_unknown_events_ignored() -> None:
    s = ResponseScript()
    s.start()
    s.raw({"type": "codex.rate_limits", "rate_limits": {}}, {"type": "response.audio.delta"})
    s.web_search()
    s.image("iVBORw0KGgo=")
    s.message(["Hi"])
    s.completed()
    assert build(s.events) == completion({"content": "Hi"}, "stop")


def test_done_items_only() -> None:
    s = ResponseScript()
    s.start()
    s.message(["Hello", " world"])
    s.function_call("f", ['{"a":', "1}"], call_id="call_f")
    s.completed()
    events = [e for e in s.events if not e["type"].endswith(".delta")]
    assert build(events) == completion(
        {"content": "Hello world", "tool_calls": [call("call_f", "f", '{"a":1}')]}, "tool_calls"
    )


def test_annotations() -> None:
    s = ResponseScript()
    s.start()
    s.web_search()
    ann = {
        "type": "url_citation",
        "url": "https://e.x",
        "title": "E",
        "start_index": 4,
        "end_index": 7,
    }
    s.message(["See [1]"], annotations=[ann])
    s.completed()
    assert build(s.events) == completion(
        {
            "content": "See [1]",
            "annotations": [
                {
                    "type": "url_citation",
                    "url_citation": {
                        "url": "https://e.x",
                        "title": "E",
                        "start_index": 4,
                        "end_index": 7,
                    },
                }
            ],
        },
        "stop",
    )


def test_big_text_is_not_copied() -> None:
    big = "x" * 1_000_000
    s = ResponseScript()
    s.start()
    s.message([big])
    s.completed()
    assert build(s.events)["choices"][0]["message"]["content"] is big
    only_done = [e for e in s.events if not e["type"].endswith(".delta")]
    assert build(only_done)["choices"][0]["message"]["content"] is big


# -- property: the builder agrees with the chunk stream ----------------------------------------

texts = st.lists(st.text(max_size=8), max_size=5)
items = st.lists(
    st.one_of(
        st.tuples(st.just("message"), texts),
        st.tuples(st.just("call"), st.text(min_size=1, max_size=6), texts),
        st.tuples(st.just("reasoning"), st.lists(texts, max_size=3)),
        st.tuples(st.just("refusal"), st.lists(st.text(min_size=1, max_size=6), max_size=3)),
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(spec=items, done_only=st.booleans())
def test_property_builder_agrees_with_chunks(spec: list[tuple[Any, ...]], done_only: bool) -> None:
    s = ResponseScript()
    s.start()
    for n, entry in enumerate(spec):
        if entry[0] == "message":
            s.message(entry[1])
        elif entry[0] == "refusal":
            s.message([], refusal=entry[1])
        elif entry[0] == "call":
            s.function_call(entry[1], entry[2], call_id=f"call_{n}")
        else:
            s.reasoning(entry[1])
    s.completed()
    events = s.events
    if done_only:
        events = [
            e
            for e in events
            if not e["type"].endswith(("text.delta", "arguments.delta", "refusal.delta"))
        ]

    t = ChatStreamTranslator(completion_id=CID, created=CREATED, model=MODEL, include_usage=True)
    chunks = [c for e in events for c in t.feed(e)] + t.finish()
    delta_list = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    result = build(events)
    message = result["choices"][0]["message"]

    def cat(key: str) -> str:
        return "".join(d.get(key, "") for d in delta_list)

    calls: list[dict[str, Any]] = []
    for d in delta_list:
        for e in d.get("tool_calls", ()):
            if "id" in e:
                calls.append(call(e["id"], e["function"]["name"], ""))
            calls[e["index"]]["function"]["arguments"] += e["function"]["arguments"]

    texts_joined = "\n\n".join(t for t in ("".join(e[1]) for e in spec if e[0] == "message") if t)
    assert cat("content") == texts_joined
    refusal = cat("refusal")
    assert message["refusal"] == (refusal or None)
    if texts_joined:
        assert message["content"] == texts_joined
    else:
        assert message["content"] == (None if calls or refusal else "")
    assert message.get("tool_calls", []) == calls
    assert message.get("reasoning_content") == (cat("reasoning_content") or None)
    assert result["choices"][0]["finish_reason"] == t.finish_reason
    assert result["choices"][0]["finish_reason"] == ("tool_calls" if calls else "stop")
    assert result["usage"] == chunks[-1]["usage"] == DEFAULT_CHAT_USAGE
    assert message["annotations"] == t.annotations == []
