"""Shared fixtures: the fake upstream, and real gateway servers on ephemeral loopback ports."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import uvicorn

from codex_proxy.config import Settings
from codex_proxy.mock.server import FakeUpstream
from codex_proxy.mock.tokens import MOCK_ACCOUNT_ID, fake_jwt, id_token
from codex_proxy.server.app import create_app

ACCOUNT_ID = MOCK_ACCOUNT_ID
USER_AGENT_PREFIX = "codex_cli_rs/0.135.0 ("


def write_auth_json(
    home: Path, *, access_exp: float | None = None, refresh_token: str = "rt-initial", **extra: Any
) -> dict[str, Any]:
    """A Codex CLI style auth.json (mode 0600); returns what was written."""
    home.mkdir(parents=True, exist_ok=True)
    exp = access_exp if access_exp is not None else time.time() + 3600
    auth = {
        "OPENAI_API_KEY": None,
        "tokens": {
            "id_token": id_token(ACCOUNT_ID),
            "access_token": fake_jwt({"exp": int(exp), "sub": "user"}),
            "refresh_token": refresh_token,
            "account_id": ACCOUNT_ID,
        },
        "last_refresh": "2026-11-01T00:00:00Z",
        **extra,
    }
    path = home / "auth.json"
    path.write_text(json.dumps(auth))
    path.chmod(0o600)
    return auth


@dataclass
class Gateway:
    """A running gateway: its base URL, settings and the server thread."""

    url: str
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("api_key", self.settings.gateway_token or "unused")
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=f"{self.url}/v1", **kwargs)

    def async_client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        kwargs.setdefault("api_key", self.settings.gateway_token or "unused")
        kwargs.setdefault("max_retries", 0)
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_gateway(settings: Settings) -> Gateway:
    """Serve the real app with uvicorn in a thread, on an ephemeral loopback port."""
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("gateway did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return Gateway(f"http://127.0.0.1:{port}", settings, server, thread)


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream().start()
    yield upstream
    upstream.stop()


@pytest.fixture
def upstream(fake: FakeUpstream) -> Iterator[FakeUpstream]:
    """The shared fake, emptied before each test."""
    fake.clear()
    yield fake
    fake.clear()


@pytest.fixture(scope="session")
def codex_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("codex-home")
    write_auth_json(home)
    return home


@pytest.fixture(scope="session")
def base_settings(
    fake: FakeUpstream, codex_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """chatgpt mode against the fake upstream, as a logged-in user would run it (data, the
    response store included, in a temporary folder, never the real home)."""
    return Settings(
        codex_home=codex_home,
        data_dir=tmp_path_factory.mktemp("codex-data"),
        auth_mode="chatgpt",
        upstream_base_url=fake.url,
        refresh_token_url=f"{fake.url}/oauth/token",
        model="gpt-5.2-codex",
        client_version="0.135.0",
        upstream_idle_timeout=5.0,
        sse_keepalive_seconds=15.0,
    )


@pytest.fixture(scope="session")
def gateway(base_settings: Settings) -> Iterator[Gateway]:
    server = start_gateway(base_settings)
    yield server
    server.stop()


@pytest.fixture
def make_gateway(base_settings: Settings) -> Iterator[Any]:
    """Start extra gateways with changed settings; all stop at the end of the test."""
    started: list[Gateway] = []

    def make(**changes: Any) -> Gateway:
        server = start_gateway(replace(base_settings, **changes))
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def client(gateway: Gateway, upstream: FakeUpstream) -> openai.OpenAI:
    return gateway.client()


@pytest.fixture
def http(gateway: Gateway, upstream: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=10) as c:
        yield c


@contextmanager
def peak_open_streams(upstream: FakeUpstream) -> Iterator[list[int]]:
    """The most upstream streams open at once while the body runs: ``[peak]``, filled in by
    a sampling thread (for the image-job concurrency limit)."""
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], upstream.open_streams)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
