"""ChatStreamTranslator: Responses events in, chat.completion.chunk dicts out."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_proxy.mock.events import ResponseScript, text_response, usage
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.stream import ChatStreamTranslator, chat_usage

from .helpers import CID, CREATED, DEFAULT_CHAT_USAGE, MODEL

# shared/protocol.md 1.4.1, the data lines verbatim.
TRANSCRIPT_1_4_1 = r"""
{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","created_at":1760000000,"status":"in_progress","model":"gpt-5","output":[],"usage":null,"error":null,"incomplete_details":null,"parallel_tool_calls":true,"tool_choice":"auto","tools":[]}}
{"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1","object":"response","created_at":1760000000,"status":"in_progress","model":"gpt-5","output":[],"usage":null,"error":null,"incomplete_details":null,"parallel_tool_calls":true,"tool_choice":"auto","tools":[]}}
{"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"id":"msg_1","type":"message","role":"assistant","status":"in_progress","content":[]}}
{"type":"response.content_part.added","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}
{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Checking.","logprobs":[]}
{"type":"response.output_text.done","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"text":"Checking.","logprobs":[]}
{"type":"response.content_part.done","sequence_number":6,"item_id":"msg_1","output_index":0,"content_index":0,"part":{"type":"output_text","text":"Checking.","annotations":[]}}
{"type":"response.output_item.done","sequence_number":7,"output_index":0,"item":{"id":"msg_1","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Checking.","annotations":[]}]}}
{"type":"response.output_item.added","sequence_number":8,"output_index":1,"item":{"id":"fc_1","type":"function_call","call_id":"call_1","name":"get_weather","arguments":"","status":"in_progress"}}
{"type":"response.function_call_arguments.delta","sequence_number":9,"item_id":"fc_1","output_index":1,"delta":"{\"city\":\"Paris\"}"}
{"type":"response.function_call_arguments.done","sequence_number":10,"item_id":"fc_1","output_index":1,"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}
{"type":"response.output_item.done","sequence_number":11,"output_index":1,"item":{"id":"fc_1","type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"}}
{"type":"response.completed","sequence_number":12,"response":{"id":"resp_1","object":"response","created_at":1760000000,"status":"completed","model":"gpt-5","output":[{"id":"msg_1","type":"message","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Checking.","annotations":[]}]},{"id":"fc_1","type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}","status":"completed"}],"usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":0},"output_tokens":12,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":32},"error":null,"incomplete_details":null,"parallel_tool_calls":true,"tool_choice":"auto","tools":[]}}
"""


def transcript() -> list[dict[str, Any]]:
    return [json.loads(line) for line in TRANSCRIPT_1_4_1.strip().splitlines()]


def chunk(
    delta: dict[str, Any], finish: str | None = None, *, with_usage: bool = False
) -> dict[str, Any]:
    """The chunk the translator should produce for ``delta``."""
    out: dict[str, Any] = {
        "id": CID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if with_usage:
        out["usage"] = None
    return out


def usage_chunk(chat: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": CID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [],
        "usage": chat,
    }


def translator(include_usage: bool = False) -> ChatStreamTranslator:
    return ChatStreamTranslator(
        completion_id=CID, created=CREATED, model=MODEL, include_usage=include_usage
    )


def run(events: Iterable[Mapping[str, Any]], include_usage: bool = False) -> list[dict[str, Any]]:
    """Feed every event, then close the stream; all chunks produced."""
    t = translator(include_usage)
    out = [c for e in events for c in t.feed(e)]
    out += t.finish()
    return out


def deltas(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


def joined(chunks: list[dict[str, Any]], key: str) -> str:
    return "".join(d.get(key, "") for d in deltas(chunks))


def call_arguments(chunks: list[dict[str, Any]]) -> dict[int, str]:
    args: dict[int, str] = {}
    for d in deltas(chunks):
        for entry in d.get("tool_calls", ()):
            args[entry["index"]] = args.get(entry["index"], "") + entry["function"]["arguments"]
    return args


# -- exact chunk lists -------------------------------------------------------------------------


def test_plain_text() -> None:
    assert run(text_response(["Hel", "lo"])) == [
        chunk({"role": "assistant", "content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
    ]


def test_include_usage_adds_null_usage_and_a_usage_chunk() -> None:
    events = text_response(["Hi"], usage_=usage(7, 5, cached=3, reasoning=2))
    assert run(events, include_usage=True) == [
        chunk({"role": "assistant", "content": "Hi"}, with_usage=True),
        chunk({}, "stop", with_usage=True),
        usage_chunk(
            {
                "prompt_tokens": 7,
                "completion_tokens": 5,
                "total_tokens": 12,
                "prompt_tokens_details": {"cached_tokens": 3},
                "completion_tokens_details": {"reasoning_tokens": 2},
            }
        ),
    ]


def test_protocol_transcript_text_and_one_call() -> None:
    t = translator(include_usage=True)
    out = [c for e in transcript() for c in t.feed(e)] + t.finish()
    assert out == [
        chunk({"role": "assistant", "content": "Checking."}, with_usage=True),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            },
            with_usage=True,
        ),
        chunk(
            {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":"Paris"}'}}]},
            with_usage=True,
        ),
        chunk({}, "tool_calls", with_usage=True),
        usage_chunk(DEFAULT_CHAT_USAGE),
    ]
    assert t.done
    assert t.finish_reason == "tool_calls"
    assert t.usage == DEFAULT_CHAT_USAGE


def test_parallel_calls_after_reasoning_are_numbered_from_zero() -> None:
    s = ResponseScript()
    s.start()
    s.reasoning([["Plan"]])
    s.function_call("get_weather", ['{"city":', '"Paris"}'], call_id="call_a")
    s.function_call("get_time", ['{"tz":"CET"}'], call_id="call_b")
    s.completed()
    assert [e["output_index"] for e in s.events if e["type"] == "response.output_item.added"] == [
        0,
        1,
        2,
    ]

    def announce(index: int, call_id: str, name: str) -> dict[str, Any]:
        entry = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        return {"tool_calls": [entry]}

    def args(index: int, text: str) -> dict[str, Any]:
        return {"tool_calls": [{"index": index, "function": {"arguments": text}}]}

    assert run(s.events) == [
        chunk({"role": "assistant", "reasoning_content": "Plan"}),
        chunk(announce(0, "call_a", "get_weather")),
        chunk(args(0, '{"city":')),
        chunk(args(0, '"Paris"}')),
        chunk(announce(1, "call_b", "get_time")),
        chunk(args(1, '{"tz":"CET"}')),
        chunk({}, "tool_calls"),
    ]


def test_reasoning_parts_and_items_are_set_apart() -> None:
    s = ResponseScript()
    s.start()
    s.reasoning([["First", " part"], ["Second"]])
    s.reasoning([["Third"]], raw=["raw"])
    s.message(["Answer"])
    s.completed()
    assert run(s.events) == [
        chunk({"role": "assistant", "reasoning_content": "First"}),
        chunk({"reasoning_content": " part"}),
        chunk({"reasoning_content": "\n\n"}),
        chunk({"reasoning_content": "Second"}),
        chunk({"reasoning_content": "\n\n"}),
        chunk({"reasoning_content": "Third"}),
        chunk({"reasoning_content": "\n\n"}),
        chunk({"reasoning_content": "raw"}),
        chunk({"content": "Answer"}),
        chunk({}, "stop"),
    ]


def test_refusal() -> None:
    s = ResponseScript()
    s.start()
    s.message([], refusal=["I can't", " help with that."])
    s.completed()
    assert run(s.events) == [
        chunk({"role": "assistant", "refusal": "I can't"}),
        chunk({"refusal": " help with that."}),
        chunk({}, "stop"),
    ]


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("max_output_tokens", "length"),
        ("content_filter", "content_filter"),
        ("something_new", "length"),
    ],
)
def test_incomplete(reason: str, finish: str) -> None:
    s = ResponseScript()
    s.start()
    s.message(["Cut"])
    s.incomplete(reason, usage(3, 4))
    chat = {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert run(s.events, include_usage=True) == [
        chunk({"role": "assistant", "content": "Cut"}, with_usage=True),
        chunk({}, finish, with_usage=True),
        usage_chunk(chat),
    ]


def test_incomplete_after_a_call_is_still_length() -> None:
    s = ResponseScript()
    s.start()
    s.function_call("f", ["{}"])
    s.incomplete()
    assert run(s.events)[-1] == chunk({}, "length")


def test_finish_before_any_content_sends_role_with_empty_content() -> None:
    s = ResponseScript()
    s.start()
    s.reasoning([])  # a reasoning item with no summary streams nothing
    s.completed()
    assert run(s.events, include_usage=True) == [
        chunk({"role": "assistant", "content": ""}, with_usage=True),
        chunk({}, "stop", with_usage=True),
        usage_chunk(DEFAULT_CHAT_USAGE),
    ]


def test_several_messages_are_joined_with_a_blank_line() -> None:
    s = ResponseScript()
    s.start()
    s.message(["Working", " on it."], phase="commentary")
    s.function_call("f", ["{}"], call_id="call_f")
    s.message([])  # an empty message adds no separator
    s.message(["Done."], phase="final_answer")
    s.completed()
    out = run(s.events)
    assert [d for d in deltas(out) if "content" in d] == [
        {"role": "assistant", "content": "Working"},
        {"content": " on it."},
        {"content": "\n\n"},
        {"content": "Done."},
    ]
    assert out[-1] == chunk({}, "tool_calls")


# -- usage -------------------------------------------------------------------------------------


def test_chat_usage_maps_every_field() -> None:
    assert chat_usage(usage(10, 4, cached=6, reasoning=3)) == {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 6},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }


def test_chat_usage_tolerates_null_details_and_missing_fields() -> None:
    raw = {
        "input_tokens": 5,
        "input_tokens_details": None,
        "output_tokens": 3,
        "output_tokens_details": None,
        "total_tokens": 8,
    }
    assert chat_usage(raw) == {
        "prompt_tokens": 5,
        "completion_tokens": 3,
        "total_tokens": 8,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert chat_usage({"input_tokens": 2, "output_tokens": 1})["total_tokens"] == 3
    assert chat_usage({"input_tokens": "x", "output_tokens": float("nan")})["total_tokens"] == 0
    assert chat_usage(None) is None


def test_terminal_without_usage_reports_zeros() -> None:
    s = ResponseScript()
    s.start()
    s.message(["Hi"])
    bare = {"type": "response.completed", "response": {"status": "completed", "usage": None}}
    events = [*s.events, bare]
    t = translator(include_usage=True)
    out = [c for e in events for c in t.feed(e)]
    zeros = chat_usage({})
    assert zeros is not None and zeros["total_tokens"] == 0
    assert out[-1] == usage_chunk(zeros)
    assert t.usage == zeros


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [("rate_limit_exceeded", 429), ("context_length_exceeded", 400), ("server_error", 502)],
)
def test_response_failed_raises(code: str, status: int) -> None:
    s = ResponseScript()
    s.start()
    s.failed(code, "Nope.")
    t = translator()
    for event in s.events[:-1]:
        assert t.feed(event) == []
    with pytest.raises(OpenAIError) as info:
        t.feed(s.events[-1])
    assert info.value.status == status
    assert info.value.code == code
    assert info.value.message == "Nope."


@pytest.mark.parametrize("nested", [True, False])
def test_error_event_both_shapes(nested: bool) -> None:
    s = ResponseScript()
    s.start()
    s.message(["Par"])
    s.error("rate_limit_exceeded", "Slow down", nested=nested)
    t = translator()
    sent = [c for e in s.events[:-1] for c in t.feed(e)]
    assert deltas(sent) == [{"role": "assistant", "content": "Par"}]
    with pytest.raises(OpenAIError) as info:
        t.feed(s.events[-1])
    assert (info.value.status, info.value.code, info.value.message) == (
        429,
        "rate_limit_exceeded",
        "Slow down",
    )


@pytest.mark.parametrize("cut", [0, 2, 5])
def test_finish_without_terminal_event_is_truncation(cut: int) -> None:
    t = translator()
    for event in text_response(["a", "b"])[:cut]:
        t.feed(event)
    with pytest.raises(OpenAIError) as info:
        t.finish()
    assert info.value.status == 502
    assert info.value.code == "upstream_stream_truncated"
    assert not t.done


def test_events_after_the_terminal_one_are_ignored() -> None:
    events = text_response(["Hi"])
    t = translator()
    out = [c for e in events for c in t.feed(e)]
    late = [*text_response(["again"]), {"type": "error", "message": "late", "code": "x"}]
    assert [c for e in late for c in t.feed(e)] == []
    assert t.finish() == []
    assert sum(1 for c in out if c["choices"][0]["finish_reason"]) == 1


# -- robustness --------------------------------------------------------------------------------


def test_unknown_and_malformed_events_are_ignored() -> None:
    s = ResponseScript()
    s.start()
    s.raw(
        {
            "type": "codex.rate_limits",
            "plan_type": "plus",
            "rate_limits": {"primary": {"used_percent": 12.5}},
        },
        {"type": "response.mcp_call.in_progress", "item_id": "mcp_1", "output_index": 0},
        {"type": "response.audio.delta", "delta": "AAAA"},
        {"type": "response.custom_tool_call_input.delta", "item_id": "ct_1", "delta": "x"},
        {"type": "response.queued", "response": {}},
    )
    s.web_search()
    s.image("iVBORw0KGgo=", partials=["AAAA"])
    s.message(["Hi"])
    s.completed()
    malformed: list[dict[str, Any]] = [
        {"type": ["not", "hashable"]},
        {"no_type": True},
        {"type": "response.output_text.delta"},
        {"type": "response.output_text.delta", "delta": None, "item_id": "m"},
        {"type": "response.output_text.delta", "delta": 42, "item_id": "m"},
        {"type": "response.output_text.delta", "delta": "", "item_id": "m"},
        {"type": "response.refusal.delta", "delta": {"x": 1}},
        {"type": "response.reasoning_summary_text.delta", "delta": ["x"]},
        {"type": "response.reasoning_text.delta"},
        {"type": "response.function_call_arguments.delta", "delta": "x"},
        {"type": "response.function_call_arguments.delta", "delta": "x", "item_id": ["bad"]},
        {"type": "response.output_item.added"},
        {"type": "response.output_item.added", "item": "nope"},
        {"type": "response.output_item.added", "item": {"type": ["bad"]}},
        {"type": "response.output_item.done", "item": None},
        {"type": "response.output_item.done", "item": {}},
        {"type": "response.output_item.done", "item": {"type": "message", "content": "x"}},
        {"type": "response.output_item.done", "item": {"type": "message", "content": [1, None]}},
        {"type": "response.output_text.annotation.added", "annotation": "x"},
        {"type": "response.output_text.annotation.added", "annotation": {"type": "file_path"}},
    ]
    events = s.events[:-1] + malformed + s.events[-1:]
    assert run(events) == [chunk({"role": "assistant", "content": "Hi"}), chunk({}, "stop")]


def test_terminal_event_without_response_object() -> None:
    assert run([{"type": "response.completed"}]) == [
        chunk({"role": "assistant", "content": ""}),
        chunk({}, "stop"),
    ]
    assert run([{"type": "response.incomplete", "response": "?"}])[-1] == chunk({}, "length")


# -- upstreams that stream less than the final items -------------------------------------------


def without_deltas(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if not e["type"].endswith(".delta")]


def test_done_items_only_still_yield_text_and_arguments() -> None:
    s = ResponseScript()
    s.start()
    s.message(["Hello", " world"])
    s.function_call("f", ['{"a":', "1}"], call_id="call_f")
    s.completed()
    assert run(without_deltas(s.events)) == [
        chunk({"role": "assistant", "content": "Hello world"}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_f",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":1}'}}]}),
        chunk({}, "tool_calls"),
    ]


def test_call_never_announced_is_announced_with_full_arguments() -> None:
    s = ResponseScript()
    s.start()
    s.function_call("first", ["{}"], call_id="call_1")
    s.function_call("second", ['{"x":2}'], call_id="call_2")
    s.completed()
    # the second call arrives only as its output_item.done
    events = [
        e
        for e in s.events
        if e["type"] == "response.output_item.done"
        or "fc_2" not in (e.get("item_id"), e.get("item", {}).get("id"))
    ]
    out = run(events)
    assert deltas(out)[-2] == {
        "tool_calls": [
            {
                "index": 1,
                "id": "call_2",
                "type": "function",
                "function": {"name": "second", "arguments": '{"x":2}'},
            }
        ]
    }
    assert call_arguments(out) == {0: "{}", 1: '{"x":2}'}


def test_stream_that_stops_early_is_topped_up_with_the_missing_tail() -> None:
    s = ResponseScript()
    s.start()
    s.message(["Hel", "lo", " there"])
    s.function_call("f", ['{"a"', ":1", "}"])
    s.completed()
    text_last = [e for e in s.events if e["type"] == "response.output_text.delta"][-1]
    args_last = [e for e in s.events if e["type"] == "response.function_call_arguments.delta"][-1]
    dropped = {text_last["sequence_number"], args_last["sequence_number"]}
    out = run(e for e in s.events if e["sequence_number"] not in dropped)
    assert [d.get("content") for d in deltas(out) if "content" in d] == ["Hel", "lo", " there"]
    assert call_arguments(out) == {0: '{"a":1}'}


def test_deltas_that_are_not_a_prefix_get_no_top_up() -> None:
    events = text_response(["Hello"])
    for e in events:
        if e["type"] == "response.output_text.delta":
            e["delta"] = "Bye"
    assert joined(run(events), "content") == "Bye"


def test_argument_deltas_without_item_id_fall_back_to_output_index() -> None:
    s = ResponseScript()
    s.start()
    s.function_call("f", ['{"a":', "1}"])
    s.completed()
    for e in s.events:
        if e["type"] == "response.function_call_arguments.delta":
            del e["item_id"]
    out = run(s.events)
    assert call_arguments(out) == {0: '{"a":1}'}
    assert len(deltas(out)) == 4  # announce, two deltas, finish: no top-up needed


def test_completed_output_is_a_fallback_only_when_nothing_streamed() -> None:
    s = ResponseScript()
    s.start()
    s.message(["Hi"])
    s.function_call("f", ["{}"], call_id="call_f")
    s.completed(with_output=True)
    lifecycle_only = [s.events[0], s.events[1], s.events[-1]]
    from_output = run(lifecycle_only)
    assert deltas(from_output) == [
        {"role": "assistant", "content": "Hi"},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_f",
                    "type": "function",
                    "function": {"name": "f", "arguments": "{}"},
                }
            ]
        },
        {},
    ]
    assert from_output[-1]["choices"][0]["finish_reason"] == "tool_calls"
    streamed = run(s.events)
    assert joined(streamed, "content") == "Hi"
    assert call_arguments(streamed) == {0: "{}"}
    # once something streamed, the terminal output is not consulted even when it differs
    s.events[-1]["response"]["output"].append(
        {"id": "msg_x", "type": "message", "content": [{"type": "output_text", "text": "Other"}]}
    )
    assert joined(run(s.events), "content") == "Hi"


# -- annotations -------------------------------------------------------------------------------


def citation(url: str, start: int, end: int, title: str = "T") -> dict[str, Any]:
    return {
        "type": "url_citation",
        "url": url,
        "title": title,
        "start_index": start,
        "end_index": end,
    }


def test_annotations_collected_once_in_chat_shape() -> None:
    s = ResponseScript()
    s.start()
    s.web_search()
    s.message(["See ", "[1]"], annotations=[citation("https://e.x", 4, 7, "E")])
    s.message(["More [2]"], annotations=[citation("https://f.x", 5, 8)])
    s.completed()
    t = translator()
    out = [c for e in s.events for c in t.feed(e)]
    assert joined(out, "content") == "See [1]\n\nMore [2]"
    assert t.annotations == [
        {
            "type": "url_citation",
            "url_citation": {"url": "https://e.x", "title": "E", "start_index": 4, "end_index": 7},
        },
        {
            "type": "url_citation",
            "url_citation": {
                "url": "https://f.x",
                "title": "T",
                "start_index": 14,
                "end_index": 17,
            },
        },
    ]
    assert "See [1]\n\nMore [2]"[14:17] == "[2]"


def test_annotations_from_the_done_item_alone() -> None:
    s = ResponseScript()
    s.start()
    s.message(["See [1]"], annotations=[citation("https://e.x", 4, 7)])
    s.completed()
    events = [e for e in s.events if e["type"] != "response.output_text.annotation.added"]
    t = translator()
    for e in events:
        t.feed(e)
    assert [a["url_citation"]["url"] for a in t.annotations] == ["https://e.x"]


# -- properties --------------------------------------------------------------------------------

texts = st.lists(st.text(max_size=8), max_size=5)
items = st.lists(
    st.one_of(
        st.tuples(st.just("message"), texts),
        st.tuples(st.just("call"), st.text(min_size=1, max_size=6), texts),
        st.tuples(st.just("reasoning"), st.lists(texts, max_size=3)),
    ),
    max_size=6,
)


def build(spec: list[tuple[Any, ...]], drop_tail: int, noise: bool) -> ResponseScript:
    """A well-formed script from ``spec``; the last ``drop_tail`` text and argument deltas of
    every item are removed (upstreams that stream less than the final item)."""
    s = ResponseScript()
    s.start()
    for n, entry in enumerate(spec):
        if noise:
            s.raw({"type": "codex.rate_limits", "rate_limits": {}})
        if entry[0] == "message":
            s.message(entry[1])
        elif entry[0] == "call":
            s.function_call(entry[1], entry[2], call_id=f"call_{n}")
        else:
            s.reasoning(entry[1])
    s.completed()
    if drop_tail:
        droppable = ("response.output_text.delta", "response.function_call_arguments.delta")
        by_item: dict[str, list[int]] = {}
        for e in s.events:
            if e["type"] in droppable:
                by_item.setdefault(e["item_id"], []).append(e["sequence_number"])
        gone = {seq for seqs in by_item.values() for seq in seqs[-drop_tail:]}
        s.events = [e for e in s.events if e["sequence_number"] not in gone]
    return s


@settings(max_examples=150, deadline=None)
@given(spec=items, drop_tail=st.integers(0, 6), noise=st.booleans(), include_usage=st.booleans())
def test_property_chunks_reproduce_the_upstream_answer(
    spec: list[tuple[Any, ...]], drop_tail: int, noise: bool, include_usage: bool
) -> None:
    out = run(build(spec, drop_tail, noise).events, include_usage)
    choice_chunks = [c for c in out if c["choices"]]
    message_texts = ["".join(e[1]) for e in spec if e[0] == "message"]
    calls = [e for e in spec if e[0] == "call"]
    summaries = ["".join(p) for e in spec if e[0] == "reasoning" for p in e[1]]

    assert joined(out, "content") == "\n\n".join(t for t in message_texts if t)
    assert joined(out, "reasoning_content") == "\n\n".join(t for t in summaries if t)
    assert call_arguments(out) == {i: "".join(c[2]) for i, c in enumerate(calls)}

    call_ids = [f"call_{n}" for n, e in enumerate(spec) if e[0] == "call"]
    entries = [e for d in deltas(out) for e in d.get("tool_calls", ())]
    firsts = [e for e in entries if "id" in e]
    assert [(e["index"], e["id"], e["function"]["name"]) for e in firsts] == [
        (i, call_ids[i], c[1]) for i, c in enumerate(calls)
    ]
    for e in entries:
        if "id" not in e:  # later deltas carry only the arguments
            assert set(e) == {"index", "function"}
            assert set(e["function"]) == {"arguments"}

    finishes = [c["choices"][0]["finish_reason"] for c in choice_chunks]
    assert [f for f in finishes if f is not None] == ["tool_calls" if calls else "stop"]
    assert finishes[-1] is not None
    assert "role" in choice_chunks[0]["choices"][0]["delta"]
    assert all("role" not in c["choices"][0]["delta"] for c in choice_chunks[1:])
    assert all({c["id"], c["created"], c["model"]} == {CID, CREATED, MODEL} for c in out)
    if include_usage:
        assert all(c["usage"] is None for c in choice_chunks)
        assert out[-1] == usage_chunk(DEFAULT_CHAT_USAGE)
    else:
        assert all("usage" not in c for c in out)


def test_big_strings_pass_through_without_copies() -> None:
    big = "x" * 1_000_000
    s = ResponseScript()
    s.start()
    s.message([big])
    s.function_call("f", [big])
    s.completed()
    for events in (s.events, without_deltas(s.events)):
        sent = [
            v
            for d in deltas(run(events))
            for v in (
                d.get("content"),
                *(e["function"]["arguments"] for e in d.get("tool_calls", ())),
            )
        ]
        assert sum(v is big for v in sent) == 2


# Arbitrary JSON values where the translator expects specific shapes.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["type", "id", "text", "url", "reason"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)
loose_items = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "function_call", "reasoning", "other"])},
    optional={
        "id": json_values,
        "call_id": json_values,
        "name": json_values,
        "arguments": json_values,
        "content": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["output_text", "refusal"])},
                optional={
                    "text": json_values,
                    "refusal": json_values,
                    "annotations": st.lists(json_values, max_size=2),
                },
            ),
            max_size=2,
        )
        | json_values,
    },
)
loose_events = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "response.output_text.delta",
                "response.refusal.delta",
                "response.reasoning_summary_text.delta",
                "response.reasoning_text.delta",
                "response.output_text.annotation.added",
                "response.function_call_arguments.delta",
                "response.output_item.added",
                "response.output_item.done",
                "response.completed",
                "response.incomplete",
                "response.unknown",
            ]
        )
    },
    optional={
        "delta": json_values,
        "item_id": json_values,
        "output_index": json_values,
        "summary_index": json_values,
        "annotation": json_values,
        "item": loose_items | json_values,
        "response": st.fixed_dictionaries(
            {},
            optional={
                "usage": json_values,
                "output": st.lists(loose_items, max_size=2) | json_values,
                "incomplete_details": json_values,
            },
        )
        | json_values,
    },
)


@settings(max_examples=150, deadline=None)
@given(events=st.lists(loose_events, max_size=8), include_usage=st.booleans())
def test_property_malformed_events_never_raise(
    events: list[dict[str, Any]], include_usage: bool
) -> None:
    t = translator(include_usage)
    out = [c for e in events for c in t.feed(e)]
    if t.done:
        assert t.finish() == []
        finishes = [c["choices"][0]["finish_reason"] for c in out if c["choices"]]
        assert len([f for f in finishes if f]) == 1
    else:
        with pytest.raises(OpenAIError):
            t.finish()
