"""``codex-proxy login`` and ``logout``: the arguments and the exit codes; the sign-in itself
is ``login/flow.py``."""

from __future__ import annotations

import argparse
from typing import Any

import httpx

from codex_proxy.cli import EXIT_CONFIG, EXIT_FAILED, settings_or_report
from codex_proxy.login.callback import DEFAULT_PORTS
from codex_proxy.login.flow import (
    BROWSER_TIMEOUT,
    DEVICE_TIMEOUT,
    browser_login,
    device_login,
    logged_out,
    say,
    update_auth_file,
    warn,
)
from codex_proxy.login.oauth import LoginError, revoke
from codex_proxy.upstream.auth_store import AuthFileError, read_auth_file

EXIT_INTERRUPTED = 130


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
    settings = settings_or_report(args.env_file)
    if settings is None:
        return EXIT_CONFIG
    timeout = args.timeout or (DEVICE_TIMEOUT if args.device else BROWSER_TIMEOUT)
    try:
        with httpx.Client() as http:
            if args.device:
                summary = device_login(http, settings, timeout)
            else:
                summary = browser_login(http, settings, args.port, not args.no_browser, timeout)
    except LoginError as exc:
        warn(f"codex-proxy: login failed: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        warn("codex-proxy: login cancelled")
        return EXIT_INTERRUPTED
    say(summary)
    return 0


def run_logout(args: argparse.Namespace) -> int:
    settings = settings_or_report(args.env_file)
    if settings is None:
        return EXIT_CONFIG
    path = settings.auth_file
    try:
        file = read_auth_file(path)
    except AuthFileError as exc:
        warn(f"codex-proxy: {exc}")
        return EXIT_FAILED
    if file is None:
        say(f"Not logged in: there is no {path}.")
        return 0
    if not file.raw.get("tokens"):
        say(f"No ChatGPT login in {path}; nothing to do.")
        return 0
    # the refresh token ends the whole login; an access token only when there is nothing else
    kind = "refresh_token" if file.refresh_token else "access_token"
    token = file.refresh_token or file.access_token
    if token:
        with httpx.Client() as http:
            problem = revoke(http, settings.auth_issuer, token, kind)
        if problem is None:
            say(f"Revoked the {kind.replace('_', ' ')} at {settings.auth_issuer}.")
        else:
            say(
                f"Could not revoke the {kind.replace('_', ' ')} at {settings.auth_issuer} "
                f"({problem}); it stays valid until it expires."
            )
    try:
        remaining = update_auth_file(path, logged_out).raw
    except (AuthFileError, OSError) as exc:
        warn(f"codex-proxy: could not rewrite {path}: {exc}")
        return EXIT_FAILED
    kept = ", ".join(sorted(remaining)) or "nothing"
    say(f"Removed the ChatGPT login from {path} (kept: {kept}).")
    return 0
