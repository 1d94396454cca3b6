"""The same client libraries in Responses mode: they call ``/v1/responses`` on the gateway.

Needs the gateway's ``/v1/responses`` route; until it exists every test here fails with a 404.
Each test is the Responses twin of a chat-mode test in this folder.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import litellm
import openai
import pytest
from ag2 import Agent as Ag2Agent
from ag2.config.openai import OpenAIResponsesConfig
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from langchain_openai import ChatOpenAI
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.models.openai import OpenAIResponsesModel as PydanticResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from codex_proxy.mock.server import FakeUpstream

from .conftest import KEY, MODEL, run_node
from .scripts import call, developer_text, text, tool_outputs

CODEX_MODEL = "gpt-5.3-codex"  # a name LangChain and LiteLLM send to /responses by themselves

pytestmark = pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning")
set_tracing_disabled(True)


def last_user_text(fake: FakeUpstream, index: int = 0) -> str:
    items = fake.responses_requests[index].body["input"]
    user = [i for i in items if i.get("role") == "user"][-1]
    content = user["content"]
    return content if isinstance(content, str) else content[0]["text"]


# -- openai-python ---------------------------------------------------------------------------


def test_openai_python_responses_create(base_url: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(text("Responses via openai-python."))
    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    response = client.responses.create(model=MODEL, input="hi")
    assert response.output_text == "Responses via openai-python."


# -- LangChain -------------------------------------------------------------------------------


def test_langchain_codex_name_goes_to_responses(base_url: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(text("Answered over Responses."))
    llm = ChatOpenAI(base_url=base_url, api_key=KEY, model=CODEX_MODEL, max_retries=0)
    answer = llm.invoke("hi")
    assert answer.text == "Answered over Responses."
    assert upstream.responses_requests[0].body["model"] == CODEX_MODEL
    assert last_user_text(upstream) == "hi"


def test_langchain_responses_stream_and_tool(base_url: str, upstream: FakeUpstream) -> None:
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return "sunny"

    upstream.enqueue(text("one two three"), call("get_weather", '{"city": "Paris"}', "call_r"))
    llm = ChatOpenAI(
        base_url=base_url, api_key=KEY, model=MODEL, use_responses_api=True, max_retries=0
    )
    assert "".join(c.text for c in llm.stream("count")) == "one two three"
    answer = llm.bind_tools([get_weather]).invoke("Weather in Paris?")
    assert [(c["name"], c["args"], c["id"]) for c in answer.tool_calls] == [
        ("get_weather", {"city": "Paris"}, "call_r")
    ]


# -- LiteLLM ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [f"openai/{CODEX_MODEL}", f"openai/responses/{MODEL}"])
def test_litellm_routes_to_responses(base_url: str, upstream: FakeUpstream, model: str) -> None:
    upstream.enqueue(text("LiteLLM over Responses."))
    response = litellm.completion(
        model=model,
        api_base=base_url,
        api_key=KEY,
        messages=[{"role": "user", "content": "hi"}],
        num_retries=0,
    )
    assert response.choices[0].message.content == "LiteLLM over Responses."
    assert last_user_text(upstream) == "hi"


def test_litellm_responses_api(base_url: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(text("litellm.responses works."))
    response = litellm.responses(
        model=f"openai/{MODEL}", api_base=base_url, api_key=KEY, input="hi", num_retries=0
    )
    texts = [
        part.text
        for item in response.output
        if getattr(item, "type", None) == "message"
        for part in item.content
    ]
    assert texts == ["litellm.responses works."]


# -- OpenAI Agents SDK (its default mode) ----------------------------------------------------


@function_tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"22C and sunny in {city}"


def test_agents_sdk_responses_model_with_a_tool(base_url: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(call("get_weather", '{"city": "Paris"}', "call_ra"), text("22C in Paris."))
    client = openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0)
    agent = Agent(
        name="weather",
        instructions="Use the tool.",
        model=OpenAIResponsesModel(model=MODEL, openai_client=client),
        tools=[get_weather],
    )
    result = asyncio.run(Runner.run(agent, "Weather in Paris?"))
    assert result.final_output == "22C in Paris."
    assert tool_outputs(upstream) == [("call_ra", "22C and sunny in Paris")]


# -- pydantic-ai -----------------------------------------------------------------------------


def test_pydantic_ai_responses_model_with_a_tool(base_url: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(call("roll_die", '{"sides": 20}', "call_rp"), text("You rolled a 17."))
    model = PydanticResponsesModel(MODEL, provider=OpenAIProvider(base_url=base_url, api_key=KEY))
    agent = PydanticAgent(model)

    @agent.tool_plain
    def roll_die(sides: int) -> int:
        """Roll one die."""
        return 17

    assert agent.run_sync("Roll a d20").output == "You rolled a 17."
    assert tool_outputs(upstream) == [("call_rp", "17")]


# -- AG2 -------------------------------------------------------------------------------------


def test_ag2_responses_config(base_url: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(text("AG2 over Responses."))
    config = OpenAIResponsesConfig(model=MODEL, base_url=base_url, api_key=KEY, max_retries=0)
    reply = asyncio.run(Ag2Agent("assistant", "You are terse.", config=config).ask("hi"))
    assert reply.body == "AG2 over Responses."
    assert last_user_text(upstream) == "hi"
    assert "You are terse." in (
        upstream.responses_requests[0].body.get("instructions") or developer_text(upstream)
    )


# -- llm CLI ---------------------------------------------------------------------------------


def test_llm_cli_responses_model(tmp_path: Path, base_url: str, upstream: FakeUpstream) -> None:
    (tmp_path / "extra-openai-models.yaml").write_text(
        f'- model_id: codex-proxy-responses\n  model_name: {MODEL}\n  api_base: "{base_url}"\n'
        "  api_key_name: codex-proxy\n  responses: true\n"
    )
    env = {**os.environ, "LLM_USER_PATH": str(tmp_path)}
    for args in (["keys", "set", "codex-proxy", "--value", KEY], []):
        if not args:
            upstream.enqueue(text("llm over Responses."))
            args = ["-m", "codex-proxy-responses", "--no-log", "hi"]
        done = subprocess.run(
            [sys.executable, "-m", "llm", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
    assert done.stdout == "llm over Responses.\n"


# -- node: openai-node and the Vercel AI SDK -------------------------------------------------

ENV = "const { GATEWAY_BASE_URL: baseURL, GATEWAY_API_KEY: apiKey, GATEWAY_MODEL: model } ="
ENV += " process.env;"

NODE_OPENAI = f"""
import OpenAI from "openai";
{ENV}
const client = new OpenAI({{ baseURL, apiKey, maxRetries: 0 }});
const plain = await client.responses.create({{ model, input: "hi" }});
const stream = await client.responses.create({{ model, input: "hi", stream: true }});
let streamed = "";
for await (const e of stream) if (e.type === "response.output_text.delta") streamed += e.delta;
console.log(JSON.stringify({{ text: plain.output_text, streamed }}));
"""

NODE_AI_SDK = f"""
import {{ createOpenAI }} from "@ai-sdk/openai";
import {{ generateText, streamText }} from "ai";
{ENV}
const openai = createOpenAI({{ baseURL, apiKey }});
const g = await generateText({{ model: openai(model), prompt: "hi", maxRetries: 0 }});
const s = streamText({{ model: openai.responses(model), prompt: "hi", maxRetries: 0 }});
let streamed = "";
for await (const t of s.textStream) streamed += t;
console.log(JSON.stringify({{ text: g.text, streamed }}));
"""


@pytest.mark.parametrize("code", [NODE_OPENAI, NODE_AI_SDK], ids=["openai-node", "ai-sdk"])
def test_node_responses(code: str, base_url: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(text("Plain over Responses."), text("Streamed over Responses."))
    out = run_node(["--input-type=module", "-e", code], base_url)
    assert out == {"text": "Plain over Responses.", "streamed": "Streamed over Responses."}
