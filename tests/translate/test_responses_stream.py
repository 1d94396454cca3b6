"""ResponsesRelay: what passes untouched, what is rewritten, and the final Response."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.responses_request import ClientView
from codex_proxy.translate.responses_stream import (
    ResponsesRelay,
    collect_response,
    public_usage,
    sse_frame,
)

VIEW = ClientView(
    store=True,
    previous_response_id="resp_prev",
    instructions=None,
    include_encrypted=False,
    model="gpt-5.5",
)
UPSTREAM_RESPONSE = {
    "id": "resp_up",
    "object": "response",
    "created_at": 1760000000,
    "status": "in_progress",
    "model": "gpt-5.5",
    "output": [],
    "usage": None,
    "error": None,
    "incomplete_details": None,
    "instructions": "configured default",
    "store": False,
    "previous_response_id": None,
    "tools": [],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
}
REASONING = {
    "id": "rs_1",
    "type": "reasoning",
    "summary": [{"type": "summary_text", "text": "hm"}],
    "encrypted_content": "gAAA",
}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "status": "completed",
    "content": [{"type": "output_text", "text": "Hi", "annotations": []}],
}
CALL = {
    "id": "fc_1",
    "type": "function_call",
    "call_id": "call_1",
    "name": "f",
    "arguments": "{}",
    "status": "completed",
}
USAGE = {
    "input_tokens": 10,
    "input_tokens_details": None,
    "output_tokens": 5,
    "output_tokens_details": {"reasoning_tokens": 2},
    "total_tokens": 15,
}
PUBLIC_USAGE = {
    "input_tokens": 10,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 5,
    "output_tokens_details": {"reasoning_tokens": 2},
    "total_tokens": 15,
}


def lifecycle(kind: str, seq: int, **changes: Any) -> dict[str, Any]:
    return {"type": kind, "sequence_number": seq, "response": {**UPSTREAM_RESPONSE, **changes}}


def done(index: int, item: dict[str, Any], seq: int) -> dict[str, Any]:
    return {
        "type": "response.output_item.done",
        "sequence_number": seq,
        "output_index": index,
        "item": item,
    }


def client_response(**changes: Any) -> dict[str, Any]:
    return {
        **UPSTREAM_RESPONSE,
        "instructions": None,
        "store": True,
        "previous_response_id": "resp_prev",
        **changes,
    }


def stream() -> list[dict[str, Any]]:
    """Reasoning, a function call and a message whose done events arrive out of order."""
    return [
        lifecycle("response.created", 0),
        lifecycle("response.in_progress", 1),
        {
            "type": "response.output_item.added",
            "sequence_number": 2,
            "output_index": 0,
            "item": {**REASONING, "summary": []},
        },
        {
            "type": "response.reasoning_summary_text.delta",
            "sequence_number": 3,
            "item_id": "rs_1",
            "output_index": 0,
            "summary_index": 0,
            "delta": "hm",
        },
        {
            "type": "response.output_item.added",
            "sequence_number": 4,
            "output_index": 1,
            "item": {**CALL, "status": "in_progress"},
        },
        {
            "type": "response.output_item.added",
            "sequence_number": 5,
            "output_index": 2,
            "item": {**MESSAGE, "content": []},
        },
        {
            "type": "response.output_text.delta",
            "sequence_number": 6,
            "item_id": "msg_1",
            "output_index": 2,
            "content_index": 0,
            "delta": "Hi",
            "logprobs": [],
        },
        done(2, MESSAGE, 7),
        done(0, REASONING, 8),
        done(1, CALL, 9),
        lifecycle("response.completed", 10, status="completed", usage=USAGE),
    ]


def test_rewrites_only_what_it_must_and_rebuilds_completed_output_in_order() -> None:
    relay = ResponsesRelay(VIEW)
    events = stream()
    out = [relay.feed(event) for event in events]
    stripped = {k: v for k, v in REASONING.items() if k != "encrypted_content"}
    assert out[0] == {
        "type": "response.created",
        "sequence_number": 0,
        "response": client_response(),
    }
    assert out[1] == {
        "type": "response.in_progress",
        "sequence_number": 1,
        "response": client_response(),
    }
    assert out[2] == {**events[2], "item": {**stripped, "summary": []}}
    assert out[3:8] == [None, None, None, None, None]  # deltas and non-reasoning items untouched
    assert out[8] == {**events[8], "item": stripped}
    assert out[9] is None
    final = client_response(
        status="completed", output=[stripped, CALL, MESSAGE], usage=PUBLIC_USAGE
    )
    assert out[10] == {"type": "response.completed", "sequence_number": 10, "response": final}
    assert relay.response == final
    assert relay.items == [REASONING, CALL, MESSAGE]  # the store keeps encrypted_content
    assert relay.done and relay.failure is None
    assert relay.final_response() == final


def test_added_event_without_encrypted_content_passes() -> None:
    relay = ResponsesRelay(VIEW)
    event = {
        "type": "response.output_item.added",
        "sequence_number": 2,
        "output_index": 0,
        "item": {"id": "rs_1", "type": "reasoning", "summary": []},
    }
    assert relay.feed(event) is None


def test_client_that_included_encryption_keeps_it_and_items_pass() -> None:
    view = ClientView(
        store=False,
        previous_response_id=None,
        instructions="mine",
        include_encrypted=True,
        model="gpt-5.5",
    )
    relay = ResponsesRelay(view, response_id="resp_gw")
    out = [relay.feed(event) for event in stream()]
    assert out[2:10] == [None] * 8
    assert out[0]["response"]["id"] == "resp_gw"
    assert out[0]["response"]["store"] is False
    assert out[0]["response"]["instructions"] == "mine"
    assert out[0]["response"]["previous_response_id"] is None
    final = out[10]["response"]
    assert final["id"] == "resp_gw"
    assert final["output"] == [REASONING, CALL, MESSAGE]


def test_non_streaming_response() -> None:
    response, items = collect_response(stream(), VIEW, response_id="resp_gw")
    stripped = {k: v for k, v in REASONING.items() if k != "encrypted_content"}
    assert response == client_response(
        id="resp_gw", status="completed", output=[stripped, CALL, MESSAGE], usage=PUBLIC_USAGE
    )
    assert "output_text" not in response
    assert items == [REASONING, CALL, MESSAGE]


def test_incomplete_is_an_answer_with_its_reason() -> None:
    events = [
        lifecycle("response.created", 0),
        done(0, MESSAGE, 1),
        lifecycle(
            "response.incomplete",
            2,
            status="incomplete",
            incomplete_details={"reason": "max_output_tokens"},
            usage=USAGE,
        ),
    ]
    response, _ = collect_response(events, VIEW)
    assert response == client_response(
        status="incomplete",
        incomplete_details={"reason": "max_output_tokens"},
        output=[MESSAGE],
        usage=PUBLIC_USAGE,
    )


def test_upstream_output_wins_when_it_is_filled() -> None:
    relay = ResponsesRelay(VIEW)
    relay.feed(done(0, MESSAGE, 1))
    out = relay.feed(lifecycle("response.completed", 2, status="completed", output=[CALL]))
    assert out is not None
    assert out["response"]["output"] == [CALL]
    assert relay.items == [CALL]


def test_partial_images_and_unknown_events_pass_untouched() -> None:
    relay = ResponsesRelay(VIEW)
    partial = {
        "type": "response.image_generation_call.partial_image",
        "sequence_number": 3,
        "item_id": "ig_1",
        "output_index": 0,
        "partial_image_index": 0,
        "partial_image_b64": "AAAA",
    }
    assert relay.feed(partial) is None
    assert relay.feed({"type": "codex.rate_limits", "plan_type": "plus"}) is None
    assert (
        relay.feed(done(0, {"id": "ig_1", "type": "image_generation_call", "result": "AAAA"}, 4))
        is None
    )


def test_failed_response_maps_like_chat_and_still_reports_the_client_view() -> None:
    relay = ResponsesRelay(VIEW)
    failed = lifecycle(
        "response.failed",
        2,
        status="failed",
        error={"code": "rate_limit_exceeded", "message": "Slow down"},
    )
    out = relay.feed(failed)
    assert out is not None
    assert out["response"]["store"] is True
    assert out["response"]["status"] == "failed"
    assert relay.failure is not None
    assert (relay.failure.status, relay.failure.code) == (429, "rate_limit_exceeded")
    with pytest.raises(OpenAIError) as info:
        relay.final_response()
    assert info.value.status == 429


def test_error_event_passes_and_is_recorded() -> None:
    relay = ResponsesRelay(VIEW)
    event = {
        "type": "error",
        "sequence_number": 1,
        "error": {"type": "server_error", "code": "server_is_overloaded", "message": "busy"},
    }
    assert relay.feed(event) is None
    assert relay.done
    assert relay.failure is not None
    assert (relay.failure.status, relay.failure.message) == (503, "busy")


def test_stream_cut_before_terminal_event() -> None:
    relay = ResponsesRelay(VIEW)
    relay.feed(lifecycle("response.created", 0))
    with pytest.raises(OpenAIError) as info:
        relay.final_response()
    assert info.value.code == "upstream_stream_truncated"


def test_public_usage_fills_details_and_total() -> None:
    assert public_usage(None) is None
    assert public_usage({"input_tokens": 3, "output_tokens": 4}) == {
        "input_tokens": 3,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 7,
    }
    kept = public_usage(
        {**USAGE, "input_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 1}}
    )
    assert kept is not None
    assert kept["input_tokens_details"] == {"cached_tokens": 8, "cache_write_tokens": 1}


def test_sse_frame() -> None:
    payload = orjson.dumps({"type": "x"})
    assert sse_frame("x", payload) == b'event: x\ndata: {"type":"x"}\n\n'


def test_final_response_parses_as_the_sdk_response() -> None:
    from openai.types.responses import Response

    response, _ = collect_response(stream(), VIEW, response_id="resp_gw")
    parsed = Response.model_validate(response)
    assert parsed.output_text == "Hi"
    assert parsed.usage is not None
    assert parsed.usage.input_tokens_details.cached_tokens == 0
    assert parsed.previous_response_id == "resp_prev"
