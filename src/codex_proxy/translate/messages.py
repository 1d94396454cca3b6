"""Chat ``messages`` -> Responses ``input`` items.

Roles, content parts (text, images, files), assistant history with its tool calls, legacy
function calls and the tool/function results that answer them, order preserved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from codex_proxy.translate.checks import (
    as_dict,
    bad_value,
    missing,
    opt_dict,
    opt_enum,
    opt_list,
    opt_str,
    req_dict,
    req_str,
    shown,
    type_error,
)
from codex_proxy.translate.errors import invalid_request

IMAGE_DETAILS = ("auto", "low", "high", "original")


def chat_messages(chat: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The validated `messages` list: non-empty, objects only."""
    messages = chat.get("messages")
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list):
        raise type_error("messages", "an array", messages)
    if not messages:
        raise invalid_request(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            "messages",
            "empty_array",
        )
    for i, message in enumerate(messages):
        as_dict(message, f"messages[{i}]")
    return messages


@dataclass
class _History:
    """State carried across messages: calls whose results come in later messages."""

    items: list[dict[str, Any]] = field(default_factory=list)
    legacy_calls: list[tuple[str, str]] = field(default_factory=list)  # (name, call_id) pending
    custom_call_ids: set[str] = field(default_factory=set)


_ROLES = ("system", "developer", "user", "assistant", "tool", "function")


def translate_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages -> Responses input items, order preserved."""
    history = _History()
    for i, message in enumerate(messages):
        path = f"messages[{i}]"
        role = req_str(message, "role", path)
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
            raise bad_value(f"{path}.role", role, _ROLES)
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
        raise missing(f"{path}.content")
    if not isinstance(content, (str, list)):
        raise type_error(f"{path}.content", "a string or an array of content parts", content)
    return content


def _part_type(part: Any, path: str) -> str:
    """The `type` of one content part (validating that the part is an object)."""
    return req_str(as_dict(part, path), "type", path)


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
                f"Invalid value for '{part_path}.type': '{shown(kind)}'. {role} messages accept "
                "only 'text' content parts.",
                f"{part_path}.type",
                "invalid_value",
            )
        texts.append(req_str(part, "text", part_path, allow_empty=True))
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
        return {"type": "input_text", "text": req_str(part, "text", path, allow_empty=True)}
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
    raise bad_value(f"{path}.type", kind, ("text", "image_url", "file"))


def _image_part(part: Mapping[str, Any], path: str) -> dict[str, Any]:
    """image_url part -> input_image; a bare string image_url is accepted as the url."""
    url_path = f"{path}.image_url"
    image = part.get("image_url")
    if isinstance(image, str):
        image = {"url": image}
    if image is None:
        raise missing(url_path)
    url = req_str(as_dict(image, url_path), "url", url_path)
    if not _is_image_url(url):
        raise invalid_request(
            f"Invalid '{url_path}.url': expected an http(s) URL or a data:image/... URI.",
            f"{url_path}.url",
            "invalid_value",
        )
    detail = opt_enum(image, "detail", url_path, IMAGE_DETAILS) or "auto"
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
    spec = req_dict(part, "file", path)
    item: dict[str, Any] = {"type": "input_file"}
    for key in _FILE_KEYS:
        value = opt_str(spec, key, file_path)
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
    calls = opt_list(message, "tool_calls", path)
    for j, call in enumerate(calls or ()):
        item = _tool_call_item(call, f"{path}.tool_calls[{j}]")
        if item["type"] == "custom_tool_call":
            history.custom_call_ids.add(item["call_id"])
        history.items.append(item)
    legacy = opt_dict(message, "function_call", path)
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
        raise type_error(f"{path}.content", "a string or an array of content parts", content)
    texts = [t for t in texts if t]
    refusal = opt_str(message, "refusal", path)
    if not texts and refusal:
        texts = [refusal]
    return texts


def _assistant_part(part: Any, path: str) -> str:
    kind = _part_type(part, path)
    if kind == "text":
        return req_str(part, "text", path, allow_empty=True)
    if kind == "refusal":
        return req_str(part, "refusal", path, allow_empty=True)
    raise bad_value(f"{path}.type", kind, ("text", "refusal"))


def _tool_call_item(call: Any, path: str) -> dict[str, Any]:
    """assistant tool_calls[j] -> function_call (or custom_tool_call) history item."""
    call = as_dict(call, path)
    call_id = req_str(call, "id", path)
    kind = opt_str(call, "type", path) or "function"
    if kind == "function":
        function = req_dict(call, "function", path)
        fn_path = f"{path}.function"
        return {
            "type": "function_call",
            "call_id": call_id,
            "name": req_str(function, "name", fn_path),
            "arguments": _arguments(function, fn_path),
        }
    if kind == "custom":
        custom = req_dict(call, "custom", path)
        custom_path = f"{path}.custom"
        return {
            "type": "custom_tool_call",
            "call_id": call_id,
            "name": req_str(custom, "name", custom_path),
            "input": req_str(custom, "input", custom_path, allow_empty=True),
        }
    raise bad_value(f"{path}.type", kind, ("function", "custom"))


def _arguments(function: Mapping[str, Any], path: str) -> str:
    """Call arguments must already be a JSON string, as the chat API defines them."""
    arguments = function.get("arguments")
    if arguments is None:
        raise missing(f"{path}.arguments")
    if not isinstance(arguments, str):
        raise type_error(f"{path}.arguments", "a string (JSON-encoded arguments)", arguments)
    return arguments


def _legacy_call_item(
    legacy: Mapping[str, Any], path: str, index: int, history: _History
) -> dict[str, Any]:
    """Deprecated assistant function_call: it has no id, so derive one from its position."""
    name = req_str(legacy, "name", path)
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
        raise type_error(f"{path}.content", "a string or an array of content parts", content)
    return "".join(_text_only(content, f"{path}.content", role))


def _tool_message(message: Mapping[str, Any], path: str, history: _History) -> dict[str, Any]:
    call_id = req_str(message, "tool_call_id", path)
    output = _tool_output(message, path, "Tool")
    kind = (
        "custom_tool_call_output" if call_id in history.custom_call_ids else "function_call_output"
    )
    return {"type": kind, "call_id": call_id, "output": output}


def _function_message(message: Mapping[str, Any], path: str, history: _History) -> dict[str, Any]:
    """Deprecated function-role result: pair it with the latest unanswered legacy call."""
    name = opt_str(message, "name", path)
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


def first_user_text(messages: list[dict[str, Any]]) -> str:
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
