"""Simon Willison's ``llm`` CLI, configured by ``extra-openai-models.yaml`` in ``LLM_USER_PATH``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from codex_proxy.mock.server import FakeUpstream

from .conftest import KEY, MODEL
from .scripts import text

CONFIG = """\
- model_id: codex-proxy
  model_name: {model}
  api_base: "{base_url}"
  api_key_name: codex-proxy
"""


@pytest.fixture
def llm_home(tmp_path: Path, base_url: str) -> dict[str, str]:
    """A fresh ``LLM_USER_PATH`` with the gateway model and its key, as a user would set up."""
    (tmp_path / "extra-openai-models.yaml").write_text(
        CONFIG.format(model=MODEL, base_url=base_url)
    )
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path)}
    llm("keys", "set", "codex-proxy", "--value", KEY, env=env)
    return env


def llm(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "llm", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no-stream"])
def test_prompt_prints_the_scripted_text(
    llm_home: dict[str, str], upstream: FakeUpstream, stream: bool
) -> None:
    upstream.enqueue(text("Hi there from the fake."))
    flags = [] if stream else ["--no-stream"]
    out = llm("-m", "codex-proxy", "--no-log", *flags, "hi", env=llm_home)
    assert out == "Hi there from the fake.\n"
    (sent,) = upstream.responses_requests
    assert sent.body["model"] == MODEL
    assert sent.body["input"][-1]["content"][0]["text"] == "hi"
