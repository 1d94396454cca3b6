"""Upstream replies the client tests script on the fake, and what they check it received."""

from __future__ import annotations

import base64
import re
from typing import Any

from codex_proxy.mock.events import ResponseScript, text_response
from codex_proxy.mock.images import render_image
from codex_proxy.mock.server import FakeUpstream, Reply

DATA_URI = re.compile(r"!\[[^\]]*\]\(data:image/(?P<fmt>\w+);base64,(?P<b64>[A-Za-z0-9+/=]+)\)")


def text(answer: str) -> Reply:
    """A plain answer, streamed upstream word by word."""
    return Reply(events=text_response(answer))


def call(name: str, arguments: str, call_id: str = "call_1") -> Reply:
    """One function call with its JSON arguments split across deltas."""
    s = ResponseScript()
    s.start()
    chunks = [arguments[i : i + 7] for i in range(0, len(arguments), 7)]
    s.function_call(name, chunks, call_id=call_id)
    s.completed()
    return Reply(events=s.events)


def image(data: bytes, caption: str = "Here it is.") -> Reply:
    """A caption then a generated image, as the backend answers a drawing request."""
    s = ResponseScript()
    s.start()
    s.message([caption])
    s.image(base64.b64encode(data).decode(), output_format="png")
    s.completed()
    return Reply(events=s.events)


def png() -> bytes:
    """A small real PNG, so the gateway's sniffing and size checks run."""
    return render_image(48, 32, "png", seed=7)


def decode_image(content: str) -> bytes:
    """The bytes of the first markdown data-URI image in ``content``."""
    match = DATA_URI.search(content)
    assert match, content[:200]
    return base64.b64decode(match["b64"])


def upstream_inputs(fake: FakeUpstream) -> list[list[dict[str, Any]]]:
    """The ``input`` list of every Responses request the gateway sent, in order."""
    return [r.body["input"] for r in fake.responses_requests]


def tool_outputs(fake: FakeUpstream) -> list[tuple[str, str]]:
    """``(call_id, output)`` of every tool result the client sent back, last request only."""
    last = fake.responses_requests[-1].body["input"]
    return [(i["call_id"], i["output"]) for i in last if i.get("type") == "function_call_output"]


def developer_text(fake: FakeUpstream, index: int = 0) -> str:
    """The system prompt as the gateway forwarded it: developer messages in ``input``."""
    items = fake.responses_requests[index].body["input"]
    return "\n".join(
        part["text"]
        for item in items
        if item.get("role") == "developer"
        for part in item["content"]
    )
