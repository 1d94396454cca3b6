"""``GET /v1/status`` and ``codex-proxy status``: login, usage limits from the upstream's
``x-codex-*`` headers, counters; with the real SDK/httpx and the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from codex_proxy.mock.events import text_response
from codex_proxy.mock.server import FakeUpstream, Reply
from codex_proxy.upstream.rate_limits import RateLimits

from ..conftest import Gateway
from ..processes import clean_env, free_port

TOKEN = "gw-status-token-42"
LIMIT_HEADERS = {
    "x-codex-primary-used-percent": "12.5",
    "x-codex-primary-window-minutes": "300",
    "x-codex-primary-reset-after-seconds": "3600",
    "x-codex-secondary-used-percent": "40",
    "x-codex-secondary-window-minutes": "10080",
    "x-codex-secondary-reset-after-seconds": "86400",
    "x-codex-credits-has-credits": "False",
    "x-codex-credits-unlimited": "False",
    "x-codex-credits-balance": "0",
    "x-codex-plan-type": "plus",
}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def guarded(make_gateway) -> Gateway:
    return make_gateway(gateway_token=TOKEN, enable_image_gen=True)


def get_status(gateway: Gateway, path: str = "/v1/status") -> dict:
    answer = httpx.get(f"{gateway.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_snapshot_follows_the_upstream_headers(guarded: Gateway, upstream: FakeUpstream) -> None:
    # nothing reported by an answer yet: the usage endpoint fills in
    first = get_status(guarded)["rate_limits"]
    assert first["source"] == "usage endpoint" and first["primary"]["used_percent"] == 7
    resets_at = int(time.time()) + 90000  # reset-at wins over reset-after-seconds
    headers = {**LIMIT_HEADERS, "x-codex-secondary-reset-at": str(resets_at)}
    upstream.enqueue(Reply(events=text_response("Hello"), headers=headers))
    guarded.client().chat.completions.create(model="gpt-5.2-codex", messages=HI)
    limits = get_status(guarded)["rate_limits"]
    assert limits["source"] == "headers"
    assert abs(limits["primary"]["resets_at"] - (time.time() + 3600)) < 30
    assert limits["primary"]["used_percent"] == 12.5
    assert limits["primary"]["window_minutes"] == 300
    assert 3500 < limits["primary"]["resets_in_seconds"] <= 3600
    assert limits["secondary"]["used_percent"] == 40
    assert limits["secondary"]["window_minutes"] == 10080
    assert limits["secondary"]["resets_at"] == resets_at
    assert limits["credits"] == {"has_credits": False, "unlimited": False, "balance": "0"}
    assert limits["plan_type"] == "plus"

    # a 429 carries a newer snapshot too; an answer without the headers keeps the last one
    used_up = {**LIMIT_HEADERS, "x-codex-primary-used-percent": "100"}
    upstream.enqueue(
        Reply(
            status=429,
            body={"error": {"type": "usage_limit_reached", "message": "limit"}},
            headers=used_up,
        ),
        Reply(events=text_response("Hello")),
    )
    with httpx.Client(base_url=guarded.url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        body = {"model": "gpt-5.2-codex", "messages": HI}
        assert http.post("/v1/chat/completions", json=body).status_code == 429
        assert http.post("/v1/chat/completions", json=body).status_code == 200
    assert get_status(guarded)["rate_limits"]["primary"]["used_percent"] == 100


def test_counts_login_and_flags(guarded: Gateway, upstream: FakeUpstream) -> None:
    before = get_status(guarded)
    assert before["object"] == "codex_proxy.status"
    assert before["auth"]["mode"] == "chatgpt"
    assert before["auth"]["email"] == "user@example.com" and before["auth"]["plan"] == "plus"
    assert 3000 < before["auth"]["access_token_expires_in_seconds"] <= 3600
    assert before["image_generation"] is True and before["uptime_seconds"] >= 0
    client = guarded.client()
    client.chat.completions.create(model="gpt-5.2-codex", messages=HI)
    for _ in client.chat.completions.create(model="gpt-5.2-codex", messages=HI, stream=True):
        pass
    httpx.get(f"{guarded.url}/v1/models")  # no token: a 401
    after = get_status(guarded, "/status")  # the path without /v1 works too
    counts, old = after["requests"], before["requests"]
    assert counts["total"] == old["total"] + 4  # three above and the first status call
    assert counts["by_status"]["2xx"] == old["by_status"].get("2xx", 0) + 3
    assert counts["by_status"]["4xx"] == old["by_status"].get("4xx", 0) + 1
    assert counts["streaming"] == old["streaming"] + 1
    assert counts["in_flight"] == 1  # this very request
    assert after["uptime_seconds"] >= before["uptime_seconds"]


def test_gateway_auth_applies(guarded: Gateway, upstream: FakeUpstream) -> None:
    for path in ("/v1/status", "/status"):
        assert httpx.get(f"{guarded.url}{path}").status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.get(f"{guarded.url}{path}", headers=wrong).status_code == 401


def test_no_token_in_the_answer(guarded: Gateway, upstream: FakeUpstream) -> None:
    home = guarded.settings.codex_home
    tokens = json.loads((home / "auth.json").read_text())["tokens"]
    text = httpx.get(f"{guarded.url}/v1/status", headers={"Authorization": f"Bearer {TOKEN}"}).text
    for name in ("access_token", "refresh_token", "id_token"):
        assert tokens[name] not in text
    assert TOKEN not in text


def run_status(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codex_proxy", "status", *args],
        env=clean_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_status_command_table_and_json(
    guarded: Gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    upstream.enqueue(Reply(events=text_response("Hello"), headers=LIMIT_HEADERS))
    guarded.client().chat.completions.create(model="gpt-5.2-codex", messages=HI)
    port = guarded.url.rsplit(":", 1)[1]
    # base URL and token from the settings, as the gateway reads them
    table = run_status(tmp_path, CODEX_PORT=port, CODEX_GATEWAY_TOKEN=TOKEN)
    assert table.returncode == 0, table.stderr
    out = table.stdout
    assert f"gateway           {guarded.url} (codex-proxy" in out
    assert "auth              chatgpt, user@example.com, plan plus" in out
    assert "primary window    12.5% used of 5h 00m, resets" in out
    assert "secondary window  40% used of 7d 0h, resets" in out
    assert "credits           none, balance 0" in out
    assert "image generation  on" in out
    assert "requests          " in out and "1 in flight" in out
    assert TOKEN not in out

    as_json = run_status(tmp_path, "--json", "--url", f"{guarded.url}/v1", "--token", TOKEN)
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    assert payload["rate_limits"]["primary"]["used_percent"] == 12.5


def test_status_command_failures(guarded: Gateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    refused = run_status(tmp_path, "--url", guarded.url, "--token", "wrong")
    assert refused.returncode == 1 and "refused the gateway token" in refused.stderr
    nobody = run_status(tmp_path, "--url", f"http://127.0.0.1:{free_port()}")
    assert nobody.returncode == 1 and "no gateway answers" in nobody.stderr


def test_rate_limit_headers_of_other_families_and_junk() -> None:
    limits = RateLimits()
    assert limits.snapshot() is None
    limits.update(
        [
            ("X-Codex-Bengalfox-Primary-Used-Percent", "3"),
            ("x-codex-primary-used-percent", "junk"),
            ("x-codex-credits-unlimited", "True"),
        ]
    )
    snapshot = limits.snapshot()
    assert snapshot is not None
    assert snapshot["other_limits"] == {"codex_bengalfox": {"primary": {"used_percent": 3}}}
    assert snapshot["primary"] is None and snapshot["credits"] == {"unlimited": True}
    limits.update([("content-type", "text/plain")])  # no limit headers: the last snapshot stays
    assert limits.snapshot()["credits"] == {"unlimited": True}  # type: ignore[index]
