"""Chat Completions request -> Responses request: one test per translation rule."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.request import RequestOptions, TranslatedRequest, translate_request

CHATGPT = RequestOptions(
    chatgpt_backend=True, default_model="gpt-5-codex", instructions="INSTR", session_id="sess-1"
)
API = RequestOptions(
    chatgpt_backend=False, default_model="gpt-5", instructions="INSTR", session_id="sess-1"
)
USER = {"role": "user", "content": "hi"}
USER_ITEM = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}


def chat(**fields: Any) -> dict[str, Any]:
    """A valid minimal chat request with the given fields added or replaced."""
    return {"model": "gpt-5", "messages": [USER], **fields}


def tr(body: Any, options: RequestOptions = API) -> TranslatedRequest:
    return translate_request(body, options)


def fails(
    body: Any, fragment: str, param: str | None, options: RequestOptions = API
) -> OpenAIError:
    """Assert a 400 naming `param` whose message contains `fragment`."""
    with pytest.raises(OpenAIError) as caught:
        translate_request(body, options)
    error = caught.value
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert fragment in error.message, error.message
    assert error.param == param
    return error


def items(*messages: dict[str, Any], options: RequestOptions = API) -> list[dict[str, Any]]:
    return tr(chat(messages=list(messages)), options).body["input"]


def dev(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": text}],
    }


def said(*texts: str) -> dict[str, Any]:
    parts = [{"type": "output_text", "text": t, "annotations": []} for t in texts]
    return {"type": "message", "role": "assistant", "content": parts}


# --------------------------------------------------------------------------- whole bodies


def test_minimal_request_chatgpt_mode() -> None:
    result = tr({"model": "gpt-5-codex", "messages": [USER]}, CHATGPT)
    assert result.body == {
        "model": "gpt-5-codex",
        "instructions": "INSTR",
        "input": [USER_ITEM],
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
        "stream": True,
        "prompt_cache_key": "sess-1",
    }
    assert result.dropped == ()
    assert result.stream is False
    assert result.include_usage is False
    assert result.model == "gpt-5-codex"
    assert result.session_id == "sess-1"


def test_minimal_request_api_mode_sends_no_reasoning() -> None:
    result = tr(chat())
    assert result.body == {
        "model": "gpt-5",
        "instructions": "INSTR",
        "input": [USER_ITEM],
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "store": False,
        "stream": True,
        "prompt_cache_key": "sess-1",
    }


def test_full_request_api_mode() -> None:
    body = {
        "model": "gpt-5",
        "messages": [{"role": "system", "content": "be brief"}, USER],
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "reasoning_effort": "low",
        "response_format": {"type": "json_object"},
        "verbosity": "low",
        "temperature": 0.2,
        "max_completion_tokens": 100,
        "seed": 7,
        "prompt_cache_key": "conv-9",
    }
    result = tr(body)
    assert result.body == {
        "model": "gpt-5",
        "instructions": "INSTR",
        "input": [dev("be brief"), USER_ITEM],
        "tools": [
            {
                "type": "function",
                "name": "f",
                "parameters": {"type": "object", "properties": {}},
                "strict": False,
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "low", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "text": {"format": {"type": "json_object"}, "verbosity": "low"},
        "temperature": 0.2,
        "max_output_tokens": 100,
        "store": False,
        "stream": True,
        "prompt_cache_key": "conv-9",
    }
    assert result.dropped == ("seed",)
    assert result.stream is True
    assert result.include_usage is True
    assert result.session_id == "conv-9"


# --------------------------------------------------------------------------- request shape


@pytest.mark.parametrize("body", [[], "x", 1, None, True])
def test_body_must_be_an_object(body: Any) -> None:
    fails(body, "Request body must be a JSON object", None)


@pytest.mark.parametrize(
    ("messages", "fragment", "param"),
    [
        (None, "Missing required parameter", "messages"),
        ("hi", "expected an array", "messages"),
        ([], "empty array", "messages"),
        ([USER, "hi"], "expected an object", "messages[1]"),
        ([{"content": "x"}], "Missing required parameter", "messages[0].role"),
        ([{"role": 3, "content": "x"}], "expected a string", "messages[0].role"),
        ([{"role": "robot", "content": "x"}], "'robot'", "messages[0].role"),
    ],
)
def test_messages_validation(messages: Any, fragment: str, param: str) -> None:
    fails({"model": "gpt-5", "messages": messages}, fragment, param)


def test_absent_messages_key() -> None:
    fails({"model": "gpt-5"}, "Missing required parameter: 'messages'", "messages")


# --------------------------------------------------------------------------- model


@pytest.mark.parametrize("model", [None, "default", ""])
def test_missing_model_uses_default(model: Any) -> None:
    body = {"messages": [USER]} if model is None else chat(model=model)
    result = tr(body, CHATGPT)
    assert result.body["model"] == "gpt-5-codex"
    assert result.model == "gpt-5-codex"


def test_model_alias_and_echo() -> None:
    options = RequestOptions(False, "gpt-5", model_aliases={"fast": "gpt-5-mini"})
    result = tr(chat(model="fast"), options)
    assert result.body["model"] == "gpt-5-mini"
    assert result.model == "fast"
    assert "reasoning" not in result.body


@pytest.mark.parametrize("effort", ["minimal", "low", "medium", "high", "xhigh", "none"])
def test_model_suffix_sets_effort(effort: str) -> None:
    result = tr(chat(model=f"gpt-5-codex-{effort}"))
    assert result.body["model"] == "gpt-5-codex"
    assert result.body["reasoning"] == {"effort": effort, "summary": "auto"}
    assert result.body["include"] == ["reasoning.encrypted_content"]
    assert result.model == f"gpt-5-codex-{effort}"


def test_alias_target_may_carry_a_suffix() -> None:
    options = RequestOptions(True, "gpt-5", model_aliases={"deep": "gpt-5-codex-xhigh"})
    result = tr(chat(model="deep"), options)
    assert result.body["model"] == "gpt-5-codex"
    assert result.body["reasoning"]["effort"] == "xhigh"


@pytest.mark.parametrize("model", ["gpt-5.1-codex-max", "gpt-4o-mini", "gpt-5"])
def test_model_without_effort_suffix_is_untouched(model: str) -> None:
    assert tr(chat(model=model)).body["model"] == model


def test_explicit_reasoning_effort_beats_suffix() -> None:
    result = tr(chat(model="gpt-5-codex-high", reasoning_effort="low"), CHATGPT)
    assert result.body["model"] == "gpt-5-codex"
    assert result.body["reasoning"] == {"effort": "low", "summary": "auto"}


def test_model_must_be_a_string() -> None:
    fails(chat(model=5), "Invalid type for 'model'", "model")


# --------------------------------------------------------------------------- reasoning


@pytest.mark.parametrize("effort", ["none", "minimal", "low", "medium", "high", "xhigh", "max"])
def test_reasoning_effort_values(effort: str) -> None:
    assert tr(chat(reasoning_effort=effort)).body["reasoning"]["effort"] == effort


def test_reasoning_effort_invalid_lists_allowed() -> None:
    error = fails(chat(reasoning_effort="huge"), "'huge'", "reasoning_effort")
    assert "'minimal'" in error.message and "'max'" in error.message


def test_reasoning_effort_wrong_type() -> None:
    fails(chat(reasoning_effort=3), "expected a string", "reasoning_effort")


def test_reasoning_object_accepted() -> None:
    result = tr(chat(reasoning={"effort": "high", "summary": "detailed"}))
    assert result.body["reasoning"] == {"effort": "high", "summary": "detailed"}
    assert result.body["include"] == ["reasoning.encrypted_content"]
    assert result.dropped == ()


def test_reasoning_effort_param_beats_reasoning_object() -> None:
    body = chat(reasoning_effort="low", reasoning={"effort": "high"})
    assert tr(body).body["reasoning"] == {"effort": "low", "summary": "auto"}


def test_reasoning_object_unknown_keys_dropped_and_reported() -> None:
    result = tr(chat(reasoning={"effort": "low", "max_tokens": 100, "exclude": None}, seed=1))
    assert result.body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert result.dropped == ("reasoning.max_tokens", "seed")


@pytest.mark.parametrize(
    ("reasoning", "fragment", "param"),
    [
        ("high", "expected an object", "reasoning"),
        ({"effort": "huge"}, "'huge'", "reasoning.effort"),
        ({"summary": "long"}, "'long'", "reasoning.summary"),
    ],
)
def test_reasoning_object_invalid(reasoning: Any, fragment: str, param: str) -> None:
    fails(chat(reasoning=reasoning), fragment, param)


@pytest.mark.parametrize("summary", ["", "none"])
def test_reasoning_summary_disabled_by_option(summary: str) -> None:
    options = RequestOptions(True, "gpt-5-codex", reasoning_summary=summary)
    result = tr(chat(), options)
    assert result.body["reasoning"] == {}
    assert result.body["include"] == ["reasoning.encrypted_content"]
    assert tr(chat(reasoning_effort="high"), options).body["reasoning"] == {"effort": "high"}


def test_reasoning_summary_from_option_and_client_override() -> None:
    options = RequestOptions(True, "gpt-5-codex", reasoning_summary="concise")
    assert tr(chat(), options).body["reasoning"] == {"summary": "concise"}
    body = chat(reasoning={"summary": "none"})
    assert tr(body, options).body["reasoning"] == {}


# --------------------------------------------------------------------------- system / developer


def test_system_and_developer_become_developer_items_in_place() -> None:
    got = items(
        {"role": "system", "content": "S"},
        USER,
        {
            "role": "developer",
            "content": [{"type": "text", "text": "D1"}, {"type": "text", "text": "D2"}],
        },
    )
    two_parts = {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": "D1"}, {"type": "input_text", "text": "D2"}],
    }
    assert got == [dev("S"), USER_ITEM, two_parts]


def test_system_message_name_is_ignored() -> None:
    assert items({"role": "system", "content": "S", "name": "boss"}, USER)[0] == dev("S")


@pytest.mark.parametrize(
    ("content", "fragment", "param"),
    [
        (None, "Missing required parameter", "messages[0].content"),
        (5, "expected a string or an array of content parts", "messages[0].content"),
        ([{"type": "image_url"}], "only 'text' content parts", "messages[0].content[0].type"),
        (["x"], "expected an object", "messages[0].content[0]"),
        ([{"type": "text"}], "Missing required parameter", "messages[0].content[0].text"),
    ],
)
def test_system_content_invalid(content: Any, fragment: str, param: str) -> None:
    fails(chat(messages=[{"role": "system", "content": content}, USER]), fragment, param)


# --------------------------------------------------------------------------- user


def test_user_parts() -> None:
    content = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR", "detail": "low"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVB", "filename": "a.pdf"},
        },
        {"type": "file", "file": {"file_id": "file-1"}},
    ]
    assert items({"role": "user", "content": content}) == [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "auto"},
                {
                    "type": "input_image",
                    "image_url": "data:image/png;base64,iVBOR",
                    "detail": "low",
                },
                {
                    "type": "input_file",
                    "file_data": "data:application/pdf;base64,JVB",
                    "filename": "a.pdf",
                },
                {"type": "input_file", "file_id": "file-1"},
            ],
        }
    ]


def test_user_image_url_as_bare_string() -> None:
    part = {"type": "image_url", "image_url": "http://x.test/i.jpg"}
    assert items({"role": "user", "content": [part]})[0]["content"] == [
        {"type": "input_image", "image_url": "http://x.test/i.jpg", "detail": "auto"}
    ]


@pytest.mark.parametrize(
    ("part", "fragment", "param"),
    [
        ({"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}, "Audio", ".type"),
        ({"type": "video"}, "'video'", ".type"),
        ({"text": "x"}, "Missing required parameter", ".type"),
        ({"type": "text", "text": 5}, "expected a string", ".text"),
        ({"type": "image_url"}, "Missing required parameter", ".image_url"),
        ({"type": "image_url", "image_url": 5}, "expected an object", ".image_url"),
        ({"type": "image_url", "image_url": {}}, "Missing required", ".image_url.url"),
        ({"type": "image_url", "image_url": {"url": ""}}, "Missing required", ".image_url.url"),
        ({"type": "image_url", "image_url": {"url": 7}}, "expected a string", ".image_url.url"),
        ({"type": "image_url", "image_url": {"url": "ftp://x/a.png"}}, "http(s)", ".image_url.url"),
        ({"type": "image_url", "image_url": {"url": "https://"}}, "http(s)", ".image_url.url"),
        (
            {"type": "image_url", "image_url": {"url": "data:text/plain,hi"}},
            "data:image",
            ".image_url.url",
        ),
        (
            {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "max"}},
            "'max'",
            ".image_url.detail",
        ),
        ({"type": "file"}, "Missing required", ".file"),
        ({"type": "file", "file": {"filename": "a.pdf"}}, "'file_data' or 'file_id'", ".file"),
        ({"type": "file", "file": {"file_id": 3}}, "expected a string", ".file.file_id"),
    ],
)
def test_user_part_invalid(part: Any, fragment: str, param: str) -> None:
    body = chat(messages=[{"role": "system", "content": "s"}, {"role": "user", "content": [part]}])
    fails(body, fragment, "messages[1].content[0]" + param)


def test_user_content_wrong_type() -> None:
    body = chat(messages=[{"role": "user", "content": 42}])
    fails(body, "Invalid type for 'messages[0].content'", "messages[0].content")


def test_user_content_null() -> None:
    fails(chat(messages=[{"role": "user", "content": None}]), "Missing", "messages[0].content")


def test_user_empty_parts_list_sends_no_item() -> None:
    assert items({"role": "user", "content": []}, USER) == [USER_ITEM]


# --------------------------------------------------------------------------- assistant


def test_assistant_text_string_and_parts() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "refusal", "refusal": "no"}]
    got = items(
        USER, {"role": "assistant", "content": "hello"}, {"role": "assistant", "content": parts}
    )
    assert got == [USER_ITEM, said("hello"), said("a", "no")]


@pytest.mark.parametrize("content", [None, "", []])
def test_assistant_empty_content_is_skipped(content: Any) -> None:
    assert items(USER, {"role": "assistant", "content": content}) == [USER_ITEM]


def test_assistant_refusal_field_used_when_no_content() -> None:
    got = items(USER, {"role": "assistant", "content": None, "refusal": "I can't"})
    assert got == [USER_ITEM, said("I can't")]


def test_assistant_text_and_tool_calls_and_tool_results() -> None:
    got = items(
        USER,
        {
            "role": "assistant",
            "content": "checking",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "b", "arguments": '{"x":1}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "one"},
        {
            "role": "tool",
            "tool_call_id": "call_2",
            "content": [{"type": "text", "text": "t"}, {"type": "text", "text": "wo"}],
        },
    )
    assert got == [
        USER_ITEM,
        said("checking"),
        {"type": "function_call", "call_id": "call_1", "name": "a", "arguments": "{}"},
        {"type": "function_call", "call_id": "call_2", "name": "b", "arguments": '{"x":1}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "one"},
        {"type": "function_call_output", "call_id": "call_2", "output": "two"},
    ]
    assert all("id" not in item for item in got)


def test_assistant_custom_tool_call_round_trip() -> None:
    got = items(
        USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "custom", "custom": {"name": "sh", "input": "ls"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "a.txt"},
    )
    assert got[1:] == [
        {"type": "custom_tool_call", "call_id": "c1", "name": "sh", "input": "ls"},
        {"type": "custom_tool_call_output", "call_id": "c1", "output": "a.txt"},
    ]


@pytest.mark.parametrize(
    ("call", "fragment", "param"),
    [
        ("x", "expected an object", ""),
        ({"type": "function", "function": {"name": "a", "arguments": "{}"}}, "Missing", ".id"),
        ({"id": "c", "type": "function"}, "Missing", ".function"),
        ({"id": "c", "function": {"arguments": "{}"}}, "Missing", ".function.name"),
        ({"id": "c", "function": {"name": "a"}}, "Missing", ".function.arguments"),
        (
            {"id": "c", "function": {"name": "a", "arguments": {"x": 1}}},
            "expected a string",
            ".function.arguments",
        ),
        (
            {"id": "c", "type": "weird", "function": {"name": "a", "arguments": ""}},
            "'weird'",
            ".type",
        ),
        ({"id": "c", "type": "custom", "custom": {"name": "a"}}, "Missing", ".custom.input"),
    ],
)
def test_assistant_tool_call_invalid(call: Any, fragment: str, param: str) -> None:
    body = chat(messages=[USER, {"role": "assistant", "tool_calls": [call]}])
    fails(body, fragment, "messages[1].tool_calls[0]" + param)


@pytest.mark.parametrize(
    ("message", "fragment", "param"),
    [
        (
            {"role": "assistant", "content": 5},
            "expected a string or an array",
            "messages[1].content",
        ),
        (
            {"role": "assistant", "content": [{"type": "image_url"}]},
            "'image_url'",
            "messages[1].content[0].type",
        ),
        (
            {"role": "assistant", "tool_calls": {"id": "c"}},
            "expected an array",
            "messages[1].tool_calls",
        ),
        (
            {"role": "assistant", "function_call": "f"},
            "expected an object",
            "messages[1].function_call",
        ),
    ],
)
def test_assistant_message_invalid(message: Any, fragment: str, param: str) -> None:
    fails(chat(messages=[USER, message]), fragment, param)


def test_legacy_function_call_and_function_message() -> None:
    got = items(
        USER,
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "function", "name": "f", "content": "result"},
        {"role": "assistant", "function_call": {"name": "g", "arguments": '{"a":2}'}},
        {"role": "function", "name": "g", "content": None},
    )
    assert got[1:] == [
        {"type": "function_call", "call_id": "call_legacy_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_legacy_1", "output": "result"},
        {"type": "function_call", "call_id": "call_legacy_3", "name": "g", "arguments": '{"a":2}'},
        {"type": "function_call_output", "call_id": "call_legacy_3", "output": ""},
    ]


def test_function_message_without_call_is_rejected() -> None:
    body = chat(messages=[USER, {"role": "function", "name": "f", "content": "r"}])
    fails(body, "must follow an assistant message", "messages[1]")


# --------------------------------------------------------------------------- tool messages


@pytest.mark.parametrize(
    ("message", "fragment", "param"),
    [
        (
            {"role": "tool", "content": "x"},
            "Missing required parameter",
            "messages[1].tool_call_id",
        ),
        (
            {"role": "tool", "tool_call_id": 5, "content": "x"},
            "expected a string",
            "messages[1].tool_call_id",
        ),
        (
            {"role": "tool", "tool_call_id": "c", "content": 5},
            "expected a string or an array",
            "messages[1].content",
        ),
        (
            {"role": "tool", "tool_call_id": "c", "content": [{"type": "image_url"}]},
            "only 'text' content parts",
            "messages[1].content[0].type",
        ),
    ],
)
def test_tool_message_invalid(message: Any, fragment: str, param: str) -> None:
    fails(chat(messages=[USER, message]), fragment, param)


# --------------------------------------------------------------------------- tools


def test_function_tool_full() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather",
            "parameters": schema,
            "strict": True,
        },
    }
    assert tr(chat(tools=[tool])).body["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather",
            "parameters": schema,
            "strict": True,
        }
    ]


def test_custom_and_hosted_tools() -> None:
    tools = [
        {
            "type": "custom",
            "custom": {"name": "sh", "description": "shell", "format": {"type": "text"}},
        },
        {"type": "custom", "custom": {"name": "plain"}},
        {"type": "web_search_preview", "search_context_size": "low"},
        {"type": "image_generation", "output_format": "png"},
    ]
    assert tr(chat(tools=tools)).body["tools"] == [
        {"type": "custom", "name": "sh", "description": "shell", "format": {"type": "text"}},
        {"type": "custom", "name": "plain"},
        {"type": "web_search_preview", "search_context_size": "low"},
        {"type": "image_generation", "output_format": "png"},
    ]


def test_responses_shaped_function_tool_accepted() -> None:
    tool = {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": None}
    assert tr(chat(tools=[tool])).body["tools"] == [
        {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}
    ]


@pytest.mark.parametrize(
    ("tools", "fragment", "param"),
    [
        ({"type": "function"}, "expected an array", "tools"),
        (["f"], "expected an object", "tools[0]"),
        ([{"function": {"name": "f"}}], "Missing", "tools[0].type"),
        ([{"type": "function"}], "Missing", "tools[0].function"),
        ([{"type": "function", "function": {}}], "Missing", "tools[0].function.name"),
        (
            [{"type": "function", "function": {"name": "a b"}}],
            "does not match pattern",
            "tools[0].function.name",
        ),
        (
            [{"type": "function", "function": {"name": "x" * 65}}],
            "does not match pattern",
            "tools[0].function.name",
        ),
        (
            [{"type": "function", "function": {"name": "f", "parameters": "{}"}}],
            "expected an object",
            "tools[0].function.parameters",
        ),
        (
            [{"type": "function", "function": {"name": "f", "strict": "yes"}}],
            "expected a boolean",
            "tools[0].function.strict",
        ),
        (
            [{"type": "function", "function": {"name": "f", "description": 1}}],
            "expected a string",
            "tools[0].function.description",
        ),
        (
            [{"type": "custom", "custom": {"name": "c", "format": "text"}}],
            "expected an object",
            "tools[0].custom.format",
        ),
    ],
)
def test_tools_invalid(tools: Any, fragment: str, param: str) -> None:
    fails(chat(tools=tools), fragment, param)


def test_second_tool_error_names_its_index() -> None:
    tools = [
        {"type": "function", "function": {"name": "ok"}},
        {"type": "function", "function": {"name": 1}},
    ]
    fails(chat(tools=tools), "expected a string", "tools[1].function.name")


def test_legacy_functions_and_function_call() -> None:
    body = chat(
        functions=[{"name": "f", "description": "d", "parameters": {"type": "object"}}],
        function_call={"name": "f"},
    )
    result = tr(body)
    assert result.body["tools"] == [
        {
            "type": "function",
            "name": "f",
            "description": "d",
            "parameters": {"type": "object"},
            "strict": False,
        }
    ]
    assert result.body["tool_choice"] == {"type": "function", "name": "f"}
    assert result.dropped == ()


@pytest.mark.parametrize("mode", ["none", "auto"])
def test_legacy_function_call_modes(mode: str) -> None:
    assert tr(chat(function_call=mode)).body["tool_choice"] == mode


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("required", "'required'"),
        (5, "expected a string or an object"),
        ({"x": 1}, "expected 'none'"),
    ],
)
def test_legacy_function_call_invalid(value: Any, fragment: str) -> None:
    fails(chat(function_call=value), fragment, "function_call")


def test_tool_choice_beats_legacy_function_call() -> None:
    assert tr(chat(tool_choice="none", function_call="auto")).body["tool_choice"] == "none"


def test_legacy_functions_invalid() -> None:
    fails(chat(functions=[{"description": "no name"}]), "Missing", "functions[0].name")
    fails(chat(functions="f"), "expected an array", "functions")


def test_web_search_options_become_a_tool() -> None:
    options = {
        "search_context_size": "high",
        "user_location": {
            "type": "approximate",
            "approximate": {
                "country": "FR",
                "city": "Paris",
                "region": "IDF",
                "timezone": "Europe/Paris",
            },
        },
    }
    body = chat(web_search_options=options, tools=[{"type": "function", "function": {"name": "f"}}])
    result = tr(body)
    assert result.body["tools"][1] == {
        "type": "web_search",
        "search_context_size": "high",
        "user_location": {
            "type": "approximate",
            "country": "FR",
            "city": "Paris",
            "region": "IDF",
            "timezone": "Europe/Paris",
        },
    }
    assert result.dropped == ()


def test_web_search_options_empty_and_no_duplicate() -> None:
    assert tr(chat(web_search_options={})).body["tools"] == [{"type": "web_search"}]
    body = chat(web_search_options={}, tools=[{"type": "web_search", "filters": {}}])
    assert tr(body).body["tools"] == [{"type": "web_search", "filters": {}}]


@pytest.mark.parametrize(
    ("options", "fragment", "param"),
    [
        ("on", "expected an object", "web_search_options"),
        ({"search_context_size": "huge"}, "'huge'", "web_search_options.search_context_size"),
        ({"user_location": {"type": "exact"}}, "'exact'", "web_search_options.user_location.type"),
        (
            {"user_location": {"approximate": {"city": 1}}},
            "expected a string",
            "web_search_options.user_location.approximate.city",
        ),
    ],
)
def test_web_search_options_invalid(options: Any, fragment: str, param: str) -> None:
    fails(chat(web_search_options=options), fragment, param)


# --------------------------------------------------------------------------- tool_choice


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", "none"),
        ("auto", "auto"),
        ("required", "required"),
        ({"type": "function", "function": {"name": "f"}}, {"type": "function", "name": "f"}),
        ({"type": "function", "name": "f"}, {"type": "function", "name": "f"}),
        ({"type": "custom", "custom": {"name": "sh"}}, {"type": "custom", "name": "sh"}),
        ({"type": "image_generation"}, {"type": "image_generation"}),
        (
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [
                        {"type": "function", "function": {"name": "a"}},
                        {"type": "custom", "custom": {"name": "b"}},
                        {"type": "web_search"},
                    ],
                },
            },
            {
                "type": "allowed_tools",
                "mode": "required",
                "tools": [
                    {"type": "function", "name": "a"},
                    {"type": "custom", "name": "b"},
                    {"type": "web_search"},
                ],
            },
        ),
    ],
)
def test_tool_choice_forms(choice: Any, expected: Any) -> None:
    assert tr(chat(tool_choice=choice)).body["tool_choice"] == expected


@pytest.mark.parametrize(
    ("choice", "fragment"),
    [
        ("always", "'always'"),
        (1, "expected a string or an object"),
        ({}, "missing 'type'"),
        ({"type": "function"}, "function.name"),
        ({"type": "function", "function": {"name": ""}}, "function.name"),
        ({"type": "custom", "custom": {}}, "custom.name"),
        ({"type": "allowed_tools"}, "allowed_tools"),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "any", "tools": []}}, "mode"),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": {}}}, "tools"),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": ["f"]}}, "tools[0]"),
    ],
)
def test_tool_choice_invalid(choice: Any, fragment: str) -> None:
    fails(chat(tool_choice=choice), fragment, "tool_choice")


@pytest.mark.parametrize(
    ("value", "param"), [("yes", "parallel_tool_calls"), (1, "stream"), ("x", "store")]
)
def test_boolean_params_must_be_booleans(value: Any, param: str) -> None:
    fails(chat(**{param: value}), "expected a boolean", param)


# --------------------------------------------------------------------------- response_format


@pytest.mark.parametrize("kind", ["text", "json_object"])
def test_response_format_simple(kind: str) -> None:
    assert tr(chat(response_format={"type": kind})).body["text"] == {"format": {"type": kind}}


def test_response_format_json_schema_flattened() -> None:
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    fmt = {"name": "out", "schema": schema, "strict": True, "description": "d"}
    body = chat(response_format={"type": "json_schema", "json_schema": fmt}, verbosity="high")
    assert tr(body).body["text"] == {
        "format": {
            "type": "json_schema",
            "name": "out",
            "schema": schema,
            "strict": True,
            "description": "d",
        },
        "verbosity": "high",
    }


def test_response_format_json_schema_minimal() -> None:
    body = chat(response_format={"type": "json_schema", "json_schema": {"name": "o", "schema": {}}})
    assert tr(body).body["text"] == {"format": {"type": "json_schema", "name": "o", "schema": {}}}


@pytest.mark.parametrize(
    ("response_format", "fragment", "param"),
    [
        ("json", "expected an object", "response_format"),
        ({}, "Missing", "response_format.type"),
        ({"type": "xml"}, "'xml'", "response_format.type"),
        ({"type": "json_schema"}, "Missing", "response_format.json_schema"),
        (
            {"type": "json_schema", "json_schema": []},
            "expected an object",
            "response_format.json_schema",
        ),
        (
            {"type": "json_schema", "json_schema": {"schema": {}}},
            "Missing",
            "response_format.json_schema.name",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "o"}},
            "Missing",
            "response_format.json_schema.schema",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "o", "schema": {}, "strict": "y"}},
            "expected a boolean",
            "response_format.json_schema.strict",
        ),
    ],
)
def test_response_format_invalid(response_format: Any, fragment: str, param: str) -> None:
    fails(chat(response_format=response_format), fragment, param)


def test_verbosity_alone_and_invalid() -> None:
    assert tr(chat(verbosity="medium")).body["text"] == {"verbosity": "medium"}
    fails(chat(verbosity="loud"), "'loud'", "verbosity")


# --------------------------------------------------------------------------- unsupported params


def test_n_greater_than_one_rejected() -> None:
    error = fails(chat(n=2), "one choice", "n")
    assert error.code == "unsupported_parameter"


def test_n_equal_one_is_fine_and_not_dropped() -> None:
    assert tr(chat(n=1)).dropped == ()


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(0, "at least 1"), (1.5, "expected an integer"), (True, "expected an integer")],
)
def test_n_invalid(value: Any, fragment: str) -> None:
    fails(chat(n=value), fragment, "n")


def test_logprobs_rejected() -> None:
    error = fails(chat(logprobs=True), "log probabilities", "logprobs")
    assert error.code == "unsupported_parameter"
    fails(chat(top_logprobs=3), "log probabilities", "top_logprobs")
    fails(chat(top_logprobs="3"), "expected an integer", "top_logprobs")
    fails(chat(logprobs="yes"), "expected a boolean", "logprobs")


def test_logprobs_off_is_fine() -> None:
    result = tr(chat(logprobs=False, top_logprobs=0, modalities=["text"]))
    assert result.dropped == ()


def test_image_modality_is_accepted_and_not_forwarded() -> None:
    result = tr(chat(modalities=["text", "image"]))
    assert "modalities" not in result.body
    assert result.dropped == ()


def test_audio_rejected() -> None:
    fails(chat(modalities=["text", "audio"]), "Audio output is not supported", "modalities")
    fails(chat(audio={"voice": "alloy", "format": "wav"}), "text only", "audio")
    fails(chat(modalities=["video"]), "'video'", "modalities[0]")
    fails(chat(modalities="text"), "expected an array", "modalities")


# --------------------------------------------------------------------------- forwarded / dropped

API_ONLY = {
    "temperature": 0.5,
    "top_p": 0.9,
    "max_tokens": 50,
    "metadata": {"k": "v"},
    "user": "u1",
    "safety_identifier": "s1",
    "service_tier": "flex",
    "prompt_cache_retention": "24h",
}


def test_api_only_params_forwarded_in_api_mode() -> None:
    result = tr(chat(**API_ONLY))
    body = result.body
    assert {k: body[k] for k in ("temperature", "top_p", "metadata", "user")} == {
        "temperature": 0.5,
        "top_p": 0.9,
        "metadata": {"k": "v"},
        "user": "u1",
    }
    assert body["max_output_tokens"] == 50
    assert body["safety_identifier"] == "s1"
    assert body["service_tier"] == "flex"
    assert body["prompt_cache_retention"] == "24h"
    assert "max_tokens" not in body
    assert result.dropped == ()


def test_api_only_params_dropped_in_chatgpt_mode_in_request_order() -> None:
    result = tr(chat(**API_ONLY, max_completion_tokens=9), CHATGPT)
    assert result.dropped == (*API_ONLY, "max_completion_tokens")
    for key in ("temperature", "top_p", "max_output_tokens", "metadata", "user", "service_tier"):
        assert key not in result.body


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    result = tr(chat(max_tokens=10, max_completion_tokens=20))
    assert result.body["max_output_tokens"] == 20
    assert result.dropped == ("max_tokens",)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("temperature", "hot", "expected a number"),
        ("max_tokens", 1.5, "expected an integer"),
        ("max_completion_tokens", True, "expected an integer"),
        ("metadata", [], "expected an object"),
        ("user", 5, "expected a string"),
    ],
)
def test_api_only_params_type_checked_when_forwarded(key: str, value: Any, expected: str) -> None:
    fails(chat(**{key: value}), expected, key)


@pytest.mark.parametrize("options", [API, CHATGPT])
def test_params_without_responses_equivalent_dropped_in_both_modes(options: RequestOptions) -> None:
    extras = {
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "seed": 3,
        "stop": ["x"],
        "logit_bias": {"1": 2},
        "prediction": {"type": "content", "content": "x"},
        "something_new": True,
    }
    result = tr(chat(**extras), options)
    assert result.dropped == tuple(extras)
    assert not set(extras) & set(result.body)


def test_null_params_are_absent_not_dropped() -> None:
    body = chat(
        temperature=None,
        seed=None,
        stop=None,
        tools=None,
        tool_choice=None,
        stream=None,
        stream_options=None,
        n=None,
        response_format=None,
        reasoning_effort=None,
        user=None,
    )
    result = tr(body, CHATGPT)
    assert result.dropped == ()
    assert result.body["tool_choice"] == "auto"
    assert result.stream is False


def test_consumed_keys_are_not_dropped() -> None:
    body = chat(
        stream=False,
        stream_options={"include_usage": False, "include_obfuscation": False},
        store=True,
        image_generation={"size": "1024x1024"},
        prompt_cache_key="k",
        parallel_tool_calls=True,
    )
    result = tr(body, CHATGPT)
    assert result.dropped == ()
    assert result.body["store"] is False
    assert result.body["stream"] is True
    assert "image_generation" not in result.body


# --------------------------------------------------------------------------- stream flags


def test_stream_flags() -> None:
    assert tr(chat(stream=True)).stream is True
    assert tr(chat(stream=True)).include_usage is False
    result = tr(chat(stream=True, stream_options={"include_usage": True}))
    assert (result.stream, result.include_usage) == (True, True)


def test_stream_options_invalid() -> None:
    fails(chat(stream_options=True), "expected an object", "stream_options")
    fails(
        chat(stream_options={"include_usage": "y"}),
        "expected a boolean",
        "stream_options.include_usage",
    )


# --------------------------------------------------------------------------- prompt_cache_key

NO_SESSION = RequestOptions(chatgpt_backend=True, default_model="gpt-5-codex")


def test_prompt_cache_key_from_client() -> None:
    result = tr(chat(prompt_cache_key="conv-1"))
    assert result.body["prompt_cache_key"] == "conv-1" == result.session_id


def test_prompt_cache_key_from_session_header() -> None:
    assert tr(chat(), API).session_id == "sess-1"


def test_prompt_cache_key_invalid() -> None:
    fails(chat(prompt_cache_key=5), "expected a string", "prompt_cache_key")


def test_derived_prompt_cache_key_is_stable_across_turns() -> None:
    first = [{"role": "system", "content": "s"}, {"role": "user", "content": "plan a trip"}]
    later = [
        *first,
        {"role": "assistant", "content": "sure"},
        {"role": "user", "content": "to Rome"},
    ]
    key1 = tr(chat(messages=first), NO_SESSION).session_id
    key2 = tr(chat(messages=later), NO_SESSION).session_id
    assert key1 == key2
    assert str(uuid.UUID(key1)) == key1
    assert tr(chat(messages=first), NO_SESSION).body["prompt_cache_key"] == key1


def test_derived_prompt_cache_key_depends_on_model_and_first_message() -> None:
    base = tr(chat(messages=[USER]), NO_SESSION).session_id
    assert tr(chat(messages=[{"role": "user", "content": "other"}]), NO_SESSION).session_id != base
    assert tr(chat(model="gpt-5-mini", messages=[USER]), NO_SESSION).session_id != base
    # The effort suffix is not part of the conversation's identity: same upstream model, same key.
    assert tr(chat(model="gpt-5-high"), NO_SESSION).session_id == base
    parts = [{"type": "text", "text": "hi"}]
    assert tr(chat(messages=[{"role": "user", "content": parts}]), NO_SESSION).session_id == base


# --------------------------------------------------------------------------- property: never crash

_KEYS = [
    "model",
    "messages",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
    "reasoning",
    "verbosity",
    "n",
    "logprobs",
    "top_logprobs",
    "modalities",
    "audio",
    "functions",
    "function_call",
    "web_search_options",
    "prompt_cache_key",
    "store",
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "metadata",
    "user",
    "seed",
    "role",
    "content",
    "type",
    "function",
    "name",
    "arguments",
    "tool_calls",
    "tool_call_id",
    "image_url",
    "url",
    "detail",
    "file",
    "file_id",
    "json_schema",
    "schema",
    "strict",
    "custom",
    "allowed_tools",
    "mode",
    "user_location",
    "approximate",
    "text",
    "refusal",
    "effort",
    "summary",
    "parameters",
    "include_usage",
    "id",
    "input",
]
_WORDS = [
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "function",
    "text",
    "image_url",
    "file",
    "input_audio",
    "refusal",
    "json_schema",
    "json_object",
    "auto",
    "none",
    "required",
    "custom",
    "allowed_tools",
    "web_search",
    "high",
    "low",
    "default",
    "gpt-5-high",
    "https://x/i.png",
    "data:image/png;base64,AA",
    "approximate",
    "f",
    "",
]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(_WORDS)
    | st.text(max_size=8)
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=30,
)


def _or_junk(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values (to reach deep code paths), sometimes junk (1 in 8)."""
    return st.sampled_from([True] * 7 + [False]).flatmap(lambda keep: strategy if keep else _json)


def _obj(required: dict[str, Any], **optional: Any) -> st.SearchStrategy[Any]:
    """A dict strategy whose fields are each plausible-or-junk."""
    return _or_junk(
        st.fixed_dictionaries(
            {k: _or_junk(v) for k, v in required.items()},
            optional={k: _or_junk(v) for k, v in optional.items()},
        )
    )


_name = st.sampled_from(["f", "get_weather", "a b", ""])
_args = st.sampled_from(["{}", '{"x":1}', ""])
_text = st.text(max_size=6)
_part = st.one_of(
    _obj({"type": st.just("text"), "text": _text}),
    _obj(
        {"type": st.just("image_url")},
        image_url=_obj({"url": st.sampled_from(_WORDS[-5:-2])}, detail=st.sampled_from(_WORDS)),
    ),
    _obj({"type": st.just("file")}, file=_obj({}, file_id=_text, filename=_text)),
    _obj({"type": st.just("refusal"), "refusal": _text}),
)
_content = _or_junk(_text | st.lists(_part, max_size=3))
_call = _obj(
    {"id": st.sampled_from(["c1", "c2"])},
    type=st.sampled_from(["function", "custom"]),
    function=_obj({"name": _name, "arguments": _args}),
    custom=_obj({"name": _name, "input": _text}),
)
_message = st.fixed_dictionaries(
    {"role": _or_junk(st.sampled_from(_WORDS[:6])), "content": _content},
    optional={
        "tool_calls": _or_junk(st.lists(_call, max_size=2)),
        "tool_call_id": _or_junk(st.sampled_from(["c1", "c2"])),
        "function_call": _obj({"name": _name, "arguments": _args}),
        "name": _or_junk(_name),
        "refusal": _or_junk(_text),
    },
)
_tool = st.one_of(
    _obj(
        {"type": st.just("function")},
        function=_obj(
            {"name": _name},
            description=_text,
            parameters=st.just({"type": "object"}),
            strict=st.booleans(),
        ),
    ),
    _obj({"type": st.just("custom")}, custom=_obj({"name": _name}, format=st.just({}))),
    _obj({"type": st.sampled_from(["web_search", "image_generation"])}),
)
_ref = _obj(
    {"type": st.sampled_from(["function", "custom", "web_search"])}, function=_obj({"name": _name})
)
_PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["gpt-5", "default", "gpt-5-high", "x-none"]),
    "stream": st.booleans(),
    "stream_options": _obj({}, include_usage=st.booleans()),
    "tools": st.lists(_tool, max_size=3),
    "tool_choice": st.sampled_from(["auto", "none", "required"])
    | _ref
    | _obj(
        {"type": st.just("allowed_tools")},
        allowed_tools=_obj({"mode": st.sampled_from(["auto", "any"]), "tools": st.lists(_ref)}),
    ),
    "parallel_tool_calls": st.booleans(),
    "response_format": _obj(
        {"type": st.sampled_from(["text", "json_object", "json_schema"])},
        json_schema=_obj({"name": _name, "schema": st.just({})}, strict=st.booleans()),
    ),
    "reasoning_effort": st.sampled_from(["low", "max", "huge"]),
    "reasoning": _obj({}, effort=st.sampled_from(["high", "x"]), summary=st.just("auto")),
    "verbosity": st.sampled_from(["low", "loud"]),
    "n": st.just(1),
    "logprobs": st.just(False),
    "top_logprobs": st.just(0),
    "modalities": st.just(["text"]),
    "functions": st.lists(_obj({"name": _name}), max_size=2),
    "function_call": st.sampled_from(["auto", "none"]) | _obj({"name": _name}),
    "web_search_options": _obj(
        {}, user_location=_obj({"type": st.just("approximate")}, approximate=_obj({}, city=_text))
    ),
    "prompt_cache_key": _text,
    "store": st.booleans(),
    "temperature": st.floats(0, 2),
    "max_tokens": st.integers(1, 10),
    "metadata": st.just({"k": "v"}),
    "user": _text,
    "seed": st.integers(0, 10),
}
_body = st.lists(st.sampled_from(sorted(_PLAUSIBLE)), max_size=4, unique=True).flatmap(
    lambda keys: st.fixed_dictionaries(
        {
            "messages": _or_junk(st.lists(_or_junk(_message), min_size=1, max_size=4)),
            **{k: _or_junk(_PLAUSIBLE[k]) for k in keys},
        }
    )
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_body | _json, chatgpt=st.booleans())
def test_junk_bodies_translate_or_raise_400(body: Any, chatgpt: bool) -> None:
    options = RequestOptions(chatgpt_backend=chatgpt, default_model="gpt-5-codex")
    try:
        result = translate_request(body, options)
    except OpenAIError as error:
        assert error.status == 400
        assert error.type == "invalid_request_error"
        assert error.message
        return
    orjson.dumps(result.body)  # always serialisable
    assert result.body["store"] is False
    assert result.body["stream"] is True
    assert isinstance(result.body["input"], list)
    assert result.body["prompt_cache_key"] == result.session_id
    assert all(isinstance(name, str) for name in result.dropped)
