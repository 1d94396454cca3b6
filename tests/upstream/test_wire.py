"""The HTTP/1.1 wire transport: bodies survive any split into reads; faults raise httpx's own
exceptions; kept-alive connections are reused and dropped ones are not."""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Sequence

import httpx
import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from codex_proxy.upstream.wire import Body, WireTransport
from codex_proxy.upstream.wire_conn import PAUSE_AT

LIMITS = httpx.Limits(max_keepalive_connections=8, keepalive_expiry=5.0)


def chunked(body: bytes, sizes: Sequence[int]) -> bytes:
    """``body`` in chunked encoding, cut at ``sizes`` (cycled), with an extension and a
    trailer for good measure."""
    out, at, index = [], 0, 0
    while at < len(body):
        size = max(1, sizes[index % len(sizes)]) if sizes else len(body)
        piece = body[at : at + size]
        out.append(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
        at += len(piece)
        index += 1
    out.append(b"0\r\nx-trailer: 1\r\n\r\n")
    return b"".join(out)


class Server:
    """A loopback server that answers each request on a connection with the next scripted
    answer, written in the given pieces; counts connections."""

    def __init__(self, answers: list[list[bytes]], close_after: bool = False) -> None:
        self.answers = answers
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")  # or wait for the client to leave
                if not self.answers:
                    break
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                for piece in self.answers.pop(0):
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0)
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


def cut(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


async def fetch(base: str, transport: WireTransport, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(transport=transport, timeout=2.0) as client:
        response = await client.post(base + "/responses", content=b'{"x":1}', **kwargs)
        await response.aread()
        return response


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(max_size=3000),
    sizes=st.lists(st.integers(1, 700), max_size=5),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
    use_length=st.booleans(),
)
def test_any_body_in_any_reads_arrives_whole(
    body: bytes, sizes: list[int], cuts: list[int], use_length: bool
) -> None:
    if use_length:
        wire = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    else:
        wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + chunked(body, sizes)

    async def scenario() -> None:
        server = Server([cut(wire, cuts)])
        async with server as base:
            response = await fetch(base, WireTransport(LIMITS))
        assert response.status_code == 200
        assert response.content == body
        assert server.requests[0].startswith(b"POST /responses HTTP/1.1\r\n")
        assert server.requests[0].endswith(b'\r\n\r\n{"x":1}')

    asyncio.run(scenario())


def test_kept_alive_connection_is_reused_and_a_closed_one_replaced() -> None:
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    async def scenario() -> None:
        transport = WireTransport(LIMITS)
        server = Server([[ok], [ok], [ok]])
        async with server as base:
            for _ in range(2):
                assert (await fetch_with(base, transport)).content == b"ok"
            assert server.connections == 1
        closing = Server([[ok], [ok]], close_after=True)
        async with closing as base:
            for _ in range(2):
                assert (await fetch_with(base, transport)).content == b"ok"
                await asyncio.sleep(0.05)  # the close reaches the idle connection
            assert closing.connections == 2
        await transport.aclose()

    asyncio.run(scenario())


def test_a_reader_that_waits_stops_the_socket_being_read() -> None:
    """16 MB sent at once to a reader that takes one piece and then waits: the connection
    holds at most one read's worth beyond ``PAUSE_AT`` (the kernel keeps the rest), and
    reads again, to the last byte in order, once the reader takes its pieces."""
    body = bytes(range(256)) * (64 * 1024)
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body)

    async def scenario() -> None:
        transport = WireTransport(LIMITS)
        async with Server([[answer + body]]) as base:
            response = await transport.handle_async_request(httpx.Request("GET", base + "/"))
            stream = response.stream
            assert isinstance(stream, Body)
            pieces = aiter(stream)
            got = [await anext(pieces)]
            await asyncio.sleep(0.2)  # time enough to read all 16 MB, were reading not paused
            assert 0 < stream._wire.queued <= PAUSE_AT + 256 * 1024 < len(body) // 8
            got += [piece async for piece in pieces]
            await stream.aclose()
        await transport.aclose()
        assert b"".join(got) == body

    asyncio.run(scenario())


def test_connections_read_at_once_keep_their_own_bytes() -> None:
    """The pool's connections share one read buffer: six answers of 2 MB each, written in
    pieces that interleave, arrive each whole and unmixed."""
    bodies = [bytes([n]) * (2 * 1024 * 1024) for n in range(6)]

    def answer(body: bytes) -> list[bytes]:
        head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body)
        step = 96 * 1024
        return [head] + [body[at : at + step] for at in range(0, len(body), step)]

    async def scenario() -> list[bytes]:
        transport = WireTransport(httpx.Limits(max_connections=6, max_keepalive_connections=6))
        server = Server([answer(body) for body in bodies])
        async with server as base, httpx.AsyncClient(transport=transport, timeout=5) as client:
            answers = await asyncio.gather(
                *(client.post(base + "/", content=b"{}") for _ in bodies)
            )
        assert server.connections == 6
        return sorted(answer.content for answer in answers)

    assert asyncio.run(scenario()) == bodies


async def fetch_with(base: str, transport: WireTransport) -> httpx.Response:
    """Like fetch, but the transport outlives the client (to see its pool)."""
    client = httpx.AsyncClient(transport=transport, timeout=2.0)
    response = await client.post(base + "/responses", content=b"{}")
    await response.aread()
    return response


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        ([], httpx.RemoteProtocolError, "without sending a response"),
        ([b"HTTP/1.1 200 OK\r\ncontent-"], httpx.RemoteProtocolError, "response head"),
        ([b"SMTP ready\r\n\r\n"], httpx.RemoteProtocolError, "malformed upstream answer"),
        (
            [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab"],
            httpx.RemoteProtocolError,
            "complete message body",
        ),
        (
            [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"],
            httpx.RemoteProtocolError,
            "Invalid character in chunk size",
        ),
        (
            [b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"],
            httpx.RemoteProtocolError,
            "complete message body",
        ),
    ],
)
def test_broken_answers_raise_httpx_errors(
    answer: list[bytes], error: type[Exception], message: str
) -> None:
    async def scenario() -> None:
        async with Server([answer], close_after=True) as base:
            with pytest.raises(error, match=message):
                await fetch(base, WireTransport(LIMITS))

    asyncio.run(scenario())


def test_silence_is_a_read_timeout() -> None:
    async def scenario() -> None:
        silent = Server([[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"]])
        timeout = httpx.Timeout(2.0, read=0.2)
        async with (
            silent as base,
            httpx.AsyncClient(transport=WireTransport(LIMITS), timeout=timeout) as client,
            client.stream("POST", base + "/responses", content=b"{}") as response,
        ):
            with pytest.raises(httpx.ReadTimeout):
                await response.aread()

    asyncio.run(scenario())


def test_refused_connection_is_a_connect_error() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        with pytest.raises(httpx.ConnectError):
            await fetch(f"http://127.0.0.1:{port}", WireTransport(LIMITS))

    asyncio.run(scenario())


def test_no_body_for_204_and_interim_answers_are_skipped() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n"

    async def scenario() -> None:
        async with Server([[answer]]) as base:
            response = await fetch(base, WireTransport(LIMITS))
        assert response.status_code == 204
        assert response.headers["x-a"] == "1"
        assert response.content == b""

    asyncio.run(scenario())


def test_https_verifies_the_certificate_with_httpx_own_trust_settings(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS as httpx sets it up (certifi, or ``SSL_CERT_FILE``): a server whose CA is trusted
    answers; the same server is refused when its CA is not."""
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_context)
    trusted = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(trusted))
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecure"

    async def fetch_over_tls() -> httpx.Response:
        server = Server([[ok]])
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=server_context)
        port = listener.sockets[0].getsockname()[1]
        try:
            return await fetch(f"https://localhost:{port}", WireTransport(LIMITS))
        finally:
            listener.close()

    monkeypatch.setenv("SSL_CERT_FILE", str(trusted))
    assert asyncio.run(fetch_over_tls()).content == b"secure"
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(fetch_over_tls())
