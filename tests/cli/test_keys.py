"""``codex-proxy keys``, and keys enforced by a real ``serve --workers 2`` (limits hold across
the worker processes because they count in one SQLite file)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from codex_proxy.config import Settings, refuse_reason
from codex_proxy.keys.file import load, token_hash

from ..processes import clean_env, free_port, running

BIN = Path(sys.executable).parent
USER = [{"role": "user", "content": "Say hello"}]


def keys_cmd(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "codex-proxy"), "keys", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_add_list_revoke(tmp_path: Path) -> None:
    env = clean_env(tmp_path, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    path = tmp_path / "cfg" / "codex-proxy" / "keys.json"  # the default place
    added = keys_cmd(
        env,
        tmp_path,
        "add",
        "painter",
        "--models",
        "gpt-5*",
        "--rpm",
        "3",
        "--images-per-day",
        "4",
        "--expires",
        "2030-01-01",
    )
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert token.startswith("sk-cp-")
    assert path.stat().st_mode & 0o777 == 0o600
    assert token not in path.read_text()
    stored = load(path)["painter"]
    assert stored.hash == token_hash(token)
    assert stored.policy.rpm == 3 and stored.policy.images_per_day == 4
    assert stored.policy.models == ("gpt-5*",)
    assert keys_cmd(env, tmp_path, "add", "writer", "--deny-images").returncode == 0
    again = keys_cmd(env, tmp_path, "add", "writer")
    assert again.returncode == 2 and "a key named 'writer' exists" in again.stderr
    listed = keys_cmd(env, tmp_path, "list")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[1].split()[0] == "painter" and "3 requests per minute" in lines[1]
    assert lines[2].split()[0] == "writer" and "no images" in lines[2]
    assert token not in listed.stdout and stored.hash not in listed.stdout
    revoked = keys_cmd(env, tmp_path, "revoke", "painter")
    assert revoked.returncode == 0
    assert list(load(path)) == ["writer"]
    missing = keys_cmd(env, tmp_path, "revoke", "painter")
    assert missing.returncode == 1 and "no key named 'painter'" in missing.stderr


def test_bad_expiry_is_a_config_error(tmp_path: Path) -> None:
    env = clean_env(tmp_path, CODEX_KEYS_FILE=str(tmp_path / "k.json"))
    result = keys_cmd(env, tmp_path, "add", "a", "--expires", "soon")
    assert result.returncode == 2
    assert "expires must be an ISO date or date-time, not 'soon'" in result.stderr
    assert not (tmp_path / "k.json").exists()


def test_keys_count_as_a_token_for_a_public_bind(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    settings = Settings(host="0.0.0.0", keys_file=path)
    assert refuse_reason(settings) is not None
    path.write_text('{"keys": []}')
    assert refuse_reason(settings) is not None  # an empty file protects nothing
    env = clean_env(tmp_path, CODEX_KEYS_FILE=str(path))
    assert keys_cmd(env, tmp_path, "add", "agent").returncode == 0
    assert refuse_reason(settings) is None


def ask_six(url: str, token: str) -> list[int]:
    outcomes = []
    for _ in range(6):  # a fresh connection each time, so both workers take requests
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0)
        try:
            client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
            outcomes.append(200)
        except openai.RateLimitError:
            outcomes.append(429)
        finally:
            client.close()
    return outcomes


def test_limit_holds_across_two_workers(tmp_path: Path) -> None:
    env = clean_env(
        tmp_path, CODEX_KEYS_FILE=str(tmp_path / "keys.json"), CODEX_DATA_DIR=str(tmp_path / "d")
    )
    port = free_port()
    command = [str(BIN / "codex-proxy"), "serve", "--mock", "--workers", "2", "--port", str(port)]
    with running(command, port, env, tmp_path) as url:
        for attempt in range(2):  # the keys file is re-read: keys added while it runs count
            added = keys_cmd(env, tmp_path, "add", f"agent{attempt}", "--rpm", "3")
            token = added.stdout.strip().splitlines()[-1]
            minute = int(time.time() // 60)
            outcomes = ask_six(url, token)
            if int(time.time() // 60) == minute:
                break  # all six fell in one window (else a fresh window began: once more)
        assert outcomes == [200, 200, 200, 429, 429, 429]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="sk-cp-wrong", max_retries=0).models.list()


def test_status_table_names_the_key() -> None:
    from codex_proxy.cli.status import render_table

    key = {
        "name": "narrow",
        "remaining": {"requests": {"limit": "2 requests per minute", "remaining": 1}},
    }
    table = render_table("http://x", {"key": key}, now=0)
    assert "key               narrow (1 left of 2 requests per minute)" in table.splitlines()
    admin = render_table("http://x", {"key": {"name": "admin", "admin": True}}, now=0)
    assert any(line.endswith("admin (the gateway token: no limits)") for line in admin.splitlines())
