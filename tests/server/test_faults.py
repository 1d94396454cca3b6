"""Fault injection against the fake upstream: each fault's exact client-visible outcome, and the
gateway still serving the next request afterwards.

Faults already pinned down in test_relay.py (unknown events in a non-streaming answer, error
events after content, a non-streaming idle timeout after ``response.created``, ``response.failed``
before content) are not repeated; this file adds the rest of the catalogue, client
cancellations with leak counting, a misbehaving token endpoint and a changing auth.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from codex_proxy.config import Settings
from codex_proxy.mock.events import ResponseScript, text_response
from codex_proxy.mock.server import Drop, FakeUpstream, Pause, RawData, Reply, ReplyItem
from codex_proxy.mock.tokens import fake_jwt
from codex_proxy.translate.errors import SIGN_IN_HINT

from ..conftest import Gateway, start_gateway, wait_for, write_auth_json

MODEL = "gpt-5.2-codex"
USER = [{"role": "user", "content": "hi"}]
IDLE = 0.5  # the idle timeout of this module's gateway, so stalls fail fast


def body(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": USER, "stream": stream, **extra}


@dataclass
class Outcome:
    """What a client saw: the status, the error (if any), the text and the SSE lines."""

    status: int
    headers: httpx.Headers
    error: dict[str, Any] | None
    content: str
    lines: list[str]


def ask(url: str, stream: bool, **extra: Any) -> Outcome:
    """One chat request with plain httpx, so every byte of the outcome can be asserted."""
    payload = body(stream, **extra)
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=payload, timeout=20) as response:
        if response.headers.get("content-type", "").startswith("application/json"):
            raw = json.loads(response.read())
            if response.status_code != 200:
                return Outcome(response.status_code, response.headers, raw["error"], "", [])
            content = raw["choices"][0]["message"]["content"] or ""
            return Outcome(200, response.headers, None, content, [])
        lines = [line for line in response.iter_lines() if line]
    error, parts = None, []
    for line in lines:
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[len("data: ") :])
        if "error" in event:
            error = event["error"]
        else:
            parts += [c["delta"].get("content") or "" for c in event["choices"]]
    return Outcome(response.status_code, response.headers, error, "".join(parts), lines)


def still_serves(gw: Gateway, upstream: FakeUpstream) -> None:
    """After any fault: no upstream stream left open, and the next request is answered."""
    assert wait_for(lambda: upstream.open_streams == 0)
    upstream.enqueue(Reply(events=text_response("still here")))
    outcome = ask(gw.url, stream=False)
    assert (outcome.status, outcome.content) == (200, "still here")


@pytest.fixture(scope="module")
def gw(base_settings: Settings) -> Iterator[Gateway]:
    """One gateway with a short idle timeout for the whole module."""
    server = start_gateway(replace(base_settings, upstream_idle_timeout=IDLE, image_max_mb=64))
    yield server
    server.stop()


def started(chunks: list[str] | None = None) -> list[ReplyItem]:
    """``response.created`` .. the message's first delta(s): the answer has begun."""
    s = ResponseScript()
    s.start()
    s.message(chunks or ["partial"])
    return s.events[: 4 + len(chunks or ["partial"])]


# -- upstream errors before any event: the same JSON error whether streaming or not ------------


def server_error(message: str, code: str = "upstream_error") -> dict[str, Any]:
    return {"message": message, "type": "server_error", "param": None, "code": code}


NOT_STREAMING = "upstream_not_streaming"
BEFORE_FIRST_EVENT: dict[str, tuple[list[Reply], int, dict[str, Any]]] = {
    "500-no-body": (
        [Reply(status=500)],
        502,
        server_error("Upstream error (HTTP 500): Upstream answered HTTP 500."),
    ),
    "500-openai-error": (
        [Reply(status=500, body={"error": {"message": "boom", "code": "server_error"}})],
        502,
        server_error("Upstream error (HTTP 500): boom", "server_error"),
    ),
    "502-html-body": (
        [Reply(status=502, body=b"<html>Bad gateway</html>")],
        502,
        server_error("Upstream error (HTTP 502): <html>Bad gateway</html>"),
    ),
    "502-no-body": (
        [Reply(status=502)],
        502,
        server_error("Upstream error (HTTP 502): Upstream answered HTTP 502."),
    ),
    "503-no-body": (
        [Reply(status=503)],
        502,
        server_error("Upstream error (HTTP 503): Upstream answered HTTP 503."),
    ),
    "429-retry-after": (
        [
            Reply(
                status=429,
                body={"error": {"message": "Slow down", "type": "requests"}},
                headers={"retry-after": "3"},
            )
        ],
        429,
        {"message": "Slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"},
    ),
    "200-html-not-sse": (
        [Reply(status=200, body=b"<html>login</html>", headers={"content-type": "text/html"})],
        502,
        server_error(
            "Upstream answered 200 without an event stream (content-type 'text/html').",
            NOT_STREAMING,
        ),
    ),
    "200-json-not-sse": (
        [Reply(status=200, body={"id": "resp_1", "output": []})],
        502,
        server_error(
            "Upstream answered 200 without an event stream (content-type 'application/json').",
            NOT_STREAMING,
        ),
    ),
    "stall-before-headers": (
        [Reply(events=text_response("late"), delay=IDLE * 6)],
        504,
        server_error(f"Upstream sent nothing for {IDLE:g} s (CODEX_UPSTREAM_IDLE_TIMEOUT).")
        | {"code": "upstream_timeout"},
    ),
    "stall-before-first-event": (
        [Reply(events=[Pause(IDLE * 6), *text_response("late")])],
        504,
        server_error(f"Upstream sent nothing for {IDLE:g} s (CODEX_UPSTREAM_IDLE_TIMEOUT).")
        | {"code": "upstream_timeout"},
    ),
    "error-event-nested": (
        [
            Reply(
                events=[*ResponseScript().start(), *ResponseScript().error("server_is_overloaded")]
            )
        ],
        503,
        server_error("Something went wrong", "server_is_overloaded"),
    ),
    "error-event-flat": (
        [
            Reply(
                events=[
                    *ResponseScript().start(),
                    *ResponseScript().error("rate_limit_exceeded", "Too fast", nested=False),
                ]
            )
        ],
        429,
        {"message": "Too fast", "type": "requests", "param": None, "code": "rate_limit_exceeded"},
    ),
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("case", list(BEFORE_FIRST_EVENT))
def test_failure_before_first_event_is_an_http_error(
    gw: Gateway, upstream: FakeUpstream, case: str, stream: bool
) -> None:
    replies, status, error = BEFORE_FIRST_EVENT[case]
    upstream.enqueue(*replies)
    outcome = ask(gw.url, stream)
    assert (outcome.status, outcome.error) == (status, error)
    assert outcome.headers["content-type"] == "application/json"
    if case == "429-retry-after":
        assert outcome.headers["retry-after"] == "3"
    still_serves(gw, upstream)


def test_refused_connection_is_502_then_serves(make_gateway, upstream: FakeUpstream) -> None:
    with FakeUpstream() as doomed:
        url = doomed.url
    gw = make_gateway(upstream_base_url=url)  # nothing listens there any more
    for stream in (False, True):
        outcome = ask(gw.url, stream)
        assert outcome.status == 502
        assert outcome.error is not None
        assert outcome.error["code"] == "upstream_unreachable"
        assert outcome.error["message"].startswith("Upstream connection failed: ")
    with httpx.Client(base_url=gw.url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}


# -- failures after the answer began: 200 + content, then one SSE error event, no [DONE] -------

TRUNCATED = server_error(
    "Upstream connection broke mid-stream (RemoteProtocolError); the answer is incomplete.",
    "upstream_stream_truncated",
)
MID_STREAM: dict[str, tuple[list[ReplyItem], int, dict[str, Any]]] = {
    "stall": (
        [Pause(IDLE * 6)],
        504,
        server_error(f"Upstream sent nothing for {IDLE:g} s (CODEX_UPSTREAM_IDLE_TIMEOUT).")
        | {"code": "upstream_timeout"},
    ),
    "connection-closed": ([Drop()], 502, TRUNCATED),
    "malformed-json": (
        [RawData(b'event: response.output_text.delta\ndata: {"type": "response.out\n\n')],
        502,
        server_error(
            'Upstream sent a malformed event: data line is not JSON: \'{"type": "response.out\'',
            "upstream_malformed_event",
        ),
    ),
    "response-failed": (
        ResponseScript().failed("server_error", "The model crashed."),
        502,
        server_error("The model crashed.", "server_error"),
    ),
}


@pytest.mark.parametrize("case", list(MID_STREAM))
def test_failure_mid_stream(gw: Gateway, upstream: FakeUpstream, case: str) -> None:
    tail, status, error = MID_STREAM[case]
    upstream.enqueue(Reply(events=[*started(), *tail]))
    outcome = ask(gw.url, stream=True)
    assert outcome.status == 200
    assert outcome.content == "partial"
    assert outcome.error == error
    assert outcome.lines[-1].startswith('data: {"error":')
    assert "data: [DONE]" not in outcome.lines
    assert not any('"finish_reason":"stop"' in line for line in outcome.lines)

    upstream.enqueue(Reply(events=[*started(), *tail]))
    outcome = ask(gw.url, stream=False)  # nothing sent yet: the error keeps its status
    assert (outcome.status, outcome.error) == (status, error)
    still_serves(gw, upstream)


def test_unknown_events_are_ignored_in_streams(gw: Gateway, upstream: FakeUpstream) -> None:
    s = ResponseScript()
    s.start()
    events: list[ReplyItem] = [*s.events]
    events += [RawData(b"event: response.never_seen_before\n\n")]  # no data line at all
    events += [{"type": "response.brand_new.delta", "delta": "not for the client", "x": [1]}]
    s.message(["visible", " text"])
    s.completed()
    events += s.events[2:5]
    events += [{"type": "codex.something_else", "payload": {"a": 1}}]
    events += s.events[5:]
    upstream.enqueue(Reply(events=events))
    outcome = ask(gw.url, stream=True)
    assert (outcome.status, outcome.error, outcome.content) == (200, None, "visible text")
    assert outcome.lines[-1] == "data: [DONE]"
    still_serves(gw, upstream)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_thirty_megabyte_event_line_passes_intact(
    gw: Gateway, upstream: FakeUpstream, stream: bool
) -> None:
    """An image result arrives as one ``output_item.done`` line; make it 30 MB."""
    b64 = "QUJD" * (30 * 1024 * 1024 // 4)
    s = ResponseScript()
    s.start()
    s.image(b64, revised_prompt="big")
    s.completed()
    upstream.enqueue(Reply(events=s.events))
    outcome = ask(gw.url, stream)
    assert (outcome.status, outcome.error) == (200, None)
    assert outcome.content == f"![big](data:image/png;base64,{b64})"
    still_serves(gw, upstream)


# -- the client goes away --------------------------------------------------------------------

REQUEST_TEMPLATE = (
    "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    "content-type: application/json\r\ncontent-length: {length}\r\n\r\n"
)


def raw_request(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload).encode()
    return REQUEST_TEMPLATE.format(length=len(data)).encode() + data


def image_reply(pause: float) -> Reply:
    """Text, then an image whose generation stalls for ``pause`` seconds."""
    s = ResponseScript()
    s.start()
    s.message(["Drawing"])
    head = len(s.events)
    s.image("aGVsbG8=", partials=[])
    s.completed()
    events: list[ReplyItem] = list(s.events)
    events.insert(head + 3, Pause(pause))  # after image_generation_call.generating
    return Reply(events=events)


# kind -> (reply, bytes the client waits for before leaving; None: until the fake has it)
CANCELS: dict[str, tuple[Callable[[float], Reply], bytes | None]] = {
    "before-first-byte": (lambda p: Reply(events=[*ResponseScript().start(), Pause(p)]), None),
    "mid-text": (lambda p: Reply(events=[*started(["first words"]), Pause(p)]), b"first words"),
    "image-generation": (image_reply, b"Drawing"),
}


async def cancel_one(
    port: int, kind: str, stream: bool, arrived: Callable[[], bool], read_timeout: float = 5.0
) -> None:
    """Send one request on a raw socket and hang up at the chosen moment."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw_request(body(stream)))
    await writer.drain()
    marker = CANCELS[kind][1]
    deadline = time.monotonic() + read_timeout
    if marker is None:
        while not arrived() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    else:
        seen = b""
        while marker not in seen and time.monotonic() < deadline:
            chunk = await asyncio.wait_for(reader.read(65536), read_timeout)
            if not chunk:
                break
            seen += chunk
        assert marker in seen, seen[:300]
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("kind", list(CANCELS))
def test_client_leaving_cancels_upstream_within_a_second(
    gw: Gateway, upstream: FakeUpstream, kind: str
) -> None:
    upstream.enqueue(CANCELS[kind][0](10))
    port = int(gw.url.rsplit(":", 1)[1])
    asyncio.run(cancel_one(port, kind, True, lambda: upstream.open_streams == 1))
    left_at = time.monotonic()
    assert wait_for(lambda: upstream.disconnects == 1, timeout=3)
    assert time.monotonic() - left_at < 1.0
    assert wait_for(lambda: upstream.open_streams == 0)
    still_serves(gw, upstream)


def gateway_tasks(gw: Gateway) -> int:
    """asyncio tasks alive in the gateway's event loop (minus the one counting them)."""
    loop = gw.server.servers[0].get_loop()

    async def count() -> int:
        return len(asyncio.all_tasks()) - 1

    return asyncio.run_coroutine_threadsafe(count(), loop).result(timeout=5)


def test_two_hundred_cancels_leak_no_task_or_connection(
    gw: Gateway, upstream: FakeUpstream
) -> None:
    still_serves(gw, upstream)  # warm: keep-alive connection to the fake, routes loaded
    tasks_before = gateway_tasks(gw)
    upstream_before = upstream.connections
    clients_before = len(gw.server.server_state.connections)
    port = int(gw.url.rsplit(":", 1)[1])
    batch = 40
    # a non-streaming client can only leave before the first byte: it sees nothing earlier
    plan = [
        ("before-first-byte", False),
        ("before-first-byte", True),
        ("mid-text", True),
        ("image-generation", True),
        ("before-first-byte", False),
    ]
    for kind, stream in plan:
        upstream.enqueue(*[CANCELS[kind][0](5) for _ in range(batch)])
        base = len(upstream.responses_requests)

        async def run_batch(kind: str = kind, stream: bool = stream, base: int = base) -> None:
            def arrived() -> bool:
                return len(upstream.responses_requests) >= base + batch

            await asyncio.gather(*[cancel_one(port, kind, stream, arrived) for _ in range(batch)])

        asyncio.run(run_batch())
    assert wait_for(lambda: upstream.disconnects == 200, timeout=5), upstream.disconnects
    assert wait_for(lambda: upstream.open_streams == 0)
    assert wait_for(lambda: upstream.connections <= upstream_before), (
        upstream.connections,
        upstream_before,
    )
    assert wait_for(lambda: len(gw.server.server_state.connections) <= clients_before)
    assert wait_for(lambda: gateway_tasks(gw) <= tasks_before), (gateway_tasks(gw), tasks_before)
    assert upstream.queued == 0
    still_serves(gw, upstream)


# -- a misbehaving token endpoint while requests arrive ---------------------------------------


@pytest.fixture
def expired_home(tmp_path: Path) -> Path:
    home = tmp_path / "codex-home"
    write_auth_json(home, access_exp=time.time() - 60)
    return home


def burst(gw: Gateway, count: int, first: Callable[[], bool] | None = None) -> list[Outcome]:
    """``count`` simultaneous non-streaming requests; with ``first``, one goes ahead and the
    others follow once ``first()`` holds (e.g. its refresh reached the token endpoint)."""
    results: list[Outcome] = []
    lock = threading.Lock()

    def one() -> None:
        outcome = ask(gw.url, stream=False)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(count)]
    threads[0].start()
    if first is not None:
        assert wait_for(first)
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


REFRESH_FAILED = "token_refresh_failed"
WINDOW = 1.5  # how long the first refresh takes: the other requests arrive meanwhile
BAD_TOKEN_ENDPOINT = {
    "down-503": (
        Reply(status=503, body=b"down", delay=WINDOW),
        "the token endpoint answered HTTP 503",
    ),
    "garbage-html": (
        Reply(status=200, body=b"<html>captive portal</html>", delay=WINDOW),
        "the token endpoint answered 200 without tokens",
    ),
    "slow": (
        Reply(status=200, body={"access_token": fake_jwt({"exp": 1})}, delay=5),
        f"the token endpoint did not answer within {WINDOW:g} s (CODEX_REFRESH_TIMEOUT)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TOKEN_ENDPOINT))
def test_bad_token_endpoint_fails_waiting_requests_together_then_recovers(
    make_gateway, upstream: FakeUpstream, expired_home: Path, case: str
) -> None:
    reply, reason = BAD_TOKEN_ENDPOINT[case]
    upstream.tokens.enqueue(*[reply] * 8)  # it keeps misbehaving if asked again
    gw = make_gateway(codex_home=expired_home, refresh_timeout=WINDOW if case == "slow" else 10.0)
    outcomes = burst(gw, 8, first=lambda: len(upstream.token_requests) == 1)
    assert [(o.status, o.error["code"] if o.error else None) for o in outcomes] == [
        (502, REFRESH_FAILED)
    ] * 8
    message = f"Token refresh failed: {reason}. The next request will try again."
    assert {o.error["message"] for o in outcomes if o.error} == {message}
    assert len(upstream.token_requests) == 1  # one call for all eight, no storm
    assert upstream.responses_requests == []

    upstream.tokens.clear()  # the endpoint is back
    outcome = ask(gw.url, stream=True)
    assert (outcome.status, outcome.content) == (200, "Mock reply to: hi")
    assert len(upstream.token_requests) == 2


def test_unreachable_token_endpoint(make_gateway, upstream: FakeUpstream, expired_home) -> None:
    gw = make_gateway(codex_home=expired_home, refresh_token_url="http://127.0.0.1:9/oauth/token")
    outcome = ask(gw.url, stream=False)
    assert outcome.status == 502
    assert outcome.error == server_error(
        "Token refresh failed: ConnectError from the token endpoint. "
        "The next request will try again.",
        REFRESH_FAILED,
    )
    with httpx.Client(base_url=gw.url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}


def test_slow_proactive_refresh_does_not_hold_up_requests(
    make_gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    old = write_auth_json(home, access_exp=time.time() + 120)["tokens"]["access_token"]
    gw = make_gateway(codex_home=home)  # skew 300 s: a refresh is due, the token still works
    upstream.tokens.delay = 1.0
    outcomes = burst(gw, 8, first=lambda: len(upstream.token_requests) == 1)
    assert [(o.status, o.content) for o in outcomes] == [(200, "Mock reply to: hi")] * 8
    assert len(upstream.token_requests) == 1
    used = [r.headers["authorization"] for r in upstream.responses_requests]
    assert used.count(f"Bearer {old}") >= 1  # served while the refresh was still under way


def test_client_leaving_mid_refresh_does_not_burn_the_login(
    make_gateway, upstream: FakeUpstream, expired_home: Path
) -> None:
    """The refresh token rotates when the endpoint answers; a departed client must not stop
    the gateway from saving the new one, or the next refresh would be refused as reused."""
    upstream.tokens.delay = 0.5
    gw = make_gateway(codex_home=expired_home)
    # /v1/images/* watch for the client leaving while they fetch credentials
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gw.url}/v1/images/generations", json={"prompt": "a fox"}, timeout=0.2)
    assert wait_for(lambda: "rt-rotated-" in (expired_home / "auth.json").read_text())
    upstream.tokens.delay = 0
    outcome = ask(gw.url, stream=False)
    assert (outcome.status, outcome.content) == (200, "Mock reply to: hi")
    assert len(upstream.token_requests) == 1


# -- auth.json changes under the running gateway -----------------------------------------------


@pytest.fixture(scope="module")
def auth_gateway(
    base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Path]]:
    home = tmp_path_factory.mktemp("auth-home")
    write_auth_json(home)
    server = start_gateway(replace(base_settings, codex_home=home))
    yield server, home
    server.stop()


@pytest.fixture
def home_gateway(auth_gateway: tuple[Gateway, Path]) -> tuple[Gateway, Path]:
    """One gateway for the auth.json tests (each starts from a fresh, valid login)."""
    write_auth_json(auth_gateway[1])
    return auth_gateway


def login_error(
    outcome: Outcome, hint: str = "Run `codex-proxy login` (or `codex login`) to sign in again."
) -> str:
    assert outcome.status == 401
    assert outcome.error is not None
    assert outcome.error["type"] == "authentication_error"
    assert outcome.error["message"].endswith(hint)
    return outcome.error["message"]


def test_auth_json_deleted_then_restored(
    home_gateway: tuple[Gateway, Path], upstream: FakeUpstream
) -> None:
    gw, home = home_gateway
    assert ask(gw.url, stream=False).status == 200
    (home / "auth.json").unlink()
    message = login_error(ask(gw.url, stream=True), SIGN_IN_HINT)  # signed out: not "again"
    assert message.startswith(f"Not signed in: {home / 'auth.json'} does not exist.")
    with httpx.Client(base_url=gw.url) as http:
        assert http.get("/healthz").status_code == 200
    token = write_auth_json(home)["tokens"]["access_token"]
    assert ask(gw.url, stream=False).content == "Mock reply to: hi"
    assert upstream.responses_requests[-1].headers["authorization"] == f"Bearer {token}"


def test_auth_json_replaced_by_a_new_login(
    home_gateway: tuple[Gateway, Path], upstream: FakeUpstream
) -> None:
    gw, home = home_gateway
    ask(gw.url, stream=False)
    other = home.parent / f"{home.name}-other-login"
    new = write_auth_json(other, access_exp=time.time() + 7200, refresh_token="rt-other")
    os.replace(other / "auth.json", home / "auth.json")  # an atomic swap, as `codex login` does
    assert ask(gw.url, stream=False).status == 200
    sent = upstream.responses_requests[-1].headers["authorization"]
    assert sent == f"Bearer {new['tokens']['access_token']}"


def test_auth_json_replaced_by_garbage_then_fixed(
    home_gateway: tuple[Gateway, Path], upstream: FakeUpstream
) -> None:
    gw, home = home_gateway
    ask(gw.url, stream=False)
    (home / "auth.json").write_text('{"tokens": {"access_token": "SECRET-HALF-WRITTEN')
    message = login_error(ask(gw.url, stream=False))
    assert message.startswith(f"{home / 'auth.json'} is not valid JSON.")
    assert "SECRET" not in message
    write_auth_json(home)
    assert ask(gw.url, stream=False).content == "Mock reply to: hi"


@pytest.mark.parametrize("how", ["chmod-000", "directory"])
def test_auth_json_unreadable_then_readable(
    home_gateway: tuple[Gateway, Path], upstream: FakeUpstream, how: str
) -> None:
    gw, home = home_gateway
    path = home / "auth.json"
    ask(gw.url, stream=False)
    if how == "chmod-000":
        if os.geteuid() == 0:
            pytest.skip("root reads any file")
        path.chmod(0)
        reason = "Permission denied"
    else:
        path.unlink()
        path.mkdir()
        reason = "Is a directory"
    try:
        message = login_error(ask(gw.url, stream=False))
        assert message.startswith(f"Cannot read {path}: {reason}.")
    finally:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.chmod(0o600)
    write_auth_json(home)
    assert ask(gw.url, stream=False).content == "Mock reply to: hi"


# -- the relay's reader fails in a way nobody planned: the client always hears of it ---------


def ask_bounded(url: str, stream: bool, keepalives: int = 40) -> Outcome:
    """Like :func:`ask`, but a stream that sends only keep-alives (a hung relay) is cut after
    ``keepalives`` of them and fails the test instead of waiting forever."""
    payload = body(stream)
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=payload, timeout=20) as response:
        if response.headers.get("content-type", "").startswith("application/json"):
            raw = json.loads(response.read())
            error = raw.get("error")
            return Outcome(response.status_code, response.headers, error, "", [])
        lines: list[str] = []
        seen = 0
        for line in response.iter_lines():
            seen += line == ": keep-alive"
            assert seen < keepalives, "the stream hangs: keep-alives and nothing else"
            if line:
                lines.append(line)
    error, parts = None, []
    for line in lines:
        if line.startswith("data: {"):
            event = json.loads(line[len("data: ") :])
            if "error" in event:
                error = event["error"]
            else:
                parts += [c["delta"].get("content") or "" for c in event["choices"]]
    return Outcome(response.status_code, response.headers, error, "".join(parts), lines)


@pytest.fixture
def ticking(make_gateway) -> Gateway:
    return make_gateway(sse_keepalive_seconds=0.05)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_corrupt_gzip_body_is_a_502(
    ticking: Gateway, upstream: FakeUpstream, stream: bool, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = RawData(b"this is not gzip at all " * 8)
    upstream.enqueue(Reply(events=[garbage], headers={"content-encoding": "gzip"}))
    outcome = ask_bounded(ticking.url, stream)
    assert outcome.status == 502
    assert outcome.error is not None
    assert outcome.error["code"] == "upstream_stream_failed"
    assert outcome.error["type"] == "server_error"
    assert "DecodingError" in outcome.error["message"]
    assert any("DecodingError" in r.getMessage() for r in caplog.records)
    still_serves(ticking, upstream)


def test_reader_failure_after_content_ends_the_stream_with_an_error_event(
    ticking: Gateway,
    upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from codex_proxy.upstream.client import UpstreamStream

    original = UpstreamStream.batches

    async def broken(self: UpstreamStream) -> Any:
        async for batch in original(self):
            yield batch
            if any(e.get("type") == "response.output_text.delta" for e in batch):
                raise RuntimeError("reader bug")

    monkeypatch.setattr(UpstreamStream, "batches", broken)
    upstream.enqueue(Reply(events=[*started(), Pause(1.0)]))
    outcome = ask_bounded(ticking.url, stream=True)
    assert outcome.status == 200
    assert outcome.content == "partial"
    assert outcome.error is not None
    assert outcome.error["code"] == "upstream_stream_failed"
    assert "RuntimeError" in outcome.error["message"]
    assert "data: [DONE]" not in outcome.lines
    assert any("RuntimeError" in r.getMessage() or r.exc_info for r in caplog.records)


# -- oversized answers: an event line over CODEX_MAX_EVENT_MB, a huge error body -------------


@pytest.fixture
def small_events(make_gateway) -> Gateway:
    return make_gateway(max_event_mb=0.05, upstream_idle_timeout=IDLE)  # 52 KB


TOO_LARGE = {
    "one-line": [RawData(b"data: " + b"x" * 200_000 + b"\n\n")],
    "line-never-ends": [RawData(b"data: " + b"x" * 200_000), Pause(IDLE * 20)],
    "many-data-lines": [RawData(b"data: " + b"y" * 30_000 + b"\n") for _ in range(4)],
}


@pytest.mark.parametrize("case", list(TOO_LARGE))
def test_event_over_the_limit_is_a_502(
    small_events: Gateway, upstream: FakeUpstream, case: str
) -> None:
    expected = server_error(
        "Upstream sent an event larger than this gateway accepts (0.05 MB, CODEX_MAX_EVENT_MB); "
        "the answer is incomplete.",
        "upstream_event_too_large",
    )
    upstream.enqueue(Reply(events=[*started(), *TOO_LARGE[case]]))
    outcome = ask_bounded(small_events.url, stream=True)
    assert (outcome.status, outcome.content, outcome.error) == (200, "partial", expected)
    assert "data: [DONE]" not in outcome.lines
    upstream.enqueue(Reply(events=[*started(), *TOO_LARGE[case]]))
    outcome = ask_bounded(small_events.url, stream=False)
    assert (outcome.status, outcome.error) == (502, expected)
    still_serves(small_events, upstream)


def test_event_under_the_limit_passes(small_events: Gateway, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response("z" * 40_000)))
    assert ask(small_events.url, stream=True).content == "z" * 40_000


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_huge_upstream_error_body_is_cut(gw: Gateway, upstream: FakeUpstream, stream: bool) -> None:
    upstream.enqueue(Reply(status=500, body=b"e" * (3 * 1024 * 1024)))
    outcome = ask(gw.url, stream=stream)
    assert outcome.status == 502
    assert outcome.error == server_error(
        "Upstream answered HTTP 500 with an error body over 1 MB; it was not read.",
        "upstream_error_too_large",
    )
    still_serves(gw, upstream)


def test_corrupt_gzip_error_body(gw: Gateway, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(status=500, body=b"not gzip", headers={"content-encoding": "gzip"}))
    outcome = ask(gw.url, stream=False)
    assert outcome.status == 502
    assert outcome.error == server_error("Upstream error (HTTP 500): Upstream answered HTTP 500.")
    still_serves(gw, upstream)
