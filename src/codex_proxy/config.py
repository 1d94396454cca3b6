"""One frozen Settings object, from the environment and an optional ``.env`` file.

This is the only module that reads ``os.environ``: everything else takes a :class:`Settings`.
Real environment variables win over the ``.env`` file.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from dotenv import dotenv_values

from codex_proxy._image_options import IMAGE_ENV_OPTIONS, ImageOptionError, check_option

CHATGPT_BASE_URL = "https://chatgpt.com/backend-api/codex"
OPENAI_BASE_URL = "https://api.openai.com/v1"
REFRESH_TOKEN_URL = "https://auth.openai.com/oauth/token"
AUTH_ISSUER = "https://auth.openai.com"
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
IMAGE_DELIVERIES = ("markdown", "images", "both", "url")
IMAGE_HISTORY_MODES = ("last", "all", "none")
LOG_FORMATS = ("text", "json")
UPSTREAM_TRANSPORTS = ("wire", "httpx")
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
    auth_issuer: str = AUTH_ISSUER
    model: str = DEFAULT_MODEL
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    models: tuple[str, ...] = BUILTIN_MODELS
    models_ttl: float = 300.0
    instructions: str = ""
    reasoning_summary: str = "auto"
    upstream_idle_timeout: float = 300.0
    upstream_connect_timeout: float = 10.0
    upstream_transport: str = "wire"
    sse_keepalive_seconds: float = 15.0
    refresh_skew_seconds: float = 300.0
    client_version: str = DEFAULT_CLIENT_VERSION
    originator: str = "codex_cli_rs"
    user_agent: str | None = None
    openai_beta: str = "responses=experimental"
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    log_level: str = "info"
    log_format: str = "text"
    mock: bool = False
    enable_image_gen: bool = False
    image_options: Mapping[str, Any] = field(default_factory=lambda: {"output_format": "png"})
    image_delivery: str = "markdown"
    image_dir: Path = field(default_factory=lambda: default_image_dir({}))
    public_base_url: str | None = None
    image_max_mb: float = 20.0
    image_history: str = "last"
    image_host_model: str | None = None
    image_concurrency: int = 4
    max_request_mb: float = 50.0
    max_messages: int = 2000
    max_images: int = 64
    cors_origins: tuple[str, ...] = ()
    refresh_timeout: float = 30.0
    data_dir: Path = field(default_factory=lambda: default_data_dir({}))
    responses_store: bool = True
    responses_ttl_days: int = 30
    keys_file: Path = field(default_factory=lambda: default_keys_file({}))

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


def setting_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """Names (never values) of the gateway settings set in the environment, so commands that
    install a service can warn that the service will not inherit them."""
    env = os.environ if environ is None else environ
    return sorted(
        name for name, value in env.items() if value and name.startswith(("CODEX_", "OPENAI_"))
    )


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
        auth_issuer=(get("CODEX_AUTH_ISSUER") or AUTH_ISSUER).rstrip("/"),
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
        upstream_transport=_choice(env, "CODEX_UPSTREAM_TRANSPORT", UPSTREAM_TRANSPORTS),
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
        log_format=_choice(env, "CODEX_LOG_FORMAT", LOG_FORMATS),
        mock=_bool(env, "CODEX_MOCK"),
        enable_image_gen=_bool(env, "CODEX_ENABLE_IMAGE_GEN"),
        image_options=_image_options(env),
        image_delivery=_choice(env, "CODEX_IMAGE_DELIVERY", IMAGE_DELIVERIES),
        image_dir=Path(get("CODEX_IMAGE_DIR")).expanduser()
        if get("CODEX_IMAGE_DIR")
        else default_image_dir(env),
        public_base_url=(get("CODEX_PUBLIC_BASE_URL") or "").rstrip("/") or None,
        image_max_mb=_float(env, "CODEX_IMAGE_MAX_MB", 20.0),
        image_history=_choice(env, "CODEX_IMAGE_HISTORY", IMAGE_HISTORY_MODES),
        image_host_model=get("CODEX_IMAGE_HOST_MODEL") or None,
        image_concurrency=_int(env, "CODEX_IMAGE_CONCURRENCY", 4, 1, 64),
        max_request_mb=_float(env, "CODEX_MAX_REQUEST_MB", 50.0),
        max_messages=_int(env, "CODEX_MAX_MESSAGES", 2000, 1, 1_000_000),
        max_images=_int(env, "CODEX_MAX_IMAGES", 64, 0, 100_000),
        cors_origins=tuple(o.rstrip("/") for o in _list(get("CODEX_CORS_ORIGINS"))),
        refresh_timeout=_float(env, "CODEX_REFRESH_TIMEOUT", 30.0),
        data_dir=Path(get("CODEX_DATA_DIR")).expanduser()
        if get("CODEX_DATA_DIR")
        else default_data_dir(env),
        responses_store=_bool(env, "CODEX_RESPONSES_STORE")
        if (get("CODEX_RESPONSES_STORE") or "").strip()
        else True,
        responses_ttl_days=_int(env, "CODEX_RESPONSES_TTL_DAYS", 30, 0, 36500),
        keys_file=Path(get("CODEX_KEYS_FILE")).expanduser()
        if get("CODEX_KEYS_FILE")
        else default_keys_file(env),
    )


def default_image_dir(env: Mapping[str, str]) -> Path:
    """A per-user data folder for url-mode images."""
    return default_data_dir(env) / "images"


def default_data_dir(env: Mapping[str, str]) -> Path:
    """The platform's per-user data folder (the stored responses hold conversations, so it is
    per user): XDG_DATA_HOME or ~/.local/share, ~/Library/Application Support, %LOCALAPPDATA%."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "codex-proxy"
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA")
        return (Path(base) if base else Path.home() / "AppData" / "Local") / "codex-proxy"
    base = env.get("XDG_DATA_HOME")
    root = Path(base).expanduser() if base else Path.home() / ".local" / "share"
    return root / "codex-proxy"


def default_keys_file(env: Mapping[str, str]) -> Path:
    """The client keys file in the platform's per-user config folder: XDG_CONFIG_HOME or
    ~/.config, ~/Library/Application Support, %APPDATA%."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "codex-proxy" / "keys.json"
    if sys.platform == "win32":
        base = env.get("APPDATA")
        root = Path(base) if base else Path.home() / "AppData" / "Roaming"
        return root / "codex-proxy" / "keys.json"
    base = env.get("XDG_CONFIG_HOME")
    root = Path(base).expanduser() if base else Path.home() / ".config"
    return root / "codex-proxy" / "keys.json"


def has_client_keys(path: Path) -> bool:
    """True when the keys file lists at least one key (a gateway then asks every client for
    one). Only a glance: the keys package validates the file."""
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("keys"), list) and bool(doc["keys"])


def _image_options(env: Mapping[str, str]) -> dict[str, Any]:
    """The configured image tool options; only those that are set (format defaults to png)."""
    options: dict[str, Any] = {}
    for name, field_name in IMAGE_ENV_OPTIONS.items():
        raw = env.get(name)
        if raw is None or raw.strip() == "":
            continue
        try:
            options[field_name] = check_option(field_name, raw.strip(), from_text=True)
        except ImageOptionError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    options.setdefault("output_format", "png")
    return options


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(name) or allowed[0]).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


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


def refuse_reason(settings: Settings) -> str | None:
    """Why the gateway must not start as configured, or None."""
    if settings.gateway_token or settings.loopback_only or settings.allow_no_auth:
        return None
    if has_client_keys(settings.keys_file):  # client keys are tokens too
        return None
    return (
        f"refusing to listen on {settings.host} without CODEX_GATEWAY_TOKEN: anyone who can reach "
        "the port could use your subscription. Set CODEX_GATEWAY_TOKEN, add client keys "
        "(codex-proxy keys add), bind to 127.0.0.1, or set "
        "CODEX_ALLOW_NO_AUTH=1 if something in front of the gateway already checks access."
    )


def local_url(host: str, port: int) -> str:
    """Where a local client reaches a gateway bound to ``host``."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"
