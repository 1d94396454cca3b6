"""The request as the wire transport sends it: a head with only names and values h11 would
also send (so no header can smuggle in a second one), and a body framed as its headers declare.

The rules are h11's, so the wire transport refuses exactly what httpx's own transport refuses,
with the same exception (:class:`httpx.LocalProtocolError`), before a connection is opened.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
FIELD_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")  # h11's field-value
TARGET = re.compile(rb"[^\x00\s]+")
SMALL_BODY = 64 * 1024  # sent in the same write as the head


@dataclass(frozen=True)
class Outgoing:
    """One encoded request: the head, the body when it is already in memory (then it can be
    sent again), and how the body is framed."""

    head: bytes
    content: bytes | None
    length: int | None  # Content-Length, or None for chunked
    method: bytes


def encode_request(request: httpx.Request) -> Outgoing:
    """The head and framing of ``request``; LocalProtocolError for what h11 would not send."""
    method = request.method.encode("ascii")
    target = request.url.raw_path
    if not TOKEN.fullmatch(method):
        raise httpx.LocalProtocolError(f"Illegal method {method!r}")
    if not TARGET.fullmatch(target):
        raise httpx.LocalProtocolError(f"Illegal target characters in {target[:80]!r}")
    head = [method, b" ", target, b" HTTP/1.1\r\n"]
    lengths: list[bytes] = []
    codings: list[bytes] = []
    for name, value in request.headers.raw:
        if not TOKEN.fullmatch(name):
            raise httpx.LocalProtocolError(f"Illegal header name {name[:80]!r}")
        if not FIELD_VALUE.fullmatch(value):
            raise httpx.LocalProtocolError(f"Illegal header value {value[:80]!r}")
        lower = name.lower()
        if lower == b"content-length":
            lengths.append(value)
        elif lower == b"transfer-encoding":
            codings.append(value)
        head += (name, b": ", value, b"\r\n")
    head.append(b"\r\n")
    try:
        content: bytes | None = request.content
    except httpx.RequestNotRead:
        content = None  # a streamed body
    return Outgoing(b"".join(head), content, _length(lengths, codings), method)


def _length(lengths: list[bytes], codings: list[bytes]) -> int | None:
    """The declared body length, None for chunked; a request with neither has no body."""
    if codings:
        if lengths or len(codings) != 1 or codings[0].lower() != b"chunked":
            raise httpx.LocalProtocolError("Only Transfer-Encoding: chunked is supported")
        return None
    if not lengths:
        return 0
    if len(set(lengths)) != 1 or not lengths[0].isdigit():
        raise httpx.LocalProtocolError(f"bad Content-Length {lengths[0][:40]!r}")
    return int(lengths[0])


async def body_pieces(request: httpx.Request, outgoing: Outgoing) -> AsyncIterator[bytes]:
    """The body as it goes on the wire after the head: chunk-framed when chunked, else checked
    against its Content-Length (h11 refuses a body longer or shorter than declared)."""
    stream = _one(outgoing.content) if outgoing.content is not None else _stream(request.stream)
    sent = 0
    async for piece in stream:
        if not piece:
            continue
        sent += len(piece)
        if outgoing.length is None:
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
        elif sent > outgoing.length:
            raise httpx.LocalProtocolError("Too much data for declared Content-Length")
        else:
            yield piece
    if outgoing.length is None:
        yield b"0\r\n\r\n"
    elif sent < outgoing.length:
        raise httpx.LocalProtocolError("Too little data for declared Content-Length")


async def _one(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def _stream(stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> AsyncIterator[bytes]:
    if not isinstance(stream, httpx.AsyncByteStream):
        raise RuntimeError("Attempted to send a sync request body with an async transport")
    async for piece in stream:
        yield piece
