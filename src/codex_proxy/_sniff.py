"""What an image file really is, from its first bytes: a file name or a content type is a
claim, the magic bytes are a fact. Standard library only, so the image client can use it
without loading the gateway."""

from __future__ import annotations


def sniff_format(data: bytes) -> str | None:
    """png, jpeg or webp from the magic bytes; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None
