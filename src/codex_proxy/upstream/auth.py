"""Upstream credentials: the ChatGPT login in ``$CODEX_HOME/auth.json``, or an API key.

The login is kept alive without the user: the access token is refreshed shortly before it
expires and again when the upstream answers 401. Refreshes are single-flight (concurrent
requests share one refresh call) and serialised across processes by a file lock, and a waiter
re-reads auth.json instead of refreshing again, so a rotating refresh token is never burnt twice.
Token values never leave this module except inside the ``Authorization`` header.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import anyio
import httpx
import orjson

from codex_proxy.config import Settings
from codex_proxy.translate.errors import LOGIN_HINT, SIGN_IN_HINT, OpenAIError
from codex_proxy.upstream.auth_store import (
    AuthFile,
    AuthFileError,
    locked,
    parse_auth_file,
    save_auth_file,
    with_new_tokens,
)

log = logging.getLogger("codex_proxy")

CHATGPT = "chatgpt"
API_KEY = "api_key"
CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
PERMANENT_REFRESH_ERRORS = frozenset(
    {"refresh_token_expired", "refresh_token_reused", "refresh_token_invalidated"}
)
MAX_TOKEN_AGE_SECONDS = 8 * 24 * 3600


@dataclass(frozen=True)
class Credentials:
    """What one upstream request authenticates with."""

    mode: str  # CHATGPT or API_KEY: decides the base URL, headers and parameter rules
    token: str
    account_id: str | None = None

    def __repr__(self) -> str:  # never print a token, even by accident
        return f"Credentials(mode={self.mode!r}, account_id={self.account_id!r})"


class AuthProvider:
    """Hands out upstream :class:`Credentials` following ``CODEX_AUTH_MODE``."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._http = http
        self._cached: AuthFile | None = None
        self._cached_stamp: tuple[int, int, int] | None = None
        self._inflight: asyncio.Future[Credentials] | None = None
        self._dead_refresh_token: str | None = None

    # -- public ----------------------------------------------------------------------------

    def mode(self) -> str | None:
        """The mode requests will use now (``None``: no credentials at all)."""
        try:
            return self._resolve()[0].mode
        except OpenAIError:
            return None

    def problem(self) -> OpenAIError | None:
        """Why requests would be refused right now for want of credentials, or None."""
        try:
            self._resolve()
        except OpenAIError as error:
            return error
        return None

    def describe(self) -> str:
        """One line for the start-up log: mode, account, plan, expiry; never a token."""
        try:
            creds, file = self._resolve()
        except OpenAIError as error:
            return f"no usable credentials yet ({error.message})"
        if creds.mode == API_KEY:
            return "auth mode api_key"
        if self._settings.mock or file is None:
            return "auth mode chatgpt (mock upstream)"
        expires = file.access_expires_at
        expiry = (
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires)) if expires else "unknown"
        )
        return (
            f"auth mode chatgpt, account {file.email or 'unknown'}, plan {file.plan or 'unknown'}, "
            f"access token expires {expiry}"
        )

    async def credentials(self) -> Credentials:
        """Credentials for the next request, refreshed first when the token is about to expire."""
        creds, file = self._resolve()
        if creds.mode != CHATGPT or file is None or not self._refresh_due(file):
            return creds
        expires = file.access_expires_at
        if expires is not None and expires > time.time() + 5 and self._inflight is not None:
            return creds  # a refresh is under way and this token still works meanwhile
        try:
            return await self._refresh(creds)
        except OpenAIError as error:
            expires = file.access_expires_at
            if expires is not None and expires > time.time() + 5:
                log.warning("token refresh failed, using the current token: %s", error.message)
                return creds
            raise

    async def after_unauthorized(self, used: Credentials) -> Credentials | None:
        """On an upstream 401: credentials to retry with once, or ``None`` (give up).

        Another process may already have refreshed: a different token in auth.json is tried
        first; otherwise the refresh token is used.
        """
        current, file = self._resolve()
        if current.token != used.token:
            return current
        if current.mode != CHATGPT or file is None:
            return None
        return await self._refresh(used)

    # -- refresh ---------------------------------------------------------------------------

    def _refresh_due(self, file: AuthFile) -> bool:
        expires = file.access_expires_at
        now = time.time()
        if expires is not None:
            return expires - now <= self._settings.refresh_skew_seconds
        if file.last_refresh is None:
            return False
        return now - file.last_refresh.timestamp() > MAX_TOKEN_AGE_SECONDS

    async def _refresh(self, stale: Credentials) -> Credentials:
        """Exchange the refresh token, unless someone else already replaced ``stale``.

        Single flight: one refresh task at a time, and every request that needs it awaits that
        same task, so they share its outcome, success or failure (a down or slow endpoint is
        called once, not once per waiting request). The task is shielded: a client that goes
        away mid-refresh cannot cancel it half-way, after the endpoint has rotated the refresh
        token but before the new one is saved, which would burn the login.
        """
        task = self._inflight
        if task is None:
            current, _ = self._resolve()
            if current.token != stale.token:
                return current
            task = asyncio.ensure_future(self._refresh_once(stale))
            self._inflight = task
            task.add_done_callback(self._refresh_done)
        try:
            return await asyncio.shield(task)
        except OpenAIError as error:
            raise _copy(error) from None

    def _refresh_done(self, task: asyncio.Future[Credentials]) -> None:
        """Let the next refresh start; mark a failure as seen so asyncio does not log it."""
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone away

    async def _refresh_once(self, stale: Credentials) -> Credentials:
        """One refresh, under the lock shared with other processes using this CODEX_HOME."""
        path = self._settings.auth_file
        try:
            async with locked(path):
                self._cached_stamp = None  # re-read: another process may have refreshed
                current, file = self._resolve()
                if current.token != stale.token or file is None:
                    return current
                answer = await self._call_token_endpoint(file)
                save_auth_file(path, with_new_tokens(file, answer))
        except AuthFileError as exc:
            raise _refresh_failed(str(exc)) from None
        except OSError as exc:
            raise _refresh_failed(f"could not save {path}: {exc.strerror}") from None
        log.info("access token refreshed")
        return self._resolve()[0]

    async def _call_token_endpoint(self, file: AuthFile) -> dict[str, Any]:
        refresh_token = file.refresh_token
        if not refresh_token:
            raise _login_required("auth.json holds no refresh token.", "refresh_token_missing")
        if refresh_token == self._dead_refresh_token:
            raise _login_required(
                "The refresh token was rejected earlier.", "refresh_token_invalid"
            )
        body = {
            "client_id": CLIENT_ID,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        }
        http = self._http or httpx.AsyncClient()
        limit = self._settings.refresh_timeout
        try:
            with anyio.fail_after(limit):
                response = await http.post(
                    self._settings.refresh_token_url, json=body, timeout=limit
                )
        except (TimeoutError, httpx.TimeoutException):
            raise _refresh_failed(
                f"the token endpoint did not answer within {limit:g} s (CODEX_REFRESH_TIMEOUT)"
            ) from None
        except httpx.HTTPError as exc:
            raise _refresh_failed(f"{type(exc).__name__} from the token endpoint") from None
        finally:
            if self._http is None:
                await http.aclose()
        answer = _json_object(response.content)
        if response.status_code == 200:
            if answer and any(isinstance(answer.get(k), str) for k in ("access_token", "id_token")):
                return answer
            raise _refresh_failed("the token endpoint answered 200 without tokens")
        code = _refresh_error_code(answer)
        if response.status_code == 401 or code in PERMANENT_REFRESH_ERRORS:
            self._dead_refresh_token = refresh_token
            raise _login_required(
                f"Your ChatGPT login has expired or was revoked ({code or 'HTTP 401'}).",
                code or "refresh_token_invalid",
            )
        raise _refresh_failed(f"the token endpoint answered HTTP {response.status_code}")

    # -- resolution ------------------------------------------------------------------------

    def _resolve(self) -> tuple[Credentials, AuthFile | None]:
        settings = self._settings
        if settings.mock:
            return Credentials(CHATGPT, "mock-access-token", "mock-account"), None
        file = self._load()
        mode = settings.auth_mode
        if mode == "auto":
            mode = _mode_from_file(file) or (CHATGPT if file and file.access_token else API_KEY)
        if mode == CHATGPT:
            if file and file.access_token and file.access_token.strip():
                return Credentials(CHATGPT, file.access_token.strip(), file.account_id), file
            if file is None:
                raise _not_signed_in(f"Not signed in: {settings.auth_file} does not exist.")
            raise _not_signed_in(f"Not signed in: {settings.auth_file} holds no ChatGPT login.")
        key = (settings.openai_api_key or (file.api_key if file else None) or "").strip()
        if key:  # stripped: a key pasted with its newline still works
            return Credentials(API_KEY, key), file
        if settings.auth_mode == API_KEY:
            raise OpenAIError(
                401,
                "CODEX_AUTH_MODE=api_key but OPENAI_API_KEY is not set.",
                "authentication_error",
                None,
                "no_upstream_credentials",
            )
        raise _not_signed_in(
            f"Not signed in: no ChatGPT login ({settings.auth_file}) and no OPENAI_API_KEY."
        )

    def _load(self) -> AuthFile | None:
        """auth.json, parsed again only when the file changed (size, mtime or inode)."""
        path = self._settings.auth_file
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._cached, self._cached_stamp = None, None
            return None
        except OSError as exc:
            raise _login_required(f"Cannot read {path}: {exc.strerror}.") from None
        stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if stamp != self._cached_stamp:
            try:
                self._cached = parse_auth_file(path.read_bytes(), path)
            except AuthFileError as exc:
                raise _login_required(str(exc)) from None
            except OSError as exc:
                raise _login_required(f"Cannot read {path}: {exc.strerror}.") from None
            self._cached_stamp = stamp
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


def _login_required(message: str, code: str = "no_upstream_credentials") -> OpenAIError:
    return OpenAIError(401, f"{message} {LOGIN_HINT}", "authentication_error", None, code)


def _not_signed_in(message: str) -> OpenAIError:
    """No credentials at all (never signed in, or signed out): not "sign in again"."""
    return OpenAIError(
        401, f"{message} {SIGN_IN_HINT}", "authentication_error", None, "no_upstream_credentials"
    )


def _copy(error: OpenAIError) -> OpenAIError:
    """A fresh instance for another waiter (one exception object, one traceback)."""
    return replace(error, headers=dict(error.headers))


def _refresh_failed(reason: str) -> OpenAIError:
    return OpenAIError(
        502,
        f"Token refresh failed: {reason}. The next request will try again.",
        "server_error",
        None,
        "token_refresh_failed",
    )


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _refresh_error_code(answer: dict[str, Any] | None) -> str | None:
    """The error code of a failed refresh: ``error`` (string), ``error.code`` or ``code``."""
    if not answer:
        return None
    error = answer.get("error")
    if isinstance(error, str):
        return error
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return error["code"]
    code = answer.get("code")
    return code if isinstance(code, str) else None
