"""The Images API's stream events from Responses image events (pure)."""

from __future__ import annotations

import orjson

from codex_proxy.translate.images_api import generation_request, public_usage
from codex_proxy.translate.images_stream import ImageEventTranslator


def job(**fields: object):
    return generation_request({"prompt": "p", "stream": True, **fields}, {"output_format": "png"})


def test_partial_image_event_and_other_events_ignored() -> None:
    translator = ImageEventTranslator(job(size="64x64", partial_images=2), 7)
    assert translator.feed({"type": "response.image_generation_call.generating"}) is None
    event = {
        "type": "response.image_generation_call.partial_image",
        "partial_image_b64": "AAAA",
        "partial_image_index": 1,
        "quality": "high",
    }
    assert translator.feed(event) == {
        "type": "image_generation.partial_image",
        "b64_json": "AAAA",
        "partial_image_index": 1,
        "size": "64x64",
        "quality": "high",
        "background": "auto",
        "output_format": "png",
        "created_at": 7,
    }


def test_completed_event_describes_the_image_and_has_full_usage() -> None:
    translator = ImageEventTranslator(job(quality="low"), 9)
    item = {"result": "BBBB", "size": "1024x1536", "quality": "auto", "output_format": "webp"}
    usage = {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}
    event = translator.completed(item, usage)
    assert event["type"] == "image_generation.completed"
    assert (event["size"], event["quality"], event["output_format"]) == ("1024x1536", "low", "webp")
    assert event["usage"] == {
        "input_tokens": 5,
        "output_tokens": 7,
        "total_tokens": 12,
        "input_tokens_details": {"text_tokens": 0, "image_tokens": 0},
        "output_tokens_details": {"text_tokens": 0, "image_tokens": 0},
    }


def test_public_usage_sums_details_and_skips_unknown() -> None:
    one = {
        "input_tokens": 10,
        "output_tokens": 4,
        "input_tokens_details": {"text_tokens": 6, "image_tokens": 4},
        "output_tokens_details": {"image_tokens": 4},
    }
    summed = public_usage([one, None, one])
    assert summed["total_tokens"] == 28
    assert summed["input_tokens_details"] == {"text_tokens": 12, "image_tokens": 8}
    assert summed["output_tokens_details"] == {"text_tokens": 0, "image_tokens": 8}


def test_partial_head_and_tail_frame_the_image() -> None:
    """Head, base64 and tail are byte for byte the event ``feed`` makes, whatever the
    upstream reports after the image."""
    for prefix in ("image_generation", "image_edit"):
        translator = ImageEventTranslator(job(size="64x64"), 1700000000)
        translator.prefix = prefix
        event = {
            "type": "response.image_generation_call.partial_image",
            "partial_image_b64": "QUJD",
            "partial_image_index": 1,
            "background": "transparent",
        }
        whole = orjson.dumps(translator.feed(event))
        tail = translator.partial_tail({**event, "partial_image_b64": ""})
        assert translator.partial_head() + b"QUJD" + tail == whole
