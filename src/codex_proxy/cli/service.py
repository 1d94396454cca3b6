"""``codex-proxy launchd|systemd print|install|uninstall|status``: keep the gateway running.

One command shape for both service managers; what differs (the definition file, the tool, a
launchd job's label) lives in ``service/launchd.py`` and ``service/systemd.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from codex_proxy.config import ConfigError
from codex_proxy.service import launchd, systemd
from codex_proxy.service.common import (
    DEFAULT_WAIT,
    EXIT_CONFIG,
    EXIT_FAILED,
    ServiceError,
    ServiceSpec,
    check_label,
    note,
    require_tool,
    spec_from_args,
    warn_about_shell_settings,
)


@dataclass(frozen=True)
class Manager:
    """One service manager as the command line sees it; ``label`` is None for systemd."""

    command: str
    help: str
    definition: str
    tool: str
    no_tool: str
    render: Callable[[ServiceSpec, str | None], bytes]
    install: Callable[[str, ServiceSpec, str | None, float], int]
    uninstall: Callable[[str, str | None], int]
    status: Callable[[str, str | None], int]
    verbs: tuple[str, str, str]  # what install, uninstall and status do, in its words


LAUNCHD = Manager(
    command="launchd",
    help="run the gateway as a macOS LaunchAgent",
    definition="the plist",
    tool="launchctl",
    no_tool=launchd.NO_LAUNCHCTL,
    render=lambda spec, label: launchd.render(spec, label or launchd.DEFAULT_LABEL),
    install=launchd.install,
    uninstall=launchd.uninstall,
    status=launchd.status,
    verbs=(
        "install, load and start the LaunchAgent, then wait for /healthz",
        "stop and unload the LaunchAgent and remove its plist",
        "show whether it runs, its pid, last exit code and the end of its log",
    ),
)
SYSTEMD = Manager(
    command="systemd",
    help="run the gateway as a systemd user service",
    definition=f"the {systemd.UNIT} unit",
    tool="systemctl",
    no_tool=systemd.NO_SYSTEMCTL,
    render=lambda spec, _label: systemd.render(spec).encode(),
    install=lambda tool, spec, _label, wait: systemd.install(tool, spec, wait),
    uninstall=lambda tool, _label: systemd.uninstall(tool),
    status=lambda tool, _label: systemd.status(tool),
    verbs=(
        "install, enable and start the user service, then wait for /healthz",
        "stop and disable the user service and remove its unit",
        "show whether it runs, its pid, last exit status and the end of its log",
    ),
)


def add_commands(commands: Any) -> None:
    for manager in (LAUNCHD, SYSTEMD):
        parser = commands.add_parser(manager.command, help=manager.help)
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        install, uninstall, status = manager.verbs
        for name, text in (
            ("print", f"write {manager.definition} that install would use to stdout"),
            ("install", install),
            ("uninstall", uninstall),
            ("status", status),
        ):
            action = actions.add_parser(name, help=text, description=text)
            if manager is LAUNCHD:
                action.add_argument(
                    "--label",
                    default=launchd.DEFAULT_LABEL,
                    help=f"job label (default {launchd.DEFAULT_LABEL})",
                )
            if name in ("print", "install"):
                add_target_arguments(action)
            if name == "install":
                add_wait_argument(action)
        parser.set_defaults(handler=partial(run, manager))


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """``--host``, ``--port``, ``--env-file``: what the service will serve."""
    parser.add_argument("--host", help="bind address (default CODEX_HOST, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default CODEX_PORT, else 8000)")
    parser.add_argument(
        "--env-file",
        help="settings file the service reads (default ./.env when it exists); keep secrets here",
    )


def add_wait_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT,
        metavar="SECONDS",
        help=f"how long to wait for /healthz after starting (default {DEFAULT_WAIT:g})",
    )


def run(manager: Manager, args: argparse.Namespace) -> int:
    try:
        label = check_label(args.label) if manager is LAUNCHD else None
        if args.action == "print":
            spec = spec_from_args(args)
            warn_about_shell_settings(spec)
            sys.stdout.buffer.write(manager.render(spec, label))
            sys.stdout.flush()
            return 0
        tool = require_tool(manager.tool, manager.no_tool)
        if args.action == "install":
            return manager.install(tool, spec_from_args(args), label, args.wait)
        if args.action == "uninstall":
            return manager.uninstall(tool, label)
        return manager.status(tool, label)
    except ConfigError as exc:
        note(f"codex-proxy: {exc}")
        return EXIT_CONFIG
    except (ServiceError, OSError) as exc:
        note(f"codex-proxy: {exc}")
        return EXIT_FAILED
