"""``codex-proxy serve`` (and the ``agent-cli-to-api codex`` alias): validate the settings,
then hand over to uvicorn, with one process or several workers."""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import sys
from types import FrameType
from typing import Any

from codex_proxy.cli import EXIT_CONFIG, settings_or_report
from codex_proxy.config import Settings, export_for_workers, load_settings, refuse_reason
from codex_proxy.server.request_log import setup_logging
from codex_proxy.translate.errors import LOGIN_HINT, SIGN_IN_HINT
from codex_proxy.upstream.auth import AuthProvider

SHUTDOWN_MARGIN_SECONDS = 3.0


def add_commands(commands: Any) -> None:
    add_serve_arguments(
        commands.add_parser(
            "serve",
            help="run the gateway",
            description=(
                "Run the OpenAI-compatible gateway (default http://127.0.0.1:8000/v1) on your "
                "ChatGPT login (`codex-proxy login`) or OPENAI_API_KEY; --mock answers from a "
                "built-in fake upstream, no account needed. Settings: `codex-proxy config`."
            ),
        )
    )


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
    parser.set_defaults(handler=run)


def bind_problem(host: str, port: int) -> str | None:
    """Why the gateway could not listen on ``host:port``, found before anything starts (uvicorn
    would say it only after logging that the app is ready)."""
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror} (check --host / CODEX_HOST)"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"cannot listen on {host}:{port}: the port is already in use. Is another "
                    "gateway running (`codex-proxy status`, or a service: `codex-proxy systemd "
                    "status` / `launchd status`)? Stop it, or choose another port with --port "
                    "(or CODEX_PORT)."
                )
            return f"cannot listen on {host}:{port}: {exc.strerror} (check --host and --port)"
    return None


def warn_without_login(settings: Settings) -> None:
    """One clear paragraph on stderr, before uvicorn's lines, when no request could succeed."""
    problem = AuthProvider(settings).problem()
    if problem is None:
        return
    reason = problem.message.removesuffix(SIGN_IN_HINT).removesuffix(LOGIN_HINT).strip()
    print(
        f"codex-proxy: WARNING: {reason}\n"
        "  Until then every request is refused (401). Ways forward:\n"
        "    codex-proxy login          sign in with ChatGPT (or use an existing `codex login`)\n"
        "    codex-proxy serve --mock   try the gateway now, without an account",
        file=sys.stderr,
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    """Validate the settings, then hand over to uvicorn."""
    import uvicorn

    settings = settings_or_report(args.env_file, host=args.host, port=args.port)
    if settings is None:
        return EXIT_CONFIG
    problem = refuse_reason(settings)
    if problem:
        print(f"codex-proxy: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if args.workers < 1:
        print("codex-proxy: --workers must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    problem = bind_problem(settings.host, settings.port)
    if problem:
        print(f"codex-proxy: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if not args.mock:
        warn_without_login(settings)
    setup_logging(settings.log_level, settings.log_format)
    fake = None
    if args.mock:
        from codex_proxy.mock.server import FakeUpstream

        fake = FakeUpstream().start()
        settings = load_settings(
            args.env_file, host=args.host, port=args.port, upstream_base_url=fake.url, mock=True
        )
        print(
            f"codex-proxy: --mock: answering from the fake upstream at {fake.url}", file=sys.stderr
        )
    # The gateway ends open requests itself after the grace period (server/shutdown.py);
    # uvicorn's own timeout is only the backstop for a request that ignores that.
    backstop = settings.shutdown_grace_seconds + SHUTDOWN_MARGIN_SECONDS
    previous_term = signal.signal(signal.SIGTERM, _stop_quietly)
    try:
        if args.workers == 1:
            from codex_proxy.server.app import create_app

            uvicorn.run(
                create_app(settings),
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level,
                log_config=None,  # uvicorn's lines go through our handler, in our format
                access_log=False,  # the gateway writes its own access line (request_log.py)
                timeout_graceful_shutdown=backstop,
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
                "codex_proxy.server.app:create_app_from_env",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=args.workers,
                log_level=settings.log_level,
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=backstop,
            )
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if fake is not None:
            fake.stop()
    return 0


def _stop_quietly(sig: int, frame: FrameType | None) -> None:
    """SIGTERM once uvicorn has shut down (it re-raises the signal it handled): end like Ctrl-C,
    which uvicorn.run absorbs, so the process exits 0 instead of dying of the signal."""
    raise KeyboardInterrupt
