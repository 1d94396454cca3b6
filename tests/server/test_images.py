"""The Images API's tool route end to end: the official openai SDK against the gateway and the
fake upstream (``CODEX_IMAGES_ROUTE=tool``; the native route is in test_images_native.py)."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from codex_proxy.config import Settings
from codex_proxy.mock.events import ResponseScript, usage
from codex_proxy.mock.server import FakeUpstream, Pause, Reply
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.images_api import edit_request, generation_request, responses_body

from ..conftest import Gateway, peak_open_streams, start_gateway, wait_for

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


@pytest.fixture(scope="module")
def gateway(base_settings: Settings) -> Iterator[Gateway]:
    """Every request of this module takes the tool route."""
    server = start_gateway(replace(base_settings, images_route="tool"))
    yield server
    server.stop()


@pytest.fixture
def make_gateway(make_gateway: Callable[..., Gateway]) -> Callable[..., Gateway]:
    def make(**changes: Any) -> Gateway:
        return make_gateway(**{"images_route": "tool", **changes})

    return make


def encoded(
    width: int = 64, height: int = 64, fmt: str = "png", color: Any = (200, 40, 40)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format=PIL_FORMATS[fmt])
    return out.getvalue()


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def image_events(
    data: bytes,
    *,
    size: str = "64x64",
    fmt: str = "png",
    quality: str = "high",
    revised_prompt: str = "A red square",
    usage_: dict[str, Any] | None = None,
    pause: float = 0,
) -> list[Any]:
    """One upstream answer carrying one image (optionally stalling before it)."""
    s = ResponseScript()
    s.start()
    head = list(s.events)
    s.image(
        base64.b64encode(data).decode(),
        revised_prompt=revised_prompt,
        output_format=fmt,
        size=size,
        quality=quality,
    )
    s.completed(usage_)
    return [*head, *([Pause(pause)] if pause else []), *s.events[len(head) :]]


# -- generations -----------------------------------------------------------------------------


def test_generate_two_images(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    """The fake's default reply renders a real image of the size the tool asks for."""
    result = client.images.generate(
        model="gpt-image-1", prompt="A red fox", n=2, size="1024x1536", quality="low"
    )
    assert len(result.data) == 2
    for entry in result.data:
        assert entry.b64_json is not None
        image = decode(entry.b64_json)
        assert (image.format, image.size) == ("PNG", (1024, 1536))
        assert entry.revised_prompt == "A mock image of: A red fox"
        assert entry.url is None
    assert (result.size, result.quality, result.output_format) == ("1024x1536", "low", "png")
    sent = upstream.responses_requests
    assert len(sent) == 2
    assert result.usage is not None
    assert result.usage.input_tokens == sum(max(1, len(r.raw) // 4) for r in sent)
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens
    for request in sent:
        body = request.body
        assert body["model"] == "gpt-5.2-codex"
        assert body["tools"] == [
            {
                "type": "image_generation",
                "output_format": "png",
                "model": "gpt-image-1",
                "size": "1024x1536",
                "quality": "low",
            }
        ]
        assert body["tool_choice"] == {"type": "image_generation"}
        assert body["parallel_tool_calls"] is False
        assert (body["store"], body["stream"]) == (False, True)
        assert body["input"] == [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "A red fox"}],
            }
        ]


def test_usage_is_summed_and_zero_when_unknown(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    for used in (usage(10, 20), usage(5, 1)):
        upstream.enqueue(Reply(events=image_events(encoded(), usage_=used)))
    result = client.images.generate(prompt="x", n=2)
    assert result.usage is not None
    assert (result.usage.input_tokens, result.usage.output_tokens) == (15, 21)
    assert result.usage.total_tokens == 36
    s = ResponseScript()
    s.start()
    s.image(base64.b64encode(encoded()).decode())
    s.raw({"type": "response.completed", "response": s.response("completed", usage=None)})
    upstream.enqueue(Reply(events=s.events))
    unknown = client.images.generate(prompt="x").usage
    assert unknown is not None
    assert (unknown.input_tokens, unknown.output_tokens, unknown.total_tokens) == (0, 0, 0)
    assert unknown.input_tokens_details.text_tokens == 0
    assert unknown.output_tokens_details is not None
    assert unknown.output_tokens_details.image_tokens == 0


def test_host_model_and_configured_defaults(make_gateway, upstream: FakeUpstream) -> None:
    gw = make_gateway(
        image_host_model="gpt-5.4",
        image_options={"output_format": "webp", "quality": "medium", "partial_images": 2},
    )
    upstream.enqueue(Reply(events=image_events(encoded(fmt="webp"), fmt="webp")))
    result = gw.client().images.generate(prompt="A cat", background="opaque")
    assert result.output_format == "webp"
    body = upstream.responses_requests[-1].body
    assert body["model"] == "gpt-5.4"
    assert body["tools"] == [
        {
            "type": "image_generation",
            "output_format": "webp",
            "quality": "medium",
            "background": "opaque",
        }
    ]


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_url_response_format_serves_the_file(
    gateway: Gateway, client: openai.OpenAI, upstream: FakeUpstream, fmt: str
) -> None:
    data = [encoded(fmt=fmt, color=(10, 200, 10)), encoded(fmt=fmt, color=(10, 10, 200))]
    for one in data:
        upstream.enqueue(Reply(events=image_events(one, fmt=fmt)))
    result = client.images.generate(
        prompt="Green things", n=2, response_format="url", output_format=fmt
    )
    assert [entry.b64_json for entry in result.data] == [None, None]
    fetched = []
    for entry in result.data:
        assert entry.url is not None
        assert entry.url.startswith(f"{gateway.url}/v1/images/files/")
        assert entry.url.endswith(f".{fmt}")
        response = httpx.get(entry.url)
        assert response.status_code == 200
        assert response.headers["content-type"] == f"image/{fmt}"
        fetched.append(response.content)
    assert sorted(fetched) == sorted(data)


def test_public_base_url_is_used_for_links(make_gateway, upstream: FakeUpstream) -> None:
    gw = make_gateway(public_base_url="https://images.example")
    upstream.enqueue(Reply(events=image_events(encoded())))
    result = gw.client().images.generate(prompt="x", response_format="url")
    assert result.data[0].url is not None
    assert result.data[0].url.startswith("https://images.example/v1/images/files/")


def test_without_v1_prefix(gateway: Gateway, upstream: FakeUpstream) -> None:
    body = {"prompt": "x", "size": "64x64"}
    response = httpx.post(f"{gateway.url}/images/generations", json=body, timeout=10)
    assert response.status_code == 200
    assert decode(response.json()["data"][0]["b64_json"]).size == (64, 64)


def test_gateway_token_is_required(make_gateway, upstream: FakeUpstream) -> None:
    gw = make_gateway(gateway_token="s3cret")
    with pytest.raises(openai.AuthenticationError):
        gw.client(api_key="wrong").images.generate(prompt="x")
    upstream.enqueue(Reply(events=image_events(encoded())))
    assert len(gw.client().images.generate(prompt="x").data) == 1


# -- edits -----------------------------------------------------------------------------------


def uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_edit_with_mask(client: openai.OpenAI, upstream: FakeUpstream, tmp_path: Path) -> None:
    source, mask = encoded(color=(1, 2, 3)), encoded(color=(0, 0, 0))
    (tmp_path / "in.png").write_bytes(source)
    (tmp_path / "mask.png").write_bytes(mask)
    with open(tmp_path / "in.png", "rb") as image, open(tmp_path / "mask.png", "rb") as mask_file:
        result = client.images.edit(
            model="gpt-image-1",
            image=image,
            mask=mask_file,
            prompt="Add a hat",
            input_fidelity="high",
            size="96x64",
        )
    assert result.data[0].b64_json is not None
    assert decode(result.data[0].b64_json).size == (96, 64)
    assert result.data[0].revised_prompt == "An edited mock image of: Add a hat"
    body = upstream.responses_requests[-1].body
    assert body["input"][0]["content"] == [
        {"type": "input_text", "text": "Add a hat"},
        {"type": "input_image", "image_url": uri(source, "image/png"), "detail": "auto"},
    ]
    assert body["tools"] == [
        {
            "type": "image_generation",
            "output_format": "png",
            "model": "gpt-image-1",
            "size": "96x64",
            "input_fidelity": "high",
            "action": "edit",
            "input_image_mask": {"image_url": uri(mask, "image/png")},
        }
    ]
    assert body["tool_choice"] == {"type": "image_generation"}


def test_edit_with_several_images(
    client: openai.OpenAI, upstream: FakeUpstream, tmp_path: Path
) -> None:
    first, second = encoded(fmt="png"), encoded(fmt="jpeg")
    (tmp_path / "a.png").write_bytes(first)
    (tmp_path / "b.jpg").write_bytes(second)
    with open(tmp_path / "a.png", "rb") as a, open(tmp_path / "b.jpg", "rb") as b:
        result = client.images.edit(image=[a, b], prompt="Combine them", n=2, size="64x64")
    assert len(result.data) == 2
    for request in upstream.responses_requests:
        parts = request.body["input"][0]["content"]
        assert [p.get("image_url") for p in parts[1:]] == [
            uri(first, "image/png"),
            uri(second, "image/jpeg"),
        ]
        tool = request.body["tools"][0]
        assert tool["action"] == "edit"
        assert "input_image_mask" not in tool


def test_edit_without_v1_prefix_and_repeated_image_field(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    files = [
        ("image", ("a.png", encoded(), "image/png")),
        ("image", ("b.webp", encoded(fmt="webp"))),
    ]
    response = httpx.post(
        f"{gateway.url}/images/edits",
        data={"prompt": "Make it blue", "response_format": "url", "size": "64x64"},
        files=files,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["url"].endswith(".png")
    parts = upstream.responses_requests[-1].body["input"][0]["content"]
    assert [p["image_url"][:16] for p in parts[1:]] == ["data:image/png;b", "data:image/webp;"]


@pytest.mark.parametrize(
    ("files", "data", "param"),
    [
        ([("image", ("a.txt", b"hello there", "image/png"))], {"prompt": "x"}, "image"),
        ([], {"prompt": "x"}, "image"),
        ([("image", ("a.png", encoded()))], {}, "prompt"),
        (
            [("image", ("a.png", encoded())), ("mask", ("m.jpg", encoded(fmt="jpeg")))],
            {"prompt": "x"},
            "mask",
        ),
        ([("image", ("a.png", encoded()))], {"prompt": "x", "n": "five"}, "n"),
        (
            [("image", ("a.png", encoded()))],
            {"prompt": "x", "input_fidelity": "max"},
            "input_fidelity",
        ),
        (
            [("image", ("a.png", encoded()))],
            {"prompt": "x", "output_compression": "101"},
            "output_compression",
        ),
        ([("image", ("a.png", encoded()))] * 17, {"prompt": "x"}, "image"),
    ],
)
def test_edit_validation(
    http: httpx.Client, upstream: FakeUpstream, files: list, data: dict, param: str
) -> None:
    response = http.post("/v1/images/edits", data=data, files=files or {"unused": ("", b"")})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert upstream.responses_requests == []


def test_edit_needs_multipart(http: httpx.Client, upstream: FakeUpstream) -> None:
    response = http.post("/v1/images/edits", json={"prompt": "x"})
    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["error"]["message"]


# -- failures --------------------------------------------------------------------------------


def test_text_only_answer_is_502_with_the_text(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    s = ResponseScript()
    s.start()
    s.message(["I can't draw ", "that, but here is a poem."])
    s.completed()
    upstream.enqueue(Reply(events=s.events))
    with pytest.raises(openai.InternalServerError) as info:
        client.images.generate(prompt="Something")
    assert info.value.status_code == 502
    assert "answered without an image: I can't draw that, but here is a poem." in info.value.message
    assert info.value.code == "no_image_generated"


@pytest.mark.parametrize(
    ("code", "exception", "status"),
    [
        ("content_policy_violation", openai.BadRequestError, 400),
        ("image_content_policy_violation", openai.BadRequestError, 400),
        ("usage_not_included", openai.PermissionDeniedError, 403),
        ("rate_limit_exceeded", openai.RateLimitError, 429),
    ],
)
def test_upstream_failures_keep_their_code(
    client: openai.OpenAI, upstream: FakeUpstream, code: str, exception: type, status: int
) -> None:
    s = ResponseScript()
    s.start()
    s.failed(code, "Your request was rejected by the safety system.")
    upstream.enqueue(Reply(events=s.events))
    with pytest.raises(exception) as info:
        client.images.generate(prompt="Something forbidden")
    assert info.value.status_code == status
    assert info.value.code == code
    assert "safety system" in info.value.message


def test_one_failure_fails_the_request_and_closes_the_others(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    s = ResponseScript()
    s.start()
    s.failed("content_policy_violation", "No.")
    upstream.enqueue(Reply(events=s.events), Reply(events=image_events(encoded(), pause=10)))
    started = time.monotonic()
    with pytest.raises(openai.BadRequestError):
        client.images.generate(prompt="x", n=2)
    assert time.monotonic() - started < 5
    assert wait_for(lambda: upstream.open_streams == 0)


def test_truncated_stream_is_502(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    events = image_events(encoded())[:-1]  # no response.completed
    upstream.enqueue(Reply(events=events))
    with pytest.raises(openai.InternalServerError) as info:
        client.images.generate(prompt="x")
    assert info.value.code == "upstream_stream_truncated"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x", "size": "huge"}, "size"),
        ({"prompt": "x", "quality": "ultra"}, "quality"),
        ({"prompt": "x", "n": 5}, "n"),
        ({"prompt": "x", "n": 0}, "n"),
        ({"prompt": "x", "n": "2"}, "n"),
        ({"prompt": "x", "n": True}, "n"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": 3}, "prompt"),
        ({"n": 1}, "prompt"),
        ({"prompt": "x", "response_format": "png"}, "response_format"),
        ({"prompt": "x", "output_format": "gif"}, "output_format"),
        ({"prompt": "x", "output_compression": "50"}, "output_compression"),
        ({"prompt": "x", "moderation": "none"}, "moderation"),
        ({"prompt": "x", "background": 1}, "background"),
        ({"prompt": "x", "model": ""}, "model"),
        ({"prompt": "x", "stream": "yes"}, "stream"),
        ({"prompt": "x", "partial_images": 4}, "partial_images"),
    ],
)
def test_generation_validation(
    http: httpx.Client, upstream: FakeUpstream, body: dict, param: str
) -> None:
    response = http.post("/v1/images/generations", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert upstream.responses_requests == []


def test_invalid_size_names_the_field_and_allowed_values(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(prompt="x", size="big")  # type: ignore[arg-type]
    assert info.value.param == "size"
    assert "1024x1024" in info.value.message and "1536x1024" in info.value.message


@pytest.mark.parametrize("raw", [b"{nope", b"[1, 2]"])
def test_bad_json(http: httpx.Client, raw: bytes) -> None:
    response = http.post(
        "/v1/images/generations", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


# -- concurrency and cancellation ------------------------------------------------------------


@pytest.mark.parametrize(("slots", "expected_peak"), [(1, 1), (4, 3)])
def test_image_jobs_share_the_concurrency_slots(
    make_gateway, upstream: FakeUpstream, slots: int, expected_peak: int
) -> None:
    gw = make_gateway(image_concurrency=slots)
    for _ in range(3):
        upstream.enqueue(Reply(events=image_events(encoded(), pause=0.3)))
    with peak_open_streams(upstream) as peak:
        result = gw.client().images.generate(prompt="x", n=3)
    assert len(result.data) == 3
    assert len(upstream.responses_requests) == 3
    assert peak[0] == expected_peak


def test_client_disconnect_cancels_every_upstream_call(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    for _ in range(2):
        upstream.enqueue(Reply(events=image_events(encoded(), pause=10)))
    before = upstream.disconnects
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gateway.url}/v1/images/generations", json={"prompt": "x", "n": 2}, timeout=0.5
        )
    closed_at = time.monotonic()
    assert wait_for(lambda: upstream.disconnects >= before + 2)
    assert time.monotonic() - closed_at < 1.5
    assert wait_for(lambda: upstream.open_streams == 0)


# -- the pure builder ------------------------------------------------------------------------


def test_responses_body_for_an_edit() -> None:
    mask = encoded()
    job = edit_request(
        {"prompt": "p", "n": "2", "output_compression": "80", "output_format": "jpg"},
        [encoded(fmt="webp")],
        mask,
        {"output_format": "png", "partial_images": 3},
    )
    assert job.n == 2
    assert job.response_format == "b64_json"
    body = responses_body(job, model="m", instructions="i")
    assert body["model"] == "m" and body["instructions"] == "i"
    tool = body["tools"][0]
    assert tool["output_format"] == "jpeg" and tool["output_compression"] == 80
    assert "partial_images" not in tool
    assert body["input"][0]["content"][1]["image_url"].startswith("data:image/webp;base64,")


def test_generation_request_ignores_unknown_and_null_fields() -> None:
    job = generation_request(
        {"prompt": "p", "user": "me", "style": "vivid", "size": None, "n": None}, {}
    )
    assert job.tool == {"type": "image_generation"}
    assert job.n == 1
    with pytest.raises(OpenAIError) as info:
        generation_request("prompt", {})
    assert info.value.status == 400
