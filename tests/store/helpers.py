"""Builders for stored turns: Response objects and items shaped as in protocol.md §1.5/§2.2."""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from typing import Any

NOW = 1_790_000_000.0


def user(text: str, id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }
    if id:
        item["id"] = id
    return item


def assistant(text: str, id: str) -> dict[str, Any]:
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def response(
    id: str,
    previous: str | None = None,
    *,
    created_at: float = NOW,
    output: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": "completed",
        "model": "gpt-5.2-codex",
        "previous_response_id": previous,
        "output": output if output is not None else [assistant(f"answer {id}", f"msg_{id}")],
        "error": None,
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
    }


def png(size: int, seed: int = 0) -> bytes:
    """A real PNG of about ``size`` bytes (random-looking, so it does not compress away)."""
    noise = b"".join(
        hashlib.sha256(f"{seed}-{n}".encode()).digest() for n in range(size // 32 + 1)
    )[:size]

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"tEXt", b"noise\x00" + noise)
        + chunk(b"IEND", b"")
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def image_call(id: str, data: bytes) -> dict[str, Any]:
    return {
        "id": id,
        "type": "image_generation_call",
        "status": "completed",
        "result": b64(data),
        "output_format": "png",
        "revised_prompt": "a fox",
    }


def user_image(text: str, data: bytes) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": text},
            {"type": "input_image", "image_url": "data:image/png;base64," + b64(data)},
        ],
    }
