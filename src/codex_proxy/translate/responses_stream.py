"""Upstream Responses events -> the events a Responses client gets: nearly all untouched.

Pure and incremental (h11 style): feed each parsed upstream event; ``None`` means "send the
original bytes as they came", a dict means "send this instead". Only four things get rewritten:

* every Response object (``response.created`` ... ``response.completed``) reports what the
  *client* asked (``store``, ``previous_response_id``, ``instructions``), not what the gateway
  forced upstream, and the gateway's response id when the caller chose one;
* the terminal event's ``output``, which the ChatGPT backend sends empty (protocol.md §7.2), is
  rebuilt from the ``response.output_item.done`` items in ``output_index`` order;
* reasoning items lose ``encrypted_content`` unless the client put
  ``reasoning.encrypted_content`` in ``include`` (the gateway always asks for it, to replay
  history); the full items stay available to the store in :attr:`ResponsesRelay.items`;
* ``usage`` always has ``input_tokens_details.cached_tokens`` and
  ``output_tokens_details.reasoning_tokens`` (the backend may send them null).

Everything else, deltas and 20 MB partial images included, passes through without a copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from codex_proxy.translate import errors
from codex_proxy.translate.responses_request import ClientView

__all__ = [
    "LIFECYCLE",
    "TERMINAL",
    "ResponsesRelay",
    "collect_response",
    "public_usage",
    "sse_frame",
    "strip_encrypted",
]

Event = Mapping[str, Any]

LIFECYCLE = frozenset({"response.created", "response.in_progress", "response.queued"})
"""Events that come before any output: a route may hold them back, so that a failure right
after them can still be answered with a real HTTP status."""
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_ITEM_EVENTS = frozenset({"response.output_item.added", "response.output_item.done"})
_ENCRYPTED = "encrypted_content"


class ResponsesRelay:
    """Feed upstream events in order; send what :meth:`feed` says.

    ``response_id``: the id the client sees (and the store keys on); None keeps the
    upstream's. After a terminal event, :attr:`response` is the client's final Response object
    and :attr:`items` the full output items (with ``encrypted_content``) for the store.
    :attr:`failure` is the error a ``response.failed`` or ``error`` event maps to.
    """

    def __init__(self, view: ClientView, *, response_id: str | None = None) -> None:
        self.view = view
        self.response_id = response_id
        self.done = False
        self.response: dict[str, Any] | None = None
        self.failure: errors.OpenAIError | None = None
        self._items: dict[int, Mapping[str, Any]] = {}
        self._upstream_items: list[Mapping[str, Any]] | None = None

    # -- public API ------------------------------------------------------------------------

    def feed(self, event: Event) -> dict[str, Any] | None:
        """None: pass the event's original bytes on untouched; a dict: send it instead."""
        kind = event.get("type")
        if kind in _ITEM_EVENTS:
            return self._item_event(event)
        if kind in LIFECYCLE:
            return self._with_response(event)
        if kind in TERMINAL:
            return self._terminal(event)
        if kind == "error":
            self.done = True
            self.failure = errors.from_stream_event(event)
        return None

    @property
    def items(self) -> list[Mapping[str, Any]]:
        """Every output item as the upstream finished it, in ``output_index`` order (for the
        store: reasoning keeps ``encrypted_content``, needed to replay the turn)."""
        if self._upstream_items:
            return list(self._upstream_items)
        return [self._items[i] for i in sorted(self._items)]

    def finish(self) -> None:
        """The upstream closed: fine after a terminal event, a truncated answer otherwise."""
        if not self.done:
            raise errors.stream_truncated()

    def final_response(self) -> dict[str, Any]:
        """The non-streaming answer: the final Response object; raises the mapped error for
        a failed response or an ``error`` event, ``stream_truncated`` for a cut stream."""
        self.finish()
        if self.failure is not None:
            raise self.failure
        assert self.response is not None  # done without failure: a terminal event came
        return self.response

    # -- events ----------------------------------------------------------------------------

    def _item_event(self, event: Event) -> dict[str, Any] | None:
        item = event.get("item")
        if not isinstance(item, Mapping):
            return None
        if event.get("type") == "response.output_item.done":
            index = event.get("output_index")
            if not isinstance(index, int) or isinstance(index, bool):
                index = max(self._items, default=-1) + 1
            self._items[index] = item
        if self.view.include_encrypted or _ENCRYPTED not in item:
            return None
        return {**event, "item": strip_encrypted(item)}

    def _with_response(self, event: Event) -> dict[str, Any] | None:
        response = event.get("response")
        if not isinstance(response, Mapping):
            return None
        return {**event, "response": self._client_response(response)}

    def _terminal(self, event: Event) -> dict[str, Any] | None:
        self.done = True
        if event.get("type") == "response.failed":
            self.failure = errors.from_stream_event(event)
        response = event.get("response")
        if not isinstance(response, Mapping):
            return None
        upstream_output = response.get("output")
        if isinstance(upstream_output, list) and upstream_output:
            self._upstream_items = upstream_output  # an upstream that fills it is trusted
        output = self.items
        if not self.view.include_encrypted:
            output = [strip_encrypted(item) for item in output]
        final = self._client_response(response)
        final["output"] = output
        final.setdefault("error", None)
        final.setdefault("incomplete_details", None)
        final["usage"] = public_usage(response.get("usage"))
        self.response = final
        return {**event, "response": final}

    def _client_response(self, response: Mapping[str, Any]) -> dict[str, Any]:
        out = {**response}
        out.setdefault("object", "response")
        if self.response_id is not None:
            out["id"] = self.response_id
        out["store"] = self.view.store
        out["previous_response_id"] = self.view.previous_response_id
        out["instructions"] = self.view.instructions
        return out


def collect_response(
    events: Iterable[Event], view: ClientView, *, response_id: str | None = None
) -> tuple[dict[str, Any], list[Mapping[str, Any]]]:
    """A whole upstream stream -> (the non-streaming Response, the full items for the store)."""
    relay = ResponsesRelay(view, response_id=response_id)
    for event in events:
        relay.feed(event)
        if relay.done:
            break
    return relay.final_response(), relay.items


def strip_encrypted(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """The item without ``encrypted_content`` (a copy only when there was one)."""
    if _ENCRYPTED not in item:
        return item
    return {k: v for k, v in item.items() if k != _ENCRYPTED}


def public_usage(usage: Any) -> dict[str, Any] | None:
    """Responses ``usage`` as the public API shapes it: both detail objects, with the counts
    the SDK's ``ResponseUsage`` requires (``cached_tokens``, ``cache_write_tokens``,
    ``reasoning_tokens``)."""
    if not isinstance(usage, Mapping):
        return None
    input_tokens = _count(usage.get("input_tokens"))
    output_tokens = _count(usage.get("output_tokens"))
    total = usage.get("total_tokens")
    input_details = usage.get("input_tokens_details")
    output_details = usage.get("output_tokens_details")
    input_details = dict(input_details) if isinstance(input_details, Mapping) else {}
    output_details = dict(output_details) if isinstance(output_details, Mapping) else {}
    input_details["cached_tokens"] = _count(input_details.get("cached_tokens"))
    input_details["cache_write_tokens"] = _count(input_details.get("cache_write_tokens"))
    output_details["reasoning_tokens"] = _count(output_details.get("reasoning_tokens"))
    return {
        **usage,
        "input_tokens": input_tokens,
        "input_tokens_details": input_details,
        "output_tokens": output_tokens,
        "output_tokens_details": output_details,
        "total_tokens": _count(total) if _is_count(total) else input_tokens + output_tokens,
    }


def sse_frame(name: str, payload: bytes) -> bytes:
    """One SSE event: ``event:`` and ``data:`` lines (Node's SDK reads the name)."""
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count(value: Any) -> int:
    return value if _is_count(value) else 0
