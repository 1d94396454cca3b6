"""``codex-proxy config``, run as a user would: the effective settings, where each came from,
secrets masked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ..processes import clean_env

BIN = Path(sys.executable).parent
TOKEN = "gw-token-abcdefgh-9876"
KEY = "sk-secret-key-abcdefghij-5555"


def config(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "codex-proxy"), "config", *args],
        env=clean_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def layered(tmp_path: Path) -> Path:
    """A settings file, a ./.env over it, and (in the test) the environment over both."""
    settings = tmp_path / "config/codex-proxy/settings.env"
    settings.parent.mkdir(parents=True)
    settings.write_text(f"CODEX_PORT=9000\nCODEX_LOG_LEVEL=debug\nOPENAI_API_KEY={KEY}\n")
    (tmp_path / ".env").write_text(f"CODEX_PORT=9100\nCODEX_MODEL=\nCODEX_GATEWAY_TOKEN={TOKEN}\n")
    return settings


def test_json_names_the_source_of_every_setting(tmp_path: Path) -> None:
    settings = layered(tmp_path)
    result = config(tmp_path, "--json", CODEX_LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout and KEY not in result.stdout
    report = json.loads(result.stdout)
    assert report["order"] == ["environment", "./.env", f"settings file {settings}", "default"]
    rows = {row["name"]: row for row in report["settings"]}
    assert (rows["CODEX_PORT"]["value"], rows["CODEX_PORT"]["source"]) == ("9100", "./.env")
    assert rows["CODEX_PORT"]["note"] == f"overrides settings file {settings}"
    assert rows["CODEX_LOG_LEVEL"]["source"] == f"settings file {settings}"
    assert rows["CODEX_LOG_FORMAT"]["source"] == "environment"
    assert rows["CODEX_MODEL"]["note"] == "empty: the default applies"
    assert rows["CODEX_GATEWAY_TOKEN"]["value"] == "set (...9876)"
    assert rows["OPENAI_API_KEY"]["value"] == "set (...5555)"
    assert (rows["CODEX_HOST"]["value"], rows["CODEX_HOST"]["source"]) == ("127.0.0.1", "default")
    assert rows["CODEX_SHUTDOWN_GRACE_SECONDS"]["value"] == "5.0"


def test_table_lists_what_was_set(tmp_path: Path) -> None:
    layered(tmp_path)
    env_file = tmp_path / "other.env"
    env_file.write_text("CODEX_PORT=9200\n")
    result = config(tmp_path, "--env-file", str(env_file))
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout and KEY not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"precedence: environment > env file {env_file} > settings file")
    port = next(line for line in lines if line.startswith("CODEX_PORT "))
    assert "9200" in port and f"env file {env_file}" in port
    assert not any(line.startswith("CODEX_GATEWAY_TOKEN") for line in lines)  # .env not read
    assert not any(line.startswith("CODEX_HOST") for line in lines)  # a default: hidden
    assert "more at their default (--all lists them)" in result.stdout
    everything = config(tmp_path, "--all", "--env-file", str(env_file)).stdout
    assert any(line.startswith("CODEX_HOST ") for line in everything.splitlines())


def test_a_bad_value_is_shown_and_named(tmp_path: Path) -> None:
    result = config(tmp_path, "--json", CODEX_LOG_LEVEL="verbose")
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"].startswith("CODEX_LOG_LEVEL must be one of")
    assert "Traceback" not in result.stderr
