"""Item ids: every stored item has one, since cursors, ``item_reference`` and
``get_item`` find items by it. Ids the client or upstream sent are kept."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

_PREFIXES = {
    "message": "msg_",
    "function_call": "fc_",
    "function_call_output": "fco_",
    "reasoning": "rs_",
    "image_generation_call": "ig_",
    "web_search_call": "ws_",
    "custom_tool_call": "ctc_",
    "custom_tool_call_output": "ctco_",
    "compaction": "cmp_",
}


def new_item_id(item_type: object) -> str:
    prefix = _PREFIXES.get(item_type, "item_") if isinstance(item_type, str) else "item_"
    return prefix + secrets.token_hex(24)


def with_id(item: Mapping[str, Any]) -> dict[str, Any]:
    """``item`` as a dict that has a string ``id`` (a copy only when one is added)."""
    if isinstance(item.get("id"), str) and item["id"]:
        return item if isinstance(item, dict) else dict(item)
    # Easy-form messages have no "type"; the public API lists them as "message".
    kind = item.get("type", "message" if "role" in item else None)
    out: dict[str, Any] = {"id": new_item_id(kind)}
    out.update((k, v) for k, v in item.items() if k != "id")
    return out
