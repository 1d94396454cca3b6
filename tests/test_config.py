"""Settings from environment and .env files."""

from __future__ import annotations

import re
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
    known_settings,
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


def test_model_and_client_version_are_found_when_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={"CODEX_MODEL": " ", "CODEX_CLIENT_VERSION": ""})
    assert settings.model is None and settings.client_version is None
    pinned = load_settings(environ={"CODEX_MODEL": "gpt-5.5", "CODEX_CLIENT_VERSION": "0.171.0"})
    assert (pinned.model, pinned.client_version) == ("gpt-5.5", "0.171.0")
    assert load_settings(environ={"CODEX_CLIENT_VERSION": "0.130.0-alpha.5"}).client_version


@pytest.mark.parametrize("value", ["latest", "0.171", "0.171.0\r\nx: y", "v0.171.0"])
def test_client_version_must_be_a_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="CODEX_CLIENT_VERSION"):
        load_settings(environ={"CODEX_CLIENT_VERSION": value})


def test_images_route_and_ttl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    defaults = load_settings(environ={})
    assert (defaults.images_route, defaults.image_ttl_days) == ("auto", 30)
    settings = load_settings(environ={"CODEX_IMAGES_ROUTE": "Native", "CODEX_IMAGE_TTL_DAYS": "0"})
    assert (settings.images_route, settings.image_ttl_days) == ("native", 0)
    with pytest.raises(ConfigError, match="CODEX_IMAGES_ROUTE"):
        load_settings(environ={"CODEX_IMAGES_ROUTE": "both"})
    with pytest.raises(ConfigError, match="CODEX_IMAGE_TTL_DAYS"):
        load_settings(environ={"CODEX_IMAGE_TTL_DAYS": "-1"})


# A bad value for every setting the gateway reads. A new setting has to be added here, and then
# has to be validated, or test_every_setting_is_validated fails.
BAD_VALUES = {
    "CODEX_ENV_FILE": "/no/such/file.env",
    "CODEX_SETTINGS_FILE": "/no/such/settings.env",
    "CODEX_HOST": "local host",
    "CODEX_PORT": "eighty",
    "CODEX_GATEWAY_TOKEN": "two words",
    "CODEX_ALLOW_NO_AUTH": "maybe",
    "CODEX_HOME": "/tmp/a\nb",
    "CODEX_AUTH_MODE": "sometimes",
    "OPENAI_API_KEY": "sk one two",
    "CODEX_UPSTREAM_BASE_URL": "chatgpt.com/backend-api",
    "CODEX_CODEX_BASE_URL": "ftp://example.com",
    "CODEX_REFRESH_TOKEN_URL_OVERRIDE": "auth.openai.com/oauth/token",
    "CODEX_AUTH_ISSUER": "https:///nohost",
    "CODEX_MODEL": "gpt 5",
    "CODEX_MODEL_ALIASES": "{oops",
    "CODEX_MODELS": "gpt-5.2, gpt 5.1",
    "CODEX_MODELS_TTL": "forever",
    "CODEX_INSTRUCTIONS": "be brief\x1b[31m",
    "CODEX_REASONING_SUMMARY": "verbose",
    "CODEX_UPSTREAM_IDLE_TIMEOUT": "-1",
    "CODEX_UPSTREAM_CONNECT_TIMEOUT": "10s",
    "CODEX_UPSTREAM_TRANSPORT": "h2",
    "CODEX_SSE_KEEPALIVE_SECONDS": "0",
    "CODEX_REFRESH_SKEW_SECONDS": "nan",
    "CODEX_CLIENT_VERSION": "0.135 beta",
    "CODEX_ORIGINATOR": "codex cli",
    "CODEX_USER_AGENT": "agent\r\nX-Injected: 1",
    "CODEX_OPENAI_BETA": "responses\n",
    "CODEX_EXTRA_HEADERS": '{"bad header": "x"}',
    "CODEX_LOG_LEVEL": "verbose",
    "CODEX_LOG_FORMAT": "xml",
    "CODEX_MOCK": "sometimes",
    "CODEX_ENABLE_IMAGE_GEN": "please",
    "CODEX_IMAGE_MODEL": "",  # any model name is accepted: see UNCHECKED
    "CODEX_IMAGE_SIZE": "big",
    "CODEX_IMAGE_QUALITY": "ultra",
    "CODEX_IMAGE_FORMAT": "gif",
    "CODEX_IMAGE_BACKGROUND": "plaid",
    "CODEX_IMAGE_COMPRESSION": "200",
    "CODEX_IMAGE_MODERATION": "none",
    "CODEX_IMAGE_PARTIAL_IMAGES": "9",
    "CODEX_IMAGE_DELIVERY": "email",
    "CODEX_IMAGE_DIR": "/tmp/x\x00y",
    "CODEX_PUBLIC_BASE_URL": "example.com",
    "CODEX_IMAGE_MAX_MB": "lots",
    "CODEX_IMAGE_HISTORY": "some",
    "CODEX_IMAGE_HOST_MODEL": "gpt 5",
    "CODEX_IMAGE_CONCURRENCY": "0",
    "CODEX_IMAGES_ROUTE": "sometimes",
    "CODEX_KEYS_FILE": "/tmp/a\nb.json",
    "CODEX_ALLOWED_HOSTS": "a.example/path",
    "CODEX_MAX_EVENT_MB": "huge",
    "CODEX_IMAGE_TTL_DAYS": "a month",
    "CODEX_DATA_DIR": "/tmp/a\nb",
    "CODEX_RESPONSES_STORE": "maybe",
    "CODEX_RESPONSES_TTL_DAYS": "-1",
    "CODEX_MAX_REQUEST_MB": "lots",
    "CODEX_MAX_MESSAGES": "1.5",
    "CODEX_MAX_IMAGES": "-1",
    "CODEX_CORS_ORIGINS": "https://chat.example.com/path",
    "CODEX_REFRESH_TIMEOUT": "soon",
    "CODEX_SHUTDOWN_GRACE_SECONDS": "-5",
}
UNCHECKED = {"CODEX_IMAGE_MODEL"}  # passed to the upstream as is (new image models appear)
SOURCES = [
    Path(__file__).resolve().parents[1] / "src/codex_proxy" / name
    for name in ("config.py", "_image_options.py")
]


def names_in_the_code() -> set[str]:
    """Every CODEX_/OPENAI_ name the settings code mentions in a string, from its source."""
    found: set[str] = set()
    for source in SOURCES:
        found |= set(
            re.findall(r"[\"']((?:CODEX|OPENAI)_[A-Z0-9_]*[A-Z0-9])[\"']", source.read_text())
        )
    return found


def test_every_setting_has_a_bad_value_here() -> None:
    missing = names_in_the_code() - set(BAD_VALUES)
    assert not missing, f"add a bad value for {sorted(missing)} to BAD_VALUES"
    assert set(known_settings()) <= set(BAD_VALUES)


@pytest.mark.parametrize("name", sorted(set(BAD_VALUES) - UNCHECKED))
def test_every_setting_is_validated(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={name: BAD_VALUES[name]})
    message = str(caught.value)
    assert name in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CODEX_MAX_REQUEST_MB", "lots", "must be a number of megabytes"),
        ("CODEX_IMAGE_MAX_MB", "lots", "must be a number of megabytes"),
        ("CODEX_PORT", "eighty", "must be a whole number (a TCP port)"),
        ("CODEX_LOG_LEVEL", "verbose", "must be one of info, debug, warning, error, critical"),
        ("CODEX_SHUTDOWN_GRACE_SECONDS", "-5", "must be 0 or more (seconds)"),
    ],
)
def test_messages_name_the_kind_and_unit(
    name: str, value: str, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=re.escape(f"{name} {expected}")):
        load_settings(environ={name: value})


def test_good_values_still_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        environ={
            "CODEX_SHUTDOWN_GRACE_SECONDS": "0",
            "CODEX_LOG_LEVEL": "WARNING",
            "CODEX_CORS_ORIGINS": "https://chat.example.com/, *",
            "CODEX_OPENAI_BETA": "",
            "CODEX_INSTRUCTIONS": "line one\nline two",
            "CODEX_EXTRA_HEADERS": '{"x-team": "a b"}',
            "CODEX_PUBLIC_BASE_URL": "https://img.example.com/",
        }
    )
    assert settings.shutdown_grace_seconds == 0
    assert settings.log_level == "warning"
    assert settings.cors_origins == ("https://chat.example.com", "*")
    assert settings.openai_beta == ""
    assert settings.instructions == "line one\nline two"
    assert settings.public_base_url == "https://img.example.com"


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="the XDG layout")
def test_keys_file(tmp_path: Path) -> None:
    from codex_proxy.config import default_keys_file

    assert load_settings(environ={"CODEX_KEYS_FILE": str(tmp_path / "k.json")}).keys_file == (
        tmp_path / "k.json"
    )
    xdg = load_settings(environ={"XDG_CONFIG_HOME": str(tmp_path)}).keys_file
    assert xdg == tmp_path / "codex-proxy" / "keys.json"
    assert default_keys_file({}) == Path.home() / ".config" / "codex-proxy" / "keys.json"
