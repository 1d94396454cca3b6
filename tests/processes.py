"""Gateway processes for tests that need the real command line (several workers, several
processes sharing one CODEX_HOME)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment without any CODEX_/OPENAI_ settings of the machine running the tests
    (nor its settings file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEX_", "OPENAI_"))}
    env["CODEX_HOME"] = str(tmp_path / "codex-home")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")  # not the real settings file of the user
    env["CODEX_DATA_DIR"] = str(tmp_path / "data")  # the response store, never the real home
    env.update(extra)
    return env


@contextmanager
def running(args: list[str], port: int, env: dict[str, str], cwd: Path) -> Iterator[str]:
    """Start a gateway process and wait for /healthz; always stop it. Its output goes to a
    log file beside it (a pipe nobody reads could fill up and stall the gateway)."""
    log_path = cwd / f"gateway-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                output = log_path.read_text(errors="replace")
                raise AssertionError(f"gateway exited with {proc.returncode}: {output}")
            try:
                if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "gateway did not become healthy"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
