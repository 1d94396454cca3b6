"""``codex-proxy doctor``: every way a setup can be broken, checked in one go, each failure with
the command that fixes it.

It reads the settings exactly as ``serve`` does (environment over ``--env-file`` / ``./.env``)
and goes through the same code the gateway uses (AuthProvider, UpstreamClient), so a pass means
the gateway would work. It never prints a token: only paths, account, plan and times.
Exit 0 only when nothing failed; "info" rows (not installed as a service, image generation
off, refresh not tried) are not failures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import stat
import sys
import time
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import orjson

from codex_proxy import __version__
from codex_proxy.cli import EXIT_FAILED
from codex_proxy.cli.status import span
from codex_proxy.config import ConfigError, Settings, load_settings, local_url, refuse_reason
from codex_proxy.service import launchd, systemd
from codex_proxy.service.common import ServiceError, require_tool, run_tool
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.upstream import client_version
from codex_proxy.upstream.auth import API_KEY, CHATGPT, AuthProvider, Credentials
from codex_proxy.upstream.auth_store import AuthFile, AuthFileError, read_auth_file
from codex_proxy.upstream.client import UpstreamClient, make_http_client
from codex_proxy.upstream.client_version import ClientVersion

OK, FAIL, INFO = "ok", "FAIL", "info"
EXIT_OK = 0
MIN_PYTHON = (3, 10)
PACKAGES = (
    "starlette",
    "uvicorn",
    "httptools",
    "httpx",
    "httpx-sse",
    "orjson",
    "python-dotenv",
    "python-multipart",
)
LOGIN_FIX = "run `codex-proxy login` (or `codex login`) to sign in again"


@dataclass
class Check:
    """One row of the report."""

    name: str
    status: str
    detail: str
    fix: str | None = None


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "doctor",
        help="check the installation, login, upstream, gateway and service; say how to fix them",
        description="Check everything the gateway needs; exit 0 only when all checks pass.",
    )
    parser.add_argument("--env-file", help="read settings from this file instead of ./.env")
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="also refresh the access token now (a real refresh, saved to auth.json)",
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    checks = diagnose(args.env_file, refresh=args.refresh)
    failed = [c for c in checks if c.status == FAIL]
    if args.json:
        report = {"ok": not failed, "checks": [asdict(c) for c in checks]}
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render(checks))
    return EXIT_FAILED if failed else EXIT_OK


def render(checks: list[Check]) -> str:
    """A table; each failure is followed by its fix."""
    width = max(len("CHECK"), *(len(c.name) for c in checks))
    lines = [f"{'CHECK'.ljust(width)}  RESULT  DETAIL"]
    for check in checks:
        lines.append(f"{check.name.ljust(width)}  {check.status.ljust(6)}  {check.detail}")
        if check.fix and check.status == FAIL:
            lines.append(f"{' ' * width}  {'':6}  fix: {check.fix}")
    failed = sum(c.status == FAIL for c in checks)
    lines.append("")
    lines.append("all checks passed" if not failed else f"{failed} check(s) failed")
    return "\n".join(lines)


def diagnose(env_file: str | None, *, refresh: bool = False) -> list[Check]:
    """Run every check, in the order a user would fix them."""
    checks = [check_python()]
    try:
        settings = load_settings(env_file)
    except ConfigError as exc:
        where = env_file or "the environment / ./.env"
        checks.append(Check("settings", FAIL, str(exc), f"correct the setting in {where}"))
        return checks
    checks.append(check_settings(settings, env_file))
    version = client_version.resolve(settings)
    checks.append(check_client_version(version))
    checks += asyncio.run(_login_checks(settings, refresh, version))
    checks.append(check_gateway(settings))
    checks.append(check_images(settings))
    checks.append(check_service())
    return checks


# -- installation and settings ---------------------------------------------------------------


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    found, missing = [f"codex-proxy {__version__}"], []
    for name in required_packages():
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            missing.append(name)
    detail = f"Python {version} ({sys.executable}); " + ", ".join(found)
    if sys.version_info < MIN_PYTHON:
        need = ".".join(map(str, MIN_PYTHON))
        return Check("python", FAIL, detail, f"install Python {need} or newer, then codex-proxy")
    if missing:
        return Check(
            "python",
            FAIL,
            f"{detail}; missing: {', '.join(missing)}",
            f"reinstall: {sys.executable} -m pip install --force-reinstall codex-proxy",
        )
    return Check("python", OK, detail)


def required_packages() -> tuple[str, ...]:
    """The runtime dependencies; uvloop only where pyproject installs it (CPython, not Windows)."""
    if sys.platform != "win32" and platform.python_implementation() == "CPython":
        return (*PACKAGES, "uvloop")
    return PACKAGES


def check_settings(settings: Settings, env_file: str | None) -> Check:
    source = env_file or ("./.env" if Path(".env").is_file() else "environment only")
    problem = refuse_reason(settings)
    if problem:
        return Check("settings", FAIL, f"from {source}: {problem}", "set CODEX_GATEWAY_TOKEN")
    mode = "mock upstream" if settings.mock else f"auth mode {settings.auth_mode}"
    return Check("settings", OK, f"from {source}; {mode}; CODEX_HOME {settings.codex_home}")


# -- login, refresh and upstream -------------------------------------------------------------


def check_client_version(version: ClientVersion) -> Check:
    """The Codex version the gateway claims, and where it came from (the backend refuses old
    ones and filters its catalog by it)."""
    detail = f"{version.value} (from {version.source}), sent as the `version` header"
    if version.source == client_version.BUILT_IN:
        return Check(
            "client version",
            INFO,
            f"{detail}; set CODEX_CLIENT_VERSION or install the Codex CLI to follow releases",
        )
    return Check("client version", OK, detail)


async def _login_checks(
    settings: Settings, refresh: bool, version: ClientVersion | None = None
) -> list[Check]:
    """auth.json, the login it holds, its token, a refresh and the upstream catalog."""
    if settings.mock:
        return [Check("login", INFO, "serve --mock needs no login")]
    checks: list[Check] = []
    file_check, file = check_auth_file(settings)
    checks.append(file_check)
    # Only --refresh refreshes, once and on purpose: otherwise the token is used as it is, even
    # close to expiry. (A login with no readable expiry and older than 8 days is still
    # refreshed on first use, as serve would.)
    settings = replace(
        settings,
        upstream_idle_timeout=min(settings.upstream_idle_timeout, 30.0),
        refresh_skew_seconds=-1e12,
    )
    async with make_http_client(settings) as http:
        auth = AuthProvider(settings, http)
        try:
            creds = await auth.credentials()
        except OpenAIError as error:
            checks.append(Check("login", FAIL, error.message, _fix_for(error, settings)))
            return checks
        checks.append(check_login(creds.mode, file))
        if creds.mode == CHATGPT and file is not None:
            checks.append(check_expiry(file))
            if refresh:
                refreshed, fresh = await check_refresh(auth, settings, creds)
                checks.append(refreshed)
                creds = fresh or creds
            else:
                checks.append(Check("refresh", INFO, "not tried (--refresh exchanges it now)"))
                expires = file.access_expires_at
                if expires is not None and expires <= time.time():
                    checks.append(
                        Check(
                            "upstream",
                            INFO,
                            "not asked: the access token has expired (try --refresh)",
                        )
                    )
                    return checks
        client = UpstreamClient(settings, auth, http, version=version)
        checks.append(await check_upstream(client, creds, settings))
    return checks


def check_auth_file(settings: Settings) -> tuple[Check, AuthFile | None]:
    path = settings.auth_file
    uses_key = settings.auth_mode == API_KEY or (
        settings.auth_mode == "auto" and settings.openai_api_key and not path.exists()
    )
    try:
        file = read_auth_file(path)
    except AuthFileError as exc:
        return Check("auth.json", FAIL, str(exc), f"{LOGIN_FIX}; it rewrites {path}"), None
    if file is None:
        if uses_key:
            return Check("auth.json", INFO, f"{path} not found; not needed with an API key"), None
        return (
            Check(
                "auth.json",
                FAIL,
                f"{path} not found",
                "run `codex-proxy login` (or `codex login`); or set OPENAI_API_KEY "
                "(and CODEX_AUTH_MODE=api_key)",
            ),
            None,
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return (
            Check(
                "auth.json",
                FAIL,
                f"{path} has mode {mode:04o}: other users can read your login",
                f"chmod 600 {path}",
            ),
            file,
        )
    return Check("auth.json", OK, f"{path}, mode {mode:04o}"), file


def check_login(mode: str, file: AuthFile | None) -> Check:
    if mode == API_KEY:
        return Check("login", OK, "auth mode api_key (OPENAI_API_KEY or the key in auth.json)")
    if file is None:
        return Check("login", OK, "auth mode chatgpt")
    parts = [
        f"account {file.email or 'unknown'}",
        f"plan {file.plan or 'unknown'}",
        f"id {file.account_id or 'unknown'}",
    ]
    return Check("login", OK, "auth mode chatgpt, " + ", ".join(parts))


def check_expiry(file: AuthFile) -> Check:
    expires = file.access_expires_at
    if expires is None:
        return Check("access token", INFO, "no readable expiry; refreshed when older than 8 days")
    now = time.time()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires))
    if expires > now:
        return Check("access token", OK, f"expires {when} (in {span(expires - now)})")
    if file.refresh_token:
        return Check(
            "access token",
            OK,
            f"expired {when}; the gateway refreshes it on the next request (or use --refresh)",
        )
    return Check("access token", FAIL, f"expired {when} and no refresh token", LOGIN_FIX)


async def check_refresh(
    auth: AuthProvider, settings: Settings, creds: Credentials
) -> tuple[Check, Credentials | None]:
    """A real refresh through the gateway's own code path (the one an upstream 401 takes): it
    exchanges the refresh token and saves the rotated tokens to auth.json."""
    try:
        fresh = await auth.after_unauthorized(creds)
    except OpenAIError as error:
        return Check("refresh", FAIL, error.message, _fix_for(error, settings)), None
    if fresh is None:
        return Check("refresh", FAIL, "no refresh token to exchange", LOGIN_FIX), None
    file = read_auth_file(settings.auth_file)
    expires = file.access_expires_at if file else None
    until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expires)) if expires else "unknown"
    detail = f"refreshed via {settings.refresh_token_url}; saved, now expires {until}"
    return Check("refresh", OK, detail), fresh


async def check_upstream(client: UpstreamClient, creds: Credentials, settings: Settings) -> Check:
    base = settings.base_url_for(creds.mode)
    try:
        models = await client.fetch_models(creds)
    except OpenAIError as error:
        if creds.mode == API_KEY and error.code == "upstream_malformed_event":
            return Check("upstream", OK, f"{base}/models answers (an API model list)")
        return Check("upstream", FAIL, f"{base}/models: {error.message}", _fix_for(error, settings))
    return Check("upstream", OK, f"{base}/models answers: {len(models)} models in the catalog")


def _fix_for(error: OpenAIError, settings: Settings) -> str:
    if error.code == "upstream_blocked":
        return (
            "Cloudflare refused this machine's connection, not the login: set CODEX_USER_AGENT, "
            "or route through a proxy (HTTPS_PROXY), or try from another network"
        )
    if error.code == "client_version_too_old":
        return "set CODEX_CLIENT_VERSION to a current Codex release, or update the Codex CLI"
    if error.status in (401, 403):
        return LOGIN_FIX
    if error.code == "token_refresh_failed":
        return (
            f"check that {settings.refresh_token_url} is reachable "
            "(CODEX_REFRESH_TOKEN_URL_OVERRIDE), then run doctor --refresh again"
        )
    if error.code in ("upstream_unreachable", "upstream_timeout"):
        return "check the network / proxy and CODEX_UPSTREAM_BASE_URL"
    if error.status == 429:
        return "the plan's usage window is used up; wait for the reset the message names"
    return "see the message; `codex-proxy serve` would answer clients the same error"


# -- the running gateway, images, the service --------------------------------------------------


def check_gateway(settings: Settings) -> Check:
    url = local_url(settings.host, settings.port)
    try:
        health = httpx.get(f"{url}/healthz", timeout=3.0)
    except httpx.HTTPError as exc:
        return Check(
            "gateway",
            FAIL,
            f"nothing answers at {url} ({type(exc).__name__})",
            f"start it: `codex-proxy serve` (or keep it running: `codex-proxy {_manager()} "
            "install`)",
        )
    if health.status_code != 200:
        return Check(
            "gateway",
            FAIL,
            f"{url}/healthz answered HTTP {health.status_code}",
            "another program holds the port: stop it or set CODEX_PORT",
        )
    token = settings.gateway_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        status = httpx.get(f"{url}/v1/status", headers=headers, timeout=3.0).status_code
    except httpx.HTTPError:
        status = None
    if status == 401 and not token:
        return Check(
            "gateway",
            FAIL,
            f"{url} is up but requires a gateway token, and these settings have none",
            "set CODEX_GATEWAY_TOKEN as the gateway has it (or run doctor with its --env-file)",
        )
    if status == 401:
        return Check(
            "gateway",
            FAIL,
            f"{url} is up but refuses the CODEX_GATEWAY_TOKEN of these settings",
            "run doctor with the env file the gateway uses (--env-file), or restart the gateway",
        )
    return Check("gateway", OK, f"listening at {url}, /healthz ok")


def check_images(settings: Settings) -> Check:
    if settings.enable_image_gen:
        return Check("image generation", INFO, "on: the image tool is offered on every chat")
    return Check("image generation", INFO, "off (CODEX_ENABLE_IMAGE_GEN=1 turns it on)")


def check_service() -> Check:
    """The launchd job (macOS) or systemd user unit (Linux); not installed is fine."""
    try:
        if sys.platform == "darwin":
            path = launchd.agent_path(launchd.DEFAULT_LABEL)
            if not path.exists():
                return _not_installed("launchd", path)
            tool = require_tool("launchctl", launchd.NO_LAUNCHCTL)
            result = run_tool([tool, "print", f"gui/{os.getuid()}/{launchd.DEFAULT_LABEL}"])
            state = (
                launchd.parse_print(result.stdout)
                if result.returncode == 0
                else launchd.JobState(loaded=False)
            )
            detail = f"launchd {launchd.DEFAULT_LABEL}: {launchd.describe(state)}"
            if state.state == "running":
                return Check("service", OK, detail)
            return Check("service", FAIL, detail, "see `codex-proxy launchd status` and its log")
        path = systemd.unit_path()
        if not path.exists():
            return _not_installed("systemd", path)
        tool = require_tool("systemctl", systemd.NO_SYSTEMCTL)
        show = run_tool([tool, "--user", "show", systemd.UNIT, "-p", systemd.SHOW_PROPERTIES])
        if show.returncode != 0:
            said = (show.stderr or show.stdout).strip()
            return Check("service", INFO, f"systemd {systemd.UNIT}: cannot ask systemctl: {said}")
        props = systemd.parse_show(show.stdout)
        detail = f"systemd {systemd.UNIT}: {systemd.describe(props)}"
        if props.get("ActiveState") == "active":
            return Check("service", OK, detail)
        return Check(
            "service",
            FAIL,
            detail,
            f"see `codex-proxy systemd status` and `{systemd.JOURNAL} -n 50 --no-pager`",
        )
    except ServiceError as exc:
        return Check("service", INFO, str(exc))


def _manager() -> str:
    return "launchd" if sys.platform == "darwin" else "systemd"


def _not_installed(manager: str, path: Path) -> Check:
    return Check(
        "service",
        INFO,
        f"{manager}: not installed ({path}); optional: `codex-proxy {manager} install`",
    )
