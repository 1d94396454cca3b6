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
    allowed_hosts: tuple[str, ...] = ()  # Host names besides loopback ones (rebinding guard)
    max_event_mb: float = 64.0  # one upstream SSE event (an image is one line of tens of MB)

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
        allowed_hosts=_hosts(get("CODEX_ALLOWED_HOSTS")),
        max_event_mb=_float(env, "CODEX_MAX_EVENT_MB", 64.0),
    )


def default_image_dir(env: Mapping[str, str]) -> Path:
    """A per-user data folder for url-mode images."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "codex-proxy" / "images"
    base = env.get("XDG_DATA_HOME")
    root = Path(base).expanduser() if base else Path.home() / ".local" / "share"
    return root / "codex-proxy" / "images"


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


def _hosts(raw: str | None) -> tuple[str, ...]:
    """Host names, lower case, without a port: ``a.example, B.example:8000`` -> both names."""
    names = []
    for item in _list(raw):
        name = item.lower()
        bracketed = name.startswith("[")
        if (bracketed and "]:" in name) or (not bracketed and name.count(":") == 1):
            name = name.rsplit(":", 1)[0]  # the port
        if not name or "/" in name or " " in name:
            raise ConfigError(f"CODEX_ALLOWED_HOSTS must list host names, not {item!r}")
        names.append(name)
    return tuple(names)


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
    if settings.gateway_token or settings.allow_no_auth:
        return None
    if settings.cors_origins:
        return (
            "refusing to allow web pages (CODEX_CORS_ORIGINS) without CODEX_GATEWAY_TOKEN: every "
            "listed website ('*': every website) could use your subscription from the browser of "
            "anyone who opens it. Set CODEX_GATEWAY_TOKEN (browser apps send it as their API "
            "key), or set CODEX_ALLOW_NO_AUTH=1 if something in front of the gateway already "
            "checks access."
        )
    if settings.loopback_only:
        return None
    return (
        f"refusing to listen on {settings.host} without CODEX_GATEWAY_TOKEN: anyone who can reach "
        "the port could use your subscription. Set CODEX_GATEWAY_TOKEN, bind to 127.0.0.1, or set "
        "CODEX_ALLOW_NO_AUTH=1 if something in front of the gateway already checks access."
    )


def checks_host(settings: Settings) -> bool:
    """Whether the gateway refuses requests whose ``Host`` is not a loopback name (or one of
    ``CODEX_ALLOWED_HOSTS``): on a loopback bind without a token, where DNS rebinding would let
    a web page read answers, and whenever ``CODEX_ALLOWED_HOSTS`` is set."""
    return bool(settings.allowed_hosts) or (settings.loopback_only and not settings.gateway_token)


def local_url(host: str, port: int) -> str:
    """Where a local client reaches a gateway bound to ``host``."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"
