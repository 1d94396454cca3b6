"""Real client libraries against the real gateway and the fake upstream.

Only ``base_url`` and the API key change from each library's defaults. The root
``tests/conftest.py`` fixtures (``fake``, ``upstream``, ``base_settings``) are reused; the
gateways here require a token, so every test also proves the library sends its key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

import pytest

from codex_proxy.config import Settings

from ..conftest import Gateway, start_gateway

KEY = "sk-clients-test-token"
MODEL = "gpt-5.4"  # no "codex" in it: LangChain and LiteLLM would switch to /v1/responses

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
