"""Real client libraries against the real gateway and the fake upstream.

Only ``base_url`` and the API key change from each library's defaults. The root
``tests/conftest.py`` fixtures (``fake``, ``upstream``, ``base_settings``) are reused; the
gateways here require a token, so every test also proves the library sends its key.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from codex_proxy.config import Settings

from ..conftest import Gateway, start_gateway

KEY = "sk-clients-test-token"
MODEL = "gpt-5.4"  # no "codex" in it: LangChain and LiteLLM would switch to /v1/responses
NODE_DIR = Path(__file__).parent / "node"

# Set at import, before any library is: some read these once. They only turn off phoning home.
QUIET_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no model price list download
    "LITELLM_TELEMETRY": "False",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
    "OPENAI_AGENTS_DISABLE_TRACING": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
}
os.environ.update(QUIET_ENV)


@pytest.fixture(autouse=True)
def _client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key, base URL or proxy from the developer's shell must not decide where a library
    goes: each test passes the gateway's URL and key explicitly."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def _serve(settings: Settings) -> Iterator[Gateway]:
    server = start_gateway(replace(settings, gateway_token=KEY))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gw(base_settings: Settings) -> Iterator[Gateway]:
    """The gateway as most people run it, behind a token."""
    yield from _serve(base_settings)


@pytest.fixture(scope="session")
def image_gw(base_settings: Settings) -> Iterator[Gateway]:
    """With ``CODEX_ENABLE_IMAGE_GEN`` on: images come back as markdown data URIs."""
    yield from _serve(replace(base_settings, enable_image_gen=True))


@pytest.fixture
def base_url(gw: Gateway, upstream) -> str:
    """``.../v1``, what every OpenAI-compatible client calls its base URL."""
    return f"{gw.url}/v1"


def run_node(args: list[str], base_url: str, **extra_env: str) -> dict[str, Any]:
    """Run ``node`` with ``args`` in ``node/`` against the gateway (its URL, key and model in
    ``GATEWAY_BASE_URL``, ``GATEWAY_API_KEY``, ``GATEWAY_MODEL``); its one line of JSON. A
    missing node or missing packages fail loudly instead of skipping."""
    node = shutil.which("node")
    assert node, "node (>= 20) is not on PATH"
    assert (NODE_DIR / "node_modules" / "openai").is_dir(), (
        "node packages missing: run `npm ci --prefix tests/clients/node`"
    )
    env = {
        **os.environ,
        "GATEWAY_BASE_URL": base_url,
        "GATEWAY_API_KEY": KEY,
        "GATEWAY_MODEL": MODEL,
        **extra_env,
    }
    done = subprocess.run(
        [node, *args],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
