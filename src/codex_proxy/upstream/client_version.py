"""Which Codex version the gateway claims to be (the ``version`` header and the catalog's
``client_version`` query).

The ChatGPT backend refuses old versions (``400 ... requires a newer version of Codex``) and
filters its model catalog by version, so a number fixed in the source goes stale on its own.
In order: ``CODEX_CLIENT_VERSION``; the Codex CLI's ``$CODEX_HOME/version.json`` (the CLI
records there the newest release it has seen, as ``latest_version``); ``codex --version``
when a ``codex`` executable is on PATH; the built-in number. It runs once per process, in a
worker thread at startup (it reads a file and may start a process), never at import.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import orjson

from codex_proxy.config import DEFAULT_CLIENT_VERSION, Settings

log = logging.getLogger("codex_proxy")

FROM_SETTING = "CODEX_CLIENT_VERSION"
FROM_VERSION_FILE = "version.json"
FROM_CLI = "codex --version"
BUILT_IN = "built-in"
VERSION_FILE = "version.json"
CLI_TIMEOUT = 3.0
_VERSION = re.compile(r"\b(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)\b")


@dataclass(frozen=True)
class ClientVersion:
    """A version and where it came from (one of the ``FROM_*`` / ``BUILT_IN`` names)."""

    value: str
    source: str

    def describe(self) -> str:
        return f"{self.value} (from {self.source})"


def configured(settings: Settings) -> ClientVersion:
    """The version without looking at the machine: the setting, else the built-in one."""
    if settings.client_version:
        return ClientVersion(settings.client_version, FROM_SETTING)
    return ClientVersion(DEFAULT_CLIENT_VERSION, BUILT_IN)


def resolve(settings: Settings, codex: str | None = "codex") -> ClientVersion:
    """The version to send, looked up in order; blocking (run it in a thread).
    ``codex`` is the executable to ask (None: do not ask one)."""
    if settings.client_version:
        return ClientVersion(settings.client_version, FROM_SETTING)
    recorded = version_file(settings.codex_home / VERSION_FILE)
    if recorded:
        return ClientVersion(recorded, FROM_VERSION_FILE)
    found = cli_version(codex) if codex else None
    if found:
        return ClientVersion(found, FROM_CLI)
    return ClientVersion(DEFAULT_CLIENT_VERSION, BUILT_IN)


def version_file(path: Path) -> str | None:
    """``latest_version`` of the Codex CLI's version.json, when it holds a usable one."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    value = data.get("latest_version") if isinstance(data, dict) else None
    return _plain(value) if isinstance(value, str) else None


def cli_version(command: str = "codex", timeout: float = CLI_TIMEOUT) -> str | None:
    """The number ``codex --version`` prints (``codex-cli 0.171.0``), or None: not on PATH,
    too slow, failing or printing nothing that looks like a version."""
    path = shutil.which(command)
    if path is None:
        return None
    try:
        done = subprocess.run(
            [path, "--version"],
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("`%s --version` failed: %s", command, type(exc).__name__)
        return None
    if done.returncode != 0:
        return None
    return _plain(done.stdout.decode("utf-8", "replace"))


def _plain(text: str) -> str | None:
    match = _VERSION.search(text)
    return match.group(1) if match else None
