"""A client's ``POST /v1/responses`` body -> the body the upstream gets.

Pure, like the chat translator it borrows from (model aliases, reasoning defaults, the
cache-key rule, the refused-parameter list, the image tool rule all come from there). On the
ChatGPT backend the gateway keeps the conversation itself, so this module normalises the new
input (a list, ``developer`` instead of ``system``, no server-side ids), forces ``store:false``
and ``stream:true``, and records what the client asked (``store``, ``previous_response_id``,
``instructions``, ``include``) so the answer can report those rather than the forced values.
With an API key the body goes on nearly untouched: the public API stores and chains itself.
History assembly and item references live in ``responses_history``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from codex_proxy.translate.checks import (
    bad_value,
    opt_bool,
    opt_dict,
    opt_list,
    opt_str,
    type_error,
)
from codex_proxy.translate.errors import invalid_request
from codex_proxy.translate.images import apply_image_tool
from codex_proxy.translate.request import (
    BACKEND_REFUSED,
    ENCRYPTED_REASONING,
    EXTERNAL_KEYS,
    RequestOptions,
    derived_cache_key,
    reasoning_config,
    resolve_model,
    unread_fields,
)

__all__ = [
    "ITEM_TYPES",
    "ClientView",
    "PreparedResponse",
    "ResponsesOptions",
    "normalize_input",
    "normalize_item",
    "prepare_responses_request",
]

# Input item types of the Responses API (SDK ``response_input_item_param.py``).
ITEM_TYPES = frozenset(
    {
        "message",
        "item_reference",
        "function_call",
        "function_call_output",
        "reasoning",
        "compaction",
        "image_generation_call",
        "web_search_call",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "code_interpreter_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "custom_tool_call",
        "custom_tool_call_output",
        "tool_search_call",
        "tool_search_output",
        "additional_tools",
        "compaction_trigger",
        "program",
        "program_output",
    }
)
ROLES = ("user", "assistant", "system", "developer")

# Sent upstream as the client gave them (ChatGPT mode); everything else is consumed or dropped.
_FORWARDED = ("tools", "tool_choice", "parallel_tool_calls", "text")
# Read by the gateway itself; never reported as dropped.
_CONSUMED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "reasoning",
        "include",
        "prompt_cache_key",
        "store",
        "stream",
        "previous_response_id",
        "background",
        "conversation",
        "modalities",
        *_FORWARDED,
    }
)
# The gateway's own request fields: never sent to any upstream.
_EXTENSIONS = frozenset({"modalities", *EXTERNAL_KEYS})
# Need server-side state the gateway does not keep: refused, never dropped in silence.
_NEEDS_STORAGE = {
    "background": "'background' mode needs the upstream to keep the response; this gateway "
    "answers in the foreground only. Omit it or set it to false.",
    "conversation": "'conversation' (the Conversations API) is not supported by this gateway. "
    "Chain turns with 'previous_response_id' instead.",
}


@dataclass(frozen=True)
class ResponsesOptions:
    """Deployment settings for the passthrough: the chat options plus the image tool."""

    request: RequestOptions  # chatgpt_backend, default_model, instructions, aliases, session_id
    enable_image_gen: bool = False  # CODEX_ENABLE_IMAGE_GEN
    image_defaults: Mapping[str, Any] = field(default_factory=dict)  # CODEX_IMAGE_* options


@dataclass(frozen=True)
class ClientView:
    """What the client asked for, to report in every Response object it sees."""

    store: bool  # the client's store (API default true); upstream always gets false
    previous_response_id: str | None
    instructions: str | None  # the client's own, not the configured default sent upstream
    include_encrypted: bool  # asked for reasoning.encrypted_content; else it is stripped
    model: str  # the model name as the client asked (alias or "default" resolved to the name)


@dataclass(frozen=True)
class PreparedResponse:
    """The upstream body (``input`` = the new input only) and what the route must know."""

    body: dict[str, Any]
    dropped: tuple[str, ...]  # for the x-codex-proxy-dropped-params header, in request order
    stream: bool  # the client asked for a stream
    view: ClientView
    prompt_cache_key: str  # == body["prompt_cache_key"]; store it so later turns reuse it
    image_format: str | None  # output format of the image tool sent, if any
    chatgpt: bool  # True: the gateway keeps history (assemble before sending)

    @property
    def previous_response_id(self) -> str | None:
        return self.view.previous_response_id

    @property
    def input(self) -> list[dict[str, Any]] | str:
        """The normalised new input (a list in ChatGPT mode)."""
        return self.body["input"]


def prepare_responses_request(
    request: Any, options: ResponsesOptions, *, cache_key: str | None = None
) -> PreparedResponse:
    """Validate and translate one Responses request; 400 ``OpenAIError`` for bad input.

    ``cache_key``: the conversation's key carried down the stored chain, used when the client
    sends no ``prompt_cache_key`` of its own.
    """
    if not isinstance(request, dict):
        raise invalid_request("Request body must be a JSON object", None, "invalid_type")
    base = options.request
    echo_model, upstream_model, suffix_effort = resolve_model(request.get("model"), base)
    stream = bool(opt_bool(request, "stream", ""))
    store = opt_bool(request, "store", "")
    previous = opt_str(request, "previous_response_id", "")
    instructions = opt_str(request, "instructions", "")
    include = _include(request)
    view = ClientView(
        store=True if store is None else store,
        previous_response_id=previous,
        instructions=instructions,
        include_encrypted=ENCRYPTED_REASONING in include,
        model=echo_model,
    )
    if not base.chatgpt_backend:
        body = {k: v for k, v in request.items() if k not in _EXTENSIONS}
        body["model"] = upstream_model
        return PreparedResponse(
            body=body,
            dropped=(),
            stream=stream,
            view=view,
            prompt_cache_key=opt_str(request, "prompt_cache_key", "") or "",
            image_format=None,
            chatgpt=False,
        )

    for key, message in _NEEDS_STORAGE.items():
        value = request.get(key)
        if value is not None and value is not False:
            raise invalid_request(message, key, "unsupported_parameter")
    items = normalize_input(request.get("input"))
    _check_forwarded(request)
    reasoning_request = {"reasoning": request.get("reasoning")}
    reasoning = reasoning_config(reasoning_request, suffix_effort, base) or {}
    key = (
        opt_str(request, "prompt_cache_key", "")
        or cache_key
        or base.session_id
        or derived_cache_key(upstream_model, _first_user_text(items))
    )
    body: dict[str, Any] = {
        "model": upstream_model,
        "instructions": base.instructions if instructions is None else instructions,
        "input": items,
        "tools": list(request.get("tools") or ()),
        "tool_choice": request.get("tool_choice") or "auto",
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "reasoning": reasoning,
        "store": False,
        "stream": True,
        "include": [ENCRYPTED_REASONING, *(i for i in include if i != ENCRYPTED_REASONING)],
        "prompt_cache_key": key,
    }
    if request.get("text") is not None:
        body["text"] = request["text"]
    forwarded, dropped = _forwarded_and_dropped(request)
    body.update(forwarded)
    image_format = apply_image_tool(
        body, request, enabled=options.enable_image_gen, defaults=options.image_defaults
    )
    return PreparedResponse(
        body=body,
        dropped=dropped,
        stream=stream,
        view=view,
        prompt_cache_key=key,
        image_format=image_format,
        chatgpt=True,
    )


# ---------------------------------------------------------------------- input items


def normalize_input(raw: Any) -> list[dict[str, Any]]:
    """The client's ``input`` as the list of items the backend takes; 400 for bad items."""
    if isinstance(raw, str):
        return [_message("user", raw)]
    if raw is None:
        raise invalid_request(
            "Missing required parameter: 'input'.", "input", "missing_required_parameter"
        )
    if not isinstance(raw, list):
        raise type_error("input", "a string or an array", raw)
    return [normalize_item(item, f"input[{i}]") for i, item in enumerate(raw)]


def normalize_item(item: Any, param: str) -> dict[str, Any]:
    """One input item ready for the backend: messages in list form, ``system`` as
    ``developer``. Ids stay (references need them; ``responses_history`` strips them)."""
    if not isinstance(item, dict):
        raise type_error(param, "an object", item)
    kind = item.get("type")
    if kind is None:
        if "role" in item:
            kind = "message"
        elif "id" in item:
            kind = "item_reference"
        else:
            raise invalid_request(
                f"Missing required parameter: '{param}.type'.",
                f"{param}.type",
                "missing_required_parameter",
            )
    if not isinstance(kind, str):
        raise type_error(f"{param}.type", "a string", kind)
    if kind not in ITEM_TYPES:
        raise invalid_request(
            f"Invalid value for '{param}.type': '{kind}' is not an input item type.",
            f"{param}.type",
            "invalid_value",
        )
    if kind == "message":
        return _normalize_message(item, param)
    by_id = kind == "item_reference" or (
        kind == "image_generation_call" and item.get("result") is None
    )
    ref = item.get("id")
    if by_id and (not isinstance(ref, str) or not ref):
        raise type_error(f"{param}.id", "a string", ref)
    return item if item.get("type") == kind else {**item, "type": kind}


def _normalize_message(item: dict[str, Any], param: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ROLES:
        if not isinstance(role, str):
            raise type_error(f"{param}.role", "a string", role)
        raise bad_value(f"{param}.role", role, ROLES)
    content = item.get("content")
    if isinstance(content, str):
        content = [_text_part(role, content)]
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise type_error(f"{param}.content[{j}]", "an object with a 'type'", part)
    else:
        raise type_error(f"{param}.content", "a string or an array", content)
    out = {**item, "type": "message", "role": "developer" if role == "system" else role}
    out["content"] = content
    return out


def _message(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [_text_part(role, text)]}


def _text_part(role: str, text: str) -> dict[str, Any]:
    return {"type": "output_text" if role == "assistant" else "input_text", "text": text}


def _first_user_text(items: list[dict[str, Any]]) -> str:
    for item in items:
        if item.get("type") == "message" and item.get("role") == "user":
            texts = [p.get("text") for p in item["content"] if isinstance(p, dict)]
            return "\n".join(t for t in texts if isinstance(t, str))
    return ""


# --------------------------------------------------------------------- other fields


def _include(request: Mapping[str, Any]) -> list[str]:
    include = opt_list(request, "include", "") or []
    for i, value in enumerate(include):
        if not isinstance(value, str):
            raise type_error(f"include[{i}]", "a string", value)
    return include


def _check_forwarded(request: Mapping[str, Any]) -> None:
    """Type checks for what goes upstream as sent, so a bad shape is our 400, not theirs."""
    tools = opt_list(request, "tools", "")
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise type_error(f"tools[{i}]", "an object with a 'type'", tool)
    choice = request.get("tool_choice")
    if choice is not None and not isinstance(choice, (str, dict)):
        raise type_error("tool_choice", "a string or an object", choice)
    opt_bool(request, "parallel_tool_calls", "")
    opt_dict(request, "text", "")
    opt_str(request, "prompt_cache_key", "")
    modalities = opt_list(request, "modalities", "")
    for i, modality in enumerate(modalities or ()):
        if modality not in ("text", "image"):
            raise bad_value(f"modalities[{i}]", modality, ("text", "image"))


def _forwarded_and_dropped(
    request: Mapping[str, Any],
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Fields the gateway does not read itself: the ones the backend refuses are dropped and
    reported (request order), any other goes up as sent (nulls count as unset)."""
    forwarded: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in unread_fields(request, _CONSUMED, dropped):
        if key in BACKEND_REFUSED:
            dropped.append(key)
        else:
            forwarded[key] = value
    return forwarded, tuple(dropped)
