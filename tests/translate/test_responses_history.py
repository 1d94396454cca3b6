"""History assembly from a stored chain, image history modes, and reference resolution."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.responses_history import (
    assemble_input,
    image_message,
    images_sent,
    referenced_ids,
    resolve_references,
)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff" + b"\0" * 16).decode()


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
        **extra,
    }


def said(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
        **extra,
    }


def image_call(item_id: str, b64: str, fmt: str = "png") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "image_generation_call",
        "status": "completed",
        "result": b64,
        "output_format": fmt,
    }


def picture(b64: str, mime: str = "image/png") -> dict[str, Any]:
    return {"type": "input_image", "image_url": f"data:{mime};base64,{b64}", "detail": "auto"}


def placeholder(n: int) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": f"[image {n}]"}],
    }


def strip(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "id"}


REASONING = {
    "id": "rs_1",
    "type": "reasoning",
    "summary": [{"type": "summary_text", "text": "think"}],
    "encrypted_content": "gAAA",
}
CALL = {
    "id": "fc_1",
    "type": "function_call",
    "call_id": "call_1",
    "name": "weather",
    "arguments": "{}",
    "status": "completed",
}
CALL_OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "21C"}


def test_three_turns_in_order_ids_stripped_call_ids_and_encryption_kept() -> None:
    turn1 = ([user("q1", id="msg_u1")], [REASONING, CALL])
    turn2 = ([CALL_OUTPUT], [said("a2", id="msg_2")])
    turn3 = ([user("q3")], [said("a3", id="msg_3")])
    got = assemble_input([turn1, turn2, turn3], [user("q4")])
    assert got == [
        user("q1"),
        strip(REASONING),
        strip(CALL),
        CALL_OUTPUT,
        said("a2"),
        user("q3"),
        said("a3"),
        user("q4"),
    ]
    assert all("id" not in item for item in got)


def test_new_input_ids_stripped_too_and_unusable_items_dropped() -> None:
    bare_reasoning = {"id": "rs_9", "type": "reasoning", "summary": []}
    got = assemble_input([], [said("x", id="msg_9"), bare_reasoning, user("y")])
    assert got == [said("x"), user("y")]


def chain_with_two_images() -> list[Any]:
    return [
        ([user("draw a fox")], [image_call("ig_1", PNG), said("here", id="msg_1")]),
        ([user("now a cat")], [image_call("ig_2", JPEG, "jpeg")]),
    ]


def test_image_history_last_keeps_only_the_latest_image() -> None:
    got = assemble_input(chain_with_two_images(), [user("bigger")], image_history="last")
    assert got == [
        user("draw a fox"),
        placeholder(1),
        said("here"),
        user("now a cat"),
        placeholder(2),
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "[image 2]"}, picture(JPEG, "image/jpeg")],
        },
        user("bigger"),
    ]


@pytest.mark.parametrize(
    ("mode", "sent"), [("last", {(1, 0)}), ("all", {(0, 0), (1, 0)}), ("none", set())]
)
def test_images_sent_names_what_goes_back_as_pictures(mode: str, sent: set) -> None:
    chain = chain_with_two_images()
    chain[1][1].insert(0, image_call("ig_failed", ""))  # a failed generation never counts
    assert images_sent(chain, mode) == {(t, i + 1 if t == 1 else i) for t, i in sent}


def test_images_not_sent_may_be_left_unloaded() -> None:
    """A stand-in for bytes not loaded counts as an image (its placeholder and number) but
    needs no bytes unless it is sent."""
    chain = chain_with_two_images()
    loaded = assemble_input(chain, [user("bigger")], image_history="last")
    chain[0][1][0] = {**chain[0][1][0], "result": {"$blob": "sha256:00"}}
    assert assemble_input(chain, [user("bigger")], image_history="last") == loaded
    with pytest.raises(ValueError, match="needs its bytes"):
        assemble_input(chain, [user("bigger")], image_history="all")


def test_image_history_all_keeps_each_after_its_turn() -> None:
    got = assemble_input(chain_with_two_images(), [user("bigger")], image_history="all")
    assert got == [
        user("draw a fox"),
        placeholder(1),
        said("here"),
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "[image 1]"}, picture(PNG)],
        },
        user("now a cat"),
        placeholder(2),
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "[image 2]"}, picture(JPEG, "image/jpeg")],
        },
        user("bigger"),
    ]


def test_image_history_none_keeps_placeholders_only() -> None:
    got = assemble_input(chain_with_two_images(), [user("bigger")], image_history="none")
    assert got == [
        user("draw a fox"),
        placeholder(1),
        said("here"),
        user("now a cat"),
        placeholder(2),
        user("bigger"),
    ]


def test_image_from_turn_one_under_last_when_it_is_the_only_one() -> None:
    chain = [([user("draw")], [image_call("ig_1", PNG)]), ([user("nice")], [said("thanks")])]
    got = assemble_input(chain, [user("again")], image_history="last")
    assert got[:3] == [
        user("draw"),
        placeholder(1),
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "[image 1]"}, picture(PNG)],
        },
    ]


def test_format_from_bytes_wins_over_the_claimed_one() -> None:
    assert image_message(JPEG, "png")["content"] == [picture(JPEG, "image/jpeg")]
    assert image_message("AAAA", "webp")["content"] == [picture("AAAA", "image/webp")]


def test_failed_image_call_is_left_out() -> None:
    failed = {"id": "ig_1", "type": "image_generation_call", "status": "failed", "result": None}
    assert assemble_input([([user("x")], [failed])], []) == [user("x")]


def test_unknown_history_mode_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        assemble_input([], [], image_history="some")


# -- references ------------------------------------------------------------------------------

STORED = {
    "msg_1": said("stored answer", id="msg_1"),
    "ig_1": image_call("ig_1", PNG),
    "rs_1": REASONING,
}


def test_referenced_ids_lists_what_to_fetch() -> None:
    items = [
        {"type": "item_reference", "id": "msg_1"},
        {"type": "image_generation_call", "id": "ig_1"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "x"},
        image_call("ig_2", PNG),
        {"type": "item_reference", "id": "msg_1"},
    ]
    assert referenced_ids(items) == ["msg_1", "ig_1", "rs_1"]


def test_references_resolved_through_lookup() -> None:
    items = [
        {"type": "item_reference", "id": "msg_1"},
        {"type": "image_generation_call", "id": "ig_1"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "reasoning", "id": "rs_x", "summary": []},  # unknown and unusable: dropped
        user("edit it"),
    ]
    got = resolve_references(items, STORED.get)
    assert got == [
        said("stored answer", id="msg_1"),
        {"type": "message", "role": "user", "content": [picture(PNG)]},
        REASONING,
        user("edit it"),
    ]
    assert assemble_input([], got) == [
        said("stored answer"),
        {"type": "message", "role": "user", "content": [picture(PNG)]},
        strip(REASONING),
        user("edit it"),
    ]


def test_item_reference_to_an_image_becomes_an_input_image() -> None:
    got = resolve_references([{"type": "item_reference", "id": "ig_1"}], STORED.get)
    assert got == [{"type": "message", "role": "user", "content": [picture(PNG)]}]


def test_full_image_call_in_new_input_becomes_an_input_image() -> None:
    got = resolve_references([image_call("ig_7", JPEG)], {}.get)
    assert got == [{"type": "message", "role": "user", "content": [picture(JPEG, "image/jpeg")]}]


@pytest.mark.parametrize("kind", ["item_reference", "image_generation_call"])
def test_unknown_reference_is_400_naming_the_id(kind: str) -> None:
    with pytest.raises(OpenAIError) as info:
        resolve_references([user("x"), {"type": kind, "id": "msg_gone"}], STORED.get)
    assert info.value.status == 400
    assert info.value.param == "input"
    assert info.value.type == "invalid_request_error"
    assert "'msg_gone'" in info.value.message
    assert "input[1]" in info.value.message


def test_image_call_id_naming_something_else_is_400() -> None:
    with pytest.raises(OpenAIError) as info:
        resolve_references([{"type": "image_generation_call", "id": "msg_1"}], STORED.get)
    assert "'msg_1'" in info.value.message
    assert info.value.param == "input"
