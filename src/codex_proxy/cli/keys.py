"""``codex-proxy keys add|list|revoke``: the client keys of ``CODEX_KEYS_FILE``.

``add`` prints the new token once; the file keeps only its sha256. A running gateway notices
the changed file on its next request, so nothing needs restarting.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from typing import Any

from codex_proxy.cli import EXIT_CONFIG, EXIT_FAILED, settings_or_report
from codex_proxy.config import Settings
from codex_proxy.keys.file import (
    Key,
    KeysFileError,
    Policy,
    load,
    new_token,
    parse_expiry,
    save,
    token_hash,
    valid_name,
)
from codex_proxy.keys.policy import IMAGES, REQUESTS, describe
from codex_proxy.keys.usage import Usage, usage_path


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "keys",
        help="client keys: one gateway for several agents, each with its own key and limits",
        description="Manage the client keys in CODEX_KEYS_FILE.",
    )
    parser.add_argument("--env-file", help="read settings from this file instead of ./.env")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="create a key and print its token (once)")
    add.add_argument("name", help="a name for the agent (letters, digits, . _ -)")
    add.add_argument("--deny-images", action="store_true", help="the key may not make images")
    add.add_argument("--models", nargs="+", metavar="PATTERN", help="allowed models (globs)")
    add.add_argument("--rpm", type=int, metavar="N", help="requests per minute")
    add.add_argument("--images-per-day", type=int, metavar="N", help="images per UTC day")
    add.add_argument("--expires", metavar="DATE", help="ISO date or date-time (UTC if no zone)")
    add.set_defaults(handler=run_add)
    listing = actions.add_parser("list", help="names, policies and usage (never tokens)")
    listing.set_defaults(handler=run_list)
    revoke = actions.add_parser("revoke", help="delete a key (a running gateway stops taking it)")
    revoke.add_argument("name")
    revoke.set_defaults(handler=run_revoke)


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"codex-proxy: {message}", file=sys.stderr)
    return code


def _settings_and_keys(args: argparse.Namespace) -> tuple[Settings, dict[str, Key]] | int:
    """The settings and the keys file they name, or the exit code after saying what is wrong."""
    settings = settings_or_report(args.env_file)
    if settings is None:
        return EXIT_CONFIG
    try:
        return settings, load(settings.keys_file)
    except KeysFileError as exc:
        return _fail(str(exc), EXIT_CONFIG)


def run_add(args: argparse.Namespace) -> int:
    settings = settings_or_report(args.env_file)
    if settings is None:
        return EXIT_CONFIG
    if not valid_name(args.name):
        return _fail("a key name is 1-64 letters, digits, '.', '_' or '-'", EXIT_CONFIG)
    for flag, value in (("--rpm", args.rpm), ("--images-per-day", args.images_per_day)):
        if value is not None and value < 0:
            return _fail(f"{flag} must be 0 or more", EXIT_CONFIG)
    try:
        expires = parse_expiry(args.expires) if args.expires else None
        keys = load(settings.keys_file)
    except KeysFileError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    if args.name in keys:
        return _fail(f"a key named {args.name!r} exists; revoke it first", EXIT_CONFIG)
    token = new_token()
    policy = Policy(
        models=tuple(args.models or ()),
        images="deny" if args.deny_images else "allow",
        rpm=args.rpm,
        images_per_day=args.images_per_day,
        expires=expires,
    )
    created = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    keys[args.name] = Key(args.name, token_hash(token), policy, created)
    save(settings.keys_file, keys)
    print(f"Added key {args.name!r} ({describe(policy)}) to {settings.keys_file}.")
    print("Its token, shown only now (the file keeps a hash of it):")
    print(token)
    return 0


def run_list(args: argparse.Namespace) -> int:
    found = _settings_and_keys(args)
    if isinstance(found, int):
        return found
    settings, keys = found
    if not keys:
        print(f"No client keys in {settings.keys_file} (add one with `codex-proxy keys add`).")
        return 0
    path = usage_path(settings.data_dir)
    usage = Usage(path) if path.exists() else None
    now = time.time()
    rows = [("NAME", "POLICY", "USAGE")]
    for key in keys.values():
        figures = "-"
        if usage is not None:
            figures = (
                f"{usage.used(key.name, REQUESTS, now)} requests this minute, "
                f"{usage.used(key.name, IMAGES, now)} images today, "
                f"{usage.total(key.name, REQUESTS)} requests in all"
            )
        rows.append((key.name, describe(key.policy), figures))
    if usage is not None:
        usage.close()
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for name, policy, figures in rows:
        print(f"{name.ljust(widths[0])}  {policy.ljust(widths[1])}  {figures}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    found = _settings_and_keys(args)
    if isinstance(found, int):
        return found
    settings, keys = found
    if keys.pop(args.name, None) is None:
        return _fail(f"no key named {args.name!r} in {settings.keys_file}")
    save(settings.keys_file, keys)
    path = usage_path(settings.data_dir)
    if path.exists():
        usage = Usage(path)
        usage.forget(args.name)
        usage.close()
    print(f"Revoked key {args.name!r}; a running gateway refuses it from its next request.")
    return 0
