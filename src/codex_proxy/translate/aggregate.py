"""All events of one response -> one ``chat.completion`` (the non-streaming answer).

Built by folding the chunks of a :class:`ChatStreamTranslator`, so both chat modes share one
source of truth for the event logic. Strings are gathered in lists and joined once at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from codex_proxy.translate.stream import ChatStreamTranslator, Chunk

if TYPE_CHECKING:
    from codex_proxy.translate.images import ImageRenderer


class ChatCompletionBuilder:
    """Feed Responses events; after the upstream closed, ``result()`` is the chat completion.

    ``feed`` raises :class:`errors.OpenAIError` like the translator; ``result`` raises
    ``errors.stream_truncated()`` when no terminal event came.
    """

    def __init__(
        self,
        *,
        completion_id: str,
        created: int,
        model: str,
        image_renderer: ImageRenderer | None = None,
    ) -> None:
        self._id = completion_id
        self._created = created
        self._model = model
        self._translator = ChatStreamTranslator(
            completion_id=completion_id,
            created=created,
            model=model,
            include_usage=False,
            image_renderer=image_renderer,
        )
        self._content: list[str] = []
        self._refusal: list[str] = []
        self._reasoning: list[str] = []
        self._calls: list[_CallParts] = []
        self._images: list[dict[str, Any]] = []
        self._image_metadata: list[dict[str, Any]] = []
        self._finish_reason: str | None = None

    def feed(self, event: Mapping[str, Any]) -> None:
        """Fold the chunks this event yields."""
        for chunk in self._translator.feed(event):
            self._fold(chunk)

    def result(self) -> dict[str, Any]:
        """The ``chat.completion`` dict; raises if the stream ended without a terminal event."""
        for chunk in self._translator.finish():
            self._fold(chunk)
        return {
            "id": self._id,
            "object": "chat.completion",
            "created": self._created,
            "model": self._model,
            "choices": [
                {
                    "index": 0,
                    "message": self._message(),
                    "logprobs": None,
                    "finish_reason": self._finish_reason,
                }
            ],
            "usage": self._translator.usage,
        }

    def _fold(self, chunk: Chunk) -> None:
        """Merge one chunk the way SDKs accumulate deltas: strings concatenate per key."""
        for choice in chunk["choices"]:
            for key, value in choice["delta"].items():
                if key == "content":
                    self._content.append(value)
                elif key == "reasoning_content":
                    self._reasoning.append(value)
                elif key == "refusal":
                    self._refusal.append(value)
                elif key == "tool_calls":
                    self._fold_calls(value)
                elif key == "images":
                    self._images += value
                elif key == "image_metadata":
                    self._image_metadata += value
            if choice["finish_reason"] is not None:
                self._finish_reason = choice["finish_reason"]

    def _fold_calls(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            index = entry["index"]
            function = entry.get("function") or {}
            if index == len(self._calls):
                self._calls.append(_CallParts(entry.get("id") or "", function.get("name") or ""))
            self._calls[index].arguments.append(function.get("arguments") or "")

    def _message(self) -> dict[str, Any]:
        text = "".join(self._content)
        refusal = "".join(self._refusal)
        content: str | None = text
        if not text and (self._calls or refusal):
            content = None
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            "refusal": refusal or None,
            "annotations": list(self._translator.annotations),
        }
        if self._calls:
            message["tool_calls"] = [call.as_chat() for call in self._calls]
        if self._reasoning:
            message["reasoning_content"] = "".join(self._reasoning)
        if self._images:
            message["images"] = self._images
        if self._image_metadata:
            message["image_metadata"] = self._image_metadata
        return message


class _CallParts:
    """One tool call being folded: id, name and its argument pieces."""

    __slots__ = ("arguments", "id", "name")

    def __init__(self, call_id: str, name: str) -> None:
        self.id = call_id
        self.name = name
        self.arguments: list[str] = []

    def as_chat(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": "".join(self.arguments)},
        }
