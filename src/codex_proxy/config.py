"""One frozen Settings object, from the environment and an optional ``.env`` file.

This is the only module that reads ``os.environ``: everything else takes a :class:`Settings`.
Real environment variables win over the ``.env`` file.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from dotenv import dotenv_values

CHATGPT_BASE_URL = "https://chatgpt.com/backend-api/codex"
OPENAI_BASE_URL = "https://api.openai.com/v1"
REFRESH_TOKEN_URL = "https://auth.openai.com/oauth/token"
DEFAULT_MODEL = "gpt-5.2-codex"
DEFAULT_CLIENT_VERSION = "0.135.0"
BUILTIN_MODELS = (
    "gpt-5.3-codex",
    "gpt-5.2-codex",
    "gpt-5.2",
    "gpt-5.1-codex-max",
    "gpt-5.1-codex-mini",
    "gpt-5.1",
)
AUTH_MODES = ("auto", "chatgpt", "api_key")
ENV_FILE_VARIABLE = "CODEX_ENV_FILE"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting has a value the gateway cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Every knob of the gateway. Build it with :func:`load_settings`."""

    host: str = "127.0.0.1"
    port: int = 8000
    gateway_token: str | None = None
    allow_no_auth: bool = False
    codex_home: Path = field(default_factory=lambda: Path.home() / ".codex")
    auth_mode: str = "auto"
    openai_api_key: str | None = None
    upstream_base_url: str | None = None
    refresh_token_url: str = REFRESH_TOKEN_URL
    model: str = DEFAULT_MODEL
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    models: tuple[str, ...] = BUILTIN_MODELS
    models_ttl: float = 300.0
    instructions: str = ""
    reasoning_summary: str = "auto"
    upstream_idle_timeout: float = 300.0
    upstream_connect_timeout: float = 10.0
    sse_keepalive_seconds: float = 15.0
    refresh_skew_seconds: float = 300.0
    client_version: str = DEFAULT_CLIENT_VERSION
    originator: str = "codex_cli_rs"
    user_agent: str | None = None
    openai_beta: str = "responses=experimental"
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    log_level: str = "info"
    mock: bool = False

    def base_url_for(self, mode: str) -> str:
        """The upstream base URL: the configured one, else the default of the auth mode."""
        if self.upstream_base_url:
            return self.upstream_base_url.rstrip("/")
        return CHATGPT_BASE_URL if mode == "chatgpt" else OPENAI_BASE_URL

    @property
    def auth_file(self) -> Path:
        return self.codex_home / "auth.json"

    @property
    def loopback_only(self) -> bool:
        """True when the bind address can only be reached from this machine."""
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(
    env_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: object,
) -> Settings:
    """Settings from ``environ`` (default ``os.environ``) over ``env_file`` (default ``./.env``,
    or the file named by ``CODEX_ENV_FILE``); keyword ``overrides`` (command-line flags) win."""
    real = dict(os.environ if environ is None else environ)
    path = env_file or real.get(ENV_FILE_VARIABLE)
    if path and not Path(path).is_file():
        raise ConfigError(f"env file not found: {path}")
    file_values = dotenv_values(path or ".env") if path or Path(".env").is_file() else {}
    env = {k: v for k, v in file_values.items() if v is not None}
    env.update(real)
    settings = _from_env(env)
    return _replace(settings, overrides) if overrides else settings


def export_for_workers(env_file: str | None, **values: object) -> None:
    """Hand command-line choices to worker processes, which build Settings from the environment."""
    if env_file:
        os.environ[ENV_FILE_VARIABLE] = str(Path(env_file).resolve())
    names = {
        "host": "CODEX_HOST",
        "port": "CODEX_PORT",
        "upstream_base_url": "CODEX_UPSTREAM_BASE_URL",
    }
    for key, value in values.items():
        if key == "mock":
            if value:
                os.environ["CODEX_MOCK"] = "1"
        elif value is not None:
            os.environ[names[key]] = str(value)


def _from_env(env: Mapping[str, str]) -> Settings:
    get = env.get
    auth_mode = (get("CODEX_AUTH_MODE") or "auto").strip().lower()
    if auth_mode not in AUTH_MODES:
        raise ConfigError(
            f"CODEX_AUTH_MODE must be one of {', '.join(AUTH_MODES)}, not {auth_mode!r}"
        )
    home = get("CODEX_HOME")
    return Settings(
        host=get("CODEX_HOST") or "127.0.0.1",
        port=_int(env, "CODEX_PORT", 8000, 0, 65535),
        gateway_token=get("CODEX_GATEWAY_TOKEN") or None,
        allow_no_auth=_bool(env, "CODEX_ALLOW_NO_AUTH"),
        codex_home=Path(home).expanduser() if home else Path.home() / ".codex",
        auth_mode=auth_mode,
        openai_api_key=get("OPENAI_API_KEY") or None,
        upstream_base_url=get("CODEX_UPSTREAM_BASE_URL") or get("CODEX_CODEX_BASE_URL") or None,
        refresh_token_url=get("CODEX_REFRESH_TOKEN_URL_OVERRIDE") or REFRESH_TOKEN_URL,
        model=get("CODEX_MODEL") or DEFAULT_MODEL,
        model_aliases=_string_map(
            get("CODEX_MODEL_ALIASES"), "CODEX_MODEL_ALIASES", '{"fast": "gpt-5.1-codex-mini"}'
        ),
        models=_list(get("CODEX_MODELS")) or BUILTIN_MODELS,
        models_ttl=_float(env, "CODEX_MODELS_TTL", 300.0),
        instructions=get("CODEX_INSTRUCTIONS") or "",
        reasoning_summary=(get("CODEX_REASONING_SUMMARY") or "auto").strip().lower(),
        upstream_idle_timeout=_float(env, "CODEX_UPSTREAM_IDLE_TIMEOUT", 300.0),
        upstream_connect_timeout=_float(env, "CODEX_UPSTREAM_CONNECT_TIMEOUT", 10.0),
        sse_keepalive_seconds=_float(env, "CODEX_SSE_KEEPALIVE_SECONDS", 15.0),
        refresh_skew_seconds=_float(env, "CODEX_REFRESH_SKEW_SECONDS", 300.0),
        client_version=get("CODEX_CLIENT_VERSION") or DEFAULT_CLIENT_VERSION,
        originator=get("CODEX_ORIGINATOR") or "codex_cli_rs",
        user_agent=get("CODEX_USER_AGENT") or None,
        openai_beta=get("CODEX_OPENAI_BETA", "responses=experimental"),
        extra_headers=_string_map(
            get("CODEX_EXTRA_HEADERS"), "CODEX_EXTRA_HEADERS", '{"x-name": "value"}'
        ),
        log_level=(get("CODEX_LOG_LEVEL") or "info").strip().lower(),
        mock=_bool(env, "CODEX_MOCK"),
    )


def _replace(settings: Settings, overrides: Mapping[str, object]) -> Settings:
    from dataclasses import replace

    return replace(settings, **{k: v for k, v in overrides.items() if v is not None})


def _bool(env: Mapping[str, str], name: str) -> bool:
    value = (env.get(name) or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of 1/true/yes/on or 0/false/no/off, not {value!r}")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0, not {raw!r}")
    return value


def _list(raw: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (raw or "").split(",") if item.strip())


def _string_map(raw: str | None, name: str, example: str) -> dict[str, str]:
    """A JSON object of strings to strings (model aliases, extra headers)."""
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{name} must be a JSON object: {exc}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{name} must map names to strings, e.g. {example}")
    return value
