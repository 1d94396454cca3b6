"""A fast fake Responses upstream for benchmarks: raw asyncio HTTP/1.1, pre-encoded replies.

Every ``POST .../responses`` gets the current script, encoded once when it is set, so serving a
request costs one socket write. ``POST /_bench/script`` sets the script (deltas, tool calls, one
image of S MB, or a held stream spread over ``hold_s`` seconds); ``GET /_bench/stats`` counts
requests and tells when the last ``/responses`` request arrived and how large its body was.

    python -m bench.fake --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

import orjson

from codex_proxy.mock.events import ResponseScript, usage

MAX_HEAD = 64 * 1024
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"x-request-id: req_bench\r\ntransfer-encoding: chunked\r\n\r\n"
)
MODELS = {"object": "list", "data": [{"id": "bench", "object": "model"}], "models": []}


@dataclass
class Script:
    """What every ``/responses`` request gets until the next ``/_bench/script``."""

    deltas: int = 10
    tool_calls: int = 0
    image_mb: float = 0.0
    partials: int = 0  # partial images before the image, each as big (full-size previews)
    hold_s: float = 0.0


def encode_event(event: dict[str, Any]) -> bytes:
    """One SSE message with ``event:`` and ``data:`` lines, as the real upstream sends it."""
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def build_events(script: Script) -> list[dict[str, Any]]:
    """The scripted event sequence: text deltas, then tool calls, then an image."""
    rs = ResponseScript(model="bench")
    rs.start()
    rs.message([f"tok{i} " for i in range(script.deltas)])
    for n in range(script.tool_calls):
        args = orjson.dumps({"city": "Paris", "n": n}).decode()
        rs.function_call(f"tool_{n}", [args[i : i + 8] for i in range(0, len(args), 8)])
    if script.image_mb > 0:
        size = int(script.image_mb * 1024 * 1024)
        b64 = base64.b64encode(os.urandom(size * 3 // 4 + 3)).decode()[:size]
        b64 = b64[: len(b64) - len(b64) % 4]
        rs.image(b64, partials=[b64] * script.partials, revised_prompt="A benchmark image")
    rs.completed(usage(input_tokens=10, output_tokens=script.deltas))
    return rs.events


SENDFILE_OVER = 1024 * 1024


def _in_memory_file(data: bytes) -> BinaryIO:
    """``data`` as an in-memory file, so a large reply goes out with ``sendfile``: the kernel
    moves it, and the fake's CPU stays out of the 2 cores the gateway and the load generator
    share, as an upstream on another machine would. (One ``write`` of an 80 MB reply copies it
    into the transport's buffer first: tens of ms of CPU on every request.)"""
    file = os.fdopen(os.memfd_create("bench-reply"), "w+b")
    file.write(data)
    file.flush()
    return file


class Encoded:
    """A script as wire bytes: all at once, or split around the deltas for a held stream."""

    def __init__(self, script: Script) -> None:
        self.script = script
        events = [encode_event(e) for e in build_events(script)]
        kinds = [e.split(b"\n", 1)[0] for e in events]
        delta_at = [i for i, k in enumerate(kinds) if k == b"event: response.output_text.delta"]
        self.whole = SSE_HEAD + chunk(b"".join(events)) + b"0\r\n\r\n"
        first = delta_at[0] if delta_at else len(events) - 1
        last = delta_at[-1] if delta_at else len(events) - 1
        self.head = SSE_HEAD + chunk(b"".join(events[: first + 1]))
        self.middle = [chunk(e) for e in events[first + 1 : last + 1]]
        self.tail = chunk(b"".join(events[last + 1 :])) + b"0\r\n\r\n"
        self.file = _in_memory_file(self.whole) if len(self.whole) > SENDFILE_OVER else None


class FakeServer:
    """The server state: the current encoded script and a few counters."""

    def __init__(self) -> None:
        self.encoded = Encoded(Script())
        self.requests = 0
        self.open_streams = 0
        self.last_request_at = 0.0
        self.last_request_bytes = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve requests on one keep-alive connection until the client closes it."""
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    body = await _read_chunked(reader)
                await self.route(method, path.split("?", 1)[0], body, writer)
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def route(
        self, method: str, path: str, body: bytes, writer: asyncio.StreamWriter
    ) -> None:
        if method == "POST" and path.endswith("/responses"):
            self.requests += 1
            self.last_request_at = time.time()
            self.last_request_bytes = len(body)
            await self.stream(writer)
        elif path == "/_bench/script" and method == "POST":
            script = Script(**orjson.loads(body or b"{}"))
            self.encoded = await asyncio.to_thread(Encoded, script)
            await _json(writer, asdict(script))
        elif path == "/_bench/stats":
            stats = {
                "requests": self.requests,
                "open_streams": self.open_streams,
                "last_request_at": self.last_request_at,
                "last_request_bytes": self.last_request_bytes,
            }
            await _json(writer, stats)
        elif path.endswith("/models"):
            await _json(writer, MODELS)
        elif path in ("/healthz", "/health"):
            await _json(writer, {"status": "ok"})
        else:
            await _json(writer, {"error": {"message": f"no route {path}"}}, 404)

    async def stream(self, writer: asyncio.StreamWriter) -> None:
        """The scripted SSE reply; a held stream spreads its deltas over ``hold_s``."""
        encoded = self.encoded
        if encoded.script.hold_s <= 0:
            if encoded.file is None:
                writer.write(encoded.whole)
                await writer.drain()
            else:
                await asyncio.get_running_loop().sendfile(writer.transport, encoded.file)
            return
        self.open_streams += 1
        try:
            writer.write(encoded.head)
            await writer.drain()
            gap = encoded.script.hold_s / max(1, len(encoded.middle))
            for part in encoded.middle:
                await asyncio.sleep(gap)
                writer.write(part)
                await writer.drain()
            writer.write(encoded.tail)
            await writer.drain()
        finally:
            self.open_streams -= 1


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append((await reader.readexactly(size + 2))[:-2])


async def _json(writer: asyncio.StreamWriter, payload: Any, status: int = 200) -> None:
    body = orjson.dumps(payload)
    head = (
        f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()


async def serve(host: str, port: int) -> None:
    """Run until killed."""
    server = FakeServer()
    listener = await asyncio.start_server(server.handle, host, port, backlog=4096, limit=MAX_HEAD)
    async with listener:
        await listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
