"""prepare_responses_request: the upstream body, the client view, dropped params, image rule."""

from __future__ import annotations

from typing import Any

import pytest

from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.request import RequestOptions
from codex_proxy.translate.responses_request import (
    ClientView,
    ResponsesOptions,
    prepare_responses_request,
)

CHATGPT = RequestOptions(
    chatgpt_backend=True,
    default_model="gpt-5.5",
    instructions="Be brief.",
    model_aliases={"fast": "gpt-5.4-mini-low"},
)
API = RequestOptions(chatgpt_backend=False, default_model="gpt-5.5", instructions="Be brief.")


def prepare(request: dict[str, Any], *, image: bool = False, **kwargs: Any) -> Any:
    return prepare_responses_request(
        request, ResponsesOptions(CHATGPT, enable_image_gen=image), **kwargs
    )


def fails(request: Any, param: str | None, text: str) -> OpenAIError:
    with pytest.raises(OpenAIError) as info:
        prepare(request)
    assert info.value.status == 400
    assert info.value.param == param
    assert text in info.value.message
    return info.value


def test_string_input_becomes_one_user_message_and_forced_fields() -> None:
    prepared = prepare({"model": "gpt-5.5", "input": "hi", "prompt_cache_key": "k1"})
    assert prepared.body == {
        "model": "gpt-5.5",
        "instructions": "Be brief.",
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
        ],
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k1",
    }
    assert prepared.dropped == ()
    assert prepared.stream is False
    assert prepared.chatgpt is True
    assert prepared.view == ClientView(
        store=True,
        previous_response_id=None,
        instructions=None,
        include_encrypted=False,
        model="gpt-5.5",
    )


def test_system_becomes_developer_and_string_content_becomes_parts() -> None:
    prepared = prepare(
        {
            "input": [
                {"role": "system", "content": "rules"},
                {"role": "assistant", "content": "earlier"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "q"}],
                },
            ]
        }
    )
    assert prepared.input == [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "rules"}],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "earlier"}],
        },
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]},
    ]


def test_client_fields_reported_not_forced_ones() -> None:
    prepared = prepare(
        {
            "input": "x",
            "store": False,
            "stream": True,
            "previous_response_id": "resp_1",
            "instructions": "mine",
            "include": ["reasoning.encrypted_content", "web_search_call.action.sources"],
        }
    )
    assert prepared.view == ClientView(
        store=False,
        previous_response_id="resp_1",
        instructions="mine",
        include_encrypted=True,
        model="gpt-5.5",
    )
    assert prepared.previous_response_id == "resp_1"
    assert prepared.stream is True
    assert prepared.body["instructions"] == "mine"
    assert "previous_response_id" not in prepared.body
    assert prepared.body["include"] == [
        "reasoning.encrypted_content",
        "web_search_call.action.sources",
    ]
    assert prepared.dropped == ()


def test_refused_params_dropped_and_listed_in_request_order() -> None:
    prepared = prepare(
        {
            "temperature": 0.2,
            "input": "x",
            "user": "u",
            "truncation": "auto",
            "max_output_tokens": 10,
            "top_p": None,  # null = unset
            "prompt_cache_retention": "24h",
            "metadata": {"a": "b"},
            "reasoning": {"effort": "low", "generate_summary": "auto"},
            "max_tool_calls": 3,  # not refused by the backend: forwarded
        }
    )
    assert prepared.dropped == (
        "temperature",
        "user",
        "truncation",
        "max_output_tokens",
        "prompt_cache_retention",
        "metadata",
        "reasoning.generate_summary",
    )
    body = prepared.body
    for key in ("temperature", "user", "truncation", "max_output_tokens", "metadata"):
        assert key not in body
    assert body["max_tool_calls"] == 3
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}


@pytest.mark.parametrize("key", ["background", "conversation"])
def test_storage_features_are_refused(key: str) -> None:
    value = True if key == "background" else "conv_1"
    error = fails({"input": "x", key: value}, key, f"'{key}'")
    assert error.code == "unsupported_parameter"


def test_background_false_is_fine() -> None:
    assert prepare({"input": "x", "background": False}).dropped == ()


def test_model_default_and_alias_with_effort_suffix() -> None:
    assert prepare({"input": "x"}).body["model"] == "gpt-5.5"
    prepared = prepare({"model": "fast", "input": "x"})
    assert prepared.body["model"] == "gpt-5.4-mini"
    assert prepared.body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert prepared.view.model == "fast"


def test_prompt_cache_key_client_then_chain_then_session_then_derived() -> None:
    assert prepare({"input": "x", "prompt_cache_key": "c"}, cache_key="k").prompt_cache_key == "c"
    assert prepare({"input": "x"}, cache_key="k").body["prompt_cache_key"] == "k"
    with_session = RequestOptions(chatgpt_backend=True, default_model="m", session_id="s")
    got = prepare_responses_request({"input": "x"}, ResponsesOptions(with_session))
    assert got.prompt_cache_key == "s"
    first = prepare({"input": "same start"}).prompt_cache_key
    assert first == prepare({"input": "same start", "store": False}).prompt_cache_key
    assert first != prepare({"input": "other start"}).prompt_cache_key


@pytest.mark.parametrize(
    ("request_fields", "param", "text"),
    [
        ({"input": 3}, "input", "expected a string or an array"),
        ({}, "input", "Missing required parameter: 'input'"),
        ({"input": ["x"]}, "input[0]", "expected an object"),
        ({"input": [{"type": "banana"}]}, "input[0].type", "'banana'"),
        ({"input": [{"content": "no role"}]}, "input[0].type", "Missing"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role", "'robot'"),
        ({"input": [{"role": "user", "content": 5}]}, "input[0].content", "a string or an array"),
        ({"input": [{"role": "user", "content": ["x"]}]}, "input[0].content[0]", "an object"),
        ({"input": [{"type": "item_reference"}]}, "input[0].id", "a string"),
        ({"input": "x", "store": "yes"}, "store", "a boolean"),
        ({"input": "x", "include": [1]}, "include[0]", "a string"),
        ({"input": "x", "tools": [{"name": "f"}]}, "tools[0]", "an object with a 'type'"),
        ({"input": "x", "modalities": ["audio"]}, "modalities[0]", "'audio'"),
        ({"input": "x", "model": 5}, "model", "a string"),
        ([], None, "JSON object"),
    ],
)
def test_bad_input_is_400_with_param(request_fields: Any, param: str | None, text: str) -> None:
    fails(request_fields, param, text)


def test_item_reference_without_type_is_recognised() -> None:
    assert prepare({"input": [{"id": "msg_1"}]}).input == [
        {"id": "msg_1", "type": "item_reference"}
    ]


# -- image tool ------------------------------------------------------------------------------


def test_image_tool_injected_when_enabled() -> None:
    prepared = prepare({"input": "draw"}, image=True)
    assert prepared.body["tools"] == [{"type": "image_generation"}]
    assert prepared.dropped == ()


@pytest.mark.parametrize(
    "extra",
    [
        {"image_generation": False},
        {"modalities": ["text"]},
        {"tool_choice": "required", "tools": [{"type": "function", "name": "f"}]},
        {
            "tool_choice": {"type": "function", "name": "f"},
            "tools": [{"type": "function", "name": "f"}],
        },
        {"text": {"format": {"type": "json_object"}}},
        {"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}},
    ],
)
def test_image_tool_not_injected(extra: dict[str, Any]) -> None:
    prepared = prepare({"input": "x", **extra}, image=True)
    assert not any(t["type"] == "image_generation" for t in prepared.body["tools"])
    assert "image_generation" not in prepared.body
    assert "modalities" not in prepared.body
    assert prepared.dropped == ()


def test_image_tool_not_duplicated_and_client_fields_kept() -> None:
    prepared = prepare(
        {"input": "x", "tools": [{"type": "image_generation", "size": "1024x1536"}]}, image=True
    )
    assert prepared.body["tools"] == [{"type": "image_generation", "size": "1024x1536"}]


def test_image_tool_with_modalities_including_image() -> None:
    prepared = prepare({"input": "x", "modalities": ["text", "image"]}, image=True)
    assert prepared.body["tools"] == [{"type": "image_generation"}]


# -- api_key mode ----------------------------------------------------------------------------


def test_api_key_mode_passes_everything_but_model() -> None:
    request = {
        "model": "default",
        "input": "hi",
        "store": True,
        "previous_response_id": "resp_9",
        "temperature": 0.5,
        "input_items": None,
        "image_generation": False,
    }
    prepared = prepare_responses_request(request, ResponsesOptions(API, enable_image_gen=True))
    assert prepared.body == {
        "model": "gpt-5.5",
        "input": "hi",
        "store": True,
        "previous_response_id": "resp_9",
        "temperature": 0.5,
        "input_items": None,
    }
    assert prepared.chatgpt is False
    assert prepared.dropped == ()
    assert prepared.view.previous_response_id == "resp_9"


def test_api_key_mode_keeps_item_references() -> None:
    request = {"model": "gpt-5.5", "input": [{"type": "item_reference", "id": "msg_1"}]}
    prepared = prepare_responses_request(request, ResponsesOptions(API))
    assert prepared.body == request
