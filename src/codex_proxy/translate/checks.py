"""Typed getters, validators and error builders shared by the request translator modules.

Each getter reads one field of a client object, checks its JSON type and raises a 400
``OpenAIError`` naming the offending ``param`` (its dotted path in the chat request) otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codex_proxy.translate.errors import OpenAIError, invalid_request


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_str(value: Any) -> bool:
    return isinstance(value, str)


def is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def json_type(value: Any) -> str:
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


def shown(value: Any) -> str:
    """A short quotation of a bad value (never a 20 MB string in an error body)."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def type_error(param: str, expected: str, value: Any) -> OpenAIError:
    return invalid_request(
        f"Invalid type for '{param}': expected {expected}, but got {json_type(value)} instead.",
        param,
        "invalid_type",
    )


def missing(param: str) -> OpenAIError:
    return invalid_request(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def bad_value(param: str, value: Any, allowed: tuple[str, ...]) -> OpenAIError:
    choices = ", ".join(f"'{a}'" for a in allowed)
    return invalid_request(
        f"Invalid value for '{param}': '{shown(value)}'. Supported values are: {choices}.",
        param,
        "invalid_value",
    )


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def opt_str(obj: Mapping[str, Any], key: str, path: str) -> str | None:
    """A string field that may be absent or null."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise type_error(join(path, key), "a string", value)
    return value


def req_str(obj: Mapping[str, Any], key: str, path: str, *, allow_empty: bool = False) -> str:
    """A required string field; empty counts as missing unless allowed."""
    value = opt_str(obj, key, path)
    if value is None or (not value and not allow_empty):
        raise missing(join(path, key))
    return value


def opt_bool(obj: Mapping[str, Any], key: str, path: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise type_error(join(path, key), "a boolean", value)
    return value


def opt_dict(obj: Mapping[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise type_error(join(path, key), "an object", value)
    return value


def req_dict(obj: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
    value = opt_dict(obj, key, path)
    if value is None:
        raise missing(join(path, key))
    return value


def opt_list(obj: Mapping[str, Any], key: str, path: str) -> list[Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise type_error(join(path, key), "an array", value)
    return value


def opt_enum(obj: Mapping[str, Any], key: str, path: str, allowed: tuple[str, ...]) -> str | None:
    value = opt_str(obj, key, path)
    if value is not None and value not in allowed:
        raise bad_value(join(path, key), value, allowed)
    return value


def as_dict(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise type_error(param, "an object", value)
    return value
