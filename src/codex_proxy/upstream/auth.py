"""Upstream credentials: the ChatGPT login in ``$CODEX_HOME/auth.json``, or an API key.

The file is re-read whenever it changes on disk (another process, ``codex login`` or our own
refresh may rewrite it), so a long-running gateway always uses the newest tokens. Token values
never leave this module except inside the ``Authorization`` header built by the client.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..config import Settings
from ..translate.errors import LOGIN_HINT, OpenAIError

CHATGPT = "chatgpt"
API_KEY = "api_key"
AUTH_CLAIMS = "https://api.openai.com/auth"


@dataclass(frozen=True)
class Credentials:
    """What one upstream request authenticates with."""

    mode: str  # CHATGPT or API_KEY: decides the base URL, headers and parameter rules
    token: str
    account_id: str | None = None

    def __repr__(self) -> str:  # never print a token, even by accident
        return f"Credentials(mode={self.mode!r}, account_id={self.account_id!r})"


@dataclass(frozen=True)
class AuthFile:
    """The parts of auth.json the gateway uses; ``raw`` keeps every field for rewrites."""

    raw: dict[str, Any]
    auth_mode: str | None
    api_key: str | None
    access_token: str | None
    account_id: str | None


def jwt_claims(token: str | None) -> dict[str, Any]:
    """The payload of a JWT, without checking the signature (we only read our own tokens)."""
    if not token or token.count(".") != 2:
        return {}
    payload = token.split(".")[1]
    try:
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = orjson.loads(decoded)
    except (ValueError, orjson.JSONDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def parse_auth_file(data: bytes, path: Path) -> AuthFile:
    """Read the Codex CLI auth.json format; a broken file is a 401 that says how to fix it."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _auth_error(f"{path} is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise _auth_error(f"{path} does not hold a JSON object.")
    tokens = raw.get("tokens") if isinstance(raw.get("tokens"), dict) else {}
    access = _str(tokens.get("access_token"))
    account = _str(tokens.get("account_id"))
    if access and not account:
        claims = jwt_claims(_str(tokens.get("id_token"))).get(AUTH_CLAIMS) or {}
        account = _str(claims.get("chatgpt_account_id")) if isinstance(claims, dict) else None
    return AuthFile(
        raw, _str(raw.get("auth_mode")), _str(raw.get("OPENAI_API_KEY")), access, account
    )


class AuthProvider:
    """Hands out upstream :class:`Credentials` following ``CODEX_AUTH_MODE``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cached: AuthFile | None = None
        self._cached_stamp: tuple[int, int, int] | None = None

    def mode(self) -> str | None:
        """The mode requests will use now (``None``: no credentials at all)."""
        try:
            return self._resolve().mode
        except OpenAIError:
            return None

    async def credentials(self) -> Credentials:
        """Credentials for the next request; a 401 OpenAIError when there are none."""
        return self._resolve()

    async def after_unauthorized(self, used: Credentials) -> Credentials | None:
        """Called on an upstream 401: fresh credentials to retry with once, or ``None``.

        For now a retry happens only when auth.json changed under us (another process logged in
        or refreshed); token refresh slots in here.
        """
        current = self._resolve()
        return current if current.token != used.token else None

    def _resolve(self) -> Credentials:
        settings = self._settings
        if settings.mock:
            return Credentials(CHATGPT, "mock-access-token", "mock-account")
        file = self._load()
        mode = settings.auth_mode
        if mode == "auto":
            mode = _mode_from_file(file) or (CHATGPT if file and file.access_token else API_KEY)
        if mode == CHATGPT:
            if file and file.access_token:
                return Credentials(CHATGPT, file.access_token, file.account_id)
            raise _auth_error(f"No ChatGPT login found in {settings.auth_file}.")
        key = settings.openai_api_key or (file.api_key if file else None)
        if key:
            return Credentials(API_KEY, key)
        if settings.auth_mode == API_KEY:
            raise _auth_error("CODEX_AUTH_MODE=api_key but OPENAI_API_KEY is not set.", hint=False)
        raise _auth_error(
            f"No upstream credentials: no ChatGPT login in {settings.auth_file} "
            "and no OPENAI_API_KEY."
        )

    def _load(self) -> AuthFile | None:
        """auth.json, parsed again only when its size or modification time changed."""
        path = self._settings.auth_file
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._cached, self._cached_stamp = None, None
            return None
        except OSError as exc:
            raise _auth_error(f"Cannot read {path}: {exc.strerror}.") from None
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp != self._cached_stamp:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise _auth_error(f"Cannot read {path}: {exc.strerror}.") from None
            self._cached, self._cached_stamp = parse_auth_file(data, path), stamp
        return self._cached


def _mode_from_file(file: AuthFile | None) -> str | None:
    """An explicit ``auth_mode`` in auth.json wins in auto mode."""
    if not file or not file.auth_mode:
        return None
    if file.auth_mode.lower() == "apikey":
        return API_KEY
    if file.auth_mode.lower().startswith("chatgpt"):
        return CHATGPT
    return None


def _auth_error(message: str, *, hint: bool = True) -> OpenAIError:
    text = f"{message} {LOGIN_HINT}" if hint else message
    return OpenAIError(401, text, "authentication_error", None, "no_upstream_credentials")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
