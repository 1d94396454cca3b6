"""pydantic-ai's ``Agent`` on ``OpenAIChatModel`` with an ``OpenAIProvider(base_url=...)``."""

from __future__ import annotations

import json

from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from codex_proxy.mock.server import FakeUpstream

from .conftest import KEY, MODEL
from .scripts import call, developer_text, text, tool_outputs, upstream_inputs


def test_run_with_a_function_tool(base_url: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(
        call("roll_die", '{"sides": 20}', call_id="call_pa"),
        text("You rolled a 17."),
    )
    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=base_url, api_key=KEY))
    agent = Agent(model, instructions="Roll dice with the tool.")
    rolled: list[int] = []

    @agent.tool_plain
    def roll_die(sides: int) -> int:
        """Roll one die with this many sides."""
        rolled.append(sides)
        return 17

    result = agent.run_sync("Roll a d20")
    assert result.output == "You rolled a 17."
    assert rolled == [20]
    first, second = upstream_inputs(upstream)
    assert first[-1]["content"][0]["text"] == "Roll a d20"
    assert developer_text(upstream) == "Roll dice with the tool."
    calls = [i for i in second if i.get("type") == "function_call"]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("roll_die", {"sides": 20})]
    assert tool_outputs(upstream) == [("call_pa", "17")]
