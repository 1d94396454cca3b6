"""Load generator, run as its own process: raw asyncio HTTP/1.1 over keep-alive connections.

Each request is timed to its first content byte (the first chat chunk with non-empty
``content``, or the first ``response.output_text.delta`` talking to the upstream directly) and to
the end of the body. For a streamed image (kinds ``images``, the Images API's events, and
``responses_images``, the upstream's) "first content" is the whole first partial image event:
the moment a client could show the preview. Prints one JSON object with the samples.

    python -m bench.load --url http://127.0.0.1:8000/v1/chat/completions --body '{...}' \
        --concurrency 64 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

CONTENT = {
    "chat": re.compile(rb'"content":\s?"[^"]'),
    "responses": re.compile(rb"output_text\.delta"),
    "images": re.compile(rb"event: image_generation\.partial_image\n"),
    "responses_images": re.compile(rb"event: response\.image_generation_call\.partial_image\n"),
}
END = {
    "chat": b"[DONE]",
    "responses": b"response.completed",
    "images": b"event: image_generation.completed",
    "responses_images": b"response.completed",
}
WHOLE_EVENT = frozenset({"images", "responses_images"})  # first content = the event's end
STREAM_ERROR = re.compile(rb'data:\s?\{"error"')
ERROR_MARK = b'{"error"'  # searched for first; the regex only confirms where it is found
TAIL = 64
SCAN_WHOLE = 256 * 1024
SCAN_EDGE = 8192


@dataclass
class Results:
    """Samples in seconds; errors by kind."""

    ttfb: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    body_bytes: list[int] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    started: int = 0
    elapsed: float = 0.0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class Connection:
    """One keep-alive connection; reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes, kind: str) -> tuple[float, float, int]:
        """Send one request; returns (ttfb, total, body bytes). Raises on any failure."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, limit=1 << 20
            )
        reader, writer = self.reader, self.writer
        assert reader is not None
        start = time.perf_counter()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        lowered = head.lower()
        chunked = b"transfer-encoding: chunked" in lowered
        match = re.search(rb"content-length:\s*(\d+)", lowered)
        keep = b"connection: close" not in lowered and (chunked or match is not None)
        content, end, ttfb, ended, tail, size = CONTENT[kind], END[kind], 0.0, False, b"", 0
        first = _FirstEvent(content) if kind in WHOLE_EVENT else None
        async for piece in _body(reader, chunked, int(match.group(1)) if match else None):
            size += len(piece)
            if not ttfb and (
                first.feed(tail, piece) if first else content.search(_window(tail, piece))
            ):
                ttfb = time.perf_counter() - start
            if _holds(tail, piece, ERROR_MARK) and STREAM_ERROR.search(tail + piece):
                raise StreamError("error event in stream")
            ended = ended or _holds(tail, piece, end)
            tail = (tail + piece[-TAIL:])[-TAIL:]
        total = time.perf_counter() - start
        if not keep:
            await self.close()
        if status != 200:
            raise StreamError(f"http {status}")
        if not ended:
            raise StreamError("stream ended without its terminal event")
        if not ttfb:
            raise StreamError("no content")
        return ttfb, total, size

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def _holds(tail: bytes, piece: bytes, needle: bytes) -> bool:
    """Whether ``needle`` is in the piece or across its seam with the previous one. A substring
    search, not a regex, and no copy of the piece: per byte it costs the same however the
    server frames its body (a 20 MB image in one chunk or in 256 KB ones)."""
    return needle in piece or needle in tail + piece[: len(needle) - 1]


def _window(tail: bytes, piece: bytes) -> bytes:
    """What to search in: the piece with the end of the previous one; a huge piece (an image)
    only around its ends, where the small events are."""
    if len(piece) <= SCAN_WHOLE:
        return tail + piece
    return tail + piece[:SCAN_EDGE] + b"\n" + piece[-SCAN_EDGE:]


class _FirstEvent:
    """Finds the end (the blank line) of the first SSE event whose head matches ``marker``,
    searching every byte: an image event is megabytes long and ends mid-piece."""

    def __init__(self, marker: re.Pattern[bytes]) -> None:
        self.marker = marker
        self.inside = False

    def feed(self, tail: bytes, piece: bytes) -> bool:
        if not self.inside:
            hay = tail + piece
            found = self.marker.search(hay)
            if found is None:
                return False
            self.inside = True
            return hay.find(b"\n\n", found.end()) >= 0
        # the event's own head ends in one newline, so a blank line split over pieces is its end
        return piece.find(b"\n\n") >= 0 or (tail.endswith(b"\n") and piece.startswith(b"\n"))


class StreamError(Exception):
    """The answer was wrong (status, error event, truncated)."""


async def _body(
    reader: asyncio.StreamReader, chunked: bool, length: int | None
) -> AsyncIterator[bytes]:
    """The body's pieces as they arrive."""
    if chunked:
        async for piece in _chunks(reader):
            yield piece
    elif length is not None:
        left = length
        while left:
            piece = await reader.read(min(left, 1 << 20))
            if not piece:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(piece)
            yield piece
    else:
        while piece := await reader.read(1 << 20):
            yield piece


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """A chunked body's data, framing parsed here from whole reads: every ``read`` empties the
    reader's buffer, however the server sized its chunks. (Reading each chunk's size line and
    data from the reader left the rest of a read in its buffer, and appending to that buffer
    then cost the client up to 6x more per byte on a stream of 256 KB chunks than on one
    chunk.)"""
    data, at = b"", 0

    async def more() -> None:
        nonlocal data, at
        read = await reader.read(1 << 20)
        if not read:
            raise asyncio.IncompleteReadError(data[at:], None)
        data, at = (data[at:] + read if at < len(data) else read), 0

    while True:
        while (end := data.find(b"\r\n", at)) < 0:
            await more()
        size = int(data[at:end].split(b";")[0], 16)
        at = end + 2
        if size == 0:
            while data.find(b"\r\n", at) < 0:  # the (empty) trailer
                await more()
            return
        while size:
            if at >= len(data):
                await more()
            take = min(size, len(data) - at)
            yield data[at : at + take]  # the whole read, uncopied, when a chunk spans it
            at += take
            size -= take
        while len(data) - at < 2:
            await more()
        at += 2


def build_request(url: str, body: bytes, token: str) -> tuple[str, int, bytes]:
    """Host, port and the raw request bytes, built once."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return host, port, head.encode() + body


async def run(args: argparse.Namespace) -> Results:
    """``concurrency`` workers; each stops at ``count`` requests in all or after ``duration``."""
    host, port, raw = build_request(args.url, args.body.encode(), args.token)
    results = Results()
    deadline = time.perf_counter() + args.duration if args.duration else float("inf")
    t0 = time.perf_counter()

    async def worker() -> None:
        conn = Connection(host, port)
        try:
            while results.started < args.count and time.perf_counter() < deadline:
                results.started += 1
                try:
                    ttfb, total, size = await asyncio.wait_for(
                        conn.request(raw, args.kind), args.timeout
                    )
                except StreamError as exc:
                    results.error(str(exc))
                    await conn.close()
                    continue
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                    results.error(type(exc).__name__)
                    await conn.close()
                    continue
                results.ttfb.append(ttfb)
                results.total.append(total)
                results.body_bytes.append(size)
                results.elapsed = time.perf_counter() - t0
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    if not results.elapsed:
        results.elapsed = time.perf_counter() - t0
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True, help="JSON request body")
    parser.add_argument("--kind", choices=sorted(CONTENT), default="chat")
    parser.add_argument("--token", default="bench")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until count")
    parser.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    sys.stdout.buffer.write(orjson.dumps(results.__dict__))


if __name__ == "__main__":
    main()
