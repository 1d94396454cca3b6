"""The pure image helpers: option checks, tool injection, rendering, history."""

from __future__ import annotations

import base64

import pytest

from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.images import (
    ImageOptionError,
    ImageRenderer,
    alt_text,
    apply_image_tool,
    check_option,
    decoded_size,
    plan_image_history,
    resolver_of,
    restore_image_history,
    should_inject_image_tool,
)

PNG_B64 = base64.b64encode(b"\x89PNG fake image bytes").decode()
URI = f"data:image/png;base64,{PNG_B64}"


# -- options and injection -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("size", "1024x1024", "1024x1024"),
        ("size", "auto", "auto"),
        ("size", "2048x1152", "2048x1152"),
        ("quality", "HIGH", "high"),
        ("output_format", "jpg", "jpeg"),
        ("output_compression", 80, 80),
        ("partial_images", 0, 0),
        ("moderation", "low", "low"),
        ("input_image_mask", {"image_url": URI}, {"image_url": URI}),
    ],
)
def test_check_option_accepts(name: str, value: object, expected: object) -> None:
    assert check_option(name, value) == expected


def test_check_option_reads_numbers_from_text() -> None:
    assert check_option("output_compression", "55", from_text=True) == 55


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("size", "huge", "WIDTHxHEIGHT"),
        ("quality", "ultra", "auto, low, medium, high"),
        ("output_format", "gif", "png, jpeg, webp"),
        ("background", "green", "auto, opaque, transparent"),
        ("output_compression", 101, "0 to 100"),
        ("partial_images", 4, "0 to 3"),
        ("partial_images", True, "0 to 3"),
        ("output_compression", "80", "0 to 100"),
    ],
)
def test_check_option_rejects_with_allowed_values(name: str, value: object, allowed: str) -> None:
    with pytest.raises(ImageOptionError, match=allowed):
        check_option(name, value)


def body(**extra: object) -> dict:
    return {"tools": [], "tool_choice": "auto", **extra}


def test_flag_off_adds_nothing() -> None:
    translated = body()
    assert (
        apply_image_tool(translated, {}, enabled=False, defaults={"output_format": "png"}) is None
    )
    assert translated["tools"] == []


def test_flag_on_injects_configured_options_only() -> None:
    translated = body()
    defaults = {"output_format": "webp", "size": "1024x1536"}
    assert apply_image_tool(translated, {}, enabled=True, defaults=defaults) == "webp"
    assert translated["tools"] == [
        {"type": "image_generation", "output_format": "webp", "size": "1024x1536"}
    ]


def test_client_tool_overrides_defaults_field_by_field_even_with_flag_off() -> None:
    translated = body(tools=[{"type": "image_generation", "size": "1536x1024"}])
    defaults = {"output_format": "png", "size": "1024x1024", "quality": "low"}
    assert apply_image_tool(translated, {}, enabled=False, defaults=defaults) == "png"
    assert translated["tools"] == [
        {"type": "image_generation", "output_format": "png", "size": "1536x1024", "quality": "low"}
    ]


def test_body_flag_false_turns_injection_off() -> None:
    translated = body()
    chat = {"image_generation": False}
    assert (
        apply_image_tool(translated, chat, enabled=True, defaults={"output_format": "png"}) is None
    )
    assert translated["tools"] == []


def test_forced_tool_choice_brings_the_tool() -> None:
    translated = body(tool_choice={"type": "image_generation"})
    apply_image_tool(translated, {}, enabled=False, defaults={"output_format": "png"})
    assert translated["tools"] == [{"type": "image_generation", "output_format": "png"}]


@pytest.mark.parametrize(
    ("extra", "request_fields"),
    [
        ({"tool_choice": "required"}, {}),
        ({"tool_choice": {"type": "function", "name": "f"}}, {}),
        ({"text": {"format": {"type": "json_object"}}}, {}),
        ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}}, {}),
        ({}, {"modalities": ["text"]}),
        ({"tool_choice": "none"}, {}),
        ({"tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}}, {}),
    ],
)
def test_injection_blocked_by_what_the_client_asked(extra: dict, request_fields: dict) -> None:
    translated = body(**extra)
    assert apply_image_tool(translated, request_fields, enabled=True, defaults={}) is None
    assert translated["tools"] == []


@pytest.mark.parametrize(
    ("extra", "request_fields"),
    [
        ({"text": {"format": {"type": "text"}}}, {}),
        ({}, {"modalities": ["text", "image"]}),
    ],
)
def test_injection_not_blocked(extra: dict, request_fields: dict) -> None:
    translated = body(**extra)
    apply_image_tool(translated, request_fields, enabled=True, defaults={})
    assert translated["tools"] == [{"type": "image_generation"}]


def test_invalid_client_option_is_400_naming_field_and_values() -> None:
    translated = body(
        tools=[{"type": "function", "name": "f"}, {"type": "image_generation", "quality": "max"}]
    )
    with pytest.raises(OpenAIError) as info:
        apply_image_tool(translated, {}, enabled=True, defaults={})
    assert info.value.status == 400
    assert info.value.param == "tools[1].quality"
    assert "auto, low, medium, high" in info.value.message


def test_image_generation_flag_must_be_bool() -> None:
    with pytest.raises(OpenAIError) as info:
        apply_image_tool(body(), {"image_generation": "no"}, enabled=True, defaults={})
    assert info.value.param == "image_generation"


@pytest.mark.parametrize(
    ("request_", "enabled", "tool_choice", "text_format", "expected"),
    [
        ({}, True, "auto", None, True),
        ({}, False, "auto", None, False),
        ({}, True, None, None, True),
        ({}, False, {"type": "image_generation"}, {"type": "json_schema"}, True),
        ({}, True, "auto", {"type": "json_schema", "name": "x", "schema": {}}, False),
        ({}, True, "auto", {"type": "json_object"}, False),
        ({}, True, "auto", {"type": "text"}, True),
        ({}, True, "required", None, False),
        ({}, True, {"type": "function", "name": "f"}, None, False),
        ({}, True, "none", None, False),
        ({"modalities": ["text", "image"]}, False, "auto", None, True),
        ({"modalities": ["image"]}, False, "auto", None, True),
        ({"modalities": ["text"]}, True, "auto", None, False),
        ({"modalities": ["text", "image"]}, False, "required", None, False),
        ({"modalities": ["text", "image"]}, False, "auto", {"type": "json_object"}, False),
        ({"image_generation": True}, False, "auto", None, True),
        ({"image_generation": False, "modalities": ["text", "image"]}, True, "auto", None, False),
    ],
)
def test_should_inject_image_tool(
    request_: dict, enabled: bool, tool_choice: object, text_format: object, expected: bool
) -> None:
    assert (
        should_inject_image_tool(
            request_, enabled=enabled, tool_choice=tool_choice, text_format=text_format
        )
        is expected
    )


def test_structured_output_keeps_the_tool_out_of_the_translated_body() -> None:
    translated = body(text={"format": {"type": "json_object"}})
    assert apply_image_tool(translated, {}, enabled=True, defaults={"output_format": "png"}) is None
    assert translated["tools"] == []


# -- rendering -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("revised", "alt"),
    [
        (None, "generated image"),
        ("   ", "generated image"),
        ("A fox\n in   the snow", "A fox in the snow"),
        ("a [red] (fox) \\ here", "a \\[red\\] \\(fox\\) \\\\ here"),
        ("x" * 200, "x" * 120),
    ],
)
def test_alt_text(revised: str | None, alt: str) -> None:
    assert alt_text(revised) == alt


def test_alt_text_cuts_before_escaping() -> None:
    assert alt_text("y" * 119 + "[z") == "y" * 119 + "\\["


def item(**extra: object) -> dict:
    return {
        "id": "ig_1",
        "type": "image_generation_call",
        "result": PNG_B64,
        "revised_prompt": "A fox",
        "output_format": "png",
        "size": "1024x1024",
        **extra,
    }


def test_markdown_delivery() -> None:
    rendered = ImageRenderer()(item())
    assert rendered is not None
    assert rendered.markdown == f"![A fox]({URI})"
    assert rendered.entry is None
    assert rendered.metadata == {
        "revised_prompt": "A fox",
        "size": "1024x1024",
        "output_format": "png",
    }


def test_images_and_both_delivery() -> None:
    entry = {"type": "image_url", "image_url": {"url": URI}}
    images = ImageRenderer(delivery="images")(item())
    both = ImageRenderer(delivery="both")(item())
    assert images is not None and both is not None
    assert (images.markdown, images.entry) == (None, entry)
    assert (both.markdown, both.entry) == (f"![A fox]({URI})", entry)


def test_format_from_item_else_request_else_png() -> None:
    assert ImageRenderer()(item(output_format="webp")).markdown.startswith(
        "![A fox](data:image/webp;"
    )
    no_format = item()
    del no_format["output_format"]
    assert ImageRenderer(requested_format="jpeg")(no_format).markdown.startswith(
        "![A fox](data:image/jpeg;"
    )
    assert ImageRenderer()(no_format).markdown.startswith("![A fox](data:image/png;")


def test_url_delivery_and_size_guard() -> None:
    saved: list[tuple[str, str]] = []

    def store(b64: str, fmt: str) -> str:
        saved.append((b64, fmt))
        return f"http://gw/v1/images/files/{len(saved):032x}.{fmt}"

    rendered = ImageRenderer(delivery="url", store=store)(item())
    assert rendered.markdown == f"![A fox](http://gw/v1/images/files/{1:032x}.png)"
    big = ImageRenderer(delivery="markdown", max_bytes=4, store=store)
    rendered = big(item())
    assert rendered.linked_because_large and big.linked_because_large == 1
    assert rendered.markdown == f"![A fox](http://gw/v1/images/files/{2:032x}.png)"
    assert saved == [(PNG_B64, "png"), (PNG_B64, "png")]


def test_item_without_result_renders_nothing() -> None:
    assert ImageRenderer()(item(result=None)) is None


def test_decoded_size() -> None:
    for raw in (b"", b"a", b"ab", b"abc", b"abcd" * 100):
        assert decoded_size(base64.b64encode(raw).decode() or "") == len(raw)


# -- history ---------------------------------------------------------------------------------


def answer(text: str) -> dict:
    return {"role": "assistant", "content": text}


def test_history_last_resends_only_the_newest_image() -> None:
    older = f"data:image/png;base64,{base64.b64encode(b'old').decode()}"
    messages = [
        {"role": "user", "content": "draw a fox"},
        answer(f"Here:\n\n![A fox]({older})"),
        {"role": "user", "content": "now a cat"},
        answer(f"Here:\n\n![A \\[cat\\]]({URI})\n\nDone."),
        {"role": "user", "content": "make the sky purple"},
    ]
    restored = restore_image_history(messages, "last")
    assert restored == [
        messages[0],
        answer("Here:\n\n[image 1]"),
        messages[2],
        answer("Here:\n\n[image 2]\n\nDone."),
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": URI}}]},
        messages[4],
    ]
    assert "base64" not in str(restored[:4])


def test_history_all_and_none() -> None:
    messages = [{"role": "user", "content": "hi"}, answer(f"![x]({URI})")]
    assert restore_image_history(messages, "all")[2] == {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": URI}}],
    }
    assert restore_image_history(messages, "none") == [messages[0], answer("[image 1]")]


def test_history_images_field_and_stored_links() -> None:
    stored = f"http://127.0.0.1:8000/v1/images/files/{'a' * 32}.png"
    messages = [
        {
            "role": "assistant",
            "content": f"![x]({stored})",
            "images": [{"type": "image_url", "image_url": {"url": URI}}],
        }
    ]
    resolved = {f"{'a' * 32}.png": "data:image/png;base64,U1RPUkVE"}
    restored = restore_image_history(messages, "all", resolved.get)
    assert restored == [
        {"role": "assistant", "content": "[image 1]\n\n[image 2]"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,U1RPUkVE"}},
                {"type": "image_url", "image_url": {"url": URI}},
            ],
        },
    ]


def test_history_unknown_stored_link_stays_and_junk_passes_through() -> None:
    link = f"![x](http://h/v1/images/files/{'b' * 32}.png)"
    assert restore_image_history([answer(link)], "all", lambda name: None) == [answer(link)]
    assert restore_image_history("not a list", "all") == "not a list"
    assert restore_image_history([1, None, answer("plain")], "all") == [1, None, answer("plain")]


def test_history_plan_counts_links_and_names_each_needed_file_once() -> None:
    """The plan reads nothing; the restore then asks only for the planned files."""
    a, b = f"{'a' * 32}.png", f"{'b' * 32}.png"
    links = " ".join(f"![x](http://h/v1/images/files/{n})" for n in [a, b, a, a])
    messages = [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": URI}}]},
        answer(links),
        {"role": "user", "content": "again"},
    ]
    plan = plan_image_history(messages, "all")
    assert (plan.names, plan.images) == ((a, b), 5)
    assert (
        plan_image_history(messages, "last").names,
        plan_image_history(messages, "last").images,
    ) == ((a,), 2)
    assert plan_image_history(messages, "none").names == ()
    assert plan_image_history(messages, "none").images == 1
    asked: list[str] = []

    def spy(name: str) -> str:
        asked.append(name)
        return f"data:image/png;base64,{name[0].upper()}"

    files = {name: spy(name) for name in plan.names}
    restored = restore_image_history(messages, "all", resolver_of(files))
    assert asked == [a, b]
    assert restored[2]["content"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{c}"}} for c in "ABAA"
    ]
    none = restore_image_history(messages, "none", resolver_of({}))
    assert none[1] == answer("[image 1] [image 2] [image 3] [image 4]")
    assert len(none) == 3


def test_history_planned_file_that_is_gone_stays_a_link() -> None:
    link = f"![x](http://h/v1/images/files/{'c' * 32}.png)"
    restored = restore_image_history([answer(link)], "all", resolver_of({f"{'c' * 32}.png": None}))
    assert restored == [answer(link)]
