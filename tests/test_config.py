"""Settings from environment and .env files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from codex_proxy.config import (
    BUILTIN_MODELS,
    CHATGPT_BASE_URL,
    OPENAI_BASE_URL,
    ConfigError,
    default_data_dir,
    default_image_dir,
    load_settings,
)


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.gateway_token is None
    assert settings.auth_mode == "auto"
    assert settings.codex_home == Path.home() / ".codex"
    assert settings.models == BUILTIN_MODELS
    assert settings.upstream_idle_timeout == 300
    assert settings.sse_keepalive_seconds == 15
    assert settings.base_url_for("chatgpt") == CHATGPT_BASE_URL
    assert settings.base_url_for("api_key") == OPENAI_BASE_URL


def test_dotenv_in_working_directory_and_env_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "CODEX_PORT=9100\nCODEX_MODEL=from-file\nCODEX_HOME=~/elsewhere\n"
    )
    settings = load_settings(environ={"CODEX_MODEL": "from-env"})
    assert settings.port == 9100
    assert settings.model == "from-env"
    assert settings.codex_home == Path.home() / "elsewhere"


def test_overrides_win_over_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={"CODEX_PORT": "9000"}, port=9200, host=None)
    assert settings.port == 9200
    assert settings.host == "127.0.0.1"


def test_missing_env_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="env file not found"):
        load_settings(tmp_path / "nope.env", environ={})


def test_aliases_models_and_compat_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        environ={
            "CODEX_MODEL_ALIASES": '{"fast": "gpt-5.1-codex-mini"}',
            "CODEX_MODELS": "a, b ,c",
            "CODEX_CODEX_BASE_URL": "http://127.0.0.1:1/base/",
            "CODEX_USE_CODEX_RESPONSES_API": "true",
        }
    )
    assert settings.model_aliases == {"fast": "gpt-5.1-codex-mini"}
    assert settings.models == ("a", "b", "c")
    assert settings.base_url_for("chatgpt") == "http://127.0.0.1:1/base"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CODEX_AUTH_MODE", "maybe", "CODEX_AUTH_MODE must be one of"),
        ("CODEX_PORT", "eighty", "CODEX_PORT must be a whole number"),
        ("CODEX_PORT", "70000", "CODEX_PORT must be between"),
        ("CODEX_ALLOW_NO_AUTH", "perhaps", "CODEX_ALLOW_NO_AUTH must be one of"),
        ("CODEX_MODEL_ALIASES", "[1]", "CODEX_MODEL_ALIASES must map names to strings"),
        ("CODEX_MODEL_ALIASES", "{oops", "CODEX_MODEL_ALIASES must be a JSON object"),
        ("CODEX_UPSTREAM_IDLE_TIMEOUT", "-1", "must be greater than 0"),
        ("CODEX_UPSTREAM_TRANSPORT", "h2", "CODEX_UPSTREAM_TRANSPORT must be one of wire, httpx"),
        ("CODEX_RESPONSES_STORE", "maybe", "CODEX_RESPONSES_STORE must be one of"),
        ("CODEX_RESPONSES_TTL_DAYS", "-1", "CODEX_RESPONSES_TTL_DAYS must be between 0"),
        ("CODEX_RESPONSES_TTL_DAYS", "1.5", "CODEX_RESPONSES_TTL_DAYS must be a whole number"),
    ],
)
def test_bad_values_name_the_variable(
    name: str, value: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={name: value})


def test_response_store_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    defaults = load_settings(environ={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert defaults.responses_store is True
    assert defaults.responses_ttl_days == 30
    if sys.platform not in ("darwin", "win32"):
        assert defaults.data_dir == tmp_path / "xdg" / "codex-proxy"
    chosen = load_settings(
        environ={
            "CODEX_DATA_DIR": "~/somewhere",
            "CODEX_RESPONSES_STORE": "off",
            "CODEX_RESPONSES_TTL_DAYS": "0",
        }
    )
    assert chosen.data_dir == Path.home() / "somewhere"
    assert (chosen.responses_store, chosen.responses_ttl_days) == (False, 0)
    assert load_settings(environ={"CODEX_RESPONSES_STORE": "on"}).responses_store is True


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {}, Path.home() / ".local" / "share" / "codex-proxy"),
        ("linux", {"XDG_DATA_HOME": "/x"}, Path("/x/codex-proxy")),
        ("darwin", {}, Path.home() / "Library" / "Application Support" / "codex-proxy"),
        ("win32", {"LOCALAPPDATA": "/la"}, Path("/la/codex-proxy")),
        ("win32", {}, Path.home() / "AppData" / "Local" / "codex-proxy"),
    ],
)
def test_default_data_dir_per_platform(
    platform: str, env: dict[str, str], expected: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", platform)
    assert default_data_dir(env) == expected
    assert default_image_dir(env) == expected / "images"


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="the XDG layout")
def test_keys_file(tmp_path: Path) -> None:
    from codex_proxy.config import default_keys_file

    assert load_settings(environ={"CODEX_KEYS_FILE": str(tmp_path / "k.json")}).keys_file == (
        tmp_path / "k.json"
    )
    xdg = load_settings(environ={"XDG_CONFIG_HOME": str(tmp_path)}).keys_file
    assert xdg == tmp_path / "codex-proxy" / "keys.json"
    assert default_keys_file({}) == Path.home() / ".config" / "codex-proxy" / "keys.json"
