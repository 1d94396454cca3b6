"""OpenAI Agents SDK in chat mode: ``OpenAIChatCompletionsModel`` over ``AsyncOpenAI``."""

from __future__ import annotations

import asyncio
import json

import openai
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled

from codex_proxy.mock.server import FakeUpstream

from .conftest import KEY, MODEL
from .scripts import call, developer_text, text, tool_outputs, upstream_inputs

set_tracing_disabled(True)


@function_tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"22C and sunny in {city}"


def make_agent(base_url: str) -> Agent:
    client = openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    return Agent(
        name="weather",
        instructions="Answer weather questions with the tool.",
        model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
        tools=[get_weather],
    )


def test_agent_calls_the_tool_then_answers_over_two_turns(
    base_url: str, upstream: FakeUpstream
) -> None:
    upstream.enqueue(
        call("get_weather", '{"city": "Paris"}', call_id="call_ag"),
        text("It is 22C and sunny in Paris."),
        text("You asked about Paris."),
    )
    agent = make_agent(base_url)

    async def two_turns() -> tuple[str, str]:
        first = await Runner.run(agent, "Weather in Paris?")
        history = [*first.to_input_list(), {"role": "user", "content": "Which city was it?"}]
        second = await Runner.run(agent, history)
        return first.final_output, second.final_output

    first, second = asyncio.run(two_turns())
    assert first == "It is 22C and sunny in Paris."
    assert second == "You asked about Paris."

    inputs = upstream_inputs(upstream)
    assert len(inputs) == 3
    # Turn 1, step 2: the SDK ran the tool and sent its result back under the call's id.
    calls = [i for i in inputs[1] if i.get("type") == "function_call"]
    assert [(c["call_id"], c["name"], json.loads(c["arguments"])) for c in calls] == [
        ("call_ag", "get_weather", {"city": "Paris"})
    ]
    outputs = [i for i in inputs[1] if i.get("type") == "function_call_output"]
    assert [(o["call_id"], o["output"]) for o in outputs] == [("call_ag", "22C and sunny in Paris")]
    # Turn 2 carries the whole first turn, then the new question.
    assert tool_outputs(upstream) == [("call_ag", "22C and sunny in Paris")]
    assert inputs[2][-1]["role"] == "user"
    assert inputs[2][-1]["content"][0]["text"] == "Which city was it?"
    assert developer_text(upstream) == "Answer weather questions with the tool."
