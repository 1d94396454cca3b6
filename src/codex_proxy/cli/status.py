"""``codex-proxy status``: ask a running gateway for ``GET /v1/status`` and print a table (or
the JSON as is, for scripts). The base URL and token come from the same settings the gateway
reads."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import httpx
import orjson

from codex_proxy.cli import EXIT_CONFIG, EXIT_FAILED, settings_or_report
from codex_proxy.config import Settings, local_url


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "status",
        help="show a running gateway's login, usage limits and request counts",
        description="Ask a running gateway for GET /v1/status and print it.",
    )
    add_gateway_arguments(parser, timeout=5.0)
    parser.set_defaults(handler=run)


def add_gateway_arguments(parser: argparse.ArgumentParser, timeout: float) -> None:
    """What a command that asks a running gateway takes: where it is, its token, the output."""
    parser.add_argument("--url", help="gateway base URL (default from CODEX_HOST/CODEX_PORT)")
    parser.add_argument("--token", help="gateway token (default CODEX_GATEWAY_TOKEN)")
    parser.add_argument("--env-file", help="read settings from this file instead of ./.env")
    parser.add_argument("--json", action="store_true", help="print the JSON answer as is")
    parser.add_argument(
        "--timeout", type=float, default=timeout, help=f"seconds (default {timeout:g})"
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_or_report(args.env_file)
    if settings is None:
        return EXIT_CONFIG
    url, payload = ask_gateway(args, settings, "/v1/status")
    if payload is None:
        return EXIT_FAILED
    if args.json:
        print(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render_table(url, payload))
    return 0


def ask_gateway(
    args: argparse.Namespace, settings: Settings, path: str, quiet: bool = False
) -> tuple[str, dict[str, Any] | None]:
    """GET ``path`` of the running gateway (``--url``/``--token`` or the settings): its base URL
    and JSON answer, or None after saying on stderr what went wrong (unless ``quiet``)."""
    url = (args.url or local_url(settings.host, settings.port)).rstrip("/").removesuffix("/v1")
    token = args.token or settings.gateway_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def fail(message: str) -> tuple[str, None]:
        if not quiet:
            print(f"codex-proxy: {message}", file=sys.stderr)
        return url, None

    try:
        answer = httpx.get(f"{url}{path}", headers=headers, timeout=args.timeout)
    except httpx.HTTPError as exc:
        return fail(
            f"no gateway answers at {url} ({type(exc).__name__}); start it with "
            "`codex-proxy serve`, or pass --url"
        )
    if answer.status_code == 401:
        return fail(
            f"{url} refused the gateway token; pass --token or set "
            "CODEX_GATEWAY_TOKEN (in the environment or the env file)"
        )
    if answer.status_code != 200:
        return fail(f"{url}{path} answered HTTP {answer.status_code}")
    try:
        payload = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        return fail(f"{url}{path} did not answer a JSON object")
    return url, payload


def render_table(url: str, status: dict[str, Any], now: float | None = None) -> str:
    """Two columns: what, and what the gateway says about it."""
    now = time.time() if now is None else now
    up = span(status.get("uptime_seconds"))
    rows: list[tuple[str, str]] = [
        ("gateway", f"{url} (codex-proxy {status.get('version')}, up {up})"),
        ("upstream", str(status.get("upstream"))),
    ]
    version = status.get("client_version") or {}
    if version:
        rows.append(("client version", f"{version.get('value')} (from {version.get('source')})"))
    if status.get("default_model"):
        rows.append(("default model", str(status["default_model"])))
    auth = status.get("auth") or {}
    login = [str(auth.get("mode"))]
    if auth.get("mock"):
        login.append("mock upstream")
    for key in ("email", "plan"):
        if auth.get(key):
            login.append(f"plan {auth[key]}" if key == "plan" else str(auth[key]))
    if auth.get("error"):
        login.append(str(auth["error"]))
    rows.append(("auth", ", ".join(login)))
    expires = auth.get("access_token_expires_at")
    if isinstance(expires, (int, float)):
        rows.append(("access token", _moment(expires, now, "expires", "expired")))
    limits = status.get("rate_limits")
    problem = status.get("rate_limits_error")
    if not limits:
        said = "not reported yet (the upstream sends them with each answer)"
        rows.append(("usage limits", said if not problem else "unknown"))
    else:
        for key in ("primary", "secondary"):
            window = limits.get(key)
            if window:
                rows.append((f"{key} window", _window(window, now)))
        for family, windows in (limits.get("other_limits") or {}).items():
            for key, window in windows.items():
                rows.append((f"{family} {key}", _window(window, now)))
        credits = limits.get("credits")
        if credits:
            rows.append(("credits", _credits(credits)))
        source = f" (from the {limits['source']})" if limits.get("source") else ""
        rows.append(("limits as of", f"{span(limits.get('age_seconds'))} ago{source}"))
    if problem:
        at = problem.get("at")
        when = f" {span(now - at)} ago" if isinstance(at, (int, float)) else ""
        rows.append(("usage endpoint", f"failed{when}: {problem.get('message')}"))
    rows.append(("image generation", "on" if status.get("image_generation") else "off"))
    key = status.get("key")
    if isinstance(key, dict):
        rows.append(("key", _key(key)))
    requests = status.get("requests") or {}
    by_status = requests.get("by_status") or {}
    classes = ", ".join(f"{count} {name}" for name, count in by_status.items())
    counts = f"{requests.get('total', 0)} total" + (f" ({classes})" if classes else "")
    counts += (
        f", {requests.get('streaming', 0)} streaming, {requests.get('in_flight', 0)} in flight"
    )
    rows.append(("requests", counts))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def _window(window: dict[str, Any], now: float) -> str:
    parts = []
    used = window.get("used_percent")
    minutes = window.get("window_minutes")
    if used is not None:
        of = f" of {span(minutes * 60)}" if isinstance(minutes, (int, float)) else ""
        parts.append(f"{used:g}% used{of}")
    resets = window.get("resets_at")
    if isinstance(resets, (int, float)):
        parts.append(_moment(resets, now, "resets", "reset"))
    return ", ".join(parts) or "reported without details"


def _credits(credits: dict[str, Any]) -> str:
    if credits.get("unlimited"):
        return "unlimited"
    balance = credits.get("balance")
    has = credits.get("has_credits")
    text = "available" if has else "none" if has is False else "unknown"
    return f"{text}, balance {balance}" if balance else text


def _moment(when: float, now: float, future: str, past: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))
    if when >= now:
        return f"{future} {stamp} (in {span(when - now)})"
    return f"{past} {stamp} ({span(now - when)} ago)"


def span(seconds: Any) -> str:
    """``3d 4h``, ``2h 05m``, ``7m``, ``12s``: the two largest units."""
    if not isinstance(seconds, (int, float)):
        return "?"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def _key(key: dict[str, Any]) -> str:
    """The caller's client key: its name and what is left of its limits."""
    if key.get("admin"):
        return f"{key.get('name')} (the gateway token: no limits)"
    left = [
        f"{figures.get('remaining')} left of {figures.get('limit')}"
        for figures in (key.get("remaining") or {}).values()
    ]
    return str(key.get("name")) + (f" ({', '.join(left)})" if left else " (no limits)")
