"""The wire transport against httpx's standard one (httpcore + h11), case by case, fed from a
loopback server that writes scripted bytes. Each case runs through both and expects the same
status, headers and body, or the same httpx exception class. The rule is "at least as strict
as h11": where h11 lets something through that llhttp refuses, the case says what h11 does
(``h11=``), so the leniency is on record."""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import h11
import httpx
import pytest

from codex_proxy.upstream.wire import WireTransport

from .scripted import CLOSE, ScriptedServer

LIMITS = httpx.Limits(max_keepalive_connections=8, keepalive_expiry=5.0)
TIMEOUT = httpx.Timeout(5.0)
KINDS = ("wire", "httpx")
HAS_BROTLI = any(importlib.util.find_spec(name) for name in ("brotli", "brotlicffi"))


def transport(kind: str, limits: httpx.Limits = LIMITS) -> httpx.AsyncBaseTransport:
    if kind == "wire":
        return WireTransport(limits)
    return httpx.AsyncHTTPTransport(limits=limits)


@dataclass(frozen=True)
class Answer:
    """What a client made of an answer: the response, or the class of what it raised."""

    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    error: type[Exception] | None = None


def ok(status: int, body: bytes = b"", **headers: str) -> Answer:
    pairs = tuple((k.replace("_", "-"), v) for k, v in headers.items())
    return Answer(status, pairs, body)


def fails(error: type[Exception]) -> Answer:
    return Answer(error=error)


async def ask(
    kind: str, base: str, method: str = "GET", with_headers: bool = False, **kwargs: Any
) -> Answer:
    async with httpx.AsyncClient(transport=transport(kind), timeout=TIMEOUT) as client:
        try:
            response = await client.request(method, base + "/x", **kwargs)
        except Exception as exc:  # h11's own errors can leak through httpcore
            return Answer(error=type(exc))
        headers = tuple(response.headers.multi_items()) if with_headers else ()
        return Answer(response.status_code, headers, response.content)


def brotli_bytes(data: bytes) -> bytes:
    import brotli

    return bytes(brotli.compress(data))


def h(status: str, *lines: str, body: bytes = b"") -> bytes:
    return ("\r\n".join([f"HTTP/1.1 {status}", *lines]) + "\r\n\r\n").encode("latin-1") + body


GZ = gzip.compress(b"hello gzip")
BIG = "x" * 32 * 1024
HUGE = "x" * 200 * 1024

# id: (answer pieces, what both transports must make of it, what h11 makes of it if it differs)
CASES: dict[str, tuple[list[bytes], Answer, Answer | None]] = {
    "content-length": ([h("200 OK", "Content-Length: 2", body=b"ok")], ok(200, b"ok"), None),
    "no reason": ([h("200", "Content-Length: 0")], ok(200), None),
    "http/1.0": ([b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"], ok(200, b"ok"), None),
    "head split across reads": (
        [b"HTTP/1.1 200 OK\r\nCont", b"ent-Length: 2\r", b"\n\r", b"\no", b"k"],
        ok(200, b"ok"),
        None,
    ),
    "chunked, extensions and trailers": (
        [
            h("200 OK", "Transfer-Encoding: chunked")
            + b'5;name=value;q="x y"\r\nhello\r\n1;e\r\n!\r\n0;last\r\nX-Trailer: 1\r\n\r\n'
        ],
        ok(200, b"hello!"),
        None,
    ),
    "chunk lines split across reads": (
        [
            h("200 OK", "Transfer-Encoding: chunked") + b"5",
            b"\r\nhel",
            b"lo\r",
            b"\n0\r\n\r",
            b"\n",
        ],
        ok(200, b"hello"),
        None,
    ),
    "close-delimited body": (
        [h("200 OK", "X-A: 1") + b"until", b" the end"],
        ok(200, b"until the end", x_a="1"),
        None,
    ),
    "connection: close": (
        [h("200 OK", "Connection: close", "Content-Length: 2", body=b"ok")],
        ok(200, b"ok", connection="close"),
        None,
    ),
    "1xx interim answers": (
        [h("100 Continue") + h("103 Early Hints", "Link: </a>"), h("200 OK", "Content-Length: 0")],
        ok(200),
        None,
    ),
    "204 has no body": ([h("204 No Content", "X-A: 1")], ok(204, x_a="1"), None),
    "304 has no body, whatever its length": (
        [h("304 Not Modified", "Content-Length: 5")],
        ok(304, content_length="5"),
        None,
    ),
    "101 nobody asked for": (
        [h("101 Switching Protocols", "Upgrade: x", "Connection: upgrade")],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    "gzip": (
        [h("200 OK", "Content-Encoding: gzip", f"Content-Length: {len(GZ)}", body=GZ)],
        ok(200, b"hello gzip", content_encoding="gzip", content_length=str(len(GZ))),
        None,
    ),
    "tab and obs-text in a value": (
        [h("200 OK", "X-A: a\tb", "Content-Length: 0").replace(b"b\r", b"b\xe9\r")],
        ok(200, x_a="a\tb\xe9"),
        None,
    ),
    "large headers (32 KB)": ([h("200 OK", f"X-Big: {BIG}", "Content-Length: 0")], ok(200), None),
    "headers over 100 KB": (
        [h("200 OK", f"X-Huge: {HUGE}", "Content-Length: 0")],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    # item 8 of the issue: what the hand-written parser let through
    "content-length -5": (
        [h("200 OK", "Content-Length: -5", body=b"hello")],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    "content-length 1_0": (
        [h("200 OK", "Content-Length: 1_0", body=b"0123456789")],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    "content-length +2": (
        [h("200 OK", "Content-Length: +2", body=b"ok")],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    "two different content-lengths": (
        [h("200 OK", "Content-Length: 2", "Content-Length: 3", body=b"ok")],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    "chunk size 0x5": (
        [h("200 OK", "Transfer-Encoding: chunked") + b"0x5\r\nhello\r\n0\r\n\r\n"],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    "chunk size 1_0": (
        [h("200 OK", "Transfer-Encoding: chunked") + b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n"],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    "NUL in a header value": (
        [h("200 OK", "X-A: a\0b", "Content-Length: 0")],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    "status 99": ([h("99 Low", "Content-Length: 0")], fails(httpx.RemoteProtocolError), None),
    "status 1000": ([h("1000 High", "Content-Length: 0")], fails(httpx.RemoteProtocolError), None),
    # truncations and other garbage
    "no answer at all": ([], fails(httpx.RemoteProtocolError), None),
    "not http": ([b"SMTP ready\r\n\r\n"], fails(httpx.RemoteProtocolError), None),
    "head cut short": ([b"HTTP/1.1 200 OK\r\nContent-"], fails(httpx.RemoteProtocolError), None),
    "body shorter than content-length": (
        [h("200 OK", "Content-Length: 10", body=b"abc")],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    "chunked body cut short": (
        [h("200 OK", "Transfer-Encoding: chunked") + b"5\r\nab"],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    "chunk longer than its size": (
        [h("200 OK", "Transfer-Encoding: chunked") + b"2\r\nabc\r\n0\r\n\r\n"],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    "transfer-encoding gzip": (
        [h("200 OK", "Transfer-Encoding: gzip", body=b"abc")],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    "space before the colon": (
        [h("200 OK", "X-A : 1", "Content-Length: 0")],
        fails(httpx.RemoteProtocolError),
        None,
    ),
    # h11 accepts these; the wire transport is stricter, on purpose
    "bare LF line ends": (
        [b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"],
        fails(httpx.RemoteProtocolError),
        ok(200, b"ok", content_length="2"),
    ),
    "obsolete line folding": (
        [h("200 OK", "X-A: a", " b", "Content-Length: 0")],
        fails(httpx.RemoteProtocolError),
        ok(200, x_a="a b", content_length="0"),
    ),
    "control character in a value": (
        [h("200 OK", "X-A: a\x01b", "Content-Length: 0")],
        fails(httpx.RemoteProtocolError),
        ok(200, x_a="a\x01b", content_length="0"),
    ),
    "the same content-length twice": (
        [h("200 OK", "Content-Length: 2", "Content-Length: 2", body=b"ok")],
        fails(httpx.RemoteProtocolError),
        ok(200, b"ok", content_length="2"),
    ),
    "chunked and a content-length": (
        [h("200 OK", "Transfer-Encoding: chunked", "Content-Length: 9") + b"2\r\nok\r\n0\r\n\r\n"],
        fails(httpx.RemoteProtocolError),
        ok(200, b"ok", transfer_encoding="chunked"),
    ),
}
if HAS_BROTLI:
    BR = brotli_bytes(b"hello brotli")
    CASES["brotli"] = (
        [h("200 OK", "Content-Encoding: br", f"Content-Length: {len(BR)}", body=BR)],
        ok(200, b"hello brotli", content_encoding="br", content_length=str(len(BR))),
        None,
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(CASES))
def test_answers_read_alike(case: str, kind: str) -> None:
    pieces, expected, h11_reads = CASES[case]
    if kind == "httpx" and h11_reads is not None:
        expected = h11_reads

    async def scenario() -> Answer:
        async with ScriptedServer([pieces], close_after=True) as base:
            return await ask(kind, base, with_headers=True)

    got = asyncio.run(scenario())
    assert got.error == expected.error
    if expected.error is None:
        assert (got.status, got.body) == (expected.status, expected.body)
        assert set(expected.headers) <= set(got.headers)


def test_head_answer_has_no_body() -> None:
    """A HEAD answer's Content-Length describes the GET body; none follows, and the
    connection stays usable for the next request."""
    answers: list[list[bytes] | None] = [
        [h("200 OK", "Content-Length: 5")],
        [h("200 OK", "Content-Length: 2", body=b"ok")],
    ]

    async def scenario(kind: str) -> tuple[Answer, Answer, int]:
        server = ScriptedServer([*answers])
        async with (
            server as base,
            httpx.AsyncClient(transport=transport(kind), timeout=TIMEOUT) as client,
        ):
            first = await client.head(base + "/x")
            second = await client.get(base + "/x")
        return (
            Answer(first.status_code, body=first.content),
            Answer(second.status_code, body=second.content),
            server.connections,
        )

    results = {kind: asyncio.run(scenario(kind)) for kind in KINDS}
    assert results["wire"] == results["httpx"] == (ok(200), ok(200, b"ok"), 1)


# -- connections ----------------------------------------------------------------------------


async def two_requests(
    kind: str, server: ScriptedServer, between: Callable[[], Any] | None = None
) -> list[Answer]:
    """Two requests in a row on one client; ``between`` runs (awaited) in between."""
    answers = []
    async with (
        server as base,
        httpx.AsyncClient(transport=transport(kind), timeout=TIMEOUT) as client,
    ):
        for index in range(2):
            if index and between is not None:
                await between()
            try:
                response = await client.post(base + "/x", content=b"{}")
                answers.append(Answer(response.status_code, body=response.content))
            except httpx.HTTPError as exc:
                answers.append(Answer(error=type(exc)))
    return answers


OK = h("200 OK", "Content-Length: 2", body=b"ok")


@pytest.mark.parametrize("kind", KINDS)
def test_kept_alive_connection_is_reused(kind: str) -> None:
    server = ScriptedServer([[OK], [OK]])
    assert asyncio.run(two_requests(kind, server)) == [ok(200, b"ok")] * 2
    assert server.connections == 1


@pytest.mark.parametrize("kind", KINDS)
def test_connection_close_is_not_reused(kind: str) -> None:
    close = h("200 OK", "Connection: close", "Content-Length: 2", body=b"ok")
    server = ScriptedServer([[close], [OK]])
    assert asyncio.run(two_requests(kind, server)) == [ok(200, b"ok")] * 2
    assert server.connections == 2


@pytest.mark.parametrize("kind", KINDS)
def test_connection_the_server_closed_while_idle_is_replaced(kind: str) -> None:
    server = ScriptedServer([[OK], [OK]], close_after=True)

    async def settle() -> None:
        for _ in range(20):  # let the loop see the server's FIN
            await asyncio.sleep(0.005)

    assert asyncio.run(two_requests(kind, server, settle)) == [ok(200, b"ok")] * 2
    assert server.connections == 2
    assert len(server.requests) == 2  # the closed connection was never written to


@pytest.mark.parametrize("kind", KINDS)
def test_stray_bytes_after_an_answer_retire_the_connection(kind: str) -> None:
    """Bytes no request asked for mean the server is out of step: h11 refuses them when
    the next answer is read, the wire transport drops the connection before reusing it."""
    server = ScriptedServer([[OK + b"HTTP/1.1 200 OK\r\n"], [OK]])
    got = asyncio.run(two_requests(kind, server))
    assert got[0] == ok(200, b"ok")
    if kind == "wire":
        assert got[1] == ok(200, b"ok")
        assert server.connections == 2
    else:
        assert got[1] == fails(httpx.RemoteProtocolError)


@pytest.mark.parametrize("kind", KINDS)
def test_request_on_a_fresh_connection_is_sent_once(kind: str) -> None:
    """Item 11: a fresh connection dropped after the request was read may have started the
    work: neither transport sends the request again."""
    server = ScriptedServer([CLOSE, [OK]])

    async def scenario() -> Answer:
        async with server as base:
            return await ask(kind, base, "POST", content=b"{}")

    assert asyncio.run(scenario()) == fails(httpx.RemoteProtocolError)
    assert len(server.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_reused_connection_closed_without_a_byte(kind: str) -> None:
    """A kept-alive connection the server closes as the next request arrives, without a
    byte back (the keep-alive race): the wire transport sends the request again on a fresh
    connection, httpcore raises (the gateway's client retries it, see test_client)."""
    server = ScriptedServer([[OK], CLOSE, [OK]])
    got = asyncio.run(two_requests(kind, server))
    assert got[0] == ok(200, b"ok")
    if kind == "wire":
        assert got[1] == ok(200, b"ok")
        assert [seen.connection for seen in server.requests] == [1, 1, 2]
    else:
        assert got[1] == fails(httpx.RemoteProtocolError)


@pytest.mark.parametrize("kind", KINDS)
def test_reused_connection_that_answered_part_is_not_retried(kind: str) -> None:
    server = ScriptedServer([[OK], [b"HTTP/1.1 200 OK\r\n"], [OK]])

    async def cut() -> None:
        server.close_after = True  # the second answer is cut short by the close

    got = asyncio.run(two_requests(kind, server, cut))
    assert got == [ok(200, b"ok"), fails(httpx.RemoteProtocolError)]
    assert len(server.requests) == 2


# -- requests -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-A", "v\r\nX-Injected: 1"),
        ("X-A", "v\nX-Injected: 1"),
        ("X-A", "v\rX"),
        ("X-A", "a\0b"),
        ("X-A", " leading space"),
        ("X A", "v"),
        ("X-A:", "v"),
        ("", "v"),
    ],
)
def test_unsendable_headers_are_refused_before_sending(kind: str, name: str, value: str) -> None:
    server = ScriptedServer([[OK]])

    async def scenario() -> Answer:
        async with server as base:
            return await ask(kind, base, headers={name: value})

    assert asyncio.run(scenario()) == fails(httpx.LocalProtocolError)
    assert server.requests == []


async def pieces(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.parametrize("kind", KINDS)
def test_streamed_body_is_chunk_framed(kind: str) -> None:
    server = ScriptedServer([[OK], [OK]])

    async def scenario() -> list[Answer]:
        async with (
            server as base,
            httpx.AsyncClient(transport=transport(kind), timeout=TIMEOUT) as client,
        ):
            first = await client.post(base + "/x", content=pieces(b"hello ", b"", b"world"))
            second = await client.post(base + "/x", content=b"after")
        return [Answer(r.status_code, body=r.content) for r in (first, second)]

    assert asyncio.run(scenario()) == [ok(200, b"ok")] * 2
    assert [seen.body for seen in server.requests] == [b"hello world", b"after"]
    assert (b"transfer-encoding", b"chunked") in server.requests[0].headers
    assert server.bad_requests == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("declared", ["3", "20"])
def test_streamed_body_must_match_its_content_length(kind: str, declared: str) -> None:
    """Both refuse; httpcore lets h11's own LocalProtocolError escape unmapped here."""
    expected = httpx.LocalProtocolError if kind == "wire" else h11.LocalProtocolError
    server = ScriptedServer([[OK]])

    async def scenario() -> Answer:
        async with server as base:
            return await ask(
                kind,
                base,
                "POST",
                content=pieces(b"hello", b"world"),
                headers={"Content-Length": declared},
            )

    assert asyncio.run(scenario()) == fails(expected)


@pytest.mark.parametrize("kind", KINDS)
def test_large_body_to_a_slow_reader(kind: str) -> None:
    """8 MB to a server that reads 64 KB at a time with pauses: the socket buffer fills,
    the writer waits for it (back-pressure), and every byte arrives in order."""
    body = bytes(range(256)) * (32 * 1024)
    server = ScriptedServer([[OK]], read_pause=0.001)

    async def scenario() -> Answer:
        async with server as base:
            return await ask(kind, base, "POST", content=body)

    assert asyncio.run(scenario()) == ok(200, b"ok")
    assert server.requests[0].body == body


# -- the pool -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_max_connections_queues_requests(kind: str) -> None:
    server = ScriptedServer([[OK]] * 4)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=5)

    async def scenario() -> list[bytes]:
        async with (
            server as base,
            httpx.AsyncClient(transport=transport(kind, limits), timeout=TIMEOUT) as client,
        ):
            answers = await asyncio.gather(*(client.get(base + "/x") for _ in range(4)))
        return [answer.content for answer in answers]

    assert asyncio.run(scenario()) == [b"ok"] * 4
    assert server.connections == 1


@pytest.mark.parametrize("kind", KINDS)
def test_pool_timeout_when_no_connection_frees_up(kind: str) -> None:
    server = ScriptedServer([[h("200 OK", "Content-Length: 2"), b"o"], [OK]])
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(5.0, pool=0.1)

    async def scenario() -> Answer:
        async with (
            server as base,
            httpx.AsyncClient(transport=transport(kind, limits), timeout=timeout) as client,
            client.stream("GET", base + "/x") as held,
        ):
            assert held.status_code == 200
            try:
                await client.get(base + "/x")
            except httpx.HTTPError as exc:
                return Answer(error=type(exc))
            return ok(0)

    assert asyncio.run(scenario()) == fails(httpx.PoolTimeout)
    assert server.connections == 1


# -- connecting -----------------------------------------------------------------------------


@pytest.mark.skipif(
    sys.platform != "linux", reason="needs 127.0.0.2 and Linux's full-accept-queue SYN drop"
)
@pytest.mark.parametrize("kind", KINDS)
def test_happy_eyeballs_skips_a_black_holed_address(kind: str) -> None:
    """Item 10: the name resolves to a black hole first (127.0.0.2, a listener whose accept
    queue is full, so the SYN goes unanswered), then to the server (127.0.0.1, same port).
    With a connect timeout far beyond the test's, the answer comes from the second address."""
    hole = socket.socket()
    hole.bind(("127.0.0.2", 0))
    hole.listen(0)
    port = hole.getsockname()[1]
    filler = socket.create_connection(("127.0.0.2", port), timeout=5)  # the queue is full
    server = ScriptedServer([[OK]])

    async def scenario() -> Answer:
        loop = asyncio.get_running_loop()
        real = await asyncio.start_server(server.handle, "127.0.0.1", port)

        async def resolve(host: str, *args: Any, **kwargs: Any) -> list[Any]:
            assert host in ("dual.test", b"dual.test")  # anyio passes it IDNA-encoded
            stream = socket.SOCK_STREAM
            return [
                (socket.AF_INET, stream, 6, "", ("127.0.0.2", port)),
                (socket.AF_INET, stream, 6, "", ("127.0.0.1", port)),
            ]

        loop.getaddrinfo = resolve  # type: ignore[method-assign]
        timeout = httpx.Timeout(5.0, connect=300.0)
        try:
            async with httpx.AsyncClient(transport=transport(kind), timeout=timeout) as client:
                response = await client.get(f"http://dual.test:{port}/x")
                return Answer(response.status_code, body=response.content)
        finally:
            real.close()

    try:
        assert asyncio.run(scenario()) == ok(200, b"ok")
    finally:
        filler.close()
        hole.close()
    assert len(server.requests) == 1  # answered by 127.0.0.1, the second address
    assert dict(server.requests[0].headers)[b"host"] == f"dual.test:{port}".encode()
