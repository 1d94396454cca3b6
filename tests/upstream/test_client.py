"""The upstream client against scripted transports: what is retried and what is not."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from codex_proxy.config import Settings
from codex_proxy.mock.events import text_response
from codex_proxy.mock.server import Reply, encode_event
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.upstream.auth import AuthProvider
from codex_proxy.upstream.client import UpstreamClient, make_http_client

from .scripted import CLOSE, ScriptedServer

SETTINGS = Settings(mock=True, upstream_base_url="http://upstream.test")
SSE = b"".join(encode_event(e) for e in text_response("fresh connection"))


def run(failures: list[Exception], calls: list[str] | None = None) -> list[dict]:
    """Open one stream through a transport that raises ``failures`` first, then answers;
    ``calls`` collects one entry per attempt."""
    calls = [] if calls is None else calls

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if failures:
            raise failures.pop(0)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=SSE)

    async def scenario() -> list[dict]:
        auth = AuthProvider(SETTINGS)
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = UpstreamClient(SETTINGS, auth, http)
            creds = await auth.credentials()
            async with client.open_stream(creds, {"input": []}, "session") as stream:
                return [event async for event in stream.events()]

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    "error",
    [
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
        httpx.WriteError("broken pipe"),
    ],
)
def test_failure_on_a_fresh_connection_is_not_retried(error: Exception) -> None:
    """The upstream may have started the generation: sending it again could run it twice
    and spend the quota twice (a mock transport opens no kept-alive connection)."""
    calls: list[str] = []
    with pytest.raises(OpenAIError) as info:
        run([error], calls)
    assert (info.value.status, info.value.code) == (502, "upstream_unreachable")
    assert calls == ["/responses"]


SSE_ANSWER = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s"
    % (len(SSE), SSE)
)


def open_streams(kind: str, server: ScriptedServer, count: int) -> list[str]:
    """Open ``count`` streams one after the other through the real HTTP client with
    ``kind``'s transport; each one's last event type, or its error code."""

    async def scenario() -> list[str]:
        outcomes = []
        async with server as base:
            settings = Settings(mock=True, upstream_base_url=base, upstream_transport=kind)
            auth = AuthProvider(settings)
            async with make_http_client(settings) as http:
                assert (http.wire is not None) == (kind == "wire")
                client = UpstreamClient(settings, auth, http)
                for _ in range(count):
                    try:
                        creds = await auth.credentials()
                        async with client.open_stream(creds, {"input": []}, "s") as stream:
                            outcomes.append([e async for e in stream.events()][-1]["type"])
                    except OpenAIError as exc:
                        outcomes.append(str(exc.code))
        return outcomes

    return asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["wire", "httpx"])
def test_reused_connection_dropped_without_an_answer_is_retried(kind: str) -> None:
    """The keep-alive race: the upstream closes an idle connection just as the next request
    goes out on it. Nothing came back, so that request is sent again, on a new connection."""
    server = ScriptedServer([[SSE_ANSWER], CLOSE, [SSE_ANSWER]])
    assert open_streams(kind, server, 2) == ["response.completed"] * 2
    assert [seen.connection for seen in server.requests] == [1, 1, 2]


@pytest.mark.parametrize("kind", ["wire", "httpx"])
def test_fresh_connection_dropped_without_an_answer_is_not_retried(kind: str) -> None:
    server = ScriptedServer([CLOSE, [SSE_ANSWER]])
    assert open_streams(kind, server, 1) == ["upstream_unreachable"]
    assert len(server.requests) == 1


def test_refused_connection_is_not_retried() -> None:
    calls: list[str] = []
    with pytest.raises(OpenAIError) as info:
        run([httpx.ConnectError("refused"), httpx.ConnectError("refused")], calls)
    assert info.value.status == 502
    assert len(calls) == 1


def test_timeout_is_504_without_retry() -> None:
    calls: list[str] = []
    with pytest.raises(OpenAIError) as info:
        run([httpx.ReadTimeout("slow"), httpx.ReadTimeout("slow")], calls)
    assert info.value.status == 504
    assert len(calls) == 1


def test_upstream_goes_through_the_proxy_from_the_environment(
    make_gateway, upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake upstream doubles as the proxy: an upstream host that does not exist is only
    reachable through it, so an answer proves the proxy was used."""
    monkeypatch.setenv("HTTP_PROXY", upstream.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the test's own client: direct
    gateway = make_gateway(upstream_base_url="http://upstream.invalid")
    upstream.enqueue(Reply(events=text_response("via the proxy")))
    answer = gateway.client().chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content == "via the proxy"


def test_httpx_transport_setting_serves_the_same(make_gateway, upstream) -> None:
    """``CODEX_UPSTREAM_TRANSPORT=httpx`` is the fallback to httpx's standard transport."""
    assert make_http_client(Settings()).wire is not None
    assert make_http_client(Settings(upstream_transport="httpx")).wire is None
    gateway = make_gateway(upstream_transport="httpx")
    upstream.enqueue(Reply(events=text_response("through httpx")))
    answer = gateway.client().chat.completions.create(
        model="gpt-5", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in answer if c.choices) == (
        "through httpx"
    )


def test_raw_batches_keep_each_events_data_bytes() -> None:
    """Each event next to its data bytes as sent; an event without data has None; the same
    dicts as batches()."""
    odd = b'{ "type" : "response.output_text.delta","delta":"caf\\u00e9"}'
    content = (
        b"event: response.output_text.delta\ndata: " + odd + b"\n\n"
        b"event: response.heartbeat\n\n"
        b"data: [DONE]\n\n"
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=content)

    async def scenario(raw: bool) -> list:
        auth = AuthProvider(SETTINGS)
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            client = UpstreamClient(SETTINGS, auth, http)
            creds = await auth.credentials()
            async with client.open_stream(creds, {"input": []}, "session") as stream:
                batches = stream.raw_batches() if raw else stream.batches()
                return [event async for batch in batches for event in batch]

    pairs = asyncio.run(scenario(raw=True))
    assert pairs == [
        ({"type": "response.output_text.delta", "delta": "café"}, odd),
        ({"type": "response.heartbeat"}, None),
    ]
    assert asyncio.run(scenario(raw=False)) == [event for event, _ in pairs]
