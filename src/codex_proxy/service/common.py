"""What the launchd and systemd commands share: the ``serve`` command line a service runs, the
environment it gets, atomic file writes, the wait for ``/healthz`` and running the manager's tool.

A service does not inherit the shell it was installed from, so everything it needs is written
into the service definition explicitly, except secrets: those stay in the env file, which the
service reads by absolute path.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from codex_proxy._files import write_atomic
from codex_proxy.config import (
    SETTINGS_FILE_VARIABLE,
    ConfigError,
    Settings,
    load_settings,
    local_url,
    refuse_reason,
    setting_names,
    settings_file_path,
)

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_NOT_RUNNING = 3  # LSB convention for "status": the service is not running
DEFAULT_WAIT = 10.0
TOOL_TIMEOUT = 60.0


class ServiceError(Exception):
    """The service cannot be installed or queried as asked; the message says why."""


@dataclass(frozen=True)
class ServiceSpec:
    """Everything a service definition says about how to run the gateway."""

    python: Path
    host: str
    port: int
    env_file: Path | None
    settings_file: Path
    codex_home: Path
    home: Path
    working_directory: Path

    def command(self) -> list[str]:
        """``python -m codex_proxy serve ...`` with the interpreter of this installation."""
        argv = [str(self.python), "-m", "codex_proxy", "serve"]
        argv += ["--host", self.host, "--port", str(self.port)]
        if self.env_file is not None:
            argv += ["--env-file", str(self.env_file)]
        return argv

    def environment(self) -> dict[str, str]:
        """The variables the service gets: paths only, never a token or key."""
        return {
            "CODEX_HOME": str(self.codex_home),
            SETTINGS_FILE_VARIABLE: str(self.settings_file),
            "HOME": str(self.home),
            "PYTHONUNBUFFERED": "1",  # log lines reach the log file at once
        }

    @property
    def base_url(self) -> str:
        return local_url(self.host, self.port)


def prepare_folders(spec: ServiceSpec, *more: Path) -> None:
    """Create the folders the service needs before its manager tries to chdir or log there."""
    spec.codex_home.mkdir(parents=True, exist_ok=True, mode=0o700)
    for folder in (spec.working_directory, *more):
        folder.mkdir(parents=True, exist_ok=True)


def spec_from_args(args: argparse.Namespace) -> ServiceSpec:
    """Resolve the command-line choices (and CODEX_HOST/PORT/HOME) into absolute values, and
    refuse a service that could not start with only what it will be given."""
    settings_file = settings_file_path()
    env_file = _env_file(args.env_file, settings_file)
    settings = load_settings(_existing(env_file), host=args.host, port=args.port)
    if settings.port == 0:
        raise ConfigError("a service needs a fixed port, not 0")
    home = Path.home().absolute()
    codex_home = settings.codex_home.expanduser().absolute()
    spec = ServiceSpec(
        python=Path(sys.executable).absolute(),
        host=settings.host,
        port=settings.port,
        env_file=env_file,
        settings_file=settings_file,
        codex_home=codex_home,
        home=home,
        # beside the env file (relative paths in it resolve there), else the gateway's own
        # folder: never wherever the install command happened to run
        working_directory=env_file.parent if env_file else codex_home,
    )
    _check_service_view(spec)
    return spec


def write_definition(spec: ServiceSpec, path: Path, data: bytes, *folders: Path) -> None:
    """Install a service definition: name the shell settings it will not see, create the
    folders the service needs, write the file atomically."""
    warn_about_shell_settings(spec)
    prepare_folders(spec, *folders)
    ensure_settings_file(spec.settings_file)
    write_atomic(path, data, 0o644)
    say(f"wrote {path}")


SETTINGS_TEMPLATE = """\
# codex-proxy settings: one NAME=value per line (see .env.example for every setting).
# The gateway and its service (launchd / systemd install) read this file. Keep it private
# (mode 0600): secrets such as CODEX_GATEWAY_TOKEN and OPENAI_API_KEY belong here.
# Precedence, highest first: command-line flags, the environment, --env-file (or ./.env),
# this file, the defaults. `codex-proxy config` shows where each setting came from.
#
# CODEX_GATEWAY_TOKEN=
# CODEX_HOST=127.0.0.1
# CODEX_PORT=8000
# OPENAI_API_KEY=
"""


def ensure_settings_file(path: Path) -> None:
    """Create the settings file a service reads (private, commented) when there is none."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, SETTINGS_TEMPLATE.encode(), 0o600)
    say(f"wrote {path} (the service's settings file; put secrets here)")


def say_health(url: str | None) -> None:
    """For ``status``: whether the gateway the definition names answers."""
    if url:
        say(f"{url}/healthz: {'answers' if is_healthy(url) else 'does not answer'}")


def warn_about_shell_settings(spec: ServiceSpec) -> None:
    """Name the settings exported in this shell that the service will not see."""
    handled = {"CODEX_HOME", "CODEX_HOST", "CODEX_PORT", "CODEX_ENV_FILE", SETTINGS_FILE_VARIABLE}
    names = [name for name in setting_names() if name not in handled]
    if names:
        where = f"in {spec.env_file}" if spec.env_file else f"in {spec.settings_file}"
        note(
            f"note: {', '.join(names)} {'is' if len(names) == 1 else 'are'} set in this shell but "
            f"the service will not see {'it' if len(names) == 1 else 'them'}; put "
            f"{'it' if len(names) == 1 else 'them'} {where}."
        )


def base_url_from_command(argv: list[str]) -> str | None:
    """The gateway URL a ``serve`` command line binds to (``status`` probes it)."""
    host, port = "127.0.0.1", None
    for flag, value in itertools.pairwise(argv):
        if flag == "--host":
            host = value
        elif flag == "--port" and value.isdigit():
            port = int(value)
    return local_url(host, port) if port else None


def wait_healthy(url: str, seconds: float) -> bool:
    """Poll ``{url}/healthz`` until it answers 200 or ``seconds`` have passed."""
    deadline = time.monotonic() + max(seconds, 0.0)
    while True:
        if is_healthy(url):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def report_health(url: str, wait: float, log: Path | str) -> int:
    """Wait for /healthz and say where the gateway is, or that it did not come up."""
    if wait_healthy(url, wait):
        say(f"codex-proxy is up at {url}  (base_url for clients: {url}/v1)")
        return 0
    note(
        f"codex-proxy: the service started but {url}/healthz did not answer within {wait:g} s. "
        f"Look at the log: {log}"
    )
    return EXIT_FAILED


def is_healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def require_tool(name: str, purpose: str) -> str:
    """The absolute path of a service manager's tool, or a clear error."""
    found = shutil.which(name)
    if not found:
        raise ServiceError(f"`{name}` was not found on PATH: {purpose}")
    return found


def run_tool(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a manager command, capturing what it says (it never sees a secret)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ServiceError(f"`{' '.join(argv)}` did not finish in {TOOL_TIMEOUT:g} s") from None


def check_tool(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a manager command that must succeed."""
    result = run_tool(argv)
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip()
        raise ServiceError(
            f"`{' '.join(argv)}` failed (exit {result.returncode})" + (f": {said}" if said else "")
        )
    return result


def tail(path: Path, lines: int = 20) -> list[str] | None:
    """The last ``lines`` lines of a log file (``None`` when there is no such file)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(handle.tell() - 64 * 1024, 0))
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return None
    return text.splitlines()[-lines:]


def check_label(label: str) -> str:
    """Labels become file names: allow only reverse-DNS style characters."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", label):
        raise ConfigError(f"invalid label {label!r}: use letters, digits, '.', '-' and '_'")
    return label


def say(message: str) -> None:
    print(message, flush=True)


def note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _env_file(given: str | None, settings_file: Path) -> Path:
    """The env file as an absolute path: the one given, else ``./.env`` when there is one,
    else the gateway's settings file (which ``install`` creates)."""
    if given:
        path = Path(given).expanduser().absolute()
        if not path.is_file():
            raise ConfigError(f"env file not found: {given}")
        return path
    default = Path(".env")
    if default.is_file():
        path = default.absolute()
        note(f"using the settings in {path} (pass --env-file to choose another file)")
        return path
    if not settings_file.exists():
        note(f"the service reads {settings_file}; install creates it (mode 0600)")
    return settings_file


def _existing(path: Path | None) -> Path | None:
    return path if path is not None and path.is_file() else None


def _check_service_view(spec: ServiceSpec) -> None:
    """Load the settings as the service will see them; refuse what it would refuse."""
    environ = spec.environment()
    if not spec.settings_file.is_file():  # not created yet: install writes it
        del environ[SETTINGS_FILE_VARIABLE]
    settings: Settings = load_settings(_existing(spec.env_file), environ=environ, host=spec.host)
    problem = refuse_reason(settings)
    if problem and os.environ.get("CODEX_GATEWAY_TOKEN"):
        raise ConfigError(
            f"the service would not start: CODEX_GATEWAY_TOKEN is set in this shell, but a "
            f"service does not see your shell. Put it in {spec.env_file or spec.settings_file} "
            "(the file the service reads), then run this again."
        )
    if problem:
        raise ConfigError(f"the service would not start: {problem}")
