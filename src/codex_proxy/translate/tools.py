"""Chat ``tools``, legacy ``functions``, ``web_search_options`` and ``tool_choice`` (or legacy
``function_call``) -> Responses ``tools`` and ``tool_choice``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from codex_proxy.translate.checks import (
    as_dict,
    bad_value,
    join,
    opt_bool,
    opt_dict,
    opt_enum,
    opt_list,
    opt_str,
    req_dict,
    req_str,
    type_error,
)
from codex_proxy.translate.errors import OpenAIError, invalid_request

TOOL_CHOICE_MODES = ("none", "auto", "required")
ALLOWED_TOOLS_MODES = ("auto", "required")
SEARCH_CONTEXT_SIZES = ("low", "medium", "high")

# OpenAI's rule for function and custom tool names; checked here so the error names the chat param.
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DEFAULT_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def translate_tools(chat: Mapping[str, Any]) -> list[dict[str, Any]]:
    """tools + legacy functions + web_search_options -> Responses tools."""
    tools = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(opt_list(chat, "tools", "") or ())]
    for i, spec in enumerate(opt_list(chat, "functions", "") or ()):
        tools.append(_function_tool(as_dict(spec, f"functions[{i}]"), f"functions[{i}]"))
    search_options = opt_dict(chat, "web_search_options", "")
    if search_options is not None:
        search_tool = _web_search_tool(search_options)
        if not any(tool.get("type") == "web_search" for tool in tools):
            tools.append(search_tool)
    return tools


def _tool(tool: Any, path: str) -> dict[str, Any]:
    """One chat tool: function/custom are flattened, hosted tools pass through unchanged."""
    tool = as_dict(tool, path)
    kind = req_str(tool, "type", path)
    if kind == "function":
        if "function" not in tool and "name" in tool:
            return _function_tool(tool, path)  # already Responses-shaped
        return _function_tool(req_dict(tool, "function", path), f"{path}.function")
    if kind == "custom":
        if "custom" not in tool and "name" in tool:
            return _custom_tool(tool, path)
        return _custom_tool(req_dict(tool, "custom", path), f"{path}.custom")
    return dict(tool)


def _function_tool(spec: Mapping[str, Any], path: str) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "function", "name": _tool_name(spec, path)}
    description = opt_str(spec, "description", path)
    if description is not None:
        tool["description"] = description
    parameters = opt_dict(spec, "parameters", path)
    tool["parameters"] = parameters if parameters is not None else dict(_DEFAULT_PARAMETERS)
    tool["strict"] = bool(opt_bool(spec, "strict", path))
    return tool


def _custom_tool(spec: Mapping[str, Any], path: str) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "custom", "name": _tool_name(spec, path)}
    description = opt_str(spec, "description", path)
    if description is not None:
        tool["description"] = description
    fmt = opt_dict(spec, "format", path)
    if fmt is not None:
        tool["format"] = fmt
    return tool


def _tool_name(obj: Mapping[str, Any], path: str) -> str:
    """A function/custom tool name, checked against OpenAI's pattern."""
    name = req_str(obj, "name", path)
    if not _TOOL_NAME.match(name):
        param = join(path, "name")
        raise invalid_request(
            f"Invalid '{param}': string does not match pattern. Expected a string of 1 to 64 "
            "characters that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            param,
            "invalid_value",
        )
    return name


def _web_search_tool(options: Mapping[str, Any]) -> dict[str, Any]:
    """web_search_options -> a web_search tool carrying its settings."""
    path = "web_search_options"
    tool: dict[str, Any] = {"type": "web_search"}
    size = opt_enum(options, "search_context_size", path, SEARCH_CONTEXT_SIZES)
    if size is not None:
        tool["search_context_size"] = size
    location = opt_dict(options, "user_location", path)
    if location is not None:
        tool["user_location"] = _user_location(location, f"{path}.user_location")
    return tool


def _user_location(location: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Chat nests the place under `approximate`; Responses wants it flat."""
    opt_enum(location, "type", path, ("approximate",))
    flat: dict[str, Any] = {"type": "approximate"}
    approximate = opt_dict(location, "approximate", path) or {}
    for key in ("country", "city", "region", "timezone"):
        value = opt_str(approximate, key, f"{path}.approximate")
        if value is not None:
            flat[key] = value
    return flat


# --------------------------------------------------------------- tool_choice


def translate_tool_choice(chat: Mapping[str, Any]) -> Any:
    """tool_choice (or legacy function_call) -> Responses tool_choice; default "auto"."""
    choice = chat.get("tool_choice")
    if choice is not None:
        return _tool_choice(choice)
    legacy = chat.get("function_call")
    if legacy is None:
        return "auto"
    if isinstance(legacy, str):
        if legacy not in ("none", "auto"):
            raise bad_value("function_call", legacy, ("none", "auto"))
        return legacy
    if not isinstance(legacy, dict):
        raise type_error("function_call", "a string or an object", legacy)
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
            raise bad_value("tool_choice", choice, TOOL_CHOICE_MODES)
        return choice
    if not isinstance(choice, dict):
        raise type_error("tool_choice", "a string or an object", choice)
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
