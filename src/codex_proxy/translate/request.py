"""Chat Completions request -> Responses API request.

Pure: a parsed chat request dict goes in, a Responses body (plus what the app needs to answer the
client) comes out. Every problem with the client's request is raised as a 400 ``OpenAIError``
naming the offending ``param``, so a bad request never reaches the upstream and never surfaces as
a Python exception. Parameters the upstream cannot take are dropped and reported, never silently.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from codex_proxy.translate.errors import OpenAIError, invalid_request

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
REASONING_SUMMARIES = ("auto", "concise", "detailed", "none")
VERBOSITIES = ("low", "medium", "high")
IMAGE_DETAILS = ("auto", "low", "high", "original")
TOOL_CHOICE_MODES = ("none", "auto", "required")
ALLOWED_TOOLS_MODES = ("auto", "required")
SEARCH_CONTEXT_SIZES = ("low", "medium", "high")
ENCRYPTED_REASONING = "reasoning.encrypted_content"

# "gpt-5-codex-high" = gpt-5-codex at effort high. No "-max": gpt-5.1-codex-max is a model name.
_EFFORT_SUFFIX = re.compile(r"^(?P<base>.+)-(?P<effort>minimal|low|medium|high|xhigh|none)$", re.S)
# OpenAI's rule for function and custom tool names; checked here so the error names the chat param.
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Namespace of the derived prompt_cache_key; fixed so keys stay stable across restarts.
_CACHE_KEY_NAMESPACE = uuid.UUID("5f0c6a47-52a4-4c1e-9a57-3c0de0c0ffee")
_DEFAULT_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}

# Top-level keys this module translates or validates itself: never reported as dropped.
_CONSUMED = frozenset(
    {
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
    }
)
# Extension point: top-level flags that other layers act on (images.py reads `image_generation`
# from the chat request itself). Listed here only so they count as consumed, not dropped.
EXTERNAL_KEYS = frozenset({"image_generation"})
_REASONING_KEYS = ("effort", "summary")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


# Accepted by the Responses API and honoured by the public API, but rejected by the ChatGPT backend
# ("Unsupported parameter"): forwarded in api_key mode, dropped in chatgpt mode.
# chat name -> (Responses name, type check, expected type for the error message)
_API_ONLY: dict[str, tuple[str, Callable[[Any], bool], str]] = {
    "temperature": ("temperature", _is_number, "a number"),
    "top_p": ("top_p", _is_number, "a number"),
    "max_tokens": ("max_output_tokens", _is_int, "an integer"),
    "max_completion_tokens": ("max_output_tokens", _is_int, "an integer"),
    "metadata": ("metadata", _is_dict, "an object"),
    "user": ("user", _is_str, "a string"),
    "safety_identifier": ("safety_identifier", _is_str, "a string"),
    "service_tier": ("service_tier", _is_str, "a string"),
    "prompt_cache_retention": ("prompt_cache_retention", _is_str, "a string"),
}


@dataclass(frozen=True)
class RequestOptions:
    """Per-deployment settings the translation needs (the app builds this from Settings)."""

    chatgpt_backend: bool  # True: ChatGPT backend rules (drop params it rejects)
    default_model: str  # used when model is missing or "default"
    instructions: str = ""  # always sent as `instructions`
    reasoning_summary: str = "auto"  # reasoning.summary; "" or "none" -> no summary field
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    session_id: str | None = None  # the client's x-session-id header, if any


@dataclass(frozen=True)
class TranslatedRequest:
    """The Responses body plus what the app needs to shape its answer to the client."""

    body: dict[str, Any]  # the Responses request body
    dropped: tuple[str, ...]  # params dropped, named as the client sent them, in request order
    stream: bool  # the client asked for stream=true
    include_usage: bool  # stream_options.include_usage
    model: str  # model name to echo to the client
    session_id: str  # == body["prompt_cache_key"], also sent as the session_id header


def translate_request(chat: Any, options: RequestOptions) -> TranslatedRequest:
    """Translate one chat request; raise a 400 ``OpenAIError`` for anything invalid."""
    if not isinstance(chat, dict):
        raise invalid_request("Request body must be a JSON object", None, "invalid_type")
    _reject_unsupported(chat)
    echo_model, upstream_model, suffix_effort = _resolve_model(chat.get("model"), options)
    messages = _messages(chat)
    input_items = _translate_messages(messages)
    tools = _translate_tools(chat)
    tool_choice = _translate_tool_choice(chat)
    parallel = _opt_bool(chat, "parallel_tool_calls", "")
    stream = _opt_bool(chat, "stream", "")
    include_usage = _include_usage(chat)
    _opt_bool(chat, "store", "")  # any value is fine; the upstream always gets store=false
    reasoning = _reasoning_config(chat, suffix_effort, options)
    text = _text_config(chat)
    forwarded, dropped = _extra_params(chat, options.chatgpt_backend)
    cache_key = _prompt_cache_key(chat, options, upstream_model, messages)

    body: dict[str, Any] = {
        "model": upstream_model,
        "instructions": options.instructions,
        "input": input_items,
        "tools": tools,
        "tool_choice": tool_choice,
        "parallel_tool_calls": True if parallel is None else parallel,
        "store": False,
        "stream": True,
        "prompt_cache_key": cache_key,
    }
    if reasoning is not None:
        body["reasoning"] = reasoning
        body["include"] = [ENCRYPTED_REASONING]
    if text:
        body["text"] = text
    body.update(forwarded)
    return TranslatedRequest(
        body=body,
        dropped=dropped,
        stream=bool(stream),
        include_usage=include_usage,
        model=echo_model,
        session_id=cache_key,
    )


# --------------------------------------------------------------------------- errors and accessors


def _json_type(value: Any) -> str:
    """How OpenAI names a JSON type in its error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _shown(value: Any) -> str:
    """A short quotation of a bad value (never a 20 MB string in an error body)."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _type_error(param: str, expected: str, value: Any) -> OpenAIError:
    return invalid_request(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
        param,
        "invalid_type",
    )


def _missing(param: str) -> OpenAIError:
    return invalid_request(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def _bad_value(param: str, value: Any, allowed: tuple[str, ...]) -> OpenAIError:
    choices = ", ".join(f"'{a}'" for a in allowed)
    return invalid_request(
        f"Invalid value for '{param}': '{_shown(value)}'. Supported values are: {choices}.",
        param,
        "invalid_value",
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _opt_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    """A string field that may be absent or null."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _type_error(_join(path, key), "a string", value)
    return value


def _req_str(obj: Mapping[str, Any], key: str, path: str, *, allow_empty: bool = False) -> str:
    """A required string field; empty counts as missing unless allowed."""
    value = _opt_str(obj, key, path)
    if value is None or (not value and not allow_empty):
        raise _missing(_join(path, key))
    return value


def _opt_bool(obj: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _type_error(_join(path, key), "a boolean", value)
    return value


def _opt_dict(obj: Mapping[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _type_error(_join(path, key), "an object", value)
    return value


def _req_dict(obj: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
    value = _opt_dict(obj, key, path)
    if value is None:
        raise _missing(_join(path, key))
    return value


def _opt_list(obj: Mapping[str, Any], key: str, path: str) -> list[Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _type_error(_join(path, key), "an array", value)
    return value


def _opt_enum(obj: Mapping[str, Any], key: str, path: str, allowed: tuple[str, ...]) -> str | None:
    value = _opt_str(obj, key, path)
    if value is not None and value not in allowed:
        raise _bad_value(_join(path, key), value, allowed)
    return value


def _as_dict(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _type_error(param, "an object", value)
    return value


def _tool_name(obj: Mapping[str, Any], path: str) -> str:
    """A function/custom tool name, checked against OpenAI's pattern."""
    name = _req_str(obj, "name", path)
    if not _TOOL_NAME.match(name):
        param = _join(path, "name")
        raise invalid_request(
            f"Invalid '{param}': string does not match pattern. Expected a string of 1 to 64 "
            "characters that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            param,
            "invalid_value",
        )
    return name


# --------------------------------------------------------------------------- top-level params


def _reject_unsupported(chat: Mapping[str, Any]) -> None:
    """Refuse what the upstream cannot do, rather than answer something the client did not ask."""
    n = chat.get("n")
    if n is not None:
        if not _is_int(n):
            raise _type_error("n", "an integer", n)
        if n > 1:
            raise invalid_request(
                "'n' greater than 1 is not supported: the Responses upstream returns exactly one "
                "choice per request. Send n=1 (or omit it) and make several requests instead.",
                "n",
                "unsupported_parameter",
            )
        if n < 1:
            raise invalid_request(
                "Invalid value for 'n': must be at least 1.", "n", "invalid_value"
            )
    if _opt_bool(chat, "logprobs", ""):
        raise invalid_request(
            "'logprobs' is not supported: this gateway cannot return token log probabilities "
            "(the ChatGPT backend does not provide them). Omit it or set it to false.",
            "logprobs",
            "unsupported_parameter",
        )
    top = chat.get("top_logprobs")
    if top is not None:
        if not _is_int(top):
            raise _type_error("top_logprobs", "an integer", top)
        if top > 0:
            raise invalid_request(
                "'top_logprobs' is not supported: this gateway cannot return token log "
                "probabilities (the ChatGPT backend does not provide them). Omit it or send 0.",
                "top_logprobs",
                "unsupported_parameter",
            )
    _check_modalities(chat)
    if chat.get("audio") is not None:
        raise invalid_request(
            "'audio' is not supported: the Responses upstream produces text only.",
            "audio",
            "unsupported_parameter",
        )


def _check_modalities(chat: Mapping[str, Any]) -> None:
    modalities = _opt_list(chat, "modalities", "")
    for i, modality in enumerate(modalities or ()):
        param = f"modalities[{i}]"
        if modality == "audio":
            raise invalid_request(
                "Audio output is not supported: the Responses upstream produces text only. "
                "Use modalities=['text'].",
                "modalities",
                "unsupported_value",
            )
        if modality != "text":
            raise _bad_value(param, modality, ("text",))


def _resolve_model(raw: Any, options: RequestOptions) -> tuple[str, str, str | None]:
    """(name echoed to the client, name sent upstream, effort from a suffix)."""
    if raw is None or raw in ("", "default"):
        requested = options.default_model
    elif isinstance(raw, str):
        requested = raw
    else:
        raise _type_error("model", "a string", raw)
    name = options.model_aliases.get(requested, requested)
    match = _EFFORT_SUFFIX.match(name)
    if match:
        return requested, match["base"], match["effort"]
    return requested, name, None


def _include_usage(chat: Mapping[str, Any]) -> bool:
    """stream_options.include_usage; the rest of stream_options has no upstream meaning."""
    stream_options = _opt_dict(chat, "stream_options", "")
    if stream_options is None:
        return False
    return bool(_opt_bool(stream_options, "include_usage", "stream_options"))


def _extra_params(
    chat: Mapping[str, Any], chatgpt_backend: bool
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Forward the api-only params (api_key mode) and report everything else unused."""
    forwarded: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in chat.items():
        if value is None:
            continue  # SDKs send nulls for unset params: absent, not dropped
        if key == "reasoning" and isinstance(value, dict):
            dropped.extend(
                f"reasoning.{k}"
                for k, v in value.items()
                if k not in _REASONING_KEYS and v is not None
            )
        if key in _CONSUMED or key in EXTERNAL_KEYS:
            continue
        spec = _API_ONLY.get(key)
        if spec is None or chatgpt_backend:
            dropped.append(key)
            continue
        target, check, expected = spec
        if not check(value):
            raise _type_error(key, expected, value)
        if key == "max_tokens" and chat.get("max_completion_tokens") is not None:
            dropped.append(key)  # max_completion_tokens wins; the client should know
            continue
        forwarded[target] = value
    return forwarded, tuple(dropped)


def _prompt_cache_key(
    chat: Mapping[str, Any], options: RequestOptions, model: str, messages: list[dict[str, Any]]
) -> str:
    """The client's key, else its session, else one derived from how the conversation began."""
    key = _opt_str(chat, "prompt_cache_key", "")
    if key:
        return key
    if options.session_id:
        return options.session_id
    seed = f"{model}\n{_first_user_text(messages)}"
    return str(uuid.uuid5(_CACHE_KEY_NAMESPACE, seed))


def _first_user_text(messages: list[dict[str, Any]]) -> str:
    """The first user message's text: identical on every turn of one conversation."""
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [p.get("text") for p in content if isinstance(p, dict)]
            return "\n".join(t for t in texts if isinstance(t, str))
        return ""
    return ""


# --------------------------------------------------------------------------- reasoning and text


def _reasoning_config(
    chat: Mapping[str, Any], suffix_effort: str | None, options: RequestOptions
) -> dict[str, Any] | None:
    """`reasoning` for the body, or None when it must be omitted (non-reasoning api models)."""
    explicit = _opt_enum(chat, "reasoning_effort", "", REASONING_EFFORTS)
    obj = _opt_dict(chat, "reasoning", "")
    obj_effort = summary = None
    if obj is not None:
        obj_effort = _opt_enum(obj, "effort", "reasoning", REASONING_EFFORTS)
        summary = _opt_enum(obj, "summary", "reasoning", REASONING_SUMMARIES)
    effort = explicit or obj_effort or suffix_effort
    if summary is None:
        summary = options.reasoning_summary
    if not (options.chatgpt_backend or effort is not None or obj is not None):
        return None
    config: dict[str, Any] = {}
    if effort is not None:
        config["effort"] = effort
    if summary and summary != "none":
        config["summary"] = summary
    return config


def _text_config(chat: Mapping[str, Any]) -> dict[str, Any]:
    """`text` for the body: output format and verbosity (empty when neither was asked)."""
    text: dict[str, Any] = {}
    response_format = _opt_dict(chat, "response_format", "")
    if response_format is not None:
        text["format"] = _response_format(response_format)
    verbosity = _opt_enum(chat, "verbosity", "", VERBOSITIES)
    if verbosity is not None:
        text["verbosity"] = verbosity
    return text


def _response_format(response_format: dict[str, Any]) -> dict[str, Any]:
    """Chat's response_format -> Responses' text.format (json_schema is flattened)."""
    kind = _req_str(response_format, "type", "response_format")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind != "json_schema":
        raise _bad_value("response_format.type", kind, ("text", "json_object", "json_schema"))
    spec = _req_dict(response_format, "json_schema", "response_format")
    path = "response_format.json_schema"
    fmt: dict[str, Any] = {
        "type": "json_schema",
        "name": _req_str(spec, "name", path),
        "schema": _req_dict(spec, "schema", path),
    }
    strict = _opt_bool(spec, "strict", path)
    if strict is not None:
        fmt["strict"] = strict
    description = _opt_str(spec, "description", path)
    if description is not None:
        fmt["description"] = description
    return fmt


# --------------------------------------------------------------------------- messages


def _messages(chat: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The validated `messages` list: non-empty, objects only."""
    messages = chat.get("messages")
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list):
        raise _type_error("messages", "an array", messages)
    if not messages:
        raise invalid_request(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            "messages",
            "empty_array",
        )
    for i, message in enumerate(messages):
        _as_dict(message, f"messages[{i}]")
    return messages


@dataclass
class _History:
    """State carried across messages: calls whose results come in later messages."""

    items: list[dict[str, Any]] = field(default_factory=list)
    legacy_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, call_id) pending
    custom_call_ids: set[str] = field(default_factory=set)


_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def _translate_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages -> Responses input items, order preserved."""
    history = _History()
    for i, message in enumerate(messages):
        path = f"messages[{i}]"
        role = _req_str(message, "role", path)
        if role in ("system", "developer"):
            history.items.extend(_instruction_message(message, path))
        elif role == "user":
            history.items.extend(_user_message(message, path))
        elif role == "assistant":
            _assistant_message(message, path, i, history)
        elif role == "tool":
            history.items.append(_tool_message(message, path, history))
        elif role == "function":
            history.items.append(_function_message(message, path, history))
        else:
            raise _bad_value(f"{path}.role", role, _ROLES)
    return history.items


def _input_message(role: str, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One input message item, or none when the message has no content at all."""
    if not parts:
        return []
    return [{"type": "message", "role": role, "content": parts}]


def _content(message: Mapping[str, Any], path: str) -> str | list[Any]:
    """A required content field: a string or a list of parts."""
    content = message.get("content")
    if content is None:
        raise _missing(f"{path}.content")
    if not isinstance(content, (str, list)):
        raise _type_error(f"{path}.content", "a string or an array of content parts", content)
    return content


def _part_type(part: Any, path: str) -> str:
    """The `type` of one content part (validating that the part is an object)."""
    return _req_str(_as_dict(part, path), "type", path)


def _text_only(content: str | list[Any], path: str, role: str) -> list[str]:
    """Texts of a string or a list of `text` parts (system, developer, tool, function)."""
    if isinstance(content, str):
        return [content]
    texts = []
    for j, part in enumerate(content):
        part_path = f"{path}[{j}]"
        kind = _part_type(part, part_path)
        if kind != "text":
            raise invalid_request(
                f"Invalid value for '{part_path}.type': '{_shown(kind)}'. {role} messages accept "
                "only 'text' content parts.",
                f"{part_path}.type",
                "invalid_value",
            )
        texts.append(_req_str(part, "text", part_path, allow_empty=True))
    return texts


def _instruction_message(message: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
    """system/developer -> a developer message in place (the backend forbids system items)."""
    role = message["role"]
    texts = _text_only(_content(message, path), f"{path}.content", role.capitalize())
    return _input_message("developer", [{"type": "input_text", "text": t} for t in texts])


def _user_message(message: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
    content = _content(message, path)
    if isinstance(content, str):
        return _input_message("user", [{"type": "input_text", "text": content}])
    parts = [_user_part(part, f"{path}.content[{j}]") for j, part in enumerate(content)]
    return _input_message("user", parts)


def _user_part(part: Any, path: str) -> dict[str, Any]:
    """One user content part -> one Responses input part."""
    kind = _part_type(part, path)
    if kind == "text":
        return {"type": "input_text", "text": _req_str(part, "text", path, allow_empty=True)}
    if kind == "image_url":
        return _image_part(part, path)
    if kind == "file":
        return _file_part(part, path)
    if kind == "input_audio":
        raise invalid_request(
            "Audio input is not supported: the Responses upstream accepts no audio content.",
            f"{path}.type",
            "unsupported_value",
        )
    raise _bad_value(f"{path}.type", kind, ("text", "image_url", "file"))


def _image_part(part: Mapping[str, Any], path: str) -> dict[str, Any]:
    """image_url part -> input_image; a bare string image_url is accepted as the url."""
    url_path = f"{path}.image_url"
    image = part.get("image_url")
    if isinstance(image, str):
        image = {"url": image}
    if image is None:
        raise _missing(url_path)
    url = _req_str(_as_dict(image, url_path), "url", url_path)
    if not _is_image_url(url):
        raise invalid_request(
            f"Invalid '{url_path}.url': expected an http(s) URL or a data:image/... URI.",
            f"{url_path}.url",
            "invalid_value",
        )
    detail = _opt_enum(image, "detail", url_path, IMAGE_DETAILS) or "auto"
    return {"type": "input_image", "image_url": url, "detail": detail}


def _is_image_url(url: str) -> bool:
    """http(s) URLs and data:image URIs are what input_image accepts."""
    prefix = url[:16].lower()  # never lowercase a whole multi-megabyte data URI
    for scheme in ("http://", "https://"):
        if prefix.startswith(scheme):
            return len(url) > len(scheme)
    return prefix.startswith("data:image/") and "," in url


_FILE_KEYS = ("file_data", "file_id", "file_url", "filename")


def _file_part(part: Mapping[str, Any], path: str) -> dict[str, Any]:
    """file part -> input_file with the fields the client gave."""
    file_path = f"{path}.file"
    spec = _req_dict(part, "file", path)
    item: dict[str, Any] = {"type": "input_file"}
    for key in _FILE_KEYS:
        value = _opt_str(spec, key, file_path)
        if value is not None:
            item[key] = value
    if not any(key in item for key in ("file_data", "file_id", "file_url")):
        raise invalid_request(
            f"Invalid '{file_path}': expected one of 'file_data' or 'file_id'.",
            file_path,
            "missing_required_parameter",
        )
    return item


def _assistant_message(
    message: Mapping[str, Any], path: str, index: int, history: _History
) -> None:
    """assistant -> its text (if any), then one function_call item per tool call."""
    texts = _assistant_texts(message, path)
    if texts:
        parts = [{"type": "output_text", "text": t, "annotations": []} for t in texts]
        history.items.append({"type": "message", "role": "assistant", "content": parts})
    calls = _opt_list(message, "tool_calls", path)
    for j, call in enumerate(calls or ()):
        item = _tool_call_item(call, f"{path}.tool_calls[{j}]")
        if item["type"] == "custom_tool_call":
            history.custom_call_ids.add(item["call_id"])
        history.items.append(item)
    legacy = _opt_dict(message, "function_call", path)
    if legacy is not None:
        history.items.append(_legacy_call_item(legacy, f"{path}.function_call", index, history))


def _assistant_texts(message: Mapping[str, Any], path: str) -> list[str]:
    """Non-empty text and refusal texts of an assistant message (its refusal field as fallback)."""
    content = message.get("content")
    texts: list[str] = []
    if isinstance(content, str):
        texts = [content]
    elif isinstance(content, list):
        texts = [_assistant_part(part, f"{path}.content[{j}]") for j, part in enumerate(content)]
    elif content is not None:
        raise _type_error(f"{path}.content", "a string or an array of content parts", content)
    texts = [t for t in texts if t]
    refusal = _opt_str(message, "refusal", path)
    if not texts and refusal:
        texts = [refusal]
    return texts


def _assistant_part(part: Any, path: str) -> str:
    kind = _part_type(part, path)
    if kind == "text":
        return _req_str(part, "text", path, allow_empty=True)
    if kind == "refusal":
        return _req_str(part, "refusal", path, allow_empty=True)
    raise _bad_value(f"{path}.type", kind, ("text", "refusal"))


def _tool_call_item(call: Any, path: str) -> dict[str, Any]:
    """assistant tool_calls[j] -> function_call (or custom_tool_call) history item."""
    call = _as_dict(call, path)
    call_id = _req_str(call, "id", path)
    kind = _opt_str(call, "type", path) or "function"
    if kind == "function":
        function = _req_dict(call, "function", path)
        fn_path = f"{path}.function"
        return {
            "type": "function_call",
            "call_id": call_id,
            "name": _req_str(function, "name", fn_path),
            "arguments": _arguments(function, fn_path),
        }
    if kind == "custom":
        custom = _req_dict(call, "custom", path)
        custom_path = f"{path}.custom"
        return {
            "type": "custom_tool_call",
            "call_id": call_id,
            "name": _req_str(custom, "name", custom_path),
            "input": _req_str(custom, "input", custom_path, allow_empty=True),
        }
    raise _bad_value(f"{path}.type", kind, ("function", "custom"))


def _arguments(function: Mapping[str, Any], path: str) -> str:
    """Call arguments must already be a JSON string, as the chat API defines them."""
    arguments = function.get("arguments")
    if arguments is None:
        raise _missing(f"{path}.arguments")
    if not isinstance(arguments, str):
        raise _type_error(f"{path}.arguments", "a string (JSON-encoded arguments)", arguments)
    return arguments


def _legacy_call_item(
    legacy: Mapping[str, Any], path: str, index: int, history: _History
) -> dict[str, Any]:
    """Deprecated assistant function_call: it has no id, so derive one from its position."""
    name = _req_str(legacy, "name", path)
    call_id = f"call_legacy_{index}"
    history.legacy_calls.append((name, call_id))
    return {
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": _arguments(legacy, path),
    }


def _tool_output(message: Mapping[str, Any], path: str, role: str) -> str:
    """A tool/function result: a string or text parts joined; null counts as empty."""
    content = message.get("content")
    if content is None:
        return ""
    if not isinstance(content, (str, list)):
        raise _type_error(f"{path}.content", "a string or an array of content parts", content)
    return "".join(_text_only(content, f"{path}.content", role))


def _tool_message(message: Mapping[str, Any], path: str, history: _History) -> dict[str, Any]:
    call_id = _req_str(message, "tool_call_id", path)
    output = _tool_output(message, path, "Tool")
    kind = (
        "custom_tool_call_output" if call_id in history.custom_call_ids else "function_call_output"
    )
    return {"type": kind, "call_id": call_id, "output": output}


def _function_message(message: Mapping[str, Any], path: str, history: _History) -> dict[str, Any]:
    """Deprecated function-role result: pair it with the latest unanswered legacy call."""
    name = _opt_str(message, "name", path)
    output = _tool_output(message, path, "Function")
    for k in range(len(history.legacy_calls) - 1, -1, -1):
        call_name, call_id = history.legacy_calls[k]
        if name is None or call_name == name:
            del history.legacy_calls[k]
            return {"type": "function_call_output", "call_id": call_id, "output": output}
    named = f" named '{name}'" if name else ""
    raise invalid_request(
        f"Invalid '{path}': a 'function' message must follow an assistant message with a "
        f"matching 'function_call'{named}.",
        path,
        "invalid_value",
    )


# --------------------------------------------------------------------------- tools


def _translate_tools(chat: Mapping[str, Any]) -> list[dict[str, Any]]:
    """tools + legacy functions + web_search_options -> Responses tools."""
    tools = [
        _tool(tool, f"tools[{i}]") for i, tool in enumerate(_opt_list(chat, "tools", "") or ())
    ]
    for i, spec in enumerate(_opt_list(chat, "functions", "") or ()):
        tools.append(_function_tool(_as_dict(spec, f"functions[{i}]"), f"functions[{i}]"))
    search_options = _opt_dict(chat, "web_search_options", "")
    if search_options is not None:
        search_tool = _web_search_tool(search_options)
        if not any(tool.get("type") == "web_search" for tool in tools):
            tools.append(search_tool)
    return tools


def _tool(tool: Any, path: str) -> dict[str, Any]:
    """One chat tool: function/custom are flattened, hosted tools pass through unchanged."""
    tool = _as_dict(tool, path)
    kind = _req_str(tool, "type", path)
    if kind == "function":
        if "function" not in tool and "name" in tool:
            return _function_tool(tool, path)  # already Responses-shaped
        return _function_tool(_req_dict(tool, "function", path), f"{path}.function")
    if kind == "custom":
        if "custom" not in tool and "name" in tool:
            return _custom_tool(tool, path)
        return _custom_tool(_req_dict(tool, "custom", path), f"{path}.custom")
    return dict(tool)


def _function_tool(spec: Mapping[str, Any], path: str) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "function", "name": _tool_name(spec, path)}
    description = _opt_str(spec, "description", path)
    if description is not None:
        tool["description"] = description
    parameters = _opt_dict(spec, "parameters", path)
    tool["parameters"] = parameters if parameters is not None else dict(_DEFAULT_PARAMETERS)
    tool["strict"] = bool(_opt_bool(spec, "strict", path))
    return tool


def _custom_tool(spec: Mapping[str, Any], path: str) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "custom", "name": _tool_name(spec, path)}
    description = _opt_str(spec, "description", path)
    if description is not None:
        tool["description"] = description
    fmt = _opt_dict(spec, "format", path)
    if fmt is not None:
        tool["format"] = fmt
    return tool


def _web_search_tool(options: Mapping[str, Any]) -> dict[str, Any]:
    """web_search_options -> a web_search tool carrying its settings."""
    path = "web_search_options"
    tool: dict[str, Any] = {"type": "web_search"}
    size = _opt_enum(options, "search_context_size", path, SEARCH_CONTEXT_SIZES)
    if size is not None:
        tool["search_context_size"] = size
    location = _opt_dict(options, "user_location", path)
    if location is not None:
        tool["user_location"] = _user_location(location, f"{path}.user_location")
    return tool


def _user_location(location: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Chat nests the place under `approximate`; Responses wants it flat."""
    _opt_enum(location, "type", path, ("approximate",))
    flat: dict[str, Any] = {"type": "approximate"}
    approximate = _opt_dict(location, "approximate", path) or {}
    for key in ("country", "city", "region", "timezone"):
        value = _opt_str(approximate, key, f"{path}.approximate")
        if value is not None:
            flat[key] = value
    return flat


# --------------------------------------------------------------------------- tool_choice


def _translate_tool_choice(chat: Mapping[str, Any]) -> Any:
    """tool_choice (or legacy function_call) -> Responses tool_choice; default "auto"."""
    choice = chat.get("tool_choice")
    if choice is not None:
        return _tool_choice(choice)
    legacy = chat.get("function_call")
    if legacy is None:
        return "auto"
    if isinstance(legacy, str):
        if legacy not in ("none", "auto"):
            raise _bad_value("function_call", legacy, ("none", "auto"))
        return legacy
    if not isinstance(legacy, dict):
        raise _type_error("function_call", "a string or an object", legacy)
    name = legacy.get("name")
    if not isinstance(name, str) or not name:
        raise invalid_request(
            "Invalid 'function_call': expected 'none', 'auto' or {\"name\": <function name>}.",
            "function_call",
            "invalid_value",
        )
    return {"type": "function", "name": name}


def _tool_choice(choice: Any) -> Any:
    """All tool_choice errors name `tool_choice`; the message says which part is wrong."""
    if isinstance(choice, str):
        if choice not in TOOL_CHOICE_MODES:
            raise _bad_value("tool_choice", choice, TOOL_CHOICE_MODES)
        return choice
    if not isinstance(choice, dict):
        raise _type_error("tool_choice", "a string or an object", choice)
    kind = choice.get("type")
    if not isinstance(kind, str) or not kind:
        raise _choice_error("missing 'type'")
    if kind == "allowed_tools":
        return _allowed_tools(choice)
    return _tool_ref(choice, "tool_choice")


def _choice_error(detail: str) -> OpenAIError:
    return invalid_request(f"Invalid 'tool_choice': {detail}.", "tool_choice", "invalid_value")


def _tool_ref(ref: Any, where: str) -> dict[str, Any]:
    """A reference to one tool: chat's nested function/custom forms are flattened."""
    if not isinstance(ref, dict) or not isinstance(ref.get("type"), str) or not ref["type"]:
        raise _choice_error(f"{where} must be an object with a 'type'")
    kind = ref["type"]
    if kind not in ("function", "custom"):
        return dict(ref)
    nested = ref.get(kind)
    source = nested if isinstance(nested, dict) else ref
    name = source.get("name")
    if not isinstance(name, str) or not name:
        raise _choice_error(f"{where} of type '{kind}' needs {kind}.name (a non-empty string)")
    return {"type": kind, "name": name}


def _allowed_tools(choice: Mapping[str, Any]) -> dict[str, Any]:
    """{"type":"allowed_tools","allowed_tools":{mode, tools}} -> the flat Responses form."""
    inner = choice.get("allowed_tools", choice)
    if not isinstance(inner, dict):
        raise _choice_error("allowed_tools must be an object with 'mode' and 'tools'")
    mode = inner.get("mode")
    if mode not in ALLOWED_TOOLS_MODES:
        raise _choice_error("allowed_tools.mode must be 'auto' or 'required'")
    refs = inner.get("tools")
    if not isinstance(refs, list):
        raise _choice_error("allowed_tools.tools must be an array of tool references")
    tools = [_tool_ref(ref, f"allowed_tools.tools[{i}]") for i, ref in enumerate(refs)]
    return {"type": "allowed_tools", "mode": mode, "tools": tools}
