"""Compaction: the upstream body and the public response.compaction object."""

from __future__ import annotations

import pytest

from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.request import RequestOptions
from codex_proxy.translate.responses_compact import compacted_response, prepare_compact_request
from codex_proxy.translate.responses_request import ResponsesOptions

OPTIONS = ResponsesOptions(
    RequestOptions(chatgpt_backend=True, default_model="gpt-5.5", instructions="Be brief.")
)


def test_compact_body() -> None:
    prepared = prepare_compact_request(
        {
            "model": "gpt-5.5-high",
            "input": [{"role": "system", "content": "s"}],
            "previous_response_id": "resp_1",
            "tools": [{"type": "function", "name": "f"}],
            "prompt_cache_retention": "24h",
        },
        OPTIONS,
    )
    assert prepared.body == {
        "model": "gpt-5.5",
        "input": [
            {
                "type": "message",
                "role": "developer",
                "content": [{"type": "input_text", "text": "s"}],
            }
        ],
        "instructions": "Be brief.",
        "reasoning": {"effort": "high", "summary": "auto"},
        "tools": [{"type": "function", "name": "f"}],
    }
    assert prepared.dropped == ("prompt_cache_retention",)
    assert prepared.previous_response_id == "resp_1"
    assert prepared.model == "gpt-5.5-high"


def test_compact_needs_input_or_previous_response() -> None:
    with pytest.raises(OpenAIError) as info:
        prepare_compact_request({"model": "gpt-5.5"}, OPTIONS)
    assert (info.value.status, info.value.param) == (400, "input")
    only_previous = prepare_compact_request({"previous_response_id": "resp_1"}, OPTIONS)
    assert only_previous.body["input"] == []


def test_compacted_response_shape_parses_in_the_sdk() -> None:
    from openai.types.responses import ResponseCompactionItem, ResponseUsage

    output = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "compaction", "encrypted_content": "gAAA"},
    ]
    got = compacted_response({"output": output}, response_id="resp_c", created_at=1760000000)
    assert got == {
        "id": "resp_c",
        "object": "response.compaction",
        "created_at": 1760000000,
        "output": [output[0], {"id": "cmp_c_1", **output[1]}],
        "usage": {
            "input_tokens": 0,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 0,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 0,
        },
    }
    assert ResponseCompactionItem.model_validate(got["output"][1]).id == "cmp_c_1"
    assert ResponseUsage.model_validate(got["usage"]).total_tokens == 0


def test_compacted_response_without_output_is_502() -> None:
    with pytest.raises(OpenAIError) as info:
        compacted_response({"detail": "x"}, response_id="r", created_at=0)
    assert info.value.status == 502


def test_api_key_compact_passes_through() -> None:
    options = ResponsesOptions(RequestOptions(chatgpt_backend=False, default_model="gpt-5.5"))
    request = {"model": "default", "previous_response_id": "resp_1"}
    prepared = prepare_compact_request(request, options)
    assert prepared.body == {"model": "gpt-5.5", "previous_response_id": "resp_1"}
    assert prepared.previous_response_id is None
