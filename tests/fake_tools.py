"""Fake service-manager tools (``launchctl``, ``systemctl``, ``journalctl``) for tests that run
the real ``codex-proxy`` command: a shell script first on PATH that records its arguments and
answers each verb with canned output and an exit code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .processes import clean_env

BIN = Path(sys.executable).parent
CAT = shutil.which("cat") or "/bin/cat"

SCRIPT = """#!/bin/sh
# fake {name}: record the call, answer from canned files per verb (first non-option argument)
printf '%s\\n' "$*" >> "{log}"
verb=""
for arg in "$@"; do
  case "$arg" in -*) ;; *) verb="$arg"; break ;; esac
done
answers="{answers}"
[ -f "$answers/$verb.out" ] && {cat} "$answers/$verb.out"
[ -f "$answers/$verb.err" ] && {cat} "$answers/$verb.err" >&2
[ -f "$answers/$verb.rc" ] && exit "$({cat} "$answers/$verb.rc")"
exit 0
"""


@dataclass
class FakeTool:
    """One fake command in ``bin_dir``."""

    name: str
    bin_dir: Path

    def __post_init__(self) -> None:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.answers.mkdir(parents=True, exist_ok=True)
        path = self.bin_dir / self.name
        path.write_text(SCRIPT.format(name=self.name, log=self.log, answers=self.answers, cat=CAT))
        path.chmod(0o755)

    @property
    def log(self) -> Path:
        return self.bin_dir / f"{self.name}.calls"

    @property
    def answers(self) -> Path:
        return self.bin_dir / f"{self.name}.answers"

    def respond(self, verb: str, stdout: str = "", stderr: str = "", rc: int = 0) -> None:
        (self.answers / f"{verb}.out").write_text(stdout)
        (self.answers / f"{verb}.err").write_text(stderr)
        (self.answers / f"{verb}.rc").write_text(str(rc))

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def service_env(tmp_path: Path, bin_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment with a temporary HOME and only ``bin_dir`` on PATH."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return clean_env(tmp_path, HOME=str(home), PATH=str(bin_dir), **extra)


def codex_proxy(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run the console script as a user would."""
    return subprocess.run(
        [str(BIN / "codex-proxy"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def uid() -> int:
    return os.getuid()
