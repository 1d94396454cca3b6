"""LangChain's ``ChatOpenAI`` with only ``base_url`` and ``api_key`` set."""

from __future__ import annotations

from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from codex_proxy.mock.server import FakeUpstream

from ..conftest import Gateway
from .conftest import KEY, MODEL
from .scripts import call, decode_image, image, png, text


def chat(base_url: str) -> ChatOpenAI:
    return ChatOpenAI(base_url=base_url, api_key=KEY, model=MODEL, max_retries=0)


def test_invoke_returns_the_scripted_text(base_url: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(text("Bonjour from the fake."))
    answer = chat(base_url).invoke("Say hello in French")
    assert answer.content == "Bonjour from the fake."
    sent = upstream.responses_requests[0].body
    assert sent["model"] == MODEL
    assert sent["input"][-1]["content"][0]["text"] == "Say hello in French"


def test_stream_joins_to_the_scripted_text(base_url: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(text("one two three four"))
    chunks = list(chat(base_url).stream("count"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(str(c.content) for c in chunks) == "one two three four"
    assert sum(1 for c in chunks if c.content) >= 2  # really streamed, not one lump


def test_bind_tools_gets_the_tool_call(base_url: str, upstream: FakeUpstream) -> None:
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return "sunny"

    upstream.enqueue(call("get_weather", '{"city": "Paris"}', call_id="call_lc"))
    answer = chat(base_url).bind_tools([get_weather]).invoke("Weather in Paris?")
    assert answer.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_lc", "type": "tool_call"}
    ]
    tools = upstream.responses_requests[0].body["tools"]
    assert [t["name"] for t in tools] == ["get_weather"]
    assert tools[0]["parameters"]["properties"] == {"city": {"type": "string"}}


class City(BaseModel):
    name: str
    population: int


def test_with_structured_output_parses_the_json_schema_answer(
    base_url: str, upstream: FakeUpstream
) -> None:
    upstream.enqueue(text('{"name": "Lyon", "population": 522250}'))
    city = chat(base_url).with_structured_output(City).invoke("Biggest city near the Alps?")
    assert city == City(name="Lyon", population=522250)
    fmt = upstream.responses_requests[0].body["text"]["format"]
    assert fmt["type"] == "json_schema"
    assert fmt["name"] == "City"
    assert set(fmt["schema"]["properties"]) == {"name", "population"}


def test_image_arrives_as_a_markdown_data_uri(image_gw: Gateway, upstream: FakeUpstream) -> None:
    data = png()
    upstream.enqueue(image(data))
    answer = chat(f"{image_gw.url}/v1").invoke("Draw a fox")
    assert isinstance(answer.content, str)
    assert answer.content.startswith("Here it is.")
    assert decode_image(answer.content) == data


def test_codex_name_stays_on_chat_completions_when_told(
    base_url: str, upstream: FakeUpstream
) -> None:
    upstream.enqueue(text("Still chat."))
    llm = ChatOpenAI(
        base_url=base_url,
        api_key=KEY,
        model="gpt-5.3-codex",
        use_responses_api=False,
        max_retries=0,
    )
    assert llm.invoke("hi").content == "Still chat."
    assert upstream.responses_requests[0].body["model"] == "gpt-5.3-codex"
