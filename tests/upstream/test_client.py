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
def test_stale_keepalive_connection_is_retried_once(error: Exception) -> None:
    calls: list[str] = []
    events = run([error], calls)
    assert calls == ["/responses", "/responses"]
    assert events[-1]["type"] == "response.completed"


def test_second_stale_failure_is_a_502() -> None:
    with pytest.raises(OpenAIError) as info:
        run([httpx.ReadError("reset"), httpx.ReadError("reset again")])
    assert (info.value.status, info.value.code) == (502, "upstream_unreachable")


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
