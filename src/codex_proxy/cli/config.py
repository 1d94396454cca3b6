"""``codex-proxy config``: the effective settings and where each one came from (default, the
settings file, ./.env or the env file, the environment), for "my setting is ignored".

It reads the layers exactly as ``serve`` does (config.setting_layers). Secrets are never
printed: a token or key shows as set or unset with its last 4 characters at most.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from codex_proxy._image_options import IMAGE_ENV_OPTIONS
from codex_proxy.cli import EXIT_CONFIG
from codex_proxy.config import (
    SECRETS,
    SETTINGS_FILE_VARIABLE,
    ConfigError,
    Settings,
    known_settings,
    load_settings,
    setting_layers,
    settings_file_path,
)

DEFAULT = "default"


@dataclass(frozen=True)
class Row:
    """One setting: its effective value (masked if secret) and its source."""

    name: str
    value: str
    source: str
    note: str = ""


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "config",
        help="show the effective settings and where each came from (secrets masked)",
        description=(
            "Show every setting as `serve` would use it and where it came from: default, the "
            "settings file, ./.env or --env-file, or the environment (highest wins)."
        ),
    )
    parser.add_argument("--env-file", help="read settings from this file instead of ./.env")
    parser.add_argument("--json", action="store_true", help="print the settings as JSON")
    parser.add_argument(
        "--all", action="store_true", help="also list the settings left at their default"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        layers = setting_layers(args.env_file)
        settings = load_settings(args.env_file)
        error = None
    except ConfigError as exc:
        error = str(exc)
        try:
            layers = setting_layers(args.env_file)
        except ConfigError:
            print(f"codex-proxy: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        settings = None
    rows = collect(layers, settings)
    if args.json:
        report = {
            "ok": error is None,
            "error": error,
            "order": [layer.source for layer in reversed(layers)] + [DEFAULT],
            "settings_file": str(settings_file_path()),
            "settings": [asdict(row) for row in rows],
        }
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        shown = rows if args.all else [row for row in rows if row.source != DEFAULT]
        print(render(shown, layers, len(rows) - len(shown)))
    if error:
        print(f"codex-proxy: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def collect(layers: list[Any], settings: Settings | None) -> list[Row]:
    """A row for every setting the gateway reads, in the order config.py reads them."""
    rows = []
    for name in known_settings():
        winner = next((layer for layer in reversed(layers) if name in layer.values), None)
        if winner is None:
            rows.append(Row(name, _default(name, settings), DEFAULT))
            continue
        raw = winner.values[name]
        note = ""
        if raw == "":
            note = "empty: the default applies"
        shadowed = [
            layer.source
            for layer in layers
            if layer is not winner and name in layer.values and layer.values[name] != raw
        ]
        if shadowed:
            note = (note + "; " if note else "") + "overrides " + ", ".join(shadowed)
        rows.append(Row(name, mask(name, raw), winner.source, note))
    return rows


def mask(name: str, raw: str) -> str:
    """A secret as ``set (...abcd)``; the last 4 characters only of a long one."""
    if name not in SECRETS:
        return raw
    if not raw:
        return "unset"
    if name == "CODEX_EXTRA_HEADERS":
        return "set (values hidden)"
    return f"set (...{raw[-4:]})" if len(raw) >= 16 else "set"


# Settings whose field is not named after the variable.
FIELDS = {
    "CODEX_HOME": "codex_home",
    "CODEX_REFRESH_TOKEN_URL_OVERRIDE": "refresh_token_url",
    "CODEX_CODEX_BASE_URL": "upstream_base_url",
}


def _default(name: str, settings: Settings | None) -> str:
    """The value in effect for a setting nobody set."""
    if name in SECRETS:
        return "unset"
    if settings is None:
        return "-"
    if name == SETTINGS_FILE_VARIABLE:
        return str(settings_file_path())
    if name in ("CODEX_UPSTREAM_BASE_URL", "CODEX_CODEX_BASE_URL"):
        return "the auth mode's default"
    if name in IMAGE_ENV_OPTIONS:
        value = settings.image_options.get(IMAGE_ENV_OPTIONS[name])
    else:
        value = getattr(settings, FIELDS.get(name, name.removeprefix("CODEX_").lower()), None)
    if value is None:
        return "-"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    return str(value)


def render(rows: list[Row], layers: list[Any], hidden: int) -> str:
    order = " > ".join([layer.source for layer in reversed(layers)] + [DEFAULT])
    lines = [f"precedence: {order}"]
    if not any(layer.source.startswith("settings file") for layer in layers):
        lines.append(f"settings file: {settings_file_path()} (not present)")
    lines.append("")
    if rows:
        width = max(len(row.name) for row in rows)
        value_width = min(max(len(row.value) for row in rows), 40)
        for row in rows:
            line = f"{row.name.ljust(width)}  {row.value.ljust(value_width)}  {row.source}"
            lines.append(line + (f" ({row.note})" if row.note else ""))
    else:
        lines.append("every setting is at its default")
    if hidden:
        lines.append("")
        lines.append(f"{hidden} more at their default (--all lists them)")
    return "\n".join(lines)
