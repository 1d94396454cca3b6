"""The four things a benchmark talks to: the fake upstream directly, codex-proxy, LiteLLM and
ChatMock, each started as its own process on a loopback port against the same fake."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench import procs

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / "bench" / ".venv-peers"
PEERS_BIN = PEERS_VENV / "bin"
PROJECT_BIN = Path(sys.executable).parent
PEER_PACKAGES = ("litellm[proxy]", "chatmock")
PROFILERS = ("py-spy",)
PROMPT = [{"role": "user", "content": "hi"}]
IMAGES_STREAM = {"prompt": "a fox", "stream": True, "partial_images": 3}


@dataclass
class Target:
    """How to start one gateway and what to send it."""

    key: str
    title: str
    kind: str  # "chat", "responses" (the upstream itself), "images" or "responses_images"
    path: str
    model: str = "gpt-5"
    health: str = "/healthz"
    start_timeout: float = 60.0
    note: str = ""
    available: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    payload: dict[str, object] | None = None
    """A request body of its own (e.g. ``/v1/responses`` through the gateway), else the default
    for ``kind``."""
    token: str = "bench"  # the load generator's bearer token

    def body(self) -> str:
        """The streaming request body, as JSON text."""
        if self.payload is not None:
            return orjson.dumps(self.payload).decode()
        if self.kind == "images":
            return orjson.dumps(IMAGES_STREAM).decode()
        if self.kind in ("responses", "responses_images"):
            body: dict[str, object] = {
                "model": "bench",
                "instructions": "",
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
                "stream": True,
                "store": False,
            }
        else:
            body = {"model": self.model, "messages": PROMPT, "stream": True}
        return orjson.dumps(body).decode()

    def argv(self, port: int, fake_url: str, workdir: Path) -> list[str]:
        """The command line that starts this gateway on ``port``."""
        if self.key == "codex-proxy":
            return [str(PROJECT_BIN / "codex-proxy"), "serve", "--port", str(port)]
        if self.key == "litellm":
            config = workdir / "litellm.yaml"
            config.write_text(litellm_config(fake_url))
            return [
                str(PEERS_BIN / "litellm"),
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
            ]
        if self.key == "chatmock":
            shim = ROOT / "bench" / "chatmock_shim.py"
            python = str(PEERS_BIN / "python")
            return [python, str(shim), "--port", str(port), "--upstream", fake_url]
        raise ValueError(self.key)

    def env(self, fake_url: str) -> dict[str, str]:
        if self.key == "codex-proxy":
            return {
                "CODEX_AUTH_MODE": "api_key",
                "OPENAI_API_KEY": "bench",
                "CODEX_UPSTREAM_BASE_URL": fake_url,
                "CODEX_LOG_LEVEL": "warning",
                **self.extra_env,
            }
        if self.key == "litellm":
            return {"LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        return {}

    def start(
        self, fake_url: str, workdir: Path, log: Path
    ) -> tuple[subprocess.Popen[bytes], str, float]:
        """Start it; returns the process, its base URL and the seconds to its first health 200."""
        port = procs.free_port()
        proc = procs.spawn(self.argv(port, fake_url, workdir), self.env(fake_url), log, workdir)
        base = f"http://127.0.0.1:{port}"
        try:
            took = procs.wait_healthy(base + self.health, proc, self.start_timeout)
        except RuntimeError:
            procs.stop(proc)
            raise
        return proc, base, took


def litellm_config(fake_url: str) -> str:
    """LiteLLM proxy config: model ``bench`` through its chat -> Responses bridge."""
    return (
        "model_list:\n"
        "  - model_name: bench\n"
        "    litellm_params:\n"
        "      model: openai/responses/bench\n"
        f"      api_base: {fake_url}/v1\n"
        "      api_key: bench\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
    )


def all_targets() -> list[Target]:
    """Direct baseline first, then codex-proxy, then the peers (marked unavailable when their
    venv lacks them)."""
    direct = Target("direct", "direct (a)", "responses", "/responses", health="/healthz")
    ours = Target("codex-proxy", "codex-proxy (b)", "chat", "/v1/chat/completions")
    litellm = Target(
        "litellm",
        "LiteLLM (c)",
        "chat",
        "/v1/chat/completions",
        model="bench",
        health="/health/liveliness",
        start_timeout=120.0,
        note="model `openai/responses/bench` (LiteLLM's chat -> Responses bridge, proxy with "
        "one uvicorn worker); its bridge drops `image_generation_call` items, so no image "
        "reaches the client in scenario 4",
    )
    chatmock = Target(
        "chatmock",
        "ChatMock (d)",
        "chat",
        "/v1/chat/completions",
        health="/health",
        note="upstream URL is a constant; bench/chatmock_shim.py patches it at start",
    )
    if not (PEERS_BIN / "litellm").exists():
        litellm.available = False
        litellm.note = "not installed: run `python -m bench --install-peers`"
    if not _has_module("chatmock"):
        chatmock.available = False
        chatmock.note = "not installed: run `python -m bench --install-peers`"
    return [direct, ours, litellm, chatmock]


def _has_module(name: str) -> bool:
    return any((PEERS_VENV / "lib").glob(f"python3*/site-packages/{name}"))


def install_peers() -> None:
    """Create ``bench/.venv-peers`` and install the peers and py-spy into it (never into the
    project's own environment)."""
    if not (PEERS_BIN / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True, timeout=300)
    pip = [str(PEERS_BIN / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *PEER_PACKAGES, *PROFILERS], check=True, timeout=1800)


def imagegen_script() -> str | None:
    """The ``codex-imagegen`` console script, if this environment has it."""
    found = PROJECT_BIN / "codex-imagegen"
    return str(found) if found.exists() else shutil.which("codex-imagegen")
