"""``codex-proxy login`` / ``logout`` run as real processes against a fake issuer on loopback;
the test plays the browser with httpx."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from codex_proxy.login.callback import CallbackServer
from codex_proxy.login.oauth import LoginError, authorize_url, challenge_for, new_pkce, new_state

from ..fake_issuer import ACCOUNT, EMAIL, PLAN, REFRESH_TOKEN, USER_CODE, FakeIssuer
from ..fake_tools import BIN
from ..processes import clean_env

CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"


@pytest.fixture
def issuer() -> Iterator[FakeIssuer]:
    fake = FakeIssuer().start()
    yield fake
    fake.stop()


@pytest.fixture
def env(tmp_path: Path, issuer: FakeIssuer) -> dict[str, str]:
    return clean_env(tmp_path, CODEX_AUTH_ISSUER=issuer.url)


def auth_path(env: dict[str, str]) -> Path:
    return Path(env["CODEX_HOME"]) / "auth.json"


def start_login(env: dict[str, str], cwd: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``login --no-browser --port 0`` and read the authorize URL it prints."""
    proc = subprocess.Popen(
        [str(BIN / "codex-proxy"), "login", "--no-browser", "--port", "0", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "/oauth/authorize?" in line:
            return proc, line.strip()
    proc.wait(timeout=10)
    raise AssertionError(f"no authorize URL printed; stderr: {proc.stderr.read()}")  # type: ignore[union-attr]


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def assert_no_tokens(text: str, issuer: FakeIssuer) -> None:
    for token in issuer.tokens.values():
        assert token not in text


def test_browser_login_writes_auth_json(
    tmp_path: Path, env: dict[str, str], issuer: FakeIssuer
) -> None:
    path = auth_path(env)
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "OPENAI_API_KEY": "sk-old",
                "tokens": {"id_token": "old", "access_token": "old", "refresh_token": "old"},
                "last_refresh": "2020-01-01T00:00:00Z",
                "custom_setting": {"keep": True},
            }
        )
    )
    proc, url = start_login(env, tmp_path)
    params = query(url)
    assert url.startswith(f"{issuer.url}/oauth/authorize?")
    assert params["redirect_uri"].startswith("http://localhost:")
    assert params["redirect_uri"].endswith("/auth/callback")
    assert params["scope"] == "openid profile email offline_access"
    assert params["originator"] == "codex_cli_rs"
    assert params["id_token_add_organizations"] == "true"
    assert params["codex_cli_simplified_flow"] == "true"
    assert params["client_id"] == CLIENT_ID

    page = httpx.get(url, follow_redirects=True, timeout=30)  # the browser

    assert page.status_code == 200
    assert page.url.path == "/success"
    assert "signed in" in page.text
    code, out, err = finish(proc)
    assert code == 0, err
    assert EMAIL in out and PLAN in out and ACCOUNT in out
    assert_no_tokens(out + err + url, issuer)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["OPENAI_API_KEY"] is None
    assert saved["tokens"] == {**issuer.tokens, "account_id": ACCOUNT}
    assert saved["last_refresh"].endswith("Z") and saved["last_refresh"] > "2025"
    assert saved["custom_setting"] == {"keep": True}
    exchange = next(r for r in issuer.requests if r.path == "/oauth/token")
    assert exchange.body["redirect_uri"] == params["redirect_uri"]
    assert challenge_for(exchange.body["code_verifier"]) == params["code_challenge"]


def test_wrong_state_is_refused_but_the_login_keeps_waiting(
    tmp_path: Path, env: dict[str, str], issuer: FakeIssuer
) -> None:
    """Any web page can hit the callback; a wrong state gets a 400 page and changes nothing."""
    proc, url = start_login(env, tmp_path)
    callback = query(url)["redirect_uri"]
    for params in (
        {"code": "code-stolen", "state": "not-the-state"},
        {"error": "access_denied"},
        {},
    ):
        page = httpx.get(callback, params=params)
        assert page.status_code == 400
        assert "state mismatch" in page.text
    assert proc.poll() is None  # still waiting
    assert not any(r.path == "/oauth/token" for r in issuer.requests)
    page = httpx.get(url, follow_redirects=True, timeout=30)  # the real browser comes back
    assert page.url.path == "/success"
    code, out, err = finish(proc)
    assert code == 0, err
    assert EMAIL in out
    assert auth_path(env).exists()


def test_plan_without_codex(tmp_path: Path, env: dict[str, str], issuer: FakeIssuer) -> None:
    issuer.deny = "missing_codex_entitlement: this workspace has no Codex access"
    proc, url = start_login(env, tmp_path)
    page = httpx.get(url, follow_redirects=True, timeout=30)
    assert page.status_code == 400
    assert "does not include Codex" in page.text
    code, _, err = finish(proc)
    assert code == 1
    assert "plan does not include Codex" in err
    assert not auth_path(env).exists()


def cancel_url(proc: subprocess.Popen[str]) -> str:
    """The cancel command the waiting login prints (with its per-login secret)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if "/cancel?secret=" in line:
            return line.split("curl ", 1)[1].strip().strip("'")
    raise AssertionError("no cancel command printed")


def test_cancel_needs_the_login_secret(tmp_path: Path, env: dict[str, str]) -> None:
    proc, url = start_login(env, tmp_path)
    base = query(url)["redirect_uri"].removesuffix("/auth/callback")
    cancel = cancel_url(proc)
    assert cancel.startswith(f"{base}/cancel?secret=")
    for params in ({}, {"secret": ""}, {"secret": "guess"}):
        refused = httpx.get(f"{base}/cancel", params=params)
        assert refused.status_code == 403
    assert proc.poll() is None  # a web page cannot end the login
    assert httpx.get(cancel).status_code == 200
    code, _, err = finish(proc)
    assert code == 1
    assert "cancelled" in err


def test_timeout(tmp_path: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(BIN / "codex-proxy"), "login", "--no-browser", "--port", "0", "--timeout", "0.3"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "No sign-in arrived within 0.3 s" in result.stderr
    assert not auth_path(env).exists()


def test_device_login_with_one_pending_poll(
    tmp_path: Path, env: dict[str, str], issuer: FakeIssuer
) -> None:
    result = subprocess.run(
        [str(BIN / "codex-proxy"), "login", "--device", "--timeout", "30"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert USER_CODE in result.stdout
    assert f"{issuer.url}/codex/device" in result.stdout
    assert EMAIL in result.stdout
    assert_no_tokens(result.stdout + result.stderr, issuer)
    polls = [r for r in issuer.requests if r.path == "/api/accounts/deviceauth/token"]
    assert len(polls) == 2  # one "pending", then the code
    exchange = next(r for r in issuer.requests if r.path == "/oauth/token")
    assert exchange.body["redirect_uri"] == f"{issuer.url}/deviceauth/callback"
    saved = json.loads(auth_path(env).read_text())
    assert saved["tokens"]["refresh_token"] == REFRESH_TOKEN
    assert stat.S_IMODE(auth_path(env).stat().st_mode) == 0o600


def run_logout(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "codex-proxy"), "logout"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def write_login(env: dict[str, str], **extra: Any) -> Path:
    path = auth_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = {
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": "sk-keep-me",
        "tokens": {"id_token": "i", "access_token": "a", "refresh_token": REFRESH_TOKEN},
        "last_refresh": "2026-01-01T00:00:00Z",
        "custom_setting": [1, 2],
        **extra,
    }
    path.write_text(json.dumps(raw))
    return path


def test_logout_revokes_and_keeps_other_fields(
    tmp_path: Path, env: dict[str, str], issuer: FakeIssuer
) -> None:
    path = write_login(env)
    result = run_logout(env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Revoked the refresh token" in result.stdout
    assert REFRESH_TOKEN not in result.stdout + result.stderr
    revoke = next(r for r in issuer.requests if r.path == "/oauth/revoke")
    assert revoke.body == {
        "token": REFRESH_TOKEN,
        "token_type_hint": "refresh_token",
        "client_id": CLIENT_ID,
    }
    assert json.loads(path.read_text()) == {
        "OPENAI_API_KEY": "sk-keep-me",
        "custom_setting": [1, 2],
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_logout_when_revoke_fails(tmp_path: Path, env: dict[str, str], issuer: FakeIssuer) -> None:
    issuer.revoke_status = 500
    path = write_login(env)
    result = run_logout(env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Could not revoke the refresh token" in result.stdout
    assert "tokens" not in json.loads(path.read_text())


def test_logout_without_login(tmp_path: Path, env: dict[str, str]) -> None:
    result = run_logout(env, tmp_path)
    assert result.returncode == 0
    assert "Not logged in" in result.stdout


def test_pkce_and_authorize_url() -> None:
    pkce, state = new_pkce(), new_state()
    assert len(pkce.verifier) == 86 and "=" not in pkce.verifier  # 64 bytes, base64url
    assert len(state) == 43  # 32 bytes
    assert pkce.challenge == challenge_for(pkce.verifier)
    url = authorize_url("https://issuer.test", "http://localhost:1455/auth/callback", pkce, state)
    assert url.startswith("https://issuer.test/oauth/authorize?")
    assert query(url) == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": "http://localhost:1455/auth/callback",
        "scope": "openid profile email offline_access",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "id_token_add_organizations": "true",
        "codex_cli_simplified_flow": "true",
        "state": state,
        "originator": "codex_cli_rs",
    }


def test_busy_callback_port_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LoginError, match="--port"):
            CallbackServer("state", lambda code: "", ports=(port,))
