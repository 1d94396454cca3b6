"""launchd: keep the gateway running on a Mac (``codex-proxy launchd ...``, ``cli/service.py``).

The job is a per-user LaunchAgent (``~/Library/LaunchAgents/<label>.plist``) in the
``gui/<uid>`` domain, loaded with the modern ``launchctl bootstrap`` verbs. It restarts the
gateway when it crashes (not when it exits cleanly) and logs to ``~/Library/Logs/``.
"""

from __future__ import annotations

import os
import plistlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codex_proxy.service.common import (
    EXIT_NOT_RUNNING,
    ServiceError,
    ServiceSpec,
    base_url_from_command,
    check_tool,
    report_health,
    run_tool,
    say,
    say_health,
    tail,
    write_definition,
)

DEFAULT_LABEL = "com.codex-api.gateway"
THROTTLE_SECONDS = 10
NO_LAUNCHCTL = "launchd is macOS only (`codex-proxy launchd print` works everywhere)."


@dataclass(frozen=True)
class JobState:
    """What ``launchctl print`` says about a loaded job."""

    loaded: bool
    state: str | None = None
    pid: int | None = None
    last_exit: str | None = None


def agent_path(label: str) -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{label}.plist"


def log_paths(label: str) -> tuple[Path, Path]:
    """stdout and stderr logs; the default label gets the short ``codex-proxy`` names."""
    stem = "codex-proxy" if label == DEFAULT_LABEL else label
    logs = Path.home() / "Library" / "Logs"
    return logs / f"{stem}.log", logs / f"{stem}.err.log"


def job(spec: ServiceSpec, label: str) -> dict[str, Any]:
    """The LaunchAgent definition. Only paths go into it: secrets stay in the env file."""
    out_log, err_log = log_paths(label)
    return {
        "Label": label,
        "ProgramArguments": spec.command(),
        "EnvironmentVariables": spec.environment(),
        "WorkingDirectory": str(spec.working_directory),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # restart after a crash, not after a clean stop
        "ThrottleInterval": THROTTLE_SECONDS,  # at most one restart every 10 s
        "ProcessType": "Background",
        "StandardOutPath": str(out_log),
        "StandardErrorPath": str(err_log),
    }


def render(spec: ServiceSpec, label: str) -> bytes:
    return plistlib.dumps(job(spec, label))


def parse_print(text: str) -> JobState:
    """Read ``state``, ``pid`` and ``last exit code`` from ``launchctl print gui/<uid>/<label>``.

    Nested blocks repeat some keys, so the job's own lines (one tab deep) win."""
    values: dict[str, str] = {}
    for depth in (r"\t", r"\s+"):
        for match in re.finditer(rf"^{depth}(state|pid|last exit code) = (.*)$", text, re.M):
            values.setdefault(match.group(1), match.group(2).strip())
    pid = values.get("pid")
    return JobState(
        loaded=True,
        state=values.get("state"),
        pid=int(pid) if pid and pid.isdigit() else None,
        last_exit=values.get("last exit code"),
    )


def install(launchctl: str, spec: ServiceSpec, label: str, wait: float) -> int:
    path = agent_path(label)
    write_definition(spec, path, render(spec, label), log_paths(label)[0].parent)
    domain = f"gui/{os.getuid()}"
    run_tool([launchctl, "bootout", f"{domain}/{label}"])  # an older copy; "not loaded" is fine
    _bootstrap(launchctl, domain, path)
    check_tool([launchctl, "enable", f"{domain}/{label}"])
    check_tool([launchctl, "kickstart", "-k", f"{domain}/{label}"])
    say(f"loaded {label} in {domain}")
    return report_health(spec.base_url, wait, log_paths(label)[1])


def _bootstrap(launchctl: str, domain: str, path: Path, attempts: int = 3) -> None:
    """``launchctl bootstrap``; right after a bootout launchd can still be tearing the old job
    down ("Input/output error"), so a failure is retried a few times before it is reported."""
    argv = [launchctl, "bootstrap", domain, str(path)]
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.5)
        result = run_tool(argv)
        if result.returncode == 0:
            return
    said = (result.stderr or result.stdout).strip()
    raise ServiceError(f"`{' '.join(argv)}` failed (exit {result.returncode}): {said}")


def uninstall(launchctl: str, label: str) -> int:
    path = agent_path(label)
    result = run_tool([launchctl, "bootout", f"gui/{os.getuid()}/{label}"])
    was_loaded = result.returncode == 0
    existed = path.exists()
    if existed:
        path.unlink()
    if was_loaded:
        say(f"stopped and unloaded {label}")
    if existed:
        say(f"removed {path}")
    if not (was_loaded or existed):
        say(f"{label} was not installed")
    return 0


def status(launchctl: str, label: str) -> int:
    path = agent_path(label)
    result = run_tool([launchctl, "print", f"gui/{os.getuid()}/{label}"])
    state = parse_print(result.stdout) if result.returncode == 0 else JobState(loaded=False)
    say(f"{label}: {describe(state)}")
    say(f"plist: {path}" + ("" if path.exists() else " (not installed)"))
    say_health(_url_from_plist(path))
    for log in log_paths(label):
        lines = tail(log)
        if lines is None:
            say(f"log {log}: none yet")
        else:
            say(f"log {log} (last {len(lines)} lines):")
            for line in lines:
                say(f"  {line}")
    return 0 if state.state == "running" else EXIT_NOT_RUNNING


def describe(state: JobState) -> str:
    if not state.loaded:
        return "not loaded"
    parts = ["loaded", state.state or "state unknown"]
    if state.pid is not None:
        parts.append(f"pid {state.pid}")
    if state.last_exit is not None:
        parts.append(f"last exit code {state.last_exit}")
    return ", ".join(parts)


def _url_from_plist(path: Path) -> str | None:
    try:
        arguments = plistlib.loads(path.read_bytes()).get("ProgramArguments")
    except Exception:  # a hand-edited or broken plist: status still shows the rest
        return None
    if not isinstance(arguments, list):
        return None
    return base_url_from_command([str(a) for a in arguments])
