"""The Images API's native route end to end: the openai SDK, the gateway, the fake upstream's
``/images/generations`` and ``/images/edits`` (protocol.md 7.3), and when the tool route
takes over instead."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from codex_proxy.mock.server import FakeUpstream, Reply
from codex_proxy.translate.images_api import definite, generation_request, native_body

from ..conftest import ACCOUNT_ID, Gateway, write_auth_json

EXPIRED = {"error": {"message": "expired", "type": "invalid_request_error", "code": None}}


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def png(width: int = 32, height: int = 32) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (9, 99, 199)).save(out, format="PNG")
    return out.getvalue()


def uri(data: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(data).decode()}"


def test_generate_uses_the_native_endpoint(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    result = client.images.generate(
        prompt="A red fox", n=2, size="96x64", quality="low", background="transparent"
    )
    assert upstream.responses_requests == []
    (sent,) = upstream.images_requests
    assert sent.path == "/images/generations"
    assert sent.body == {
        "prompt": "A red fox",
        "model": "gpt-image-2",
        "n": 2,
        "size": "96x64",
        "quality": "low",
        "background": "transparent",
    }
    assert sent.headers["authorization"].startswith("Bearer ")
    assert sent.headers["chatgpt-account-id"] == ACCOUNT_ID
    assert sent.headers["accept"] == "application/json"
    assert len(result.data) == 2
    for entry in result.data:
        assert entry.b64_json is not None
        image = decode(entry.b64_json)
        assert (image.format, image.size, image.mode) == ("PNG", (96, 64), "RGBA")
    assert (result.size, result.quality, result.background) == ("96x64", "low", "transparent")
    assert result.output_format == "png"
    usage = result.usage
    assert usage is not None and usage.output_tokens_details is not None
    assert usage.input_tokens_details.text_tokens == usage.input_tokens
    assert usage.output_tokens_details.image_tokens == usage.output_tokens == 2 * 272


def test_quality_auto_is_never_reported(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    """The fake answers ``quality: auto`` when none was asked: that describes no image."""
    result = client.images.generate(prompt="x", size="64x64")
    assert result.quality is None
    assert "quality" not in upstream.images_requests[-1].body
    assert definite("auto", "high") == "high"
    assert definite("medium", "high") == "medium"
    assert definite(None, "auto") is None


def test_configured_model_and_client_model(make_gateway, upstream: FakeUpstream) -> None:
    gw = make_gateway(image_options={"output_format": "png", "model": "gpt-image-1.5"})
    gw.client().images.generate(prompt="x", size="64x64")
    assert upstream.images_requests[-1].body["model"] == "gpt-image-1.5"
    gw.client().images.generate(prompt="x", size="64x64", model="gpt-image-1")
    assert upstream.images_requests[-1].body["model"] == "gpt-image-1"


def test_url_mode_saves_the_native_image(
    gateway: Gateway, client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    result = client.images.generate(prompt="x", size="64x48", response_format="url")
    url = result.data[0].url
    assert url is not None and url.startswith(f"{gateway.url}/v1/images/files/")
    fetched = httpx.get(url)
    assert fetched.status_code == 200
    assert Image.open(io.BytesIO(fetched.content)).size == (64, 48)


def test_edit_sends_the_images_as_data_urls(
    client: openai.OpenAI, upstream: FakeUpstream, tmp_path: Path
) -> None:
    first, second = png(20, 20), png(30, 30)
    (tmp_path / "a.png").write_bytes(first)
    (tmp_path / "b.png").write_bytes(second)
    with open(tmp_path / "a.png", "rb") as a, open(tmp_path / "b.png", "rb") as b:
        result = client.images.edit(image=[a, b], prompt="Combine", size="64x64", quality="high")
    assert upstream.responses_requests == []
    sent = upstream.images_requests[-1]
    assert sent.path == "/images/edits"
    assert sent.body["images"] == [{"image_url": uri(first)}, {"image_url": uri(second)}]
    assert "mask" not in sent.body
    assert result.data is not None and result.data[0].b64_json is not None
    assert decode(result.data[0].b64_json).size == (64, 64)
    assert result.usage is not None and result.usage.input_tokens_details.image_tokens == 130


@pytest.mark.parametrize(
    "extra",
    [{"output_format": "webp"}, {"output_compression": 50}, {"moderation": "low"}],
)
def test_options_the_native_endpoint_lacks_take_the_tool_route(
    client: openai.OpenAI, upstream: FakeUpstream, extra: dict
) -> None:
    result = client.images.generate(prompt="Draw a fox", size="64x64", **extra)
    assert upstream.images_requests == []
    assert len(upstream.responses_requests) == 1
    assert result.data is not None and decode(result.data[0].b64_json or "").size == (64, 64)


def test_mask_takes_the_tool_route(
    client: openai.OpenAI, upstream: FakeUpstream, tmp_path: Path
) -> None:
    (tmp_path / "a.png").write_bytes(png())
    (tmp_path / "m.png").write_bytes(png())
    with open(tmp_path / "a.png", "rb") as image, open(tmp_path / "m.png", "rb") as mask:
        client.images.edit(image=image, mask=mask, prompt="Add a hat", size="64x64")
    assert upstream.images_requests == []
    tool = upstream.responses_requests[-1].body["tools"][0]
    assert tool["input_image_mask"]["image_url"].startswith("data:image/png;base64,")


def test_missing_native_endpoint_falls_back_once_per_process(
    make_gateway, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    gw = make_gateway()
    upstream.native_images = False
    with caplog.at_level(logging.WARNING, logger="codex_proxy"):
        for _ in range(2):
            result = gw.client().images.generate(prompt="Draw x", size="64x64")
            assert result.data is not None and result.data[0].b64_json
    assert len(upstream.images_requests) == 1  # the second request went straight to the tool
    assert len(upstream.responses_requests) == 2
    assert caplog.text.count("has no native images endpoint") == 1


def test_route_tool_never_calls_the_native_endpoint(make_gateway, upstream: FakeUpstream) -> None:
    make_gateway(images_route="tool").client().images.generate(prompt="Draw x", size="64x64")
    assert upstream.images_requests == []
    assert len(upstream.responses_requests) == 1


def test_route_native_refuses_what_it_cannot_do_and_reports_404(
    make_gateway, upstream: FakeUpstream
) -> None:
    gw = make_gateway(images_route="native")
    with pytest.raises(openai.BadRequestError) as info:
        gw.client().images.generate(prompt="x", output_format="webp")
    assert info.value.param == "output_format"
    assert "CODEX_IMAGES_ROUTE=native" in info.value.message
    upstream.native_images = False
    with pytest.raises(openai.NotFoundError):
        gw.client().images.generate(prompt="x")
    assert upstream.responses_requests == []


def test_native_401_refreshes_and_retries(
    make_gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    old = write_auth_json(home)["tokens"]["access_token"]
    gw = make_gateway(codex_home=home)
    upstream.enqueue_images(Reply(status=401, body=EXPIRED))
    result = gw.client().images.generate(prompt="x", size="64x64")
    assert result.data is not None and len(result.data) == 1
    first, second = upstream.images_requests
    assert first.headers["authorization"] == f"Bearer {old}"
    assert second.headers["authorization"] != first.headers["authorization"]
    assert len(upstream.token_requests) == 1


@pytest.mark.parametrize(
    ("status", "body", "exception", "code"),
    [
        (
            400,
            {
                "error": {
                    "message": "Rejected by the safety system.",
                    "type": "invalid_request_error",
                    "code": "content_policy_violation",
                    "param": None,
                }
            },
            openai.BadRequestError,
            "content_policy_violation",
        ),
        (
            429,
            {"error": {"message": "slow down", "type": "requests"}},
            openai.RateLimitError,
            "rate_limit_exceeded",
        ),
        (500, {"detail": "boom"}, openai.InternalServerError, "upstream_error"),
    ],
)
def test_native_errors_are_mapped_like_responses_errors(
    client: openai.OpenAI,
    upstream: FakeUpstream,
    status: int,
    body: dict,
    exception: type,
    code: str,
) -> None:
    upstream.enqueue_images(Reply(status=status, body=body))
    with pytest.raises(exception) as info:
        client.images.generate(prompt="x")
    assert info.value.code == code
    assert upstream.responses_requests == []  # an error is not a reason to switch routes


def test_api_key_mode_generates_natively_and_edits_with_the_tool(
    make_gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    gw = make_gateway(auth_mode="api_key", openai_api_key="sk-test")
    gw.client().images.generate(prompt="x", size="64x64")
    assert upstream.images_requests[-1].headers["authorization"] == "Bearer sk-test"
    (tmp_path / "a.png").write_bytes(png())
    with open(tmp_path / "a.png", "rb") as image:
        gw.client().images.edit(image=image, prompt="Draw a hat", size="64x64")
    assert len(upstream.images_requests) == 1
    assert len(upstream.responses_requests) == 1


def test_native_body_is_minimal() -> None:
    job = generation_request({"prompt": "p", "size": "auto"}, {"output_format": "png"})
    assert native_body(job) == {"prompt": "p", "model": "gpt-image-2", "n": 1, "size": "auto"}
