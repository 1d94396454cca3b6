"""auth.json on disk: parse it, save it atomically, lock it across processes, read JWT claims.

The format is the Codex CLI's (``protocol.md`` 3.4), so the gateway and ``codex`` can share one
``$CODEX_HOME``. Every field we do not know is kept on rewrite.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from codex_proxy._files import write_atomic

AUTH_CLAIMS = "https://api.openai.com/auth"
PROFILE_CLAIMS = "https://api.openai.com/profile"

try:  # POSIX; elsewhere refreshes are serialised within the process only
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


class AuthFileError(Exception):
    """auth.json exists but cannot be used; the message says why (never what it holds)."""


@dataclass(frozen=True)
class AuthFile:
    """The parts of auth.json the gateway uses; ``raw`` keeps every field for rewrites."""

    raw: dict[str, Any]
    auth_mode: str | None
    api_key: str | None
    access_token: str | None
    refresh_token: str | None
    id_token: str | None
    account_id: str | None
    last_refresh: datetime | None

    @property
    def access_expires_at(self) -> float | None:
        """The access token's ``exp`` (unix seconds), when the token is a readable JWT."""
        exp = jwt_claims(self.access_token).get("exp")
        return float(exp) if isinstance(exp, (int, float)) else None

    @property
    def email(self) -> str | None:
        claims = jwt_claims(self.id_token)
        profile = claims.get(PROFILE_CLAIMS)
        email = claims.get("email") or (profile.get("email") if isinstance(profile, dict) else None)
        return email if isinstance(email, str) else None

    @property
    def plan(self) -> str | None:
        auth = jwt_claims(self.id_token).get(AUTH_CLAIMS)
        plan = auth.get("chatgpt_plan_type") if isinstance(auth, dict) else None
        return plan if isinstance(plan, str) else None


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
    """Read the Codex CLI auth.json format."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise AuthFileError(f"{path} is not valid JSON.") from None
    if not isinstance(raw, dict):
        raise AuthFileError(f"{path} does not hold a JSON object.")
    tokens = raw.get("tokens") if isinstance(raw.get("tokens"), dict) else {}
    id_token = _str(tokens.get("id_token"))
    access = _str(tokens.get("access_token"))
    account = _str(tokens.get("account_id")) or _account_from_id_token(id_token)
    return AuthFile(
        raw=raw,
        auth_mode=_str(raw.get("auth_mode")),
        api_key=_str(raw.get("OPENAI_API_KEY")),
        access_token=access,
        refresh_token=_str(tokens.get("refresh_token")),
        id_token=id_token,
        account_id=account,
        last_refresh=_parse_time(raw.get("last_refresh")),
    )


def read_auth_file(path: Path) -> AuthFile | None:
    """The file, or ``None`` when there is none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuthFileError(f"Cannot read {path}: {exc.strerror}.") from None
    return parse_auth_file(data, path)


def with_new_tokens(
    file: AuthFile, answer: dict[str, Any], now: float | None = None
) -> dict[str, Any]:
    """auth.json contents after a refresh: whichever tokens came back replace the stored ones
    (refresh tokens rotate), ``last_refresh`` is now, everything else is kept."""
    raw = dict(file.raw)
    tokens = dict(raw.get("tokens") or {})
    for name in ("id_token", "access_token", "refresh_token"):
        value = answer.get(name)
        if isinstance(value, str) and value:
            tokens[name] = value
    account = _account_from_id_token(_str(tokens.get("id_token")))
    if account:
        tokens["account_id"] = account
    raw["tokens"] = tokens
    raw["last_refresh"] = rfc3339(now if now is not None else time.time())
    return raw


def save_auth_file(path: Path, raw: dict[str, Any]) -> None:
    """Write auth.json atomically with mode 0600: never a truncated or world-readable file."""
    write_atomic(path, orjson.dumps(raw, option=orjson.OPT_INDENT_2), mode=0o600)


@contextlib.asynccontextmanager
async def locked(path: Path, timeout: float = 60.0) -> AsyncIterator[None]:
    """An exclusive lock on ``<auth.json>.lock`` shared with other gateway processes.

    Polls a non-blocking ``flock`` so the event loop never blocks on another process.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AuthFileError(f"Timed out waiting for the lock on {lock_path}.") from None
                await asyncio.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def rfc3339(timestamp: float) -> str:
    """UTC with milliseconds and a ``Z``, as the Codex CLI writes ``last_refresh``."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _account_from_id_token(id_token: str | None) -> str | None:
    claims = jwt_claims(id_token).get(AUTH_CLAIMS)
    return _str(claims.get("chatgpt_account_id")) if isinstance(claims, dict) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
