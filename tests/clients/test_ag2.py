"""AG2 1.x ``Agent`` with an ``OpenAIConfig`` (Chat Completions) pointing at the gateway.

AG2 1.x replaced 0.x's ``autogen.ConversableAgent`` + ``LLMConfig`` with ``ag2.Agent`` and a
model config per provider; ``OpenAIConfig`` is its chat-completions mode.
"""

from __future__ import annotations

import asyncio

from ag2 import Agent
from ag2.config.openai import OpenAIConfig

from codex_proxy.mock.server import FakeUpstream

from .conftest import KEY, MODEL
from .scripts import call, developer_text, text, tool_outputs


def make_agent(base_url: str, **kwargs) -> Agent:
    config = OpenAIConfig(model=MODEL, base_url=base_url, api_key=KEY, max_retries=0)
    return Agent("assistant", "You are terse.", config=config, **kwargs)


def test_agent_gives_one_reply(base_url: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(text("Hello from AG2 through the gateway."))
    reply = asyncio.run(make_agent(base_url).ask("Say hello"))
    assert reply.body == "Hello from AG2 through the gateway."
    (sent,) = upstream.responses_requests
    assert sent.body["model"] == MODEL
    assert developer_text(upstream) == "You are terse."
    assert sent.body["input"][-1]["content"][0]["text"] == "Say hello"


def test_agent_runs_a_tool(base_url: str, upstream: FakeUpstream) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    upstream.enqueue(call("add", '{"a": 2, "b": 40}', call_id="call_ag2"), text("2 + 40 = 42"))
    reply = asyncio.run(make_agent(base_url, tools=[add]).ask("What is 2 + 40?"))
    assert reply.body == "2 + 40 = 42"
    assert tool_outputs(upstream) == [("call_ag2", "42")]
