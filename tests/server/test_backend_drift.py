"""Staying current with the real backend, end to end (real gateway, fake upstream, openai SDK):
the default model from the catalog, the client version, refused models, an old client,
Cloudflare's refusals, and usage windows without spending a request (protocol.md 7.5, 7.6)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from codex_proxy.config import BUILTIN_MODELS, DEFAULT_CLIENT_VERSION, DEFAULT_MODEL
from codex_proxy.mock.events import text_response
from codex_proxy.mock.server import EDGE_BLOCKS, FakeUpstream, Reply

from ..conftest import Gateway, wait_for, write_auth_json

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def no_codex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ``codex`` executable on PATH (a fresh machine)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


@pytest.fixture
def fresh(make_gateway, no_codex: Path, tmp_path: Path) -> Gateway:
    """A fresh install: logged in, no CODEX_MODEL, no CODEX_CLIENT_VERSION, no Codex CLI."""
    home = tmp_path / "home"
    write_auth_json(home)
    return make_gateway(codex_home=home, model=None, client_version=None)


def sent(upstream: FakeUpstream) -> tuple[str, str]:
    """The model and ``version`` header of the last /responses request."""
    last = upstream.responses_requests[-1]
    return last.body["model"], last.headers["version"]


# -- default model and client version ---------------------------------------------------------


def test_fresh_install_sends_what_the_current_catalog_accepts(
    fresh: Gateway, upstream: FakeUpstream
) -> None:
    upstream.behave(catalog_only=True, min_client_version=DEFAULT_CLIENT_VERSION)
    client = fresh.client()
    answer = client.chat.completions.create(model="default", messages=HI)
    assert answer.choices[0].message.content == "Mock reply to: hi"
    assert sent(upstream) == ("gpt-6-astra", DEFAULT_CLIENT_VERSION)
    assert upstream.requests[0].query["client_version"] == DEFAULT_CLIENT_VERSION
    # no model at all (the SDK insists on one; plain HTTP does not)
    plain = httpx.post(f"{fresh.url}/v1/chat/completions", json={"messages": HI})
    assert plain.status_code == 200 and plain.json()["model"] == "gpt-6-astra"
    status = httpx.get(f"{fresh.url}/v1/status").json()
    assert status["default_model"] == "gpt-6-astra"
    assert status["client_version"] == {"value": DEFAULT_CLIENT_VERSION, "source": "built-in"}


def test_the_default_follows_the_catalog(
    make_gateway, no_codex: Path, upstream: FakeUpstream
) -> None:
    gw = make_gateway(model=None, models_ttl=0.2)
    client = gw.client()
    client.chat.completions.create(model="default", messages=HI)
    assert sent(upstream)[0] == "gpt-6-astra"
    upstream.set_default_model("gpt-6.2-sol")

    def moved() -> bool:
        client.chat.completions.create(model="default", messages=HI)
        return sent(upstream)[0] == "gpt-6.2-sol"

    assert wait_for(moved, timeout=5)
    # over the control surface too, as another process would move it
    httpx.post(f"{upstream.url}/_mock/models", json={"default": "gpt-5.5"}).raise_for_status()
    assert upstream.models[0]["slug"] == "gpt-5.5"


def test_a_request_naming_its_model_does_not_wait_for_the_catalog(
    fresh: Gateway, upstream: FakeUpstream
) -> None:
    fresh.client().chat.completions.create(model="gpt-5.5", messages=HI)
    assert [r.path for r in upstream.requests] == ["/responses"]


def test_catalog_unreadable_falls_back_and_says_so_once(
    fresh: Gateway, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.models_reply = Reply(status=500, body={"detail": "catalog down"})
    caplog.set_level(logging.WARNING, logger="codex_proxy")
    client = fresh.client()
    for _ in range(2):
        client.chat.completions.create(model="default", messages=HI)
        assert sent(upstream)[0] == DEFAULT_MODEL
    said = [r for r in caplog.records if "default model is the built-in" in r.getMessage()]
    assert len(said) == 1


def test_image_host_model_is_the_resolved_default(
    make_gateway, no_codex: Path, tmp_path: Path, upstream: FakeUpstream
) -> None:
    pytest.importorskip("PIL")
    home = tmp_path / "home"
    write_auth_json(home)
    # the tool route: a host chat model calls the image tool (native calls need no chat model)
    gw = make_gateway(codex_home=home, model=None, client_version=None, images_route="tool")
    gw.client().images.generate(prompt="a cat", size="1024x1024")
    assert sent(upstream)[0] == "gpt-6-astra"


def test_version_json_of_the_codex_cli_is_used(
    make_gateway, no_codex: Path, tmp_path: Path, upstream: FakeUpstream
) -> None:
    home = tmp_path / "with-cli"
    write_auth_json(home)
    (home / "version.json").write_text(json.dumps({"latest_version": "0.199.0"}))
    gw = make_gateway(codex_home=home, client_version=None)
    gw.client().chat.completions.create(model="gpt-5.5", messages=HI)
    assert sent(upstream)[1] == "0.199.0"
    assert upstream.responses_requests[-1].headers["user-agent"].startswith("codex_cli_rs/0.199.0")
    status = httpx.get(f"{gw.url}/v1/status").json()
    assert status["client_version"] == {"value": "0.199.0", "source": "version.json"}


def test_codex_on_path_is_asked(
    make_gateway, no_codex: Path, tmp_path: Path, upstream: FakeUpstream
) -> None:
    script = no_codex / "codex"
    script.write_text("#!/bin/sh\necho 'codex-cli 0.188.4'\n")
    script.chmod(0o755)
    home = tmp_path / "no-record"
    write_auth_json(home)
    gw = make_gateway(codex_home=home, client_version=None)
    gw.client().chat.completions.create(model="gpt-5.5", messages=HI)
    assert sent(upstream)[1] == "0.188.4"


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_refused_model_lists_the_catalog(
    fresh: Gateway, upstream: FakeUpstream, stream: bool
) -> None:
    upstream.behave(catalog_only=True)
    with pytest.raises(openai.BadRequestError) as caught:
        fresh.client().chat.completions.create(model="gpt-5.3-codex", messages=HI, stream=stream)
    error = caught.value
    assert error.code == "model_not_found" and error.param == "model"
    message = error.body["message"]
    assert "'gpt-5.3-codex'" in message
    assert "gpt-6-astra, gpt-5.6-sol, gpt-5.5, gpt-5.4-mini" in message
    assert "codex-internal-preview" not in message  # hidden models are not offered


@pytest.mark.parametrize("stream", [False, True])
def test_old_client_version_is_explained(
    make_gateway, upstream: FakeUpstream, stream: bool
) -> None:
    gw = make_gateway(client_version="0.135.0")
    upstream.behave(min_client_version="0.150.0")
    with pytest.raises(openai.BadRequestError) as caught:
        gw.client().chat.completions.create(model="gpt-6-astra", messages=HI, stream=stream)
    error = caught.value
    assert error.code == "client_version_too_old"
    message = error.body["message"]
    assert "version 0.135.0 (from CODEX_CLIENT_VERSION)" in message
    assert "Raise CODEX_CLIENT_VERSION" in message
    upstream.behave(min_client_version="0.135.0")  # the floor at our version: accepted
    gw.client().chat.completions.create(model="gpt-6-astra", messages=HI, stream=stream)


# -- Cloudflare -----------------------------------------------------------------------------


@pytest.fixture(params=sorted(EDGE_BLOCKS))
def blocked(request: pytest.FixtureRequest, upstream: FakeUpstream) -> Iterator[str]:
    upstream.behave(edge_block=request.param)
    yield request.param


@pytest.mark.parametrize("stream", [False, True])
def test_cloudflare_on_responses(
    gateway: Gateway, upstream: FakeUpstream, blocked: str, stream: bool
) -> None:
    body = {"model": "gpt-5.5", "messages": HI, "stream": stream}
    answer = httpx.post(f"{gateway.url}/v1/chat/completions", json=body)
    assert answer.status_code == 502
    assert answer.headers["x-should-retry"] == "false"
    error = answer.json()["error"]
    assert error["code"] == "upstream_blocked"
    assert "Cloudflare" in error["message"] and "CODEX_USER_AGENT" in error["message"]
    # once: no retry, no login refresh
    assert len(upstream.responses_requests) == 1
    assert upstream.token_requests == []
    with pytest.raises(openai.InternalServerError) as caught:  # the SDK sees it as such
        gateway.client(max_retries=2).chat.completions.create(model="gpt-5.5", messages=HI)
    assert caught.value.code == "upstream_blocked"
    assert len(upstream.responses_requests) == 2  # x-should-retry: false held the SDK back


def test_cloudflare_on_models(
    fresh: Gateway, upstream: FakeUpstream, blocked: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="codex_proxy")
    ids = [m.id for m in fresh.client().models.list().data]
    assert ids == list(BUILTIN_MODELS)
    catalog_calls = [r for r in upstream.requests if r.path == "/models"]
    assert len(catalog_calls) == 1 and upstream.token_requests == []
    assert any("Cloudflare" in r.getMessage() for r in caplog.records)


def test_the_gateway_never_forwards_a_client_user_agent(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    headers = {"User-Agent": "Mozilla/5.0 curl-impersonate"}
    body = {"model": "gpt-5.5", "messages": HI}
    httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers)
    agent = upstream.responses_requests[-1].headers["user-agent"]
    assert agent.startswith("codex_cli_rs/") and "Mozilla" not in agent


# -- usage without spending a request ---------------------------------------------------------


def usage_calls(upstream: FakeUpstream) -> int:
    return sum(r.path.endswith("/wham/usage") for r in upstream.requests)


def test_status_reads_the_usage_endpoint_once_a_minute(
    make_gateway, upstream: FakeUpstream
) -> None:
    gw = make_gateway()
    first = httpx.get(f"{gw.url}/v1/status").json()["rate_limits"]
    assert first["source"] == "usage endpoint"
    assert first["primary"]["used_percent"] == 7 and first["primary"]["window_minutes"] == 300
    assert first["secondary"]["window_minutes"] == 10080
    assert 0 < first["primary"]["resets_in_seconds"] <= 9000
    assert first["plan_type"] == "plus"
    httpx.get(f"{gw.url}/v1/status").raise_for_status()
    assert usage_calls(upstream) == 1  # cached
    assert upstream.responses_requests == []  # nothing spent


def test_usage_endpoint_failure_says_what_is_known_and_since_when(
    make_gateway, upstream: FakeUpstream
) -> None:
    gw = make_gateway()
    upstream.usage_reply = Reply(status=500, body={"detail": "usage down"})
    status = httpx.get(f"{gw.url}/v1/status").json()
    assert status["rate_limits"] is None
    problem = status["rate_limits_error"]
    assert "usage down" in problem["message"] and abs(problem["at"] - time.time()) < 60


def test_usage_endpoint_failure_keeps_the_last_snapshot(
    make_gateway, upstream: FakeUpstream
) -> None:
    gw = make_gateway()
    httpx.get(f"{gw.url}/v1/status").raise_for_status()  # a snapshot from the endpoint
    # the endpoint breaks; two minutes later the stale snapshot is asked again and that fails
    upstream.usage_reply = EDGE_BLOCKS["1010"]
    state = _app(gw).state
    state.usage._asked_at = None
    state.client.rate_limits._latest["updated_at"] -= 120
    status = httpx.get(f"{gw.url}/v1/status").json()
    assert status["rate_limits"]["primary"]["used_percent"] == 7
    assert status["rate_limits"]["age_seconds"] >= 120
    assert status["rate_limits_error"]["code"] == "upstream_blocked"


def test_in_stream_rate_limits_event_updates_the_snapshot(
    make_gateway, upstream: FakeUpstream
) -> None:
    gw = make_gateway()
    event = {
        "type": "codex.rate_limits",
        "plan_type": "pro",
        "rate_limits": {"primary": {"used_percent": 55, "window_minutes": 300}},
        "metered_limit_name": "codex",
    }
    events = text_response("Hello")
    upstream.enqueue(Reply(events=[events[0], event, *events[1:]]))
    for _ in gw.client().chat.completions.create(model="gpt-5.5", messages=HI, stream=True):
        pass
    limits = httpx.get(f"{gw.url}/v1/status").json()["rate_limits"]
    assert limits["source"] == "codex.rate_limits event"
    assert limits["primary"]["used_percent"] == 55 and limits["plan_type"] == "pro"
    assert usage_calls(upstream) == 0  # recent enough: the endpoint is not asked


def _app(gw: Gateway):
    """The Starlette app under the uvicorn server of an in-process gateway."""
    app = gw.server.config.loaded_app
    while not hasattr(app, "state"):
        app = app.app
    return app
