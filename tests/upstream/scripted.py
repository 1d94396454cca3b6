"""A loopback HTTP/1.1 server that writes scripted bytes: requests are parsed properly (by h11,
so a badly framed request shows), answers are whatever the test wants on the wire."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import h11

CLOSE = None  # in a script: read the request, then drop the connection without answering


@dataclass
class Seen:
    """One request as the server parsed it."""

    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    connection: int  # which connection (1, 2, ...) it came on


@dataclass
class ScriptedServer:
    """Answers the n-th request (over all connections) with ``answers[n]``: pieces written
    one by one (a short pause between them, so they arrive as separate reads), or CLOSE.
    ``close_after`` closes each connection after one answer; ``read_size``/``read_pause``
    make a slow reader; ``hold`` keeps every answer back until the event is set."""

    answers: list[list[bytes] | None]
    close_after: bool = False
    read_size: int = 65536
    read_pause: float = 0.0
    hold: asyncio.Event | None = None
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    bad_requests: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        leftover = b""
        try:
            while True:
                parsed = await self._request(reader, leftover, number)
                if parsed is None:
                    break
                leftover = parsed
                answer = self.answers.pop(0) if self.answers else CLOSE
                if self.hold is not None:
                    await self.hold.wait()
                if answer is CLOSE:
                    break
                for index, piece in enumerate(answer):
                    if index:
                        await asyncio.sleep(0.005)
                    writer.write(piece)
                    await writer.drain()
                if self.close_after:
                    break
        except (ConnectionError, h11.RemoteProtocolError) as exc:
            self.bad_requests.append(repr(exc))
        writer.close()

    async def _request(
        self, reader: asyncio.StreamReader, leftover: bytes, number: int
    ) -> bytes | None:
        """Read one request; the bytes after it (None when the client left first)."""
        conn = h11.Connection(h11.SERVER)
        if leftover:
            conn.receive_data(leftover)  # (an empty one would mean the client left)
        head: h11.Request | None = None
        body: list[bytes] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if self.read_pause:
                    await asyncio.sleep(self.read_pause)
                data = await reader.read(self.read_size)
                if not data and head is None and not conn.trailing_data[0]:
                    return None
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                self.requests.append(
                    Seen(head.method, head.target, list(head.headers), b"".join(body), number)
                )
                return bytes(conn.trailing_data[0])
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
