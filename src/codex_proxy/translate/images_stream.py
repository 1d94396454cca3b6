"""The Images API's streaming events, from the image tool's Responses events.

A streaming ``/v1/images/generations`` (or ``/edits``) client reads ``image_generation.
partial_image`` events (``image_edit.partial_image`` for edits) and one ``…completed`` event per
image, as the public API sends them (the SDK's ``types/image_gen_*_event.py`` and
``image_edit_*_event.py``). The upstream's ``response.image_generation_call.partial_image``
events carry ``partial_image_b64`` and ``partial_image_index``; the finished image is the
``result`` of the ``image_generation_call`` item.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from codex_proxy.translate.images_api import ImageRequest, definite, output_format_of, public_usage

PARTIAL_EVENT = "response.image_generation_call.partial_image"


class ImageEventTranslator:
    """One image's upstream events -> the public API's stream events (pure)."""

    def __init__(self, job: ImageRequest, created_at: int) -> None:
        self.job = job
        self.created_at = created_at
        self.prefix = "image_edit" if job.edit else "image_generation"

    def feed(self, event: Mapping[str, Any]) -> dict[str, Any] | None:
        """The partial image event for an upstream partial image, else None."""
        if event.get("type") != PARTIAL_EVENT:
            return None
        b64 = event.get("partial_image_b64")
        if not isinstance(b64, str) or not b64:
            return None
        return self._partial(event, b64)

    def partial_head(self) -> bytes:
        """The JSON of a partial image event up to its ``b64_json`` value (its first bytes:
        the type and the key), for a relay that passes the base64 on as it arrives. Nothing
        of the upstream event is needed for it, which is why ``b64_json`` comes second."""
        return orjson.dumps({"type": f"{self.prefix}.partial_image", "b64_json": ""})[:-2]

    def partial_tail(self, event: Mapping[str, Any]) -> bytes:
        """The rest of that JSON once the upstream event (its image left out) is complete:
        from the quote that closes ``b64_json`` on. ``partial_head() + base64 +
        partial_tail(event)`` is the JSON :meth:`feed` gives for the event with its image."""
        whole = orjson.dumps(self._partial(event, "A"))
        return whole[len(self.partial_head()) + 1 :]

    def _partial(self, event: Mapping[str, Any], b64: str) -> dict[str, Any]:
        index = event.get("partial_image_index")
        return {
            "type": f"{self.prefix}.partial_image",
            "b64_json": b64,
            "partial_image_index": index if isinstance(index, int) else 0,
            **self._settings(event, final=False),
            "created_at": self.created_at,
        }

    def completed(self, item: Mapping[str, Any], usage: Any) -> dict[str, Any]:
        """The completed event of the finished ``image_generation_call`` item."""
        return {
            "type": f"{self.prefix}.completed",
            "b64_json": item["result"],
            **self._settings(item, final=True),
            "created_at": self.created_at,
            "usage": public_usage([usage]),
        }

    def _settings(self, source: Mapping[str, Any], *, final: bool) -> dict[str, Any]:
        """``size``, ``quality``, ``background``, ``output_format``: what the upstream says,
        else what was asked. A partial event describes the *request* (the SDK allows ``auto``
        there); the completed event describes the image, ``auto`` only when nothing else is
        known (the event type requires the fields)."""
        tool = self.job.tool
        out: dict[str, Any] = {}
        for key in ("size", "quality", "background"):
            value = definite(source.get(key), tool.get(key)) if final else None
            if value is None:
                reported = source.get(key)
                value = reported if isinstance(reported, str) else tool.get(key, "auto")
            out[key] = value
        out["output_format"] = (
            output_format_of(source.get("output_format")) or tool.get("output_format") or "png"
        )
        return out
