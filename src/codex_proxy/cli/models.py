"""``codex-proxy models``: the models a running gateway offers (its ``GET /v1/models``), the
default marked, so nobody has to guess a model name that the backend may have retired."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from codex_proxy.cli import EXIT_CONFIG, EXIT_FAILED, settings_or_report
from codex_proxy.cli.status import add_gateway_arguments, ask_gateway


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "models",
        help="list the models a running gateway offers, the default marked",
        description="Ask a running gateway for GET /v1/models and print the model ids.",
    )
    add_gateway_arguments(parser, timeout=10.0)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_or_report(args.env_file)
    if settings is None:
        return EXIT_CONFIG
    _, listing = ask_gateway(args, settings, "/v1/models")
    if listing is None:
        return EXIT_FAILED
    if args.json:
        print(orjson.dumps(listing, option=orjson.OPT_INDENT_2).decode())
        return 0
    _, status = ask_gateway(args, settings, "/v1/status", quiet=True)
    default = status.get("default_model") if status else None
    ids = [m["id"] for m in listing.get("data") or [] if isinstance(m, dict) and "id" in m]
    for model_id in ids:
        print(f"{model_id}  (default)" if model_id == default else model_id)
    if default and default not in ids:
        print(f"default: {default}")
    return 0
