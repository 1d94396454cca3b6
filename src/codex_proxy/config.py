"""One frozen Settings object, from the environment, an env file and the settings file.

This is the only module that reads ``os.environ``: everything else takes a :class:`Settings`.
Precedence, highest first: command-line flags; the environment; the env file (``--env-file``
or ``CODEX_ENV_FILE``, else ``./.env``); the settings file (``CODEX_SETTINGS_FILE``, else
``settings.env`` in the platform's config folder, the file services read); the defaults.
Every value is checked here, once, with a message naming the variable and what it expects.
"""

from __future__ import annotations

import ipaddress
import os
import re
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
# Fallbacks only: the default model comes from the backend catalog and the client version from
# the Codex CLI installed here (upstream/client_version.py); these serve when neither can be read.
DEFAULT_MODEL = "gpt-5.5"
DEFAULT_CLIENT_VERSION = "0.171.0"
BUILTIN_MODELS = (
    "gpt-6-astra",
    "gpt-6.2-sol",
    "gpt-5.6-sol",
    "gpt-5.6-terra",
    "gpt-5.6-luna",
    "gpt-5.5",
    "gpt-5.4",
    "gpt-5.4-mini",
)
_CLIENT_VERSION = re.compile(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]{1,40})?")
AUTH_MODES = ("auto", "chatgpt", "api_key")
IMAGE_DELIVERIES = ("markdown", "images", "both", "url")
IMAGES_ROUTES = ("auto", "native", "tool")
IMAGE_HISTORY_MODES = ("last", "all", "none")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("info", "debug", "warning", "error", "critical")
REASONING_SUMMARIES = ("auto", "concise", "detailed", "none")
UPSTREAM_TRANSPORTS = ("wire", "httpx")
ENV_FILE_VARIABLE = "CODEX_ENV_FILE"
SETTINGS_FILE_VARIABLE = "CODEX_SETTINGS_FILE"
SECRETS = ("CODEX_GATEWAY_TOKEN", "OPENAI_API_KEY", "CODEX_EXTRA_HEADERS")
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
    model: str | None = None  # CODEX_MODEL; None: the backend catalog's default
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
    client_version: str | None = None  # CODEX_CLIENT_VERSION; None: found at startup
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
    images_route: str = "auto"
    image_ttl_days: int = 30
    max_request_mb: float = 50.0
    max_messages: int = 2000
    max_images: int = 64
    cors_origins: tuple[str, ...] = ()
    refresh_timeout: float = 30.0
    data_dir: Path = field(default_factory=lambda: default_data_dir({}))
    responses_store: bool = True
    responses_ttl_days: int = 30
    shutdown_grace_seconds: float = 5.0
    allowed_hosts: tuple[str, ...] = ()  # Host names besides loopback ones (rebinding guard)
    max_event_mb: float = 64.0  # one upstream SSE event (an image is one line of tens of MB)
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


@dataclass(frozen=True)
class Layer:
    """One place settings come from, and the values it holds."""

    source: str  # "environment", "./.env", "env file PATH", "settings file PATH"
    values: Mapping[str, str]


def load_settings(
    env_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: object,
) -> Settings:
    """Settings from ``environ`` (default ``os.environ``) over ``env_file`` (default ``./.env``,
    or the file named by ``CODEX_ENV_FILE``) over the settings file; keyword ``overrides``
    (command-line flags) win."""
    env: dict[str, str] = {}
    for layer in setting_layers(env_file, environ):
        env.update(layer.values)
    settings = _from_env(env)
    return _replace(settings, overrides) if overrides else settings


def setting_layers(
    env_file: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> list[Layer]:
    """Where settings come from, lowest precedence first (``codex-proxy config`` shows it)."""
    real = dict(os.environ if environ is None else environ)
    layers: list[Layer] = []
    settings_file = settings_file_path(real)
    if settings_file.is_file():
        layers.append(Layer(f"settings file {settings_file}", _read_env_file(settings_file)))
    elif real.get(SETTINGS_FILE_VARIABLE):
        raise ConfigError(
            f"{SETTINGS_FILE_VARIABLE} must name an existing file, not {str(settings_file)!r}"
        )
    path = env_file or real.get(ENV_FILE_VARIABLE)
    if path:
        if not Path(path).is_file():
            named = "" if env_file else f" ({ENV_FILE_VARIABLE})"
            raise ConfigError(f"env file not found: {path}{named}")
        layers.append(Layer(f"env file {path}", _read_env_file(Path(path))))
    elif Path(".env").is_file():
        layers.append(Layer("./.env", _read_env_file(Path(".env"))))
    layers.append(Layer("environment", real))
    return layers


def settings_file_path(environ: Mapping[str, str] | None = None) -> Path:
    """The gateway's own settings file: ``CODEX_SETTINGS_FILE``, else ``settings.env`` in the
    platform's config folder (``$XDG_CONFIG_HOME/codex-proxy``, ``~/.config/codex-proxy``, or
    ``~/Library/Application Support/codex-proxy`` on macOS). Services always read it."""
    env = os.environ if environ is None else environ
    named = env.get(SETTINGS_FILE_VARIABLE)
    if named:
        return Path(named).expanduser().absolute()
    return config_dir(env) / "settings.env"


def config_dir(env: Mapping[str, str]) -> Path:
    """The platform's per-user config folder of the gateway (settings file, client keys):
    XDG_CONFIG_HOME or ~/.config, ~/Library/Application Support, %APPDATA%."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "codex-proxy"
    if sys.platform == "win32":
        base = env.get("APPDATA")
        return (Path(base) if base else Path.home() / "AppData" / "Roaming") / "codex-proxy"
    base = env.get("XDG_CONFIG_HOME")
    root = Path(base).expanduser() if base else Path.home() / ".config"
    return root / "codex-proxy"


def known_settings() -> list[str]:
    """Every CODEX_/OPENAI_ variable the gateway reads, in the order it reads them."""
    recorder = _Recorder()
    _from_env(recorder)
    names = [ENV_FILE_VARIABLE, SETTINGS_FILE_VARIABLE]
    for name in recorder.read:
        if name.startswith(("CODEX_", "OPENAI_")) and name not in names:
            names.append(name)
    return names


class _Recorder(dict):  # type: ignore[type-arg]
    """An empty environment that remembers which names were asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.read: list[str] = []

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.read.append(key)
        return super().get(key, default)


def _read_env_file(path: Path) -> dict[str, str]:
    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return {k: v for k, v in values.items() if v is not None}


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
    home = _text(env, "CODEX_HOME", "")
    image_dir = _text(env, "CODEX_IMAGE_DIR", "")
    data_dir = _text(env, "CODEX_DATA_DIR", "")
    keys_file = _text(env, "CODEX_KEYS_FILE", "")
    base_url = _url(env, "CODEX_UPSTREAM_BASE_URL") or _url(env, "CODEX_CODEX_BASE_URL")
    return Settings(
        host=_word(env, "CODEX_HOST", "127.0.0.1", "an address such as 127.0.0.1 or 0.0.0.0"),
        port=_int(env, "CODEX_PORT", 8000, 0, 65535, "a TCP port"),
        gateway_token=_word(env, "CODEX_GATEWAY_TOKEN", "", "a token without spaces") or None,
        allow_no_auth=_bool(env, "CODEX_ALLOW_NO_AUTH"),
        codex_home=Path(home).expanduser() if home else Path.home() / ".codex",
        auth_mode=_choice(env, "CODEX_AUTH_MODE", AUTH_MODES),
        openai_api_key=_word(env, "OPENAI_API_KEY", "", "a key without spaces") or None,
        upstream_base_url=base_url,
        refresh_token_url=_url(env, "CODEX_REFRESH_TOKEN_URL_OVERRIDE") or REFRESH_TOKEN_URL,
        auth_issuer=_url(env, "CODEX_AUTH_ISSUER") or AUTH_ISSUER,
        model=_word(env, "CODEX_MODEL", "", "a model name") or None,
        model_aliases=_string_map(
            get("CODEX_MODEL_ALIASES"), "CODEX_MODEL_ALIASES", '{"fast": "gpt-5.4-mini"}'
        ),
        models=_words(env, "CODEX_MODELS", "model names") or BUILTIN_MODELS,
        models_ttl=_float(env, "CODEX_MODELS_TTL", 300.0),
        instructions=_text(env, "CODEX_INSTRUCTIONS", "", multiline=True),
        reasoning_summary=_choice(env, "CODEX_REASONING_SUMMARY", REASONING_SUMMARIES),
        upstream_idle_timeout=_float(env, "CODEX_UPSTREAM_IDLE_TIMEOUT", 300.0),
        upstream_connect_timeout=_float(env, "CODEX_UPSTREAM_CONNECT_TIMEOUT", 10.0),
        upstream_transport=_choice(env, "CODEX_UPSTREAM_TRANSPORT", UPSTREAM_TRANSPORTS),
        sse_keepalive_seconds=_float(env, "CODEX_SSE_KEEPALIVE_SECONDS", 15.0),
        refresh_skew_seconds=_float(env, "CODEX_REFRESH_SKEW_SECONDS", 300.0),
        client_version=_client_version(get("CODEX_CLIENT_VERSION")),
        originator=_word(env, "CODEX_ORIGINATOR", "codex_cli_rs", "a name without spaces"),
        user_agent=_text(env, "CODEX_USER_AGENT", "") or None,
        openai_beta=_text(env, "CODEX_OPENAI_BETA", "responses=experimental", empty_ok=True),
        extra_headers=_string_map(
            get("CODEX_EXTRA_HEADERS"), "CODEX_EXTRA_HEADERS", '{"x-name": "value"}', header=True
        ),
        log_level=_choice(env, "CODEX_LOG_LEVEL", LOG_LEVELS),
        log_format=_choice(env, "CODEX_LOG_FORMAT", LOG_FORMATS),
        mock=_bool(env, "CODEX_MOCK"),
        enable_image_gen=_bool(env, "CODEX_ENABLE_IMAGE_GEN"),
        image_options=_image_options(env),
        image_delivery=_choice(env, "CODEX_IMAGE_DELIVERY", IMAGE_DELIVERIES),
        image_dir=Path(image_dir).expanduser() if image_dir else default_image_dir(env),
        public_base_url=_url(env, "CODEX_PUBLIC_BASE_URL"),
        image_max_mb=_float(env, "CODEX_IMAGE_MAX_MB", 20.0, "megabytes"),
        image_history=_choice(env, "CODEX_IMAGE_HISTORY", IMAGE_HISTORY_MODES),
        image_host_model=_word(env, "CODEX_IMAGE_HOST_MODEL", "", "a model name") or None,
        image_concurrency=_int(env, "CODEX_IMAGE_CONCURRENCY", 4, 1, 64, "simultaneous jobs"),
        images_route=_choice(env, "CODEX_IMAGES_ROUTE", IMAGES_ROUTES),
        image_ttl_days=_int(env, "CODEX_IMAGE_TTL_DAYS", 30, 0, 36500, "days"),
        max_request_mb=_float(env, "CODEX_MAX_REQUEST_MB", 50.0, "megabytes"),
        max_messages=_int(env, "CODEX_MAX_MESSAGES", 2000, 1, 1_000_000, "messages"),
        max_images=_int(env, "CODEX_MAX_IMAGES", 64, 0, 100_000, "images"),
        cors_origins=_origins(env, "CODEX_CORS_ORIGINS"),
        refresh_timeout=_float(env, "CODEX_REFRESH_TIMEOUT", 30.0),
        data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(env),
        responses_store=_bool(env, "CODEX_RESPONSES_STORE")
        if (get("CODEX_RESPONSES_STORE") or "").strip()
        else True,
        responses_ttl_days=_int(env, "CODEX_RESPONSES_TTL_DAYS", 30, 0, 36500, "days"),
        shutdown_grace_seconds=_float(env, "CODEX_SHUTDOWN_GRACE_SECONDS", 5.0, zero_ok=True),
        allowed_hosts=_hosts(get("CODEX_ALLOWED_HOSTS")),
        max_event_mb=_float(env, "CODEX_MAX_EVENT_MB", 64.0, "megabytes"),
        keys_file=Path(keys_file).expanduser() if keys_file else default_keys_file(env),
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
    """The client keys file, in the gateway's config folder."""
    return config_dir(env) / "keys.json"


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
    value = (env.get(name) or "").strip().lower() or allowed[0]
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


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int, unit: str) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number ({unit}), not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high} ({unit}), not {value}")
    return value


def _float(
    env: Mapping[str, str],
    name: str,
    default: float,
    unit: str = "seconds",
    *,
    zero_ok: bool = False,
) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of {unit}, not {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{name} must be a finite number of {unit}, not {raw!r}")
    if value < 0 or (value == 0 and not zero_ok):
        least = "0 or more" if zero_ok else "greater than 0"
        raise ConfigError(f"{name} must be {least} ({unit}), not {raw!r}")
    return value


def _client_version(raw: str | None) -> str | None:
    """A Codex release number such as 0.171.0 (it goes into a header), or None when unset."""
    value = (raw or "").strip()
    if not value:
        return None
    if not _CLIENT_VERSION.fullmatch(value):
        raise ConfigError(f"CODEX_CLIENT_VERSION must be a version such as 0.171.0, not {raw!r}")
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


def _text(
    env: Mapping[str, str],
    name: str,
    default: str,
    *,
    multiline: bool = False,
    empty_ok: bool = False,
) -> str:
    """Free text (a path, a header value, instructions): no control characters, which would
    break a header or a path; line breaks only where text may have several lines."""
    raw = env.get(name)
    if raw is None or (raw == "" and not empty_ok):
        return default
    allowed = "\t\n\r" if multiline else "\t"
    bad = next((c for c in raw if (ord(c) < 32 or ord(c) == 127) and c not in allowed), None)
    if bad is not None:
        kind = "text" if multiline else "one line of text"
        raise ConfigError(f"{name} must be {kind} without control characters (found {bad!r})")
    return raw if multiline else raw.strip()


def _word(env: Mapping[str, str], name: str, default: str, kind: str) -> str:
    """One word: a host, a token, a model name; a space inside is a mistake."""
    value = _text(env, name, default)
    if any(c.isspace() for c in value):
        raise ConfigError(f"{name} must be {kind}, not {value!r}")
    return value


def _words(env: Mapping[str, str], name: str, kind: str) -> tuple[str, ...]:
    items = _list(_text(env, name, ""))
    for item in items:
        if any(c.isspace() for c in item):
            raise ConfigError(f"{name} must be comma-separated {kind}, not {item!r}")
    return items


def _url(env: Mapping[str, str], name: str) -> str | None:
    """An http(s) URL without a trailing slash, or None when unset."""
    value = _text(env, name, "")
    if not value:
        return None
    scheme, _, rest = value.partition("://")
    if scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
        raise ConfigError(f"{name} must be an http:// or https:// URL, not {value!r}")
    if any(c.isspace() for c in value):
        raise ConfigError(f"{name} must be a URL without spaces, not {value!r}")
    return value.rstrip("/")


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Browser origins (scheme://host[:port]) or ``*``."""
    origins = []
    for item in _list(_text(env, name, "")):
        origin = item.rstrip("/")
        if origin != "*":
            scheme, _, rest = origin.partition("://")
            if scheme.lower() not in ("http", "https") or not rest or "/" in rest:
                raise ConfigError(
                    f"{name} must list origins like https://chat.example.com (or *), not {item!r}"
                )
        origins.append(origin)
    return tuple(origins)


def _string_map(
    raw: str | None, name: str, example: str, *, header: bool = False
) -> dict[str, str]:
    """A JSON object of strings to strings (model aliases, extra headers)."""
    if not raw or not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{name} must be a JSON object: {exc}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError(f"{name} must map names to strings, e.g. {example}")
    if header:
        for key, text in value.items():
            if (
                not key
                or any(c.isspace() or ord(c) < 33 or c == ":" for c in key)
                or any(ord(c) < 32 and c != "\t" for c in text)
            ):
                raise ConfigError(f"{name} must map header names to header values, not {key!r}")
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
    if has_client_keys(settings.keys_file):  # client keys are tokens too
        return None
    return (
        f"refusing to listen on {settings.host} without CODEX_GATEWAY_TOKEN: anyone who can reach "
        "the port could use your subscription. Set CODEX_GATEWAY_TOKEN, add client keys "
        "(codex-proxy keys add), bind to 127.0.0.1, or set "
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
