"""The ``codex-proxy`` command line: the parser, with one module per command (``serve``,
``login`` / ``logout``, ``status``, ``models``, ``doctor``, ``launchd`` / ``systemd``). This
floor is imported by nothing in the package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from codex_proxy import __version__
from codex_proxy.cli import (
    EXIT_CONFIG,
    config,
    doctor,
    keys,
    login,
    models,
    serve,
    service,
    status,
)


def build_parser(prog: str = "codex-proxy") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="OpenAI-compatible Chat Completions gateway for a ChatGPT subscription.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_commands(commands)
    login.add_commands(commands)
    status.add_commands(commands)
    models.add_commands(commands)
    doctor.add_commands(commands)
    config.add_commands(commands)
    service.add_commands(commands)
    keys.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        # No command: the help, not argparse's one-line "arguments are required"; exit 2 as
        # for any usage error (nothing was done), so a script calling it wrong notices.
        parser.print_help()
        return EXIT_CONFIG
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:  # pragma: no cover - argparse rejects unknown commands
        return EXIT_CONFIG
    return int(handler(args))


def legacy_main(argv: Sequence[str] | None = None) -> int:
    """``agent-cli-to-api codex [--host H] [--port P]``: the name older install docs use."""
    parser = argparse.ArgumentParser(
        prog="agent-cli-to-api", description="Alias of `codex-proxy serve`."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="AGENT")
    serve.add_serve_arguments(commands.add_parser("codex", help="serve the Codex gateway"))
    return serve.run(parser.parse_args(argv))
