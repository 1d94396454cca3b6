"""Responses stream events -> ``chat.completion.chunk`` dicts.

One state machine serves both chat modes: streaming sends its chunks, non-streaming folds them
(``aggregate.py``), so the event logic lives here only. Pure and incremental in the h11 style:
feed one upstream event, get the chunks to send now.

Deltas are passed on by reference, never concatenated, so a huge text or arguments string costs no
copy here; what was sent is remembered as a list of those same string objects, which lets an
``output_item.done`` top up only the missing tail (upstreams that stream nothing, or stop early).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from codex_proxy.translate import errors

if TYPE_CHECKING:
    from codex_proxy.translate.images import ImageRenderer

Chunk = dict[str, Any]
Event = Mapping[str, Any]
Handler = Callable[["ChatStreamTranslator", Event], list[Chunk]]
ItemHandler = Callable[["ChatStreamTranslator", Mapping[str, Any], Any], list[Chunk]]

SEPARATOR = "\n\n"
"""Put between two assistant messages, and between two reasoning parts, so they don't run on."""

_INCOMPLETE_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}

T = TypeVar("T")


def chat_usage(responses_usage: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Responses ``usage`` -> chat ``usage``; ``None`` stays ``None``, null details count as 0."""
    if not isinstance(responses_usage, Mapping):
        return None
    prompt = _count(responses_usage.get("input_tokens"))
    completion = _count(responses_usage.get("output_tokens"))
    total = responses_usage.get("total_tokens")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": _count(total) if _is_number(total) else prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": _detail(responses_usage.get("input_tokens_details"), "cached_tokens")
        },
        "completion_tokens_details": {
            "reasoning_tokens": _detail(
                responses_usage.get("output_tokens_details"), "reasoning_tokens"
            )
        },
    }


class ChatStreamTranslator:
    """Feed Responses events, get chat.completion.chunk dicts.

    ``feed`` raises :class:`errors.OpenAIError` for ``response.failed`` and ``error`` events; the
    caller decides whether that becomes an HTTP error or an in-stream error event. ``finish``
    raises ``errors.stream_truncated()`` when the upstream closed before a terminal event.
    """

    def __init__(
        self,
        *,
        completion_id: str,
        created: int,
        model: str,
        include_usage: bool,
        image_renderer: ImageRenderer | None = None,
    ) -> None:
        self.done = False
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.annotations: list[dict[str, Any]] = []
        self._id = completion_id
        self._created = created
        self._model = model
        self._include_usage = include_usage
        self._role_sent = False
        self._messages: _Items[_Message] = _Items()
        self._calls: _Items[_Call] = _Items()
        self._call_count = 0
        self._content_len = 0  # characters of content sent: the offset of the next message
        self._reasoning_parts: set[tuple[Any, ...]] = set()
        self._annotation_keys: set[tuple[Any, ...]] = set()
        self._image_renderer = image_renderer
        self._images_done: set[Any] = set()

    # -- public API ------------------------------------------------------------------------

    def feed(self, event: Event) -> list[Chunk]:
        """The chunks to send for one upstream event (often none)."""
        if self.done:
            return []
        try:
            handler = self._EVENTS.get(event.get("type"))
        except TypeError:  # an unhashable "type": not an event we know
            return []
        if handler is None:
            return []
        return handler(self, event)

    def finish(self) -> list[Chunk]:
        """The upstream closed: fine after a terminal event, a truncated answer otherwise."""
        if not self.done:
            raise errors.stream_truncated()
        return []

    # -- chunks ----------------------------------------------------------------------------

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> Chunk:
        """One choice chunk; the very first one also carries the assistant role."""
        if not self._role_sent:
            self._role_sent = True
            delta = {"role": "assistant", **delta}
        chunk: Chunk = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if self._include_usage:
            chunk["usage"] = None
        return chunk

    def _usage_chunk(self) -> Chunk:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [],
            "usage": self.usage,
        }

    # -- text, refusal, reasoning ----------------------------------------------------------

    def _on_text_delta(self, event: Event) -> list[Chunk]:
        delta = event.get("delta")
        if not delta or not isinstance(delta, str):
            return []
        return self._send_text(
            self._message(event.get("item_id"), event.get("output_index")), delta
        )

    def _on_refusal_delta(self, event: Event) -> list[Chunk]:
        delta = event.get("delta")
        if not delta or not isinstance(delta, str):
            return []
        message = self._message(event.get("item_id"), event.get("output_index"))
        message.refusal.append(delta)
        return [self._chunk({"refusal": delta})]

    def _send_text(self, message: _Message, text: str) -> list[Chunk]:
        """Content for one message; a later message is set apart from the earlier ones."""
        out: list[Chunk] = []
        if not message.content:
            if self._content_len:
                out.append(self._chunk({"content": SEPARATOR}))
                self._content_len += len(SEPARATOR)
            message.offset = self._content_len
        message.content.append(text)
        self._content_len += len(text)
        out.append(self._chunk({"content": text}))
        return out

    def _on_summary_delta(self, event: Event) -> list[Chunk]:
        return self._send_reasoning(event, "summary", event.get("summary_index"))

    def _on_reasoning_text_delta(self, event: Event) -> list[Chunk]:
        return self._send_reasoning(event, "text", event.get("content_index"))

    def _send_reasoning(self, event: Event, kind: str, index: Any) -> list[Chunk]:
        """Reasoning text; each new part (summary part, reasoning item) after the first is set
        apart so the parts don't run together."""
        delta = event.get("delta")
        if not delta or not isinstance(delta, str):
            return []
        out: list[Chunk] = []
        part = (event.get("item_id"), kind, index)
        try:
            new_part = part not in self._reasoning_parts
        except TypeError:  # malformed ids: treat as the current part
            new_part = False
        if new_part:
            if self._reasoning_parts:
                out.append(self._chunk({"reasoning_content": SEPARATOR}))
            self._reasoning_parts.add(part)
        out.append(self._chunk({"reasoning_content": delta}))
        return out

    def _on_annotation(self, event: Event) -> list[Chunk]:
        message = self._message(event.get("item_id"), event.get("output_index"))
        self._collect_annotation(message, event.get("annotation"))
        return []

    def _collect_annotation(self, message: _Message, annotation: Any) -> None:
        """Keep url citations in chat shape, indices shifted to the joined content, once each."""
        if not isinstance(annotation, Mapping) or annotation.get("type") != "url_citation":
            return
        url = annotation.get("url")
        if not isinstance(url, str):
            return
        title = annotation.get("title")
        title = title if isinstance(title, str) else ""
        offset = message.offset
        if offset is None:  # cited before any of its text: it will start after a separator
            offset = self._content_len + (len(SEPARATOR) if self._content_len else 0)
        start = _count(annotation.get("start_index")) + offset
        end = _count(annotation.get("end_index")) + offset
        key = (url, title, start, end)
        if key in self._annotation_keys:
            return
        self._annotation_keys.add(key)
        self.annotations.append(
            {
                "type": "url_citation",
                "url_citation": {
                    "url": url,
                    "title": title,
                    "start_index": start,
                    "end_index": end,
                },
            }
        )

    # -- function calls --------------------------------------------------------------------

    def _announce_call(self, item: Mapping[str, Any], output_index: Any, arguments: str) -> Chunk:
        """The first delta of a call: chat index (order of appearance), id, name, arguments."""
        call = _Call(self._call_count)
        self._call_count += 1
        self._calls.add(item.get("id"), output_index, call)
        if arguments:
            call.arguments.append(arguments)
        call_id = item.get("call_id")
        name = item.get("name")
        entry = {
            "index": call.index,
            "id": call_id if isinstance(call_id, str) else _text_or_empty(item.get("id")),
            "type": "function",
            "function": {"name": _text_or_empty(name), "arguments": arguments},
        }
        return self._chunk({"tool_calls": [entry]})

    def _on_arguments_delta(self, event: Event) -> list[Chunk]:
        delta = event.get("delta")
        if not delta or not isinstance(delta, str):
            return []
        call = self._calls.find(event.get("item_id"), event.get("output_index"))
        if call is None:  # never announced: its output_item.done will bring the whole call
            return []
        call.arguments.append(delta)
        return [
            self._chunk({"tool_calls": [{"index": call.index, "function": {"arguments": delta}}]})
        ]

    # -- output items ----------------------------------------------------------------------

    def _on_item_added(self, event: Event) -> list[Chunk]:
        item = event.get("item")
        if not isinstance(item, Mapping):
            return []
        try:
            handler = self._ITEM_ADDED.get(item.get("type"))
        except TypeError:
            return []
        return handler(self, item, event.get("output_index")) if handler else []

    def _message_added(self, item: Mapping[str, Any], output_index: Any) -> list[Chunk]:
        self._message(item.get("id"), output_index)
        return []

    def _call_added(self, item: Mapping[str, Any], output_index: Any) -> list[Chunk]:
        if self._calls.find(item.get("id"), output_index) is not None:
            return []  # announced twice: keep the first
        arguments = item.get("arguments")
        return [self._announce_call(item, output_index, _text_or_empty(arguments))]

    def _on_item_done(self, event: Event) -> list[Chunk]:
        item = event.get("item")
        if not isinstance(item, Mapping):
            return []
        return self._item_done(item, event.get("output_index"))

    def _item_done(self, item: Mapping[str, Any], output_index: Any) -> list[Chunk]:
        """Dispatch a final item by type; types without a handler (reasoning, web search)
        add nothing."""
        try:
            handler = self._ITEM_DONE.get(item.get("type"))
        except TypeError:
            return []
        return handler(self, item, output_index) if handler else []

    def _message_done(self, item: Mapping[str, Any], output_index: Any) -> list[Chunk]:
        """Top up text or refusal the deltas didn't carry; collect the citations."""
        message = self._message(item.get("id"), output_index)
        texts: list[str] = []
        refusals: list[str] = []
        annotations: list[Any] = []
        content = item.get("content")
        for part in content if isinstance(content, list) else ():
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == "output_text":
                _append_str(texts, part.get("text"))
                found = part.get("annotations")
                if isinstance(found, list):
                    annotations += found
            elif kind == "refusal":
                _append_str(refusals, part.get("refusal"))
        out: list[Chunk] = []
        missing = _missing_tail(message.content, "".join(texts))
        if missing:
            out += self._send_text(message, missing)
        missing = _missing_tail(message.refusal, "".join(refusals))
        if missing:
            message.refusal.append(missing)
            out.append(self._chunk({"refusal": missing}))
        for annotation in annotations:
            self._collect_annotation(message, annotation)
        return out

    def _call_done(self, item: Mapping[str, Any], output_index: Any) -> list[Chunk]:
        """Send the arguments the deltas didn't carry, or the whole call if never announced."""
        arguments = _text_or_empty(item.get("arguments"))
        call = self._calls.find(item.get("id"), output_index)
        if call is None:
            return [self._announce_call(item, output_index, arguments)]
        missing = _missing_tail(call.arguments, arguments)
        if not missing:
            return []
        call.arguments.append(missing)
        return [
            self._chunk({"tool_calls": [{"index": call.index, "function": {"arguments": missing}}]})
        ]

    def _image_done(self, item: Mapping[str, Any], output_index: Any) -> list[Chunk]:
        """A finished image: markdown as content of its own (set apart from the text around
        it), and/or an ``images`` entry, with its metadata. Partial images never get here."""
        key = item.get("id") if isinstance(item.get("id"), str) else output_index
        if self._image_renderer is None or key in self._images_done:
            return []
        rendered = self._image_renderer(item)
        if rendered is None:
            return []
        self._images_done.add(key)
        extra: dict[str, Any] = {"image_metadata": [rendered.metadata]}
        if rendered.entry is not None:
            extra["images"] = [rendered.entry]
        if not rendered.markdown:
            return [self._chunk(extra)]
        out = self._send_text(self._message(key, output_index), rendered.markdown)
        out[-1]["choices"][0]["delta"].update(extra)
        return out

    def _message(self, item_id: Any, output_index: Any) -> _Message:
        message = self._messages.find(item_id, output_index)
        if message is None:
            message = _Message()
            self._messages.add(item_id, output_index, message)
        return message

    # -- terminal events -------------------------------------------------------------------

    def _on_completed(self, event: Event) -> list[Chunk]:
        response = _mapping(event.get("response"))
        out = self._fallback_output(response)
        out += self._finish("tool_calls" if self._call_count else "stop", response)
        return out

    def _on_incomplete(self, event: Event) -> list[Chunk]:
        response = _mapping(event.get("response"))
        reason = _mapping(response.get("incomplete_details")).get("reason")
        out = self._fallback_output(response)
        finish = _INCOMPLETE_FINISH.get(reason, "length") if isinstance(reason, str) else "length"
        out += self._finish(finish, response)
        return out

    def _on_failed(self, event: Event) -> list[Chunk]:
        raise errors.from_stream_event(event)

    def _fallback_output(self, response: Mapping[str, Any]) -> list[Chunk]:
        """Some upstreams put the answer only in the terminal ``response.output``; use it only
        when nothing was streamed (the ChatGPT backend sends it empty)."""
        output = response.get("output")
        if self._role_sent or not isinstance(output, list):
            return []
        out: list[Chunk] = []
        for index, item in enumerate(output):
            if isinstance(item, Mapping):
                out += self._item_done(item, index)
        return out

    def _finish(self, reason: str, response: Mapping[str, Any]) -> list[Chunk]:
        """The one finish chunk, preceded by a role chunk if nothing came before, then usage."""
        self.done = True
        self.finish_reason = reason
        self.usage = chat_usage(response.get("usage")) or chat_usage({})
        out: list[Chunk] = []
        if not self._role_sent:
            out.append(self._chunk({"content": ""}))
        out.append(self._chunk({}, reason))
        if self._include_usage:
            out.append(self._usage_chunk())
        return out

    _EVENTS: ClassVar[dict[str, Handler]] = {
        "response.output_text.delta": _on_text_delta,
        "response.refusal.delta": _on_refusal_delta,
        "response.reasoning_summary_text.delta": _on_summary_delta,
        "response.reasoning_text.delta": _on_reasoning_text_delta,
        "response.output_text.annotation.added": _on_annotation,
        "response.function_call_arguments.delta": _on_arguments_delta,
        "response.output_item.added": _on_item_added,
        "response.output_item.done": _on_item_done,
        "response.completed": _on_completed,
        "response.incomplete": _on_incomplete,
        "response.failed": _on_failed,
        "error": _on_failed,
    }
    _ITEM_ADDED: ClassVar[dict[str, ItemHandler]] = {
        "message": _message_added,
        "function_call": _call_added,
    }
    _ITEM_DONE: ClassVar[dict[str, ItemHandler]] = {
        "message": _message_done,
        "function_call": _call_done,
        "image_generation_call": _image_done,
    }


class _Message:
    """What was sent for one message item: the delta strings themselves, not copies."""

    __slots__ = ("content", "offset", "refusal")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.offset: int | None = None  # where its text starts in the joined content


class _Call:
    """One function call: its chat index and the argument strings sent so far."""

    __slots__ = ("arguments", "index")

    def __init__(self, index: int) -> None:
        self.index = index
        self.arguments: list[str] = []


class _Items(Generic[T]):
    """Per-item state found by ``item_id``, or by ``output_index`` when an event lacks the id."""

    __slots__ = ("_by_id", "_by_index")

    def __init__(self) -> None:
        self._by_id: dict[str | None, T] = {}
        self._by_index: dict[int, T] = {}

    def find(self, item_id: Any, output_index: Any) -> T | None:
        if isinstance(item_id, str):
            found = self._by_id.get(item_id)
            if found is not None:
                return found
        if isinstance(output_index, int):
            return self._by_index.get(output_index)
        return None if isinstance(item_id, str) else self._by_id.get(None)

    def add(self, item_id: Any, output_index: Any, state: T) -> None:
        has_id = isinstance(item_id, str)
        has_index = isinstance(output_index, int)
        if has_id:
            self._by_id[item_id] = state
        if has_index:
            self._by_index[output_index] = state
        if not has_id and not has_index:
            self._by_id[None] = state


def _missing_tail(sent: list[str], final: str) -> str:
    """The end of ``final`` not sent yet, when what was sent is a prefix of it; else ``""``.

    Walks the sent pieces with ``startswith`` instead of joining them: no copy of a big text.
    """
    if not sent:
        return final
    pos = sum(map(len, sent))
    if pos >= len(final):
        return ""
    pos = 0
    for piece in sent:
        if not final.startswith(piece, pos):
            return ""
        pos += len(piece)
    return final[pos:]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _append_str(parts: list[str], value: Any) -> None:
    if isinstance(value, str):
        parts.append(value)


def _text_or_empty(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _is_number(value: Any) -> bool:
    """A finite int or float (bools and NaN are not counts)."""
    if isinstance(value, int):
        return not isinstance(value, bool)
    return isinstance(value, float) and math.isfinite(value)


def _count(value: Any) -> int:
    """A token count or index; anything that is not a number counts as 0."""
    return int(value) if _is_number(value) else 0


def _detail(details: Any, key: str) -> int:
    return _count(details.get(key)) if isinstance(details, Mapping) else 0
