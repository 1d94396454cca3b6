"""Sign in with ChatGPT without installing the Codex CLI (``codex-proxy login`` / ``logout``).

The result is the Codex CLI's own ``$CODEX_HOME/auth.json`` (``protocol.md`` 3.4), so the
gateway, ``codex`` and this command share one login. The file is rewritten atomically with mode
0600 under the same lock the gateway's token refresh takes, keeping fields we do not know.
Only the account's email, plan and id are printed, never a token.
"""

from __future__ import annotations

import asyncio
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from codex_proxy.config import Settings
from codex_proxy.login.callback import DEFAULT_PORTS, CallbackServer
from codex_proxy.login.oauth import (
    LoginError,
    authorize_url,
    exchange_code,
    new_pkce,
    new_state,
    poll_device_code,
    request_device_code,
)
from codex_proxy.upstream.auth_store import (
    AuthFile,
    AuthFileError,
    locked,
    parse_auth_file,
    read_auth_file,
    save_auth_file,
    with_new_tokens,
)

BROWSER_TIMEOUT = 300.0
DEVICE_TIMEOUT = 900.0  # device codes live 15 minutes


def browser_login(
    http: httpx.Client, settings: Settings, port: int | None, open_browser: bool, timeout: float
) -> str:
    """PKCE: open the authorize page, wait for the browser to come back with a code."""
    pkce, state = new_pkce(), new_state()
    ports = (port,) if port is not None else DEFAULT_PORTS

    def complete(code: str) -> str:  # runs in the callback thread, once the state matched
        return finish_login(http, settings, code, server.redirect_uri, pkce.verifier)

    server = CallbackServer(state, complete, ports)
    url = authorize_url(settings.auth_issuer, server.redirect_uri, pkce, state, settings.originator)
    with server:
        say(f"Sign in with ChatGPT in your browser:\n\n  {url}\n")
        if open_browser and not _open_browser(url):
            say("Could not open a browser: open the URL above yourself.")
        say(f"Waiting up to {timeout:g} s for the browser (Ctrl-C cancels)...")
        say(f"To cancel it from elsewhere: curl '{server.cancel_url}'")
        outcome = server.wait(timeout)
    if outcome is None:
        raise LoginError(
            f"No sign-in arrived within {timeout:g} s. Run `codex-proxy login` again "
            "(or `codex-proxy login --device` when this machine has no browser)."
        )
    if not outcome.ok:
        raise LoginError(outcome.message)
    return outcome.message


def device_login(http: httpx.Client, settings: Settings, timeout: float) -> str:
    """Device code: the user types a code at the issuer's page on any device; we poll."""
    issuer = settings.auth_issuer
    device = request_device_code(http, issuer)
    say(
        f"To sign in, open this page in a browser on any device:\n\n  {device.verification_url}"
        f"\n\nand enter this one-time code:\n\n  {device.user_code}\n\n"
        f"Never share this code. Waiting up to {timeout:g} s (Ctrl-C cancels)..."
    )
    grant = poll_device_code(http, issuer, device, timeout)
    redirect_uri = f"{issuer}/deviceauth/callback"
    return finish_login(http, settings, grant.authorization_code, redirect_uri, grant.code_verifier)


def finish_login(
    http: httpx.Client, settings: Settings, code: str, redirect_uri: str, verifier: str
) -> str:
    """Exchange the code, save auth.json, and say who is signed in."""
    tokens = exchange_code(http, settings.auth_issuer, code, redirect_uri, verifier)
    path = settings.auth_file
    try:
        file = update_auth_file(path, lambda current: logged_in(current, path, tokens))
    except (AuthFileError, OSError) as exc:
        raise LoginError(f"Signed in, but could not save {path}: {exc}") from None
    return (
        f"Logged in as {file.email or 'unknown email'} (plan {file.plan or 'unknown'}, "
        f"account {file.account_id or 'unknown'}).\nSaved the login to {path}; a running "
        "gateway picks it up by itself."
    )


def logged_in(current: AuthFile | None, path: Path, tokens: dict[str, str]) -> dict[str, Any]:
    """auth.json after a login: the new tokens and ``last_refresh``, ``OPENAI_API_KEY`` null,
    every other field of an existing file kept."""
    raw = {k: v for k, v in (current.raw if current else {}).items() if k != "tokens"}
    raw["OPENAI_API_KEY"] = None
    if "auth_mode" in raw:  # an older "apikey" would hide the new login
        raw["auth_mode"] = "chatgpt"
    base = parse_auth_file(orjson.dumps(raw), path)
    return with_new_tokens(base, tokens)


def logged_out(current: AuthFile | None) -> dict[str, Any]:
    """auth.json without the ChatGPT login; a ChatGPT ``auth_mode`` goes with it."""
    raw = dict(current.raw) if current else {}
    raw.pop("tokens", None)
    raw.pop("last_refresh", None)
    mode = raw.get("auth_mode")
    if isinstance(mode, str) and mode.lower().startswith("chatgpt"):
        raw.pop("auth_mode")
    return raw


def update_auth_file(path: Path, change: Callable[[AuthFile | None], dict[str, Any]]) -> AuthFile:
    """Read, change and save auth.json under the lock the gateway's refresh takes, so a
    refresh running at the same moment cannot write an old login over the new one."""

    async def locked_update() -> dict[str, Any]:
        async with locked(path):
            try:
                current = read_auth_file(path)
            except AuthFileError:
                warn(f"codex-proxy: {path} was unreadable; writing a fresh one")
                current = None
            raw = change(current)
            save_auth_file(path, raw)
            return raw

    raw = asyncio.run(locked_update())
    return parse_auth_file(orjson.dumps(raw), path)


def _open_browser(url: str) -> bool:
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


def say(text: str) -> None:
    print(text, flush=True)


def warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
