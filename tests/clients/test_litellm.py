"""LiteLLM's ``completion`` with the ``openai/`` prefix, ``api_base`` and ``api_key``."""

from __future__ import annotations

import litellm
import pytest

from codex_proxy.mock.server import FakeUpstream

from ..conftest import Gateway
from .conftest import KEY, MODEL
from .scripts import call, decode_image, image, png, text

# litellm's own TypedDicts warn as its modules load lazily during the first call.
pytestmark = pytest.mark.filterwarnings("ignore:.*ReadOnly. qualifier:UserWarning")


@pytest.fixture(autouse=True)
def _quiet() -> None:
    litellm.telemetry = False
    litellm.suppress_debug_info = True


def complete(base_url: str, prompt: str, **kwargs):
    return litellm.completion(
        model=f"openai/{MODEL}",
        api_base=base_url,
        api_key=KEY,
        messages=[{"role": "user", "content": prompt}],
        num_retries=0,
        **kwargs,
    )


def test_completion_returns_the_scripted_text(base_url: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(text("Hello from the fake upstream."))
    response = complete(base_url, "hi")
    assert response.choices[0].message.content == "Hello from the fake upstream."
    assert response.choices[0].finish_reason == "stop"
    assert response.usage.total_tokens > 0
    assert upstream.responses_requests[0].body["model"] == MODEL


def test_streaming_completion_joins_to_the_scripted_text(
    base_url: str, upstream: FakeUpstream
) -> None:
    upstream.enqueue(text("alpha beta gamma delta"))
    chunks = list(complete(base_url, "list four", stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "alpha beta gamma delta"
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]


def test_tool_call(base_url: str, upstream: FakeUpstream) -> None:
    upstream.enqueue(call("lookup", '{"id": 42}', call_id="call_ll"))
    tool = {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}},
        },
    }
    response = complete(base_url, "find 42", tools=[tool])
    (tool_call,) = response.choices[0].message.tool_calls
    assert (tool_call.id, tool_call.function.name) == ("call_ll", "lookup")
    assert tool_call.function.arguments == '{"id": 42}'
    assert response.choices[0].finish_reason == "tool_calls"


def test_streamed_image_decodes_to_the_generated_bytes(
    image_gw: Gateway, upstream: FakeUpstream
) -> None:
    data = png()
    upstream.enqueue(image(data))
    chunks = list(complete(f"{image_gw.url}/v1", "Draw a fox", stream=True))
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert decode_image(content) == data
