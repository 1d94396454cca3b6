"""``POST /v1/responses/compact`` <-> ``{base}/responses/compact`` (protocol.md §7.4).

The backend takes a Responses-like body without streaming or storage and answers
``{"output": [items]}``: the user messages, then one ``compaction`` item whose
``encrypted_content`` replaces the earlier history. The public API answers a
``response.compaction`` object (SDK ``types/responses/compacted_response.py``).
With ``previous_response_id`` the route assembles the stored chain first
(``responses_history.assemble_input``), exactly as for ``POST /v1/responses``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codex_proxy.translate.checks import opt_str
from codex_proxy.translate.errors import OpenAIError, invalid_request
from codex_proxy.translate.request import reasoning_config, resolve_model
from codex_proxy.translate.responses_request import ResponsesOptions, normalize_input
from codex_proxy.translate.responses_stream import public_usage

__all__ = ["PreparedCompaction", "compacted_response", "prepare_compact_request"]

# Sent as the client gave them when present; anything else it sent is reported as dropped.
_OPTIONAL = ("tools", "parallel_tool_calls", "text")
_CONSUMED = frozenset({"model", "input", "instructions", "reasoning", "previous_response_id"})


@dataclass(frozen=True)
class PreparedCompaction:
    body: dict[str, Any]  # for {base}/responses/compact; input = the new input only
    dropped: tuple[str, ...]
    previous_response_id: str | None  # None in api_key mode: the public API resolves it
    model: str  # as the client named it


def prepare_compact_request(request: Any, options: ResponsesOptions) -> PreparedCompaction:
    """Validate a compact request; 400 ``OpenAIError`` for bad input."""
    if not isinstance(request, dict):
        raise invalid_request("Request body must be a JSON object", None, "invalid_type")
    base = options.request
    echo_model, upstream_model, suffix_effort = resolve_model(request.get("model"), base)
    previous = opt_str(request, "previous_response_id", "")
    instructions = opt_str(request, "instructions", "")
    if not base.chatgpt_backend:  # the public API compacts (and chains) by itself
        body = {**request, "model": upstream_model}
        return PreparedCompaction(body, (), None, echo_model)
    raw_input = request.get("input")
    if raw_input is None and previous is None:
        raise invalid_request(
            "Either 'input' or 'previous_response_id' is required.",
            "input",
            "missing_required_parameter",
        )
    body: dict[str, Any] = {
        "model": upstream_model,
        "input": [] if raw_input is None else normalize_input(raw_input),
        "instructions": base.instructions if instructions is None else instructions,
    }
    reasoning = reasoning_config({"reasoning": request.get("reasoning")}, suffix_effort, base)
    if reasoning:
        body["reasoning"] = reasoning
    for key in _OPTIONAL:
        if request.get(key) is not None:
            body[key] = request[key]
    dropped = tuple(
        key
        for key, value in request.items()
        if value is not None and key not in _CONSUMED and key not in _OPTIONAL
    )
    return PreparedCompaction(body, dropped, previous, echo_model)


def compacted_response(
    upstream: Mapping[str, Any], *, response_id: str, created_at: int
) -> dict[str, Any]:
    """The backend's ``{"output": [...]}`` as the public ``response.compaction`` object; a
    compaction item without an id gets one (the SDK's ``ResponseCompactionItem`` needs it)."""
    output = upstream.get("output")
    if not isinstance(output, list):
        raise OpenAIError(
            502,
            "The upstream compaction answer has no 'output' list.",
            "server_error",
            None,
            "upstream_malformed_event",
        )
    usage = public_usage(upstream.get("usage")) or public_usage({})
    stem = response_id.removeprefix("resp_")
    output = [
        {"id": f"cmp_{stem}_{i}", **item}
        if isinstance(item, Mapping) and item.get("type") == "compaction" and "id" not in item
        else item
        for i, item in enumerate(output)
    ]
    return {
        "id": response_id,
        "object": "response.compaction",
        "created_at": created_at,
        "output": output,
        "usage": usage,
    }
