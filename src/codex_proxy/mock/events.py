"""Builders for Responses API stream events, shaped exactly as the real upstream sends them.

Pure: a :class:`ResponseScript` hands out event dicts with monotonic ``sequence_number`` and
increasing ``output_index``, in the orderings of ``shared/protocol.md`` section 1.4. The fake
upstream serves them; translator tests feed them straight to the state machines.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

Event = dict[str, Any]


def usage(
    input_tokens: int = 20, output_tokens: int = 12, cached: int = 0, reasoning: int = 0
) -> dict[str, Any]:
    """A Responses ``usage`` object."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output_tokens,
    }


class ResponseScript:
    """One upstream response, built item by item; each method returns the events it adds.

    ``events`` accumulates everything built so far, so a script reads top to bottom:

        s = ResponseScript(model="gpt-5")
        s.start(); s.message(["Hel", "lo"]); s.completed()
        s.events  # the full stream
    """

    def __init__(
        self, response_id: str = "resp_1", model: str = "gpt-5", created_at: int = 1760000000
    ):
        self.response_id = response_id
        self.model = model
        self.created_at = created_at
        self.events: list[Event] = []
        self.output: list[dict[str, Any]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------

    def response(self, status: str, **extra: Any) -> dict[str, Any]:
        """A Response object as lifecycle events carry it."""
        body: dict[str, Any] = {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "model": self.model,
            "output": [],
            "usage": None,
            "error": None,
            "incomplete_details": None,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
        }
        body.update(extra)
        return body

    def start(self) -> list[Event]:
        """``response.created`` then ``response.in_progress``."""
        return self._add(
            {"type": "response.created", "response": self.response("in_progress")},
            {"type": "response.in_progress", "response": self.response("in_progress")},
        )

    def completed(
        self, usage_: dict[str, Any] | None = None, *, with_output: bool = False
    ) -> list[Event]:
        """``response.completed``; like the ChatGPT backend, ``output`` is empty unless asked."""
        output = list(self.output) if with_output else []
        return self._add(
            {
                "type": "response.completed",
                "response": self.response(
                    "completed", output=output, usage=usage() if usage_ is None else usage_
                ),
            }
        )

    def incomplete(
        self, reason: str = "max_output_tokens", usage_: dict[str, Any] | None = None
    ) -> list[Event]:
        """``response.incomplete`` with ``incomplete_details.reason``."""
        return self._add(
            {
                "type": "response.incomplete",
                "response": self.response(
                    "incomplete",
                    incomplete_details={"reason": reason},
                    usage=usage() if usage_ is None else usage_,
                ),
            }
        )

    def failed(self, code: str = "server_error", message: str = "The model failed.") -> list[Event]:
        """``response.failed`` with ``response.error``."""
        return self._add(
            {
                "type": "response.failed",
                "response": self.response("failed", error={"code": code, "message": message}),
            }
        )

    def error(
        self,
        code: str = "server_error",
        message: str = "Something went wrong",
        *,
        nested: bool = True,
    ) -> list[Event]:
        """An ``error`` event: the production shape (nested ``error``) or the documented flat."""
        if nested:
            return self._add(
                {
                    "type": "error",
                    "error": {"type": code, "code": code, "message": message, "param": None},
                }
            )
        return self._add({"type": "error", "code": code, "message": message, "param": None})

    # -- output items ----------------------------------------------------------------------

    def message(
        self,
        chunks: Sequence[str],
        *,
        annotations: Sequence[dict[str, Any]] = (),
        refusal: Sequence[str] | None = None,
        phase: str | None = None,
    ) -> list[Event]:
        """An assistant message streamed as ``chunks``; ``refusal`` chunks make a refusal."""
        item_id = f"msg_{next(self._ids)}"
        index = len(self.output)
        added: dict[str, Any] = {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        if phase:
            added["phase"] = phase
        events = [{"type": "response.output_item.added", "output_index": index, "item": added}]
        loc = {"item_id": item_id, "output_index": index, "content_index": 0}
        if refusal is not None:
            text = "".join(refusal)
            part: dict[str, Any] = {"type": "refusal", "refusal": text}
            events.append(
                {
                    "type": "response.content_part.added",
                    **loc,
                    "part": {"type": "refusal", "refusal": ""},
                }
            )
            events += [{"type": "response.refusal.delta", **loc, "delta": c} for c in refusal]
            events.append({"type": "response.refusal.done", **loc, "refusal": text})
        else:
            text = "".join(chunks)
            part = {"type": "output_text", "text": text, "annotations": list(annotations)}
            events.append(
                {
                    "type": "response.content_part.added",
                    **loc,
                    "part": {"type": "output_text", "text": "", "annotations": []},
                }
            )
            events += [
                {"type": "response.output_text.delta", **loc, "delta": c, "logprobs": []}
                for c in chunks
            ]
            events += [
                {
                    "type": "response.output_text.annotation.added",
                    **loc,
                    "annotation_index": i,
                    "annotation": a,
                }
                for i, a in enumerate(annotations)
            ]
            events.append(
                {"type": "response.output_text.done", **loc, "text": text, "logprobs": []}
            )
        events.append({"type": "response.content_part.done", **loc, "part": part})
        done = {**added, "status": "completed", "content": [part]}
        events.append({"type": "response.output_item.done", "output_index": index, "item": done})
        self.output.append(done)
        return self._add(*events)

    def function_call(
        self, name: str, argument_chunks: Sequence[str], *, call_id: str | None = None
    ) -> list[Event]:
        """A function call whose JSON arguments arrive in ``argument_chunks``."""
        n = next(self._ids)
        item_id = f"fc_{n}"
        call_id = call_id or f"call_{n}"
        index = len(self.output)
        arguments = "".join(argument_chunks)
        added = {
            "id": item_id,
            "type": "function_call",
            "call_id": call_id,
            "name": name,
            "arguments": "",
            "status": "in_progress",
        }
        loc = {"item_id": item_id, "output_index": index}
        done = {**added, "arguments": arguments, "status": "completed"}
        events: list[Event] = [
            {"type": "response.output_item.added", "output_index": index, "item": added}
        ]
        events += [
            {"type": "response.function_call_arguments.delta", **loc, "delta": c}
            for c in argument_chunks
        ]
        events.append(
            {
                "type": "response.function_call_arguments.done",
                **loc,
                "name": name,
                "arguments": arguments,
            }
        )
        events.append({"type": "response.output_item.done", "output_index": index, "item": done})
        self.output.append(done)
        return self._add(*events)

    def reasoning(
        self,
        summaries: Sequence[Sequence[str]] = (),
        *,
        raw: Sequence[str] = (),
        encrypted_content: str | None = "gAAAAencrypted",
    ) -> list[Event]:
        """A reasoning item: each entry of ``summaries`` is one summary part's delta chunks;
        ``raw`` chunks become ``reasoning_text`` deltas (models that expose raw reasoning)."""
        item_id = f"rs_{next(self._ids)}"
        index = len(self.output)
        added = {"id": item_id, "type": "reasoning", "summary": [], "status": "in_progress"}
        events: list[Event] = [
            {"type": "response.output_item.added", "output_index": index, "item": added}
        ]
        final_summary = []
        for s_index, chunks in enumerate(summaries):
            text = "".join(chunks)
            loc = {"item_id": item_id, "output_index": index, "summary_index": s_index}
            events.append(
                {
                    "type": "response.reasoning_summary_part.added",
                    **loc,
                    "part": {"type": "summary_text", "text": ""},
                }
            )
            events += [
                {"type": "response.reasoning_summary_text.delta", **loc, "delta": c} for c in chunks
            ]
            events.append({"type": "response.reasoning_summary_text.done", **loc, "text": text})
            events.append(
                {
                    "type": "response.reasoning_summary_part.done",
                    **loc,
                    "part": {"type": "summary_text", "text": text},
                }
            )
            final_summary.append({"type": "summary_text", "text": text})
        done: dict[str, Any] = {**added, "summary": final_summary, "status": "completed"}
        if raw:
            loc = {"item_id": item_id, "output_index": index, "content_index": 0}
            events += [{"type": "response.reasoning_text.delta", **loc, "delta": c} for c in raw]
            events.append({"type": "response.reasoning_text.done", **loc, "text": "".join(raw)})
            done["content"] = [{"type": "reasoning_text", "text": "".join(raw)}]
        if encrypted_content is not None:
            done["encrypted_content"] = encrypted_content
        events.append({"type": "response.output_item.done", "output_index": index, "item": done})
        self.output.append(done)
        return self._add(*events)

    def image(
        self,
        result_b64: str,
        *,
        partials: Sequence[str] = (),
        revised_prompt: str | None = "A generated image",
        output_format: str = "png",
        size: str = "1024x1024",
        quality: str = "high",
        background: str = "opaque",
    ) -> list[Event]:
        """An ``image_generation_call`` with optional partial images and the final ``result``."""
        item_id = f"ig_{next(self._ids)}"
        index = len(self.output)
        loc = {"item_id": item_id, "output_index": index}
        added = {
            "id": item_id,
            "type": "image_generation_call",
            "status": "in_progress",
            "result": None,
        }
        events: list[Event] = [
            {"type": "response.output_item.added", "output_index": index, "item": added},
            {"type": "response.image_generation_call.in_progress", **loc},
            {"type": "response.image_generation_call.generating", **loc},
        ]
        events += [
            {
                "type": "response.image_generation_call.partial_image",
                **loc,
                "partial_image_index": i,
                "partial_image_b64": p,
            }
            for i, p in enumerate(partials)
        ]
        events.append({"type": "response.image_generation_call.completed", **loc})
        done: dict[str, Any] = {
            "id": item_id,
            "type": "image_generation_call",
            "status": "completed",
            "result": result_b64,
            "background": background,
            "output_format": output_format,
            "quality": quality,
            "size": size,
        }
        if revised_prompt is not None:
            done["revised_prompt"] = revised_prompt
        events.append({"type": "response.output_item.done", "output_index": index, "item": done})
        self.output.append(done)
        return self._add(*events)

    def web_search(self, query: str = "weather paris") -> list[Event]:
        """A ``web_search_call`` item (the answer with citations follows as a message)."""
        item_id = f"ws_{next(self._ids)}"
        index = len(self.output)
        loc = {"item_id": item_id, "output_index": index}
        added = {"id": item_id, "type": "web_search_call", "status": "in_progress"}
        done = {**added, "status": "completed", "action": {"type": "search", "query": query}}
        self.output.append(done)
        return self._add(
            {"type": "response.output_item.added", "output_index": index, "item": added},
            {"type": "response.web_search_call.in_progress", **loc},
            {"type": "response.web_search_call.searching", **loc},
            {"type": "response.web_search_call.completed", **loc},
            {"type": "response.output_item.done", "output_index": index, "item": done},
        )

    def raw(self, *events: Event) -> list[Event]:
        """Any other event (unknown types, vendor events), numbered like the rest."""
        return self._add(*events)

    # -- internals -------------------------------------------------------------------------

    def _add(self, *events: Event) -> list[Event]:
        numbered = [{"type": e["type"], "sequence_number": next(self._seq), **e} for e in events]
        self.events += numbered
        return numbered


def text_response(
    text: str | Iterable[str], *, model: str = "gpt-5", usage_: dict[str, Any] | None = None
) -> list[Event]:
    """A complete plain-text answer; a string is streamed in word-sized chunks."""
    chunks = _word_chunks(text) if isinstance(text, str) else list(text)
    script = ResponseScript(model=model)
    script.start()
    script.message(chunks)
    script.completed(usage_)
    return script.events


def _word_chunks(text: str) -> list[str]:
    """Split text into chunks that keep their spaces, so they join back to ``text``."""
    if not text:
        return []
    chunks: list[str] = []
    start = 0
    for i, ch in enumerate(text):
        if ch == " " and i > start:
            chunks.append(text[start:i])
            start = i
    chunks.append(text[start:])
    return chunks
