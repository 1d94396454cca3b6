"""Stopping a real ``codex-proxy serve`` process while a stream is stalled: after the grace
period (CODEX_SHUTDOWN_GRACE_SECONDS) the client gets a ``server_shutting_down`` error event,
the upstream request is cancelled, and the process exits 0 without a traceback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from codex_proxy.mock.events import ResponseScript
from codex_proxy.mock.server import FakeUpstream, Pause, Reply

from ..conftest import wait_for, write_auth_json
from ..processes import clean_env, free_port

BIN = Path(sys.executable).parent
GRACE = 1.0
MARGIN = 15.0  # generous: the machine is shared; the point is "not the stall's 120 s"
MESSAGE = "The gateway is shutting down; this request was ended. Retry it in a moment."


def stalled() -> Reply:
    s = ResponseScript()
    s.start()
    s.message(["first words"])
    return Reply(events=[*s.events[:5], Pause(120)])


def start(tmp_path: Path, fake: FakeUpstream, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    write_auth_json(tmp_path / "codex-home")
    port = free_port()
    env = clean_env(
        tmp_path,
        CODEX_UPSTREAM_BASE_URL=fake.url,
        CODEX_AUTH_MODE="chatgpt",
        CODEX_SHUTDOWN_GRACE_SECONDS=str(GRACE),
    )
    err = (tmp_path / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "codex-proxy"), "serve", "--port", str(port), *extra],
        env=env,
        cwd=tmp_path,
        stdout=err,
        stderr=err,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200
        except httpx.TransportError:
            return False

    assert wait_for(healthy, timeout=30), (tmp_path / "stderr.log").read_text()
    return proc, url


@pytest.mark.parametrize(
    ("sig", "workers"),
    [(signal.SIGTERM, "1"), (signal.SIGINT, "1"), (signal.SIGTERM, "2")],
    ids=["sigterm", "sigint", "sigterm-2-workers"],
)
def test_signal_ends_a_stalled_stream_with_an_error_event(
    tmp_path: Path, upstream: FakeUpstream, sig: signal.Signals, workers: str
) -> None:
    upstream.enqueue(stalled())
    proc, url = start(tmp_path, upstream, "--workers", workers)
    events: list[dict] = []
    try:
        body = {
            "model": "gpt-5.2-codex",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as answer:
            assert answer.status_code == 200
            for line in answer.iter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    break
                events.append(json.loads(line.removeprefix("data: ")))
                if len(events) == 1:  # the stream has begun: now stop the gateway
                    proc.send_signal(sig)
        code = proc.wait(timeout=GRACE + MARGIN)  # not the stall's 120 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = (tmp_path / "stderr.log").read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr and "CancelledError" not in stderr
    assert events[-1] == {
        "error": {
            "message": MESSAGE,
            "type": "server_error",
            "param": None,
            "code": "server_shutting_down",
        }
    }
    assert any(
        c["choices"][0]["delta"].get("content") == "first words"
        for c in events[:-1]
        if c.get("choices")
    )
    assert wait_for(lambda: upstream.disconnects >= 1)  # the upstream request was cancelled
