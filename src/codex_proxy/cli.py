"""Command line: ``codex-proxy serve`` (and the ``agent-cli-to-api codex`` alias), ``login`` /
``logout``, and ``launchd`` / ``systemd`` to keep the gateway running as a service."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .config import ConfigError, Settings, export_for_workers, load_settings
from .request_log import setup_logging

EXIT_CONFIG = 2


def build_parser(prog: str = "codex-proxy") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="OpenAI-compatible Chat Completions gateway for a ChatGPT subscription.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the gateway")
    add_serve_arguments(serve)
    from . import doctor, launchd, login, status, systemd

    login.add_commands(commands)
    status.add_commands(commands)
    doctor.add_commands(commands)
    launchd.add_commands(commands)
    systemd.add_commands(commands)
    return parser


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (CODEX_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (CODEX_PORT, default 8000)")
    parser.add_argument("--env-file", help="read settings from this file instead of ./.env")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--mock",
        action="store_true",
        help="answer from the built-in fake upstream: try the gateway without an account",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
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
    add_serve_arguments(commands.add_parser("codex", help="serve the Codex gateway"))
    args = parser.parse_args(argv)
    return serve(args)


def serve(args: argparse.Namespace) -> int:
    """Validate the settings, then hand over to uvicorn."""
    import uvicorn

    try:
        settings = load_settings(args.env_file, host=args.host, port=args.port)
    except ConfigError as exc:
        print(f"codex-proxy: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    problem = refuse_reason(settings)
    if problem:
        print(f"codex-proxy: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if args.workers < 1:
        print("codex-proxy: --workers must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level, settings.log_format)
    fake = None
    if args.mock:
        from .mock.server import FakeUpstream

        fake = FakeUpstream().start()
        settings = load_settings(
            args.env_file, host=args.host, port=args.port, upstream_base_url=fake.url, mock=True
        )
        print(
            f"codex-proxy: --mock: answering from the fake upstream at {fake.url}", file=sys.stderr
        )
    try:
        if args.workers == 1:
            from .app import create_app

            uvicorn.run(
                create_app(settings),
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level,
                log_config=None,  # uvicorn's lines go through our handler, in our format
                access_log=False,  # the gateway writes its own access line (request_log.py)
            )
        else:
            export_for_workers(
                args.env_file,
                host=settings.host,
                port=settings.port,
                upstream_base_url=fake.url if fake else None,
                mock=bool(fake),
            )
            uvicorn.run(
                "codex_proxy.app:create_app_from_env",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=args.workers,
                log_level=settings.log_level,
                log_config=None,
                access_log=False,
            )
    finally:
        if fake is not None:
            fake.stop()
    return 0


def refuse_reason(settings: Settings) -> str | None:
    """Why the gateway must not start as configured, or None."""
    if settings.gateway_token or settings.loopback_only or settings.allow_no_auth:
        return None
    return (
        f"refusing to listen on {settings.host} without CODEX_GATEWAY_TOKEN: anyone who can reach "
        "the port could use your subscription. Set CODEX_GATEWAY_TOKEN, bind to 127.0.0.1, or set "
        "CODEX_ALLOW_NO_AUTH=1 if something in front of the gateway already checks access."
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
