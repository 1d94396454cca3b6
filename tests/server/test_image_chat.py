"""Images in chat, end to end: the openai SDK, the running gateway, the fake upstream."""

from __future__ import annotations

import base64
import os
import re

import httpx
import openai
import pydantic
import pytest

from codex_proxy.mock.events import ResponseScript, text_response
from codex_proxy.mock.images import render_image
from codex_proxy.mock.server import FakeUpstream, Pause, Reply

from ..conftest import Gateway

DRAW = [{"role": "user", "content": "Draw a fox"}]
DATA_URI = re.compile(
    r"!\[(?P<alt>(?:\\.|[^\]\\])*)\]\(data:image/(?P<fmt>\w+);base64,(?P<b64>[A-Za-z0-9+/=]+)\)"
)


def image_script(
    data: bytes,
    *,
    before: str = "Here it is.",
    after: str | None = None,
    fmt: str = "png",
    pause: float = 0,
) -> list:
    """Text, an image (with one partial), optional text after: the order a chat must keep."""
    s = ResponseScript()
    s.start()
    s.message([before])
    head = len(s.events)
    s.image(
        base64.b64encode(data).decode(),
        partials=[base64.b64encode(b"partial-preview").decode()],
        revised_prompt="A red fox\nin the [snow]",
        output_format=fmt,
    )
    if after is not None:
        s.message([after])
    s.completed()
    events: list = list(s.events)
    if pause:
        events.insert(head + 3, Pause(pause))  # while "generating"
    return events


@pytest.fixture
def image_gateway(make_gateway) -> Gateway:
    return make_gateway(enable_image_gen=True)


def decode_markdown_image(content: str) -> tuple[str, str, bytes]:
    match = DATA_URI.search(content)
    assert match, content[:200]
    return match["alt"], match["fmt"], base64.b64decode(match["b64"])


def test_non_streaming_image_in_content_in_order(
    image_gateway: Gateway, upstream: FakeUpstream
) -> None:
    png = render_image(64, 48, "png", seed=3)
    upstream.enqueue(Reply(events=image_script(png, after="Enjoy!")))
    completion = image_gateway.client().chat.completions.create(
        model="gpt-5.2-codex", messages=DRAW
    )
    content = completion.choices[0].message.content
    uri = f"data:image/png;base64,{base64.b64encode(png).decode()}"
    assert content == f"Here it is.\n\n![A red fox in the \\[snow\\]]({uri})\n\nEnjoy!"
    assert "partial-preview" not in content
    assert completion.choices[0].message.model_extra["image_metadata"] == [
        {
            "revised_prompt": "A red fox\nin the [snow]",
            "size": "1024x1024",
            "quality": "high",
            "output_format": "png",
            "background": "opaque",
        }
    ]
    tools = upstream.responses_requests[-1].body["tools"]
    assert tools == [{"type": "image_generation", "output_format": "png"}]


def test_streaming_image_arrives_as_one_content_delta_with_keepalives(
    make_gateway, upstream: FakeUpstream
) -> None:
    gw: Gateway = make_gateway(enable_image_gen=True, sse_keepalive_seconds=0.1)
    png = render_image(40, 40, "png", seed=5)
    upstream.enqueue(Reply(events=image_script(png, pause=0.5)))
    body = {"model": "gpt-5.2-codex", "messages": DRAW, "stream": True}
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=10) as response:
        lines = [line for line in response.iter_lines() if line]
    assert any(line.startswith(":") for line in lines)
    chunks = [line for line in lines if line.startswith("data: {")]
    contents = [
        c for c in (httpx.Response(200, content=line[6:]).json() for line in chunks) if c["choices"]
    ]
    deltas = [c["choices"][0]["delta"].get("content") for c in contents]
    image_delta = next(d for d in deltas if d and d.startswith("!["))
    assert decode_markdown_image(image_delta)[2] == png
    assert "".join(d or "" for d in deltas).startswith("Here it is.\n\n![")


def test_sdk_stream_concatenates_to_the_same_bytes(
    image_gateway: Gateway, upstream: FakeUpstream
) -> None:
    png = render_image(32, 32, "png", seed=9)
    upstream.enqueue(Reply(events=image_script(png)))
    stream = image_gateway.client().chat.completions.create(
        model="gpt-5.2-codex", messages=DRAW, stream=True
    )
    content = "".join(c.choices[0].delta.content or "" for c in stream)
    assert decode_markdown_image(content)[2] == png


def test_flag_off_sends_no_tool(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    client.chat.completions.create(model="gpt-5.2-codex", messages=DRAW)
    assert upstream.responses_requests[-1].body["tools"] == []


def test_client_tool_overrides_and_works_with_flag_off(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    completion = client.chat.completions.create(
        model="gpt-5.2-codex",
        messages=DRAW,
        tools=[{"type": "image_generation", "size": "96x64", "quality": "low"}],  # type: ignore[list-item]
    )
    assert upstream.responses_requests[-1].body["tools"] == [
        {"type": "image_generation", "output_format": "png", "size": "96x64", "quality": "low"}
    ]
    _, fmt, data = decode_markdown_image(completion.choices[0].message.content)
    assert fmt == "png" and data.startswith(b"\x89PNG")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (96, 64)


def test_extra_body_turns_injection_off(image_gateway: Gateway, upstream: FakeUpstream) -> None:
    image_gateway.client().chat.completions.create(
        model="gpt-5.2-codex", messages=DRAW, extra_body={"image_generation": False}
    )
    assert upstream.responses_requests[-1].body["tools"] == []


class Answer(pydantic.BaseModel):
    word: str


def test_structured_output_gets_no_image_tool(
    image_gateway: Gateway, upstream: FakeUpstream
) -> None:
    """With image generation on, ``parse()`` still gets plain JSON: no tool, no image."""
    upstream.enqueue(Reply(events=text_response('{"word": "fox"}')))
    completion = image_gateway.client().chat.completions.parse(
        model="gpt-5.2-codex", messages=DRAW, response_format=Answer
    )
    assert completion.choices[0].message.parsed == Answer(word="fox")
    body = upstream.responses_requests[-1].body
    assert body["tools"] == []
    assert body["text"]["format"]["type"] == "json_schema"
    upstream.enqueue(Reply(events=text_response('{"word": "owl"}')))
    image_gateway.client().chat.completions.create(
        model="gpt-5.2-codex", messages=DRAW, response_format={"type": "json_object"}
    )
    assert upstream.responses_requests[-1].body["tools"] == []


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "lookup"}}]
)
def test_forced_tool_choice_gets_no_image_tool(
    image_gateway: Gateway, upstream: FakeUpstream, choice: object
) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    image_gateway.client().chat.completions.create(
        model="gpt-5.2-codex",
        messages=DRAW,
        tools=tools,  # type: ignore[arg-type]
        tool_choice=choice,  # type: ignore[arg-type]
    )
    sent = upstream.responses_requests[-1].body["tools"]
    assert [tool["type"] for tool in sent] == ["function"]


def test_modalities_with_image_turns_generation_on(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    completion = client.chat.completions.create(
        model="gpt-5.2-codex", messages=DRAW, extra_body={"modalities": ["text", "image"]}
    )
    assert upstream.responses_requests[-1].body["tools"] == [
        {"type": "image_generation", "output_format": "png"}
    ]
    _, fmt, data = decode_markdown_image(completion.choices[0].message.content)
    assert fmt == "png" and data.startswith(b"\x89PNG")


def test_modalities_text_only_turns_generation_off(
    image_gateway: Gateway, upstream: FakeUpstream
) -> None:
    completion = image_gateway.client().chat.completions.create(
        model="gpt-5.2-codex", messages=DRAW, modalities=["text"]
    )
    assert upstream.responses_requests[-1].body["tools"] == []
    assert "![" not in (completion.choices[0].message.content or "")


def test_invalid_image_option_is_400(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-5.2-codex",
            messages=DRAW,
            tools=[{"type": "image_generation", "output_format": "gif"}],  # type: ignore[list-item]
        )
    assert info.value.param == "tools[0].output_format"
    assert "png, jpeg, webp" in info.value.message
    assert upstream.responses_requests == []


def test_images_and_both_delivery(make_gateway, upstream: FakeUpstream) -> None:
    png = render_image(16, 16, "png", seed=1)
    uri = f"data:image/png;base64,{base64.b64encode(png).decode()}"
    for delivery, in_content in (("images", False), ("both", True)):
        gw: Gateway = make_gateway(enable_image_gen=True, image_delivery=delivery)
        upstream.enqueue(Reply(events=image_script(png)), Reply(events=image_script(png)))
        message = gw.client().chat.completions.create(model="gpt-5.2-codex", messages=DRAW)
        message = message.choices[0].message
        assert message.model_extra["images"] == [{"type": "image_url", "image_url": {"url": uri}}]
        assert (uri in message.content) is in_content
        chunks = list(
            gw.client().chat.completions.create(model="gpt-5.2-codex", messages=DRAW, stream=True)
        )
        entries = [e for c in chunks for e in (c.choices[0].delta.model_extra.get("images") or [])]
        assert entries == [{"type": "image_url", "image_url": {"url": uri}}]


def test_url_delivery_serves_the_file_without_token(
    make_gateway, upstream: FakeUpstream, tmp_path
) -> None:
    gw: Gateway = make_gateway(
        enable_image_gen=True,
        image_delivery="url",
        image_dir=tmp_path / "images",
        gateway_token="gw-secret",
    )
    jpeg = render_image(20, 20, "jpeg", seed=2)
    upstream.enqueue(Reply(events=image_script(jpeg, fmt="jpeg")))
    content = gw.client().chat.completions.create(model="gpt-5.2-codex", messages=DRAW)
    content = content.choices[0].message.content
    link = re.search(r"\]\((?P<url>[^)]+)\)", content)["url"]
    assert re.fullmatch(re.escape(gw.url) + r"/v1/images/files/[0-9a-f]{32}\.jpeg", link)
    fetched = httpx.get(link)  # no Authorization header
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "image/jpeg"
    assert fetched.content == jpeg


def test_files_route_refuses_anything_but_exact_names(
    make_gateway, tmp_path, upstream: FakeUpstream
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not yours")
    os.symlink(secret, folder / f"{'c' * 32}.png")
    (folder / f"{'d' * 32}.png").write_bytes(b"real")
    gw: Gateway = make_gateway(image_dir=folder)
    with httpx.Client(base_url=gw.url) as http:
        assert http.get(f"/v1/images/files/{'d' * 32}.png").content == b"real"
        for path in (
            f"/v1/images/files/{'c' * 32}.png",  # a symlink
            "/v1/images/files/../secret.png",
            "/v1/images/files/..%2Fsecret.png",
            "/v1/images/files/%2e%2e%2fsecret.png",
            f"/v1/images/files/{'d' * 31}.png",
            f"/v1/images/files/{'d' * 32}.gif",
        ):
            response = http.get(path)
            assert response.status_code == 404, path
            assert b"not yours" not in response.content


@pytest.mark.parametrize("stream", [False, True])
def test_fifteen_megabyte_image_passes_intact(
    image_gateway: Gateway, upstream: FakeUpstream, stream: bool
) -> None:
    big = render_image(2300, 2300, "png", noise=True)
    assert len(big) >= 15 * 1024 * 1024
    upstream.enqueue(Reply(events=image_script(big)))
    client = image_gateway.client(timeout=60)
    if stream:
        chunks = client.chat.completions.create(model="gpt-5.2-codex", messages=DRAW, stream=True)
        content = "".join(c.choices[0].delta.content or "" for c in chunks)
    else:
        content = client.chat.completions.create(model="gpt-5.2-codex", messages=DRAW)
        content = content.choices[0].message.content
    assert decode_markdown_image(content)[2] == big


def test_oversized_image_is_linked_not_truncated(
    make_gateway, upstream: FakeUpstream, tmp_path
) -> None:
    gw: Gateway = make_gateway(enable_image_gen=True, image_max_mb=0.001, image_dir=tmp_path)
    png = render_image(64, 64, "png", noise=True)
    upstream.enqueue(Reply(events=image_script(png)))
    raw = gw.client().chat.completions.with_raw_response.create(
        model="gpt-5.2-codex", messages=DRAW
    )
    assert raw.headers["x-codex-proxy-images-linked"] == "1"
    content = raw.parse().choices[0].message.content
    assert "base64" not in content
    link = re.search(r"\]\((?P<url>[^)]+)\)", content)["url"]
    assert httpx.get(link).content == png


def test_follow_up_turn_sends_the_image_back(
    image_gateway: Gateway, upstream: FakeUpstream
) -> None:
    png = render_image(24, 24, "png", seed=4)
    upstream.enqueue(Reply(events=image_script(png)))
    client = image_gateway.client()
    first = client.chat.completions.create(model="gpt-5.2-codex", messages=DRAW).choices[0].message
    client.chat.completions.create(
        model="gpt-5.2-codex",
        messages=[
            *DRAW,
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": "Now make the sky purple"},
        ],
    )
    sent = upstream.responses_requests[-1].body["input"]
    uri = f"data:image/png;base64,{base64.b64encode(png).decode()}"
    assert sent[1] == {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "Here it is.\n\n[image 1]", "annotations": []}],
    }
    assert sent[2] == {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_image", "image_url": uri, "detail": "auto"}],
    }
    assert "base64" not in str(sent[1])


def test_default_mock_reply_draws_a_real_image(
    image_gateway: Gateway, upstream: FakeUpstream
) -> None:
    completion = image_gateway.client().chat.completions.create(
        model="gpt-5.2-codex",
        messages=DRAW,
        tools=[{"type": "image_generation", "size": "128x80"}],  # type: ignore[list-item]
    )
    alt, fmt, data = decode_markdown_image(completion.choices[0].message.content)
    assert fmt == "png"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (128, 80)
    assert "Draw a fox" in alt
