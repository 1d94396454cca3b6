"""The end of the shutdown grace period, in-process: a request still waiting gets a 503
``server_shutting_down`` (the signal side is tested on a real process, tests/cli/)."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from codex_proxy.mock.events import ResponseScript
from codex_proxy.mock.server import FakeUpstream, Pause, Reply
from codex_proxy.server.shutdown import Shutdown

from ..conftest import wait_for


def end_grace(gateway: Any) -> None:
    """What the timer does when the grace period is over, on the gateway's own loop."""
    shutdown: Shutdown = gateway.server.config.app.state.shutdown
    loop = gateway.server.servers[0].get_loop()
    loop.call_soon_threadsafe(shutdown.end)


def test_waiting_request_gets_503_when_the_grace_period_ends(
    make_gateway: Any, upstream: FakeUpstream
) -> None:
    gw = make_gateway()
    upstream.enqueue(Reply(events=[*ResponseScript().start(), Pause(60)]))
    answers: list[httpx.Response] = []
    body = {"model": "gpt-5.2-codex", "messages": [{"role": "user", "content": "hi"}]}

    def ask() -> None:
        answers.append(httpx.post(f"{gw.url}/v1/chat/completions", json=body, timeout=30))

    thread = threading.Thread(target=ask)
    thread.start()
    assert wait_for(lambda: upstream.open_streams == 1, timeout=10)
    end_grace(gw)
    thread.join(timeout=30)
    assert answers[0].status_code == 503
    assert answers[0].json()["error"]["code"] == "server_shutting_down"
    assert wait_for(lambda: upstream.open_streams == 0)  # the upstream request was cancelled
    # a request that arrives after the end is refused the same way at once
    upstream.enqueue(Reply(events=[*ResponseScript().start(), Pause(60)]))
    late = httpx.post(f"{gw.url}/v1/chat/completions", json=body, timeout=30)
    assert late.status_code == 503
