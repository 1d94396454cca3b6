"""Agents and the AI SDK over ``/v1/responses``: turns chained through the gateway's response
store, hosted image generation, and function tools, with the Agents SDK's default model and
client, AG2, the Vercel AI SDK and openai-node.

The fake upstream refuses ``previous_response_id`` like the real backend, so a chained turn
only works when the gateway replays the stored history itself; the tests check both sides
where they can: what the client sent the gateway and what the gateway sent upstream.
"""

from __future__ import annotations

import asyncio
import base64
import json
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from ag2 import Agent as Ag2Agent
from ag2.config.openai import OpenAIResponsesConfig
from ag2.tools.builtin import ImageGenerationTool as Ag2ImageGenerationTool
from agents import (
    Agent,
    ImageGenerationTool,
    Runner,
    function_tool,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)
from agents.models import _openai_shared, get_default_model

from codex_proxy.mock.images import render_image
from codex_proxy.mock.server import FakeUpstream

from .conftest import KEY, MODEL, run_node
from .scripts import call, text, upstream_inputs

pytestmark = pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning")
set_tracing_disabled(True)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def drawn_png(prompt: str, width: int, height: int) -> bytes:
    """The PNG the fake draws for an ``image_generation`` tool of that size, as
    ``mock.server._image_events`` does: seeded by the CRC-32 of the last user text."""
    return render_image(width, height, "png", seed=zlib.crc32(prompt.encode()))


def user(text_: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text_}]}


class Sent:
    """The JSON bodies a client POSTs to the gateway, recorded by an httpx event hook."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path.endswith("/responses"):
            self.bodies.append(json.loads(request.content))


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def default_client(base_url: str, sent: Sent) -> Iterator[openai.AsyncOpenAI]:
    """The Agents SDK's process-wide default client aimed at the gateway (Responses API, as
    the SDK defaults to), put back as it was afterwards."""
    saved = (
        _openai_shared.get_default_openai_client(),
        _openai_shared.get_use_responses_by_default(),
    )
    client = openai.AsyncOpenAI(
        base_url=base_url,
        api_key=KEY,
        max_retries=0,
        http_client=httpx.AsyncClient(event_hooks={"request": [sent]}),
    )
    set_default_openai_client(client, use_for_tracing=False)
    set_default_openai_api("responses")
    yield client
    _openai_shared.set_default_openai_client(saved[0])  # type: ignore[arg-type]
    _openai_shared.set_use_responses_by_default(saved[1])


# -- OpenAI Agents SDK, default model and client ---------------------------------------------


@function_tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"22C and sunny in {city}"


def test_agents_default_model_tool_then_second_turn_by_previous_response_id(
    default_client: openai.AsyncOpenAI, sent: Sent, upstream: FakeUpstream
) -> None:
    upstream.enqueue(
        call("get_weather", '{"city": "Paris"}', "call_dm"),
        text("It is 22C and sunny in Paris."),
        text("You asked about Paris."),
    )
    agent = Agent(name="weather", instructions="Use the tool.", tools=[get_weather])

    async def two_turns() -> tuple[Any, Any]:
        first = await Runner.run(agent, "Weather in Paris?")
        second = await Runner.run(
            agent, "Which city was it?", previous_response_id=first.last_response_id
        )
        return first, second

    first, second = asyncio.run(two_turns())
    assert first.final_output == "It is 22C and sunny in Paris."
    assert second.final_output == "You asked about Paris."
    assert first.last_response_id.startswith("resp_")

    # The SDK's default model, over the default client, on /v1/responses.
    assert [b["model"] for b in sent.bodies] == [get_default_model()] * 3
    assert [r.body["model"] for r in upstream.responses_requests] == [get_default_model()] * 3
    # Turn 2 from the client: only the new question, chained to turn 1 by its id.
    assert [b.get("previous_response_id") for b in sent.bodies] == [
        None,
        None,
        first.last_response_id,
    ]
    assert sent.bodies[2]["input"] == [{"role": "user", "content": "Which city was it?"}]
    # Turn 2 upstream: no chain parameter, the whole first turn replayed, then the question.
    last = upstream.responses_requests[2].body
    assert "previous_response_id" not in last
    assert last["instructions"] == "Use the tool."
    assert upstream_inputs(upstream)[2] == [
        user("Weather in Paris?"),
        {
            "type": "function_call",
            "call_id": "call_dm",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
            "status": "completed",
        },
        {"type": "function_call_output", "call_id": "call_dm", "output": "22C and sunny in Paris"},
        {
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": "It is 22C and sunny in Paris.", "annotations": []}
            ],
        },
        user("Which city was it?"),
    ]


def test_agents_image_generation_tool_returns_the_drawn_png(
    default_client: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    prompt = "Draw a red ceramic teapot"
    agent = Agent(
        name="painter",
        instructions="Draw what you are asked for.",
        tools=[
            ImageGenerationTool(
                tool_config={"type": "image_generation", "size": "256x256", "output_format": "png"}
            )
        ],
    )
    result = asyncio.run(Runner.run(agent, prompt))

    calls = [
        item.raw_item
        for item in result.new_items
        if getattr(item.raw_item, "type", None) == "image_generation_call"
    ]
    assert len(calls) == 1
    assert calls[0].status == "completed"
    assert base64.b64decode(calls[0].result) == drawn_png(prompt, 256, 256)
    assert result.final_output == "Here is your image."
    # The client's hosted tool reached the upstream as it declared it (no gateway flag needed).
    assert upstream.responses_requests[0].body["tools"] == [
        {"type": "image_generation", "size": "256x256", "output_format": "png"}
    ]


# -- AG2 -------------------------------------------------------------------------------------


def test_ag2_responses_image_generation_tool_files(base_url: str, upstream: FakeUpstream) -> None:
    prompt = "Draw a red ceramic teapot"
    config = OpenAIResponsesConfig(model=MODEL, base_url=base_url, api_key=KEY, max_retries=0)
    agent = Ag2Agent(
        "painter",
        "You draw.",
        config=config,
        tools=[Ag2ImageGenerationTool(size="256x256", output_format="png")],
    )

    async def ask() -> tuple[Any, list[Any]]:
        reply = await agent.ask(prompt)
        return reply, await reply.history.get_events()

    reply, events = asyncio.run(ask())
    expected = drawn_png(prompt, 256, 256)
    assert reply.body == "Here is your image."
    assert [f.data for f in reply.files] == [expected]
    assert reply.files[0].data.startswith(PNG_MAGIC)
    assert reply.files[0].metadata["output_format"] == "png"
    assert reply.files[0].metadata["size"] == "256x256"
    # AG2 1.2 keeps the media type on the tool result part, not on ``reply.files``.
    parts = [
        part
        for event in events
        if type(event).__name__ == "OpenAIServerToolResultEvent"
        for part in event.result.parts
    ]
    assert [(p.media_type, p.data) for p in parts] == [("image/png", expected)]
    assert upstream.responses_requests[0].body["tools"] == [
        {"type": "image_generation", "size": "256x256", "output_format": "png"}
    ]


# -- node: the Vercel AI SDK and openai-node -------------------------------------------------


def test_ai_sdk_responses_generate_and_stream_with_a_tool(
    base_url: str, upstream: FakeUpstream
) -> None:
    upstream.enqueue(
        call("get_weather", '{"city": "Rome"}', "call_gen"),
        text("It is 31C in Rome."),
        call("get_weather", '{"city": "Oslo"}', "call_str"),
        text("It is 31C in Oslo."),
    )
    out = run_node(["ai_sdk_responses_tools.mjs"], base_url)

    assert out == {
        "calls": ["Rome", "Oslo"],
        "generate": {
            "text": "It is 31C in Rome.",
            "steps": 2,
            "toolCalls": [{"id": "call_gen", "name": "get_weather", "input": {"city": "Rome"}}],
        },
        "stream": {
            "text": "It is 31C in Oslo.",
            "steps": 2,
            "toolCalls": [{"id": "call_str", "name": "get_weather", "input": {"city": "Oslo"}}],
        },
    }
    requests = upstream.responses_requests
    assert len(requests) == 4
    assert [t["name"] for r in requests for t in r.body["tools"]] == ["get_weather"] * 4
    # Step 2 of each call: the question, the model's call, and the tool's output under its id.
    for index, city, call_id in ((1, "Rome", "call_gen"), (3, "Oslo", "call_str")):
        assert upstream_inputs(upstream)[index] == [
            user(f"Weather in {city}?"),
            {
                "type": "function_call",
                "call_id": call_id,
                "name": "get_weather",
                "arguments": json.dumps({"city": city}, separators=(",", ":")),
            },
            {"type": "function_call_output", "call_id": call_id, "output": f"31C in {city}"},
        ]


def test_openai_node_streamed_second_turn_by_previous_response_id(
    base_url: str, upstream: FakeUpstream
) -> None:
    upstream.enqueue(text("The Loire."), text("About 1006 km."), text("In the Atlantic."))
    out = run_node(["openai_responses_chain.mjs"], base_url)

    first, second = out["first"]["id"], out["second"]["id"]
    assert out == {
        "first": {"id": first, "text": "The Loire."},
        "second": {"id": second, "streamed": "About 1006 km.", "previous": first},
        "third": {"text": "In the Atlantic.", "previous": second},
    }
    assert first.startswith("resp_") and second.startswith("resp_") and first != second

    def assistant(answer: str) -> dict[str, Any]:
        return {
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": answer, "annotations": []}],
        }

    bodies = [r.body for r in upstream.responses_requests]
    assert all("previous_response_id" not in b for b in bodies)
    turn1 = [user("Name a river in France.")]
    turn2 = [*turn1, assistant("The Loire."), user("How long is it?")]
    # The streamed turn 2 went upstream with turn 1 replayed from the store ...
    assert upstream_inputs(upstream) == [
        turn1,
        turn2,
        # ... and was stored itself, so turn 3 chained to it carries both turns.
        [*turn2, assistant("About 1006 km."), user("And where does it end?")],
    ]
