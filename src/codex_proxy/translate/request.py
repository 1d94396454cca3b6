"""Chat Completions request -> Responses API request.

Pure: a parsed chat request dict goes in, a Responses body (plus what the app needs to answer the
client) comes out. Every problem with the client's request is raised as a 400 ``OpenAIError``
naming the offending ``param``, so a bad request never reaches the upstream and never surfaces as
a Python exception. Parameters the upstream cannot take are dropped and reported, never silently.

The work is split by job: ``messages`` translates the conversation, ``tools`` the tool
definitions and tool choice, ``checks`` holds the shared typed getters and error builders. This
module keeps the public API and the top-level orchestration.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from codex_proxy.translate.checks import (
    bad_value,
    is_dict,
    is_int,
    is_number,
    is_str,
    opt_bool,
    opt_dict,
    opt_enum,
    opt_list,
    opt_str,
    req_dict,
    req_str,
    type_error,
)
from codex_proxy.translate.errors import invalid_request, too_many_images
from codex_proxy.translate.messages import (
    IMAGE_DETAILS,
    chat_messages,
    first_user_text,
    translate_messages,
)
from codex_proxy.translate.tools import (
    ALLOWED_TOOLS_MODES,
    SEARCH_CONTEXT_SIZES,
    TOOL_CHOICE_MODES,
    translate_tool_choice,
    translate_tools,
)

__all__ = [
    "ALLOWED_TOOLS_MODES",
    "BACKEND_REFUSED",
    "ENCRYPTED_REASONING",
    "EXTERNAL_KEYS",
    "IMAGE_DETAILS",
    "REASONING_EFFORTS",
    "REASONING_SUMMARIES",
    "SEARCH_CONTEXT_SIZES",
    "TOOL_CHOICE_MODES",
    "VERBOSITIES",
    "RequestOptions",
    "TranslatedRequest",
    "derived_cache_key",
    "reasoning_config",
    "resolve_model",
    "translate_request",
]

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
REASONING_SUMMARIES = ("auto", "concise", "detailed", "none")
VERBOSITIES = ("low", "medium", "high")
ENCRYPTED_REASONING = "reasoning.encrypted_content"

# "gpt-5-codex-high" = gpt-5-codex at effort high. No "-max": gpt-5.1-codex-max is a model name.
_EFFORT_SUFFIX = re.compile(r"^(?P<base>.+)-(?P<effort>minimal|low|medium|high|xhigh|none)$", re.S)
# Namespace of the derived prompt_cache_key; fixed so keys stay stable across restarts.
_CACHE_KEY_NAMESPACE = uuid.UUID("5f0c6a47-52a4-4c1e-9a57-3c0de0c0ffee")

# Top-level keys the translator (this module and its siblings) handles: never reported as dropped.
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


# Accepted by the Responses API and honoured by the public API, but rejected by the ChatGPT backend
# ("Unsupported parameter"): forwarded in api_key mode, dropped in chatgpt mode.
# chat name -> (Responses name, type check, expected type for the error message)
_API_ONLY: dict[str, tuple[str, Callable[[Any], bool], str]] = {
    "temperature": ("temperature", is_number, "a number"),
    "top_p": ("top_p", is_number, "a number"),
    "max_tokens": ("max_output_tokens", is_int, "an integer"),
    "max_completion_tokens": ("max_output_tokens", is_int, "an integer"),
    "metadata": ("metadata", is_dict, "an object"),
    "user": ("user", is_str, "a string"),
    "safety_identifier": ("safety_identifier", is_str, "a string"),
    "service_tier": ("service_tier", is_str, "a string"),
    "prompt_cache_retention": ("prompt_cache_retention", is_str, "a string"),
}

# Responses parameters the ChatGPT backend answers "Unsupported parameter" (protocol.md §3.3, §7.2).
BACKEND_REFUSED = frozenset(spec[0] for spec in _API_ONLY.values()) | {
    "truncation",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "previous_response_id",
    "conversation",
    "background",
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
    max_messages: int | None = None  # more messages than this: 400 (None: no limit)
    max_images: int | None = None  # more input images than this: 400 (None: no limit)


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
    echo_model, upstream_model, suffix_effort = resolve_model(chat.get("model"), options)
    _check_message_count(chat.get("messages"), options.max_messages)
    messages = chat_messages(chat)
    input_items = translate_messages(messages)
    _check_image_count(input_items, options.max_images)
    tools = translate_tools(chat)
    tool_choice = translate_tool_choice(chat)
    parallel = opt_bool(chat, "parallel_tool_calls", "")
    stream = opt_bool(chat, "stream", "")
    include_usage = _include_usage(chat)
    opt_bool(chat, "store", "")  # any value is fine; the upstream always gets store=false
    reasoning = reasoning_config(chat, suffix_effort, options)
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


# ---------------------------------------------------------- top-level params


def _check_message_count(messages: Any, limit: int | None) -> None:
    """Bound the work one request can ask for; checked before any message is translated."""
    if limit is not None and isinstance(messages, list) and len(messages) > limit:
        raise invalid_request(
            f"Too many messages: {len(messages)}; this gateway accepts at most {limit} "
            "(CODEX_MAX_MESSAGES).",
            "messages",
            "too_many_messages",
        )


def _check_image_count(items: list[dict[str, Any]], limit: int | None) -> None:
    """Count the input images that would go upstream (client images and re-sent ones)."""
    if limit is None:
        return
    count = sum(
        1
        for item in items
        if item.get("type") == "message"
        for part in item.get("content", ())
        if part.get("type") == "input_image"
    )
    if count > limit:
        raise too_many_images(count, limit)


def _reject_unsupported(chat: Mapping[str, Any]) -> None:
    """Refuse what the upstream cannot do, rather than answer something the client did not ask."""
    n = chat.get("n")
    if n is not None:
        if not is_int(n):
            raise type_error("n", "an integer", n)
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
    if opt_bool(chat, "logprobs", ""):
        raise invalid_request(
            "'logprobs' is not supported: this gateway cannot return token log probabilities "
            "(the ChatGPT backend does not provide them). Omit it or set it to false.",
            "logprobs",
            "unsupported_parameter",
        )
    top = chat.get("top_logprobs")
    if top is not None:
        if not is_int(top):
            raise type_error("top_logprobs", "an integer", top)
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
    """``text``, and ``image`` (OpenRouter- and Gemini-style clients: turns the image tool on
    for this request, see ``translate/images.should_inject_image_tool``); no audio."""
    modalities = opt_list(chat, "modalities", "")
    for i, modality in enumerate(modalities or ()):
        param = f"modalities[{i}]"
        if modality == "audio":
            raise invalid_request(
                "Audio output is not supported: the Responses upstream produces text only. "
                "Use modalities=['text'].",
                "modalities",
                "unsupported_value",
            )
        if modality not in ("text", "image"):
            raise bad_value(param, modality, ("text", "image"))


def resolve_model(raw: Any, options: RequestOptions) -> tuple[str, str, str | None]:
    """(name echoed to the client, name sent upstream, effort from a suffix)."""
    if raw is None or raw in ("", "default"):
        requested = options.default_model
    elif isinstance(raw, str):
        requested = raw
    else:
        raise type_error("model", "a string", raw)
    name = options.model_aliases.get(requested, requested)
    match = _EFFORT_SUFFIX.match(name)
    if match:
        return requested, match["base"], match["effort"]
    return requested, name, None


def _include_usage(chat: Mapping[str, Any]) -> bool:
    """stream_options.include_usage; the rest of stream_options has no upstream meaning."""
    stream_options = opt_dict(chat, "stream_options", "")
    if stream_options is None:
        return False
    return bool(opt_bool(stream_options, "include_usage", "stream_options"))


def _extra_params(
    chat: Mapping[str, Any], chatgpt_backend: bool
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Forward the api-only params (api_key mode) and report everything else unused."""
    forwarded: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in unread_fields(chat, _CONSUMED, dropped):
        spec = _API_ONLY.get(key)
        if spec is None or chatgpt_backend:
            dropped.append(key)
            continue
        target, check, expected = spec
        if not check(value):
            raise type_error(key, expected, value)
        if key == "max_tokens" and chat.get("max_completion_tokens") is not None:
            dropped.append(key)  # max_completion_tokens wins; the client should know
            continue
        forwarded[target] = value
    return forwarded, tuple(dropped)


def unread_fields(
    request: Mapping[str, Any], consumed: frozenset[str], dropped: list[str]
) -> Iterator[tuple[str, Any]]:
    """The request's fields the gateway does not read itself (``consumed``, and our own
    extensions), for the caller to forward or drop. Nulls are unset (SDKs send them for unset
    params): absent, not dropped. ``reasoning`` keys the upstream has no use for go to
    ``dropped``."""
    for key, value in request.items():
        if value is None:
            continue
        if key == "reasoning" and isinstance(value, dict):
            dropped.extend(
                f"reasoning.{k}"
                for k, v in value.items()
                if k not in _REASONING_KEYS and v is not None
            )
        if key in consumed or key in EXTERNAL_KEYS:
            continue
        yield key, value


def _prompt_cache_key(
    chat: Mapping[str, Any], options: RequestOptions, model: str, messages: list[dict[str, Any]]
) -> str:
    """The client's key, else its session, else one derived from how the conversation began."""
    key = opt_str(chat, "prompt_cache_key", "")
    if key:
        return key
    if options.session_id:
        return options.session_id
    return derived_cache_key(model, first_user_text(messages))


def derived_cache_key(model: str, first_text: str) -> str:
    """A stable key from how a conversation began: the same on every turn of it."""
    return str(uuid.uuid5(_CACHE_KEY_NAMESPACE, f"{model}\n{first_text}"))


# --------------------------------------------------------------------------- reasoning and text


def reasoning_config(
    chat: Mapping[str, Any], suffix_effort: str | None, options: RequestOptions
) -> dict[str, Any] | None:
    """`reasoning` for the body, or None when it must be omitted (non-reasoning api models)."""
    explicit = opt_enum(chat, "reasoning_effort", "", REASONING_EFFORTS)
    obj = opt_dict(chat, "reasoning", "")
    obj_effort = summary = None
    if obj is not None:
        obj_effort = opt_enum(obj, "effort", "reasoning", REASONING_EFFORTS)
        summary = opt_enum(obj, "summary", "reasoning", REASONING_SUMMARIES)
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
    response_format = opt_dict(chat, "response_format", "")
    if response_format is not None:
        text["format"] = _response_format(response_format)
    verbosity = opt_enum(chat, "verbosity", "", VERBOSITIES)
    if verbosity is not None:
        text["verbosity"] = verbosity
    return text


def _response_format(response_format: dict[str, Any]) -> dict[str, Any]:
    """Chat's response_format -> Responses' text.format (json_schema is flattened)."""
    kind = req_str(response_format, "type", "response_format")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind != "json_schema":
        raise bad_value("response_format.type", kind, ("text", "json_object", "json_schema"))
    spec = req_dict(response_format, "json_schema", "response_format")
    path = "response_format.json_schema"
    fmt: dict[str, Any] = {
        "type": "json_schema",
        "name": req_str(spec, "name", path),
        "schema": req_dict(spec, "schema", path),
    }
    strict = opt_bool(spec, "strict", path)
    if strict is not None:
        fmt["strict"] = strict
    description = opt_str(spec, "description", path)
    if description is not None:
        fmt["description"] = description
    return fmt
