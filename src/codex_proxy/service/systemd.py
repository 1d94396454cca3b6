"""systemd: keep the gateway running on Linux (``codex-proxy systemd ...``, ``cli/service.py``).

A systemd *user* unit (``~/.config/systemd/user/codex-proxy.service``): no root needed, and
it runs with the user's ``~/.codex`` login. It restarts the gateway when it fails, not when it
is stopped on purpose.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from codex_proxy.service.common import (
    EXIT_NOT_RUNNING,
    ServiceError,
    ServiceSpec,
    base_url_from_command,
    check_tool,
    note,
    report_health,
    require_tool,
    run_tool,
    say,
    say_health,
    write_definition,
)

UNIT = "codex-proxy.service"
RESTART_SECONDS = 5
SHOW_PROPERTIES = "LoadState,ActiveState,SubState,MainPID,ExecMainStatus"
NO_SYSTEMCTL = "systemd user services need systemctl (`codex-proxy systemd print` works anywhere)."
JOURNAL = f"journalctl --user -u {UNIT}"
NO_USER_BUS = (
    "systemctl cannot reach your user's service manager (no user bus). That happens in a "
    "session without a systemd login, e.g. after su or sudo, in a container, or over ssh "
    "without lingering. Run the command in a login session of this user, or enable one: "
    "`sudo loginctl enable-linger $USER`, then log in again (or export "
    "XDG_RUNTIME_DIR=/run/user/$(id -u))."
)


def unit_path() -> Path:
    return Path.home() / ".config" / "systemd" / "user" / UNIT


def render(spec: ServiceSpec) -> str:
    """The unit file. Only paths go into it: secrets stay in the EnvironmentFile."""
    service = [f"ExecStart={' '.join(exec_quote(arg) for arg in spec.command())}"]
    if spec.env_file is not None:
        # "-": a missing file is not an error (serve then says clearly what is wrong)
        service.append(f"EnvironmentFile=-{_escape(str(spec.env_file))}")
    service += [
        f"Environment={env_quote(name, value)}" for name, value in spec.environment().items()
    ]
    service += [
        f"WorkingDirectory={_escape(str(spec.working_directory))}",
        "Restart=on-failure",
        f"RestartSec={RESTART_SECONDS}",
    ]
    lines = [
        "# codex-proxy: OpenAI-compatible Chat Completions gateway for a ChatGPT subscription.",
        "# Written by `codex-proxy systemd install`; `codex-proxy systemd uninstall` removes it.",
        "# Secrets (CODEX_GATEWAY_TOKEN, OPENAI_API_KEY) belong in the EnvironmentFile, not here.",
        "[Unit]",
        "Description=codex-proxy gateway (OpenAI-compatible API for a ChatGPT subscription)",
        "After=network-online.target",
        "",
        "[Service]",
        *service,
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def exec_quote(arg: str) -> str:
    """One ExecStart argument: ``%`` and ``$`` escaped, quoted when it has spaces or quotes."""
    text = _escape(arg).replace("$", "$$")
    if text and not re.search(r"[\s\"'\\;]", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def env_quote(name: str, value: str) -> str:
    """One ``Environment=`` assignment, quoted as a whole."""
    text = _escape(f"{name}={value}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_show(text: str) -> dict[str, str]:
    """``Key=Value`` lines of ``systemctl show``."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def describe(props: dict[str, str]) -> str:
    if props.get("LoadState") == "not-found":
        return "not installed"
    active, sub = props.get("ActiveState", "unknown"), props.get("SubState")
    parts = [f"{active} ({sub})" if sub else active]
    pid = props.get("MainPID")
    if pid and pid != "0":
        parts.append(f"pid {pid}")
    if props.get("ExecMainStatus") is not None:
        parts.append(f"last exit status {props['ExecMainStatus']}")
    return ", ".join(parts)


def install(systemctl: str, spec: ServiceSpec, wait: float) -> int:
    user = [systemctl, "--user"]
    # `enable --now` does not restart a running service, so a changed unit needs a restart
    was_active = run_tool([*user, "is-active", "--quiet", UNIT]).returncode == 0
    path = unit_path()
    write_definition(spec, path, render(spec).encode())
    check_tool([*user, "daemon-reload"])
    check_tool([*user, "enable", "--now", UNIT])
    if was_active:
        check_tool([*user, "restart", UNIT])
    say(f"enabled and started {UNIT}")
    note(
        "note: user services stop when you log out; to keep the gateway running without a "
        "session, run: loginctl enable-linger $USER"
    )
    return report_health(spec.base_url, wait, f"`{JOURNAL} -n 50 --no-pager`")


def uninstall(systemctl: str) -> int:
    user = [systemctl, "--user"]
    path = unit_path()
    if not path.exists():
        run_tool([*user, "disable", "--now", UNIT])  # a unit installed elsewhere: best effort
        say(f"{UNIT} was not installed ({path} does not exist)")
        return 0
    result = run_tool([*user, "disable", "--now", UNIT])
    if result.returncode == 0:
        say(f"stopped and disabled {UNIT}")
    else:
        note(f"codex-proxy: `systemctl --user disable --now {UNIT}` failed; removing it anyway")
    path.unlink()
    say(f"removed {path}")
    check_tool([*user, "daemon-reload"])
    return 0


def status(systemctl: str) -> int:
    argv = [systemctl, "--user", "show", UNIT, "-p", SHOW_PROPERTIES]
    try:
        show = check_tool(argv)
    except ServiceError as exc:
        if "connect to bus" in str(exc):  # systemctl's "Failed to connect to bus: ..."
            raise ServiceError(NO_USER_BUS) from None
        raise
    props = parse_show(show.stdout)
    say(f"{UNIT}: {describe(props)}")
    path = unit_path()
    say(f"unit: {path}" + ("" if path.exists() else " (not installed)"))
    say_health(_url_from_unit(path))
    _show_journal()
    return 0 if props.get("ActiveState") == "active" else EXIT_NOT_RUNNING


def _show_journal() -> None:
    try:
        journalctl = require_tool("journalctl", "cannot show the log")
    except ServiceError:
        say("log: journalctl not found, cannot show the log")
        return
    result = run_tool([journalctl, "--user", "-u", UNIT, "-n", "20", "--no-pager"])
    lines = (result.stdout if result.returncode == 0 else result.stderr).splitlines()
    say(f"log ({JOURNAL}, last {len(lines)} lines):")
    for line in lines:
        say(f"  {line}")


def _url_from_unit(path: Path) -> str | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    match = re.search(r"^ExecStart=(.*)$", text, re.M)
    if not match:
        return None
    try:
        argv = shlex.split(match.group(1).replace("$$", "$").replace("%%", "%"))
    except ValueError:
        return None
    return base_url_from_command(argv)


def _escape(text: str) -> str:
    """systemd expands ``%`` specifiers in most settings: ``%%`` is a literal ``%``."""
    return text.replace("%", "%%")
