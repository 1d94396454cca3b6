"""``codex-proxy login`` and ``logout``: sign in with ChatGPT without installing the Codex CLI.

The result is the Codex CLI's own ``$CODEX_HOME/auth.json`` (``protocol.md`` 3.4), so the
gateway, ``codex`` and this command share one login. The file is rewritten atomically with mode
0600 under the same lock the gateway's token refresh takes, keeping fields we do not know.
Only the account's email, plan and id are printed, never a token.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from .config import ConfigError, Settings, load_settings
from .oauth import (
    LoginError,
    authorize_url,
    exchange_code,
    new_pkce,
    new_state,
    poll_device_code,
    request_device_code,
    revoke,
)
from .oauth_callback import DEFAULT_PORTS, CallbackServer
from .upstream.auth_store import (
    AuthFile,
    AuthFileError,
    locked,
    parse_auth_file,
    read_auth_file,
    save_auth_file,
    with_new_tokens,
)

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130
BROWSER_TIMEOUT = 300.0
DEVICE_TIMEOUT = 900.0  # device codes live 15 minutes


def add_commands(commands: Any) -> None:
    login = commands.add_parser(
        "login",
        help="sign in with ChatGPT and write $CODEX_HOME/auth.json",
        description="Sign in with ChatGPT (browser, or --device for a machine without one) and "
        "write $CODEX_HOME/auth.json in the Codex CLI format.",
    )
    login.add_argument(
        "--device", action="store_true", help="sign in with a one-time code on another device"
    )
    login.add_argument(
        "--no-browser", action="store_true", help="print the sign-in URL, do not open a browser"
    )
    login.add_argument(
        "--port",
        type=int,
        help=f"callback port (default {DEFAULT_PORTS[0]}, else {DEFAULT_PORTS[1]}; 0 = any)",
    )
    login.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help=f"give up after this long (default {BROWSER_TIMEOUT:g}, "
        f"{DEVICE_TIMEOUT:g} with --device)",
    )
    login.add_argument("--env-file", help="read settings from this file instead of ./.env")
    login.set_defaults(handler=run_login)
    logout = commands.add_parser(
        "logout",
        help="revoke the ChatGPT login and remove its tokens from auth.json",
        description="Revoke the refresh token (best effort) and remove the ChatGPT tokens from "
        "$CODEX_HOME/auth.json, keeping its other fields.",
    )
    logout.add_argument("--env-file", help="read settings from this file instead of ./.env")
    logout.set_defaults(handler=run_logout)


def run_login(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    timeout = args.timeout or (DEVICE_TIMEOUT if args.device else BROWSER_TIMEOUT)
    try:
        with httpx.Client() as http:
            if args.device:
                summary = device_login(http, settings, timeout)
            else:
                summary = browser_login(http, settings, args, timeout)
    except LoginError as exc:
        _err(f"codex-proxy: login failed: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _err("codex-proxy: login cancelled")
        return EXIT_INTERRUPTED
    _out(summary)
    return 0


def browser_login(
    http: httpx.Client, settings: Settings, args: argparse.Namespace, timeout: float
) -> str:
    """PKCE: open the authorize page, wait for the browser to come back with a code."""
    pkce, state = new_pkce(), new_state()
    ports = (args.port,) if args.port is not None else DEFAULT_PORTS

    def complete(code: str) -> str:  # runs in the callback thread, once the state matched
        return finish_login(http, settings, code, server.redirect_uri, pkce.verifier)

    server = CallbackServer(state, complete, ports)
    url = authorize_url(settings.auth_issuer, server.redirect_uri, pkce, state, settings.originator)
    with server:
        _out(f"Sign in with ChatGPT in your browser:\n\n  {url}\n")
        if not args.no_browser and not _open_browser(url):
            _out("Could not open a browser: open the URL above yourself.")
        _out(f"Waiting up to {timeout:g} s for the browser (Ctrl-C cancels)...")
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
    _out(
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


def run_logout(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    path = settings.auth_file
    try:
        file = read_auth_file(path)
    except AuthFileError as exc:
        _err(f"codex-proxy: {exc}")
        return EXIT_FAILED
    if file is None:
        _out(f"Not logged in: there is no {path}.")
        return 0
    if not file.raw.get("tokens"):
        _out(f"No ChatGPT login in {path}; nothing to do.")
        return 0
    # the refresh token ends the whole login; an access token only when there is nothing else
    kind = "refresh_token" if file.refresh_token else "access_token"
    token = file.refresh_token or file.access_token
    if token:
        with httpx.Client() as http:
            problem = revoke(http, settings.auth_issuer, token, kind)
        if problem is None:
            _out(f"Revoked the {kind.replace('_', ' ')} at {settings.auth_issuer}.")
        else:
            _out(
                f"Could not revoke the {kind.replace('_', ' ')} at {settings.auth_issuer} "
                f"({problem}); it stays valid until it expires."
            )
    try:
        remaining = update_auth_file(path, logged_out).raw
    except (AuthFileError, OSError) as exc:
        _err(f"codex-proxy: could not rewrite {path}: {exc}")
        return EXIT_FAILED
    kept = ", ".join(sorted(remaining)) or "nothing"
    _out(f"Removed the ChatGPT login from {path} (kept: {kept}).")
    return 0


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
                _err(f"codex-proxy: {path} was unreadable; writing a fresh one")
                current = None
            raw = change(current)
            save_auth_file(path, raw)
            return raw

    raw = asyncio.run(locked_update())
    return parse_auth_file(orjson.dumps(raw), path)


def _settings(args: argparse.Namespace) -> Settings | None:
    try:
        return load_settings(args.env_file)
    except ConfigError as exc:
        _err(f"codex-proxy: {exc}")
        return None


def _open_browser(url: str) -> bool:
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


def _out(text: str) -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
