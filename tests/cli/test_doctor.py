"""``codex-proxy doctor`` as a user runs it: a subprocess, a temp CODEX_HOME, the fake upstream
and token endpoint, and a real gateway listening (or not) on the configured port."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codex_proxy.mock.server import FakeUpstream

from ..conftest import Gateway, write_auth_json
from ..processes import clean_env, free_port


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "codex-home"
    write_auth_json(path)
    return path


@pytest.fixture
def served(make_gateway, home: Path) -> Gateway:
    return make_gateway(codex_home=home)


def settings_env(tmp_path: Path, fake: FakeUpstream, home: Path, port: int) -> dict[str, str]:
    return {
        "CODEX_HOME": str(home),
        "CODEX_AUTH_MODE": "chatgpt",
        "CODEX_UPSTREAM_BASE_URL": fake.url,
        "CODEX_REFRESH_TOKEN_URL_OVERRIDE": f"{fake.url}/oauth/token",
        "CODEX_PORT": str(port),
    }


def secrets_in(home: Path) -> set[str]:
    try:
        tokens = json.loads((home / "auth.json").read_text())["tokens"]
    except (ValueError, KeyError, TypeError):
        return set()
    return {tokens[k] for k in ("access_token", "refresh_token", "id_token")}


def doctor(
    tmp_path: Path, settings: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    env = clean_env(tmp_path, HOME=str(tmp_path), **settings)  # HOME: no service installed
    home = Path(settings["CODEX_HOME"])
    secrets = secrets_in(home)
    result = subprocess.run(
        [sys.executable, "-m", "codex_proxy", "doctor", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    for secret in secrets | secrets_in(home):
        assert secret not in result.stdout + result.stderr, "a token was printed"
    return result


def port_of(gateway: Gateway) -> int:
    return int(gateway.url.rsplit(":", 1)[1])


def row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"{name} "))


def test_all_pass(tmp_path, upstream, served, home) -> None:
    result = doctor(tmp_path, settings_env(tmp_path, upstream, home, port_of(served)))
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert out.splitlines()[0].split() == ["CHECK", "RESULT", "DETAIL"]
    assert "ok      Python 3." in row(out, "python")
    assert f"ok      {home / 'auth.json'}, mode 0600" in row(out, "auth.json")
    assert "account user@example.com, plan plus" in row(out, "login")
    assert "ok      expires " in row(out, "access token")
    assert "info    not tried" in row(out, "refresh")
    assert f"ok      {upstream.url}/models answers" in row(out, "upstream")
    assert f"ok      listening at {served.url}, /healthz ok" in row(out, "gateway")
    assert "info    off" in row(out, "image generation")
    assert "info    systemd: not installed" in row(out, "service") or "launchd" in out
    assert out.rstrip().endswith("all checks passed")
    assert upstream.token_requests == []  # no refresh without --refresh


def test_broken_auth_json_and_no_gateway(tmp_path, upstream, home) -> None:
    (home / "auth.json").write_text("{not json")
    result = doctor(tmp_path, settings_env(tmp_path, upstream, home, free_port()))
    assert result.returncode == 1
    assert "FAIL    " in row(result.stdout, "auth.json") and "is not valid JSON" in result.stdout
    assert "fix: run `codex-proxy login`" in result.stdout
    assert "FAIL    nothing answers at http://127.0.0.1:" in row(result.stdout, "gateway")
    assert "fix: start it: `codex-proxy serve`" in result.stdout
    assert result.stdout.rstrip().endswith("check(s) failed")


def test_readable_by_others(tmp_path, upstream, served, home) -> None:
    (home / "auth.json").chmod(0o644)
    result = doctor(tmp_path, settings_env(tmp_path, upstream, home, port_of(served)))
    assert result.returncode == 1
    assert "mode 0644: other users can read your login" in row(result.stdout, "auth.json")
    assert f"fix: chmod 600 {home / 'auth.json'}" in result.stdout
    assert "ok      " in row(result.stdout, "upstream")  # the rest still checked


def test_json_and_env_file(tmp_path, upstream, served, home) -> None:
    env_file = tmp_path / "gateway.env"
    values = settings_env(tmp_path, upstream, home, port_of(served))
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    result = doctor(tmp_path, {"CODEX_HOME": str(home)}, "--json", "--env-file", str(env_file))
    assert result.returncode == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["ok"] is True
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["gateway"]["status"] == "ok" and checks["upstream"]["status"] == "ok"
    assert str(env_file) in checks["settings"]["detail"]
    assert set(checks["auth.json"]) == {"name", "status", "detail", "fix"}


@pytest.mark.parametrize("expired", [False, True])
def test_refresh(tmp_path, upstream, served, home, expired: bool) -> None:
    if expired:  # still one refresh, not one for the expiry and one for --refresh
        write_auth_json(home, access_exp=time.time() - 10)
    before = json.loads((home / "auth.json").read_text())["tokens"]
    result = doctor(tmp_path, settings_env(tmp_path, upstream, home, port_of(served)), "--refresh")
    assert result.returncode == 0, result.stdout
    assert len(upstream.token_requests) == 1
    assert upstream.token_requests[0].body["refresh_token"] == before["refresh_token"]
    after = json.loads((home / "auth.json").read_text())["tokens"]
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]  # rotated and saved
    assert f"ok      refreshed via {upstream.url}/oauth/token; saved" in row(
        result.stdout, "refresh"
    )
    assert before["refresh_token"] not in result.stdout


def test_refresh_rejected(tmp_path, upstream, served, home) -> None:
    from codex_proxy.mock.server import Reply

    upstream.tokens.enqueue(Reply(status=401, body={"error": "refresh_token_expired"}))
    result = doctor(tmp_path, settings_env(tmp_path, upstream, home, port_of(served)), "--refresh")
    assert result.returncode == 1
    assert "FAIL    Your ChatGPT login has expired" in row(result.stdout, "refresh")
    assert "fix: run `codex-proxy login`" in result.stdout


def test_client_version_and_its_source(tmp_path, upstream, served, home) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    values = settings_env(tmp_path, upstream, home, port_of(served))
    result = doctor(tmp_path, {**values, "PATH": str(empty)})
    assert "info    " in row(result.stdout, "client version")
    assert "(from built-in)" in row(result.stdout, "client version")
    (home / "version.json").write_text(json.dumps({"latest_version": "0.177.0"}))
    result = doctor(tmp_path, {**values, "PATH": str(empty)})
    assert "ok      0.177.0 (from version.json)" in row(result.stdout, "client version")
    assert upstream.requests[-1].query["client_version"] == "0.177.0"
    pinned = doctor(tmp_path, {**values, "CODEX_CLIENT_VERSION": "0.180.1"})
    assert "ok      0.180.1 (from CODEX_CLIENT_VERSION)" in row(pinned.stdout, "client version")


@pytest.mark.parametrize("shape", ["challenge", "1010"])
def test_cloudflare_is_recognised(tmp_path, upstream, served, home, shape: str) -> None:
    upstream.behave(edge_block=shape)
    result = doctor(tmp_path, settings_env(tmp_path, upstream, home, port_of(served)))
    assert result.returncode == 1
    assert "FAIL    " in row(result.stdout, "upstream") and "Cloudflare" in result.stdout
    assert "fix: Cloudflare refused this machine's connection, not the login" in result.stdout
    assert upstream.token_requests == []


def test_gateway_wants_a_token_these_settings_lack(tmp_path, upstream, make_gateway, home) -> None:
    served = make_gateway(codex_home=home, gateway_token="the-gateways-token")
    result = doctor(tmp_path, settings_env(tmp_path, upstream, home, port_of(served)))
    line = row(result.stdout, "gateway")
    assert "requires a gateway token, and these settings have none" in line
    assert "refuses the CODEX_GATEWAY_TOKEN" not in result.stdout
    assert "the-gateways-token" not in result.stdout
