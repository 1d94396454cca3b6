"""The fake upstream's images are real: they decode to the requested size and format, so the
gateway's image handling (decoding, size guard, storage, re-sending) is tested for real."""

from __future__ import annotations

import base64
import builtins
import io
import time
from typing import Any

import httpx
import orjson
import pytest
from PIL import Image

from codex_proxy.mock import images
from codex_proxy.mock.images import image_b64, parse_size, render_image
from codex_proxy.mock.server import FakeUpstream

AUTH = {"authorization": "Bearer test-token"}
MIB = 1024 * 1024


AUTH = {"authorization": "Bearer test"}


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- render_image ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (7, 3), (1024, 1024), (1536, 1024), (1024, 1536)])
def test_png_decodes_to_the_exact_size_and_mode(size: tuple[int, int]) -> None:
    image = decode(render_image(*size))

    assert (image.format, image.mode, image.size) == ("PNG", "RGB", size)


def test_png_is_deterministic_for_a_seed_and_varies_with_it() -> None:
    assert render_image(300, 200, seed=5) == render_image(300, 200, seed=5)
    assert render_image(300, 200, seed=5) != render_image(300, 200, seed=6)
    assert render_image(64, 64, seed=1, noise=True) == render_image(64, 64, seed=1, noise=True)


def test_png_has_a_pattern_not_a_flat_colour() -> None:
    image = decode(render_image(256, 256, seed=3))

    assert len(image.getcolors(1 << 24) or []) > 100


def test_a_1024_png_is_fast() -> None:
    render_image(1024, 1024)  # warm up
    started = time.perf_counter()
    render_image(1024, 1024, seed=9)
    assert time.perf_counter() - started < 0.5  # ~25 ms; generous for loaded CI machines


@pytest.mark.parametrize(
    ("fmt", "pil_format"), [("jpeg", "JPEG"), ("jpg", "JPEG"), ("webp", "WEBP")]
)
def test_jpeg_and_webp_decode_to_the_right_size_and_format(fmt: str, pil_format: str) -> None:
    image = decode(render_image(320, 200, fmt, seed=2))

    assert (image.format, image.size) == (pil_format, (320, 200))


def test_a_15_mb_noise_png_is_that_big_and_decodes() -> None:
    data = render_image(2304, 2304, noise=True, seed=1)

    assert len(data) >= 15 * MIB
    assert decode(data).size == (2304, 2304)


def test_image_b64_is_the_base64_of_render_image() -> None:
    text = image_b64(40, 30, "webp", seed=4)

    assert base64.b64decode(text) == render_image(40, 30, "webp", seed=4)


@pytest.mark.parametrize(
    "args", [(0, 10), (10, 0), (images.MAX_SIDE + 1, 10), (10, 10, "gif"), (10, 10, "tiff")]
)
def test_bad_sizes_and_formats_are_value_errors(args: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError):
        render_image(*args)


def test_jpeg_without_pillow_says_how_to_fix_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_pil(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)

    with pytest.raises(RuntimeError, match="pip install pillow") as info:
        render_image(10, 10, "jpeg")
    assert str(info.value) == "the mock upstream needs Pillow for jpeg/webp: pip install pillow"
    assert render_image(10, 10)[:4] == b"\x89PNG"  # PNG never needs Pillow


@pytest.mark.parametrize(
    ("size", "expected"),
    [(None, (1024, 1024)), ("auto", (1024, 1024)), ("1536x1024", (1536, 1024)), ("7X9", (7, 9))],
)
def test_parse_size(size: str | None, expected: tuple[int, int]) -> None:
    assert parse_size(size) == expected


@pytest.mark.parametrize("size", ["big", "1024", "1024x", "x1024", "0x10", "-5x5", "1.5x2"])
def test_parse_size_rejects_malformed_sizes(size: str) -> None:
    with pytest.raises(ValueError):
        parse_size(size)


# -- the fake's default reply ----------------------------------------------------------------


def user(text: str, *extra: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "input_text", "text": text}, *extra]}


def post(fake: FakeUpstream, **changes: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "model": "gpt-5-codex",
        "instructions": "",
        "input": [user("hello there")],
        "store": False,
        "stream": True,
    }
    body.update(changes)
    return httpx.post(f"{fake.url}/responses", json=body, headers=AUTH, timeout=30)


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.split("\n\n"):
        data = [line[6:] for line in block.split("\n") if line.startswith("data: ")]
        if data:
            events.append(orjson.loads("\n".join(data)))
    return events


def image_item(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        e["item"]
        for e in events
        if e["type"] == "response.output_item.done" and e["item"]["type"] == "image_generation_call"
    )


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")


FORCED = {"tool_choice": {"type": "image_generation"}}


def test_forced_image_tool_streams_the_full_sequence(upstream: FakeUpstream) -> None:
    tool = {"type": "image_generation", "size": "1536x1024", "output_format": "png"}
    tool |= {"partial_images": 2, "quality": "low", "background": "transparent"}

    events = sse_events(post(upstream, input=[user("a red fox")], tools=[tool], **FORCED))

    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert text_of(events) == "Here is your image."
    start = next(
        i
        for i, e in enumerate(events)
        if e["type"] == "response.output_item.added"
        and e["item"]["type"] == "image_generation_call"
    )
    assert kinds.index("response.output_item.done") < start  # the message comes first
    assert kinds[start:-1] == [
        "response.output_item.added",
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        "response.image_generation_call.partial_image",
        "response.image_generation_call.partial_image",
        "response.image_generation_call.completed",
        "response.output_item.done",
    ]
    partials = [e for e in events if e["type"].endswith(".partial_image")]
    assert [p["partial_image_index"] for p in partials] == [0, 1]
    for p in partials:
        assert decode(base64.b64decode(p["partial_image_b64"])).format == "PNG"
    item = image_item(events)
    assert item["status"] == "completed"
    assert item["revised_prompt"] == "A mock image of: a red fox"
    assert (item["output_format"], item["size"]) == ("png", "1536x1024")
    assert (item["quality"], item["background"]) == ("low", "transparent")
    image = decode(base64.b64decode(item["result"]))
    assert (image.format, image.size, image.mode) == ("PNG", (1536, 1024), "RGBA")
    assert image.getextrema()[3] == (0, 255)  # background: transparent has clear pixels


@pytest.mark.parametrize(("fmt", "mode"), [("png", "RGBA"), ("webp", "RGBA"), ("jpeg", "RGB")])
def test_transparent_images_have_clear_pixels(fmt: str, mode: str) -> None:
    image = decode(render_image(40, 30, fmt, seed=3, transparent=True))
    assert (image.size, image.mode) == ((40, 30), mode)
    if mode == "RGBA":
        assert image.getextrema()[3] == (0, 255)


def test_without_pillow_the_fake_answers_png_and_logs_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_pillow() -> Any:
        raise RuntimeError(images.PILLOW_HINT)

    monkeypatch.setattr(images, "_pillow", no_pillow)
    with caplog.at_level("WARNING", logger="codex_proxy.mock"):
        data, fmt = images.render_or_png(20, 10, "webp")
    assert fmt == "png" and decode(data).format == "PNG"
    assert "Pillow is not installed, answering PNG instead of webp" in caplog.text
    assert "codex-proxy[mock]" in caplog.text


# -- the native images endpoints -------------------------------------------------------------


def test_native_generations_honour_size_n_and_background(upstream: FakeUpstream) -> None:
    body = {
        "prompt": "a fox",
        "model": "gpt-image-2",
        "n": 2,
        "size": "96x64",
        "background": "transparent",
        "quality": "low",
    }
    response = httpx.post(f"{upstream.url}/images/generations", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert len(answer["data"]) == 2
    for entry in answer["data"]:
        image = decode(base64.b64decode(entry["b64_json"]))
        assert (image.format, image.size, image.mode) == ("PNG", (96, 64), "RGBA")
        assert image.getextrema()[3] == (0, 255)
    assert (answer["size"], answer["background"], answer["quality"]) == (
        "96x64",
        "transparent",
        "low",
    )
    usage = answer["usage"]
    assert set(usage["input_tokens_details"]) == {"text_tokens", "image_tokens"}
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert upstream.images_requests[-1].body == body


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("generations", {"prompt": "x", "output_format": "webp"}),
        ("generations", {"prompt": "x", "stream": True}),
        ("generations", {"prompt": ""}),
        ("edits", {"prompt": "x"}),
        ("edits", {"prompt": "x", "images": [{"image_url": "https://x/y.png"}]}),
        (
            "edits",
            {
                "prompt": "x",
                "images": [{"image_url": "data:image/png;base64,AA"}],
                "mask": {"image_url": "data:image/png;base64,AA"},
            },
        ),
    ],
)
def test_native_endpoints_reject_what_the_backend_does_not_take(
    upstream: FakeUpstream, path: str, body: dict
) -> None:
    response = httpx.post(f"{upstream.url}/images/{path}", json=body, headers=AUTH)
    assert response.status_code == 400
    assert "detail" in response.json()


def test_native_switch_makes_the_endpoints_404(upstream: FakeUpstream) -> None:
    control = httpx.post(f"{upstream.url}/_mock/images", json={"native": False})
    assert control.json() == {"native": False}
    response = httpx.post(f"{upstream.url}/images/generations", json={"prompt": "x"}, headers=AUTH)
    assert response.status_code == 404
    upstream.clear()
    assert upstream.native_images is True
    response = httpx.post(f"{upstream.url}/images/generations", json={"prompt": "x"}, headers=AUTH)
    assert response.status_code == 200


@pytest.mark.parametrize(("fmt", "pil_format"), [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_result_has_the_requested_format(upstream: FakeUpstream, fmt: str, pil_format: str) -> None:
    tool = {"type": "image_generation", "size": "512x768", "output_format": fmt}

    events = sse_events(post(upstream, tools=[tool], **FORCED))

    item = image_item(events)
    assert (item["output_format"], item["size"]) == (fmt, "512x768")
    image = decode(base64.b64decode(item["result"]))
    assert (image.format, image.size) == (pil_format, (512, 768))


def test_image_words_trigger_the_tool_without_tool_choice(upstream: FakeUpstream) -> None:
    tools = [{"type": "function", "name": "f"}, {"type": "image_generation", "size": "auto"}]

    events = sse_events(post(upstream, input=[user("Please DRAW me a Logo")], tools=tools))

    item = image_item(events)
    assert (item["output_format"], item["size"]) == ("png", "1024x1024")
    assert (item["quality"], item["background"]) == ("auto", "opaque")
    assert decode(base64.b64decode(item["result"])).size == (1024, 1024)
    assert not [e for e in events if e["type"].endswith(".partial_image")]


def test_an_input_image_makes_it_an_edit(upstream: FakeUpstream) -> None:
    source = f"data:image/png;base64,{image_b64(16, 16)}"
    message = user("make it blue", {"type": "input_image", "image_url": source})
    tool = {"type": "image_generation", "size": "1024x1536"}

    events = sse_events(post(upstream, input=[message], tools=[tool], **FORCED))

    item = image_item(events)
    assert item["revised_prompt"] == "An edited mock image of: make it blue"
    assert decode(base64.b64decode(item["result"])).size == (1024, 1536)


def test_an_image_in_the_conversation_makes_a_follow_up_an_edit(upstream: FakeUpstream) -> None:
    """No image words and no forced tool: the earlier image is what the follow-up is about."""
    source = f"data:image/png;base64,{image_b64(16, 16)}"
    earlier = user("[image 1]", {"type": "input_image", "image_url": source})
    tool = {"type": "image_generation", "size": "64x64"}

    events = sse_events(
        post(upstream, input=[earlier, user("make the background a kitchen counter")], tools=[tool])
    )

    item = image_item(events)
    assert (
        item["revised_prompt"] == "An edited mock image of: make the background a kitchen counter"
    )
    assert decode(base64.b64decode(item["result"])).size == (64, 64)


def test_revised_prompt_keeps_the_first_200_characters(upstream: FakeUpstream) -> None:
    prompt = "x" * 300
    tool = {"type": "image_generation", "size": "64x64"}

    events = sse_events(post(upstream, input=[user(prompt)], tools=[tool], **FORCED))

    assert image_item(events)["revised_prompt"] == "A mock image of: " + "x" * 200


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "image_generation", "size": "huge"},
        {"type": "image_generation", "size": "9000x10"},
        {"type": "image_generation", "output_format": "gif"},
    ],
)
def test_a_bad_image_tool_is_a_400(upstream: FakeUpstream, tool: dict[str, Any]) -> None:
    response = post(upstream, tools=[tool], **FORCED)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("Invalid value for 'tools[0]'")


@pytest.mark.parametrize(
    "changes",
    [
        {"tools": [{"type": "image_generation"}]},  # the tool, but not an image prompt
        {"input": [user("draw a picture")]},  # an image prompt, but no tool
        {"input": [user("draw a picture")], "tools": [{"type": "web_search"}]},
    ],
)
def test_text_only_requests_are_unchanged(upstream: FakeUpstream, changes: dict[str, Any]) -> None:
    events = sse_events(post(upstream, **changes))

    text = "draw a picture" if "input" in changes else "hello there"
    assert text_of(events) == f"Mock reply to: {text}"
    assert all(e.get("item", {}).get("type") != "image_generation_call" for e in events)


def test_tool_command_still_calls_the_function(upstream: FakeUpstream) -> None:
    tools = [{"type": "function", "name": "logo"}, {"type": "image_generation"}]

    events = sse_events(post(upstream, input=[user('/tool logo {"a": 1}')], tools=tools))

    item = next(e["item"] for e in events if e["type"] == "response.output_item.done")
    assert (item["type"], item["name"], item["arguments"]) == ("function_call", "logo", '{"a": 1}')
