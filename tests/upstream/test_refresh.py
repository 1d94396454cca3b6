"""Token refresh end to end: running gateways, the fake upstream and its fake token endpoint."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from codex_proxy.mock.events import text_response
from codex_proxy.mock.server import FakeUpstream, Reply
from codex_proxy.mock.tokens import CLIENT_ID

from ..conftest import USER_AGENT_PREFIX, Gateway, write_auth_json
from ..processes import clean_env, free_port, running

USER = [{"role": "user", "content": "hi"}]
EXPIRED = {
    "error": {
        "message": "Provided authentication token is expired.",
        "type": "invalid_request_error",
        "code": "token_expired",
        "param": None,
    }
}


def auth_json(home: Path) -> dict:
    return json.loads((home / "auth.json").read_text())


@pytest.fixture
def expired_home(tmp_path: Path) -> Path:
    home = tmp_path / "codex-home"
    write_auth_json(home, access_exp=time.time() - 60, keep_me={"custom": [1, 2]})
    return home


def test_expired_token_is_refreshed_once_and_saved(
    make_gateway, upstream: FakeUpstream, expired_home: Path
) -> None:
    before = auth_json(expired_home)
    gw: Gateway = make_gateway(codex_home=expired_home)
    upstream.enqueue(Reply(events=text_response("fresh")))
    completion = gw.client().chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert completion.choices[0].message.content == "fresh"

    [refresh] = upstream.token_requests
    assert refresh.body == {
        "client_id": CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_token": "rt-initial",
    }
    after = auth_json(expired_home)
    assert after["tokens"]["refresh_token"].startswith("rt-rotated-")
    assert after["tokens"]["access_token"] != before["tokens"]["access_token"]
    assert after["keep_me"] == {"custom": [1, 2]}
    assert after["OPENAI_API_KEY"] is None
    assert after["last_refresh"] != before["last_refresh"]
    assert after["last_refresh"].endswith("Z")
    assert stat.S_IMODE((expired_home / "auth.json").stat().st_mode) == 0o600
    sent = upstream.responses_requests[-1].headers["authorization"]
    assert sent == f"Bearer {after['tokens']['access_token']}"


def test_fifty_concurrent_requests_share_one_refresh(
    make_gateway, upstream: FakeUpstream, expired_home: Path
) -> None:
    upstream.tokens.delay = 0.3
    gw: Gateway = make_gateway(codex_home=expired_home)

    async def burst() -> list[str | None]:
        async with gw.async_client() as client:
            calls = [
                client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
                for _ in range(50)
            ]
            return [c.choices[0].message.content for c in await asyncio.gather(*calls)]

    answers = asyncio.run(burst())
    assert answers == ["Mock reply to: hi"] * 50
    assert len(upstream.token_requests) == 1
    tokens = {r.headers["authorization"] for r in upstream.responses_requests}
    assert tokens == {f"Bearer {auth_json(expired_home)['tokens']['access_token']}"}


def test_two_processes_sharing_codex_home_refresh_once(
    upstream: FakeUpstream, expired_home: Path, tmp_path: Path
) -> None:
    upstream.tokens.delay = 0.5
    env = clean_env(
        tmp_path,
        CODEX_HOME=str(expired_home),
        CODEX_AUTH_MODE="chatgpt",
        CODEX_UPSTREAM_BASE_URL=upstream.url,
        CODEX_REFRESH_TOKEN_URL_OVERRIDE=f"{upstream.url}/oauth/token",
    )
    ports = [free_port(), free_port()]
    command = [sys.executable, "-m", "codex_proxy", "serve", "--port"]
    with (
        running([*command, str(ports[0])], ports[0], env, tmp_path) as first,
        running([*command, str(ports[1])], ports[1], env, tmp_path) as second,
    ):
        answers: list[str | None] = []

        def ask(url: str) -> None:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
            reply = client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
            answers.append(reply.choices[0].message.content)

        threads = [threading.Thread(target=ask, args=(url,)) for url in (first, second) * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert answers == ["Mock reply to: hi"] * 6
    assert len(upstream.token_requests) == 1


def test_upstream_401_mid_session_refreshes_and_retries_stream(
    make_gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    old = write_auth_json(home)["tokens"]["access_token"]  # valid by its exp, revoked upstream
    gw: Gateway = make_gateway(codex_home=home)
    upstream.enqueue(Reply(status=401, body=EXPIRED), Reply(events=text_response(["a", "b"])))
    stream = gw.client().chat.completions.create(model="gpt-5.2-codex", messages=USER, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "ab"
    first, second = upstream.responses_requests
    assert first.headers["authorization"] == f"Bearer {old}"
    assert second.headers["authorization"] == f"Bearer {auth_json(home)['tokens']['access_token']}"
    assert len(upstream.token_requests) == 1


def test_token_changed_by_another_process_is_used_without_refresh(
    make_gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    write_auth_json(home)
    gw: Gateway = make_gateway(codex_home=home)
    upstream.enqueue(Reply(status=401, body=EXPIRED, delay=0.5), Reply(events=text_response("ok")))
    # While the upstream takes its time to say 401, `codex login` rewrites auth.json.
    rewrite = threading.Timer(
        0.2, lambda: write_auth_json(home, access_exp=time.time() + 7200, refresh_token="rt-new")
    )
    rewrite.start()
    completion = gw.client().chat.completions.create(model="gpt-5.2-codex", messages=USER)
    rewrite.join()
    assert completion.choices[0].message.content == "ok"
    assert upstream.token_requests == []
    second = upstream.responses_requests[1]
    assert second.headers["authorization"] == f"Bearer {auth_json(home)['tokens']['access_token']}"


def test_revoked_refresh_token_is_401_without_retry_storm(
    make_gateway, upstream: FakeUpstream, expired_home: Path
) -> None:
    revoked = {"error": {"code": "refresh_token_expired", "message": "expired"}}
    upstream.tokens.enqueue(Reply(status=400, body=revoked))
    gw: Gateway = make_gateway(codex_home=expired_home)
    for _ in range(5):
        with pytest.raises(openai.AuthenticationError) as info:
            gw.client().chat.completions.create(model="gpt-5.2-codex", messages=USER)
        assert "codex-proxy login" in info.value.message
        assert info.value.code in ("refresh_token_expired", "refresh_token_invalid")
    assert len(upstream.token_requests) == 1
    assert upstream.responses_requests == []
    with httpx.Client(base_url=gw.url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}


def test_refresh_endpoint_down_then_back(
    make_gateway, upstream: FakeUpstream, expired_home: Path
) -> None:
    upstream.tokens.enqueue(Reply(status=503, body=b"down"), Reply(status=200, body=b"<html>"))
    gw: Gateway = make_gateway(codex_home=expired_home)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as info:
            gw.client().chat.completions.create(model="gpt-5.2-codex", messages=USER)
        assert info.value.status_code == 502
        assert info.value.code == "token_refresh_failed"
    completion = gw.client().chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert completion.choices[0].message.content == "Mock reply to: hi"
    assert len(upstream.token_requests) == 3
    assert auth_json(expired_home)["keep_me"] == {"custom": [1, 2]}


def test_failed_proactive_refresh_keeps_a_still_valid_token(
    make_gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    token = write_auth_json(home, access_exp=time.time() + 120)["tokens"]["access_token"]
    upstream.tokens.enqueue(Reply(status=500, body=b"oops"))
    gw: Gateway = make_gateway(codex_home=home)  # skew 300 s: refresh is due, but fails
    completion = gw.client().chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert completion.choices[0].message.content == "Mock reply to: hi"
    assert upstream.responses_requests[0].headers["authorization"] == f"Bearer {token}"


def test_old_login_without_readable_expiry_is_refreshed(
    make_gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    auth = write_auth_json(home, last_refresh="2026-10-01T00:00:00.123456789Z")
    auth["tokens"]["access_token"] = "opaque-token"
    (home / "auth.json").write_text(json.dumps(auth))
    gw: Gateway = make_gateway(codex_home=home)
    gw.client().chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert len(upstream.token_requests) == 1


def test_backend_headers_and_overrides(make_gateway, upstream: FakeUpstream) -> None:
    gw: Gateway = make_gateway()
    gw.client().chat.completions.create(model="gpt-5.2-codex", messages=USER)
    headers = upstream.responses_requests[-1].headers
    assert headers["openai-beta"] == "responses=experimental"
    assert headers["user-agent"].startswith(USER_AGENT_PREFIX)
    custom = make_gateway(
        user_agent="my-agent/1.0", openai_beta="", extra_headers={"x-codex-beta-features": "a,b"}
    )
    custom.client().chat.completions.create(model="gpt-5.2-codex", messages=USER)
    headers = upstream.responses_requests[-1].headers
    assert headers["user-agent"] == "my-agent/1.0"
    assert "openai-beta" not in headers
    assert headers["x-codex-beta-features"] == "a,b"
