"""Policy decisions: model patterns, image requests, windows, expiry."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from codex_proxy.keys.file import Key, Policy
from codex_proxy.keys.policy import (
    IMAGES,
    REQUESTS,
    allowed_models,
    asks_for_images,
    describe,
    expired,
    limit_for,
    model_allowed,
    window_start,
)


def test_model_patterns() -> None:
    policy = Policy(models=("gpt-5.1*", "gpt-5.2"))
    assert model_allowed(policy, "gpt-5.1-codex-mini")
    assert model_allowed(policy, "gpt-5.2")
    assert not model_allowed(policy, "gpt-5.2-codex")
    assert not model_allowed(policy, "GPT-5.1")
    assert model_allowed(Policy(), "anything")


def test_allowed_models_follow_aliases() -> None:
    policy = Policy(models=("gpt-5.1*",))
    ids = ["gpt-5.2-codex", "gpt-5.1", "fast", "slow"]
    aliases = {"fast": "gpt-5.1-codex-mini", "slow": "gpt-5.2"}
    assert allowed_models(policy, ids, aliases) == ["gpt-5.1", "fast"]


@pytest.mark.parametrize(
    ("body", "asks"),
    [
        ({"tools": [{"type": "image_generation"}]}, True),
        ({"modalities": ["text", "image"]}, True),
        ({"tool_choice": {"type": "image_generation"}}, True),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, False),
        ({"modalities": ["text"]}, False),
        ({"tool_choice": "auto"}, False),
        ({}, False),
    ],
)
def test_asks_for_images(body: dict, asks: bool) -> None:
    assert asks_for_images(body) is asks


def test_windows_and_retry_after() -> None:
    policy = Policy(rpm=2, images_per_day=3)
    minute = limit_for(policy, REQUESTS)
    day = limit_for(policy, IMAGES)
    assert minute is not None and day is not None
    assert window_start(REQUESTS, 1_000_030.5) == 1_000_020
    assert minute.retry_after(1_000_030.5) == 50
    assert minute.retry_after(1_000_079.9) == 1
    assert window_start(IMAGES, 86_400 * 3 + 5) == 86_400 * 3
    assert day.retry_after(86_400 * 3 + 5) == 86_395
    assert limit_for(Policy(), REQUESTS) is None


def test_expiry() -> None:
    key = Key("a", "0" * 64, Policy(expires=datetime(2027, 1, 1, tzinfo=timezone.utc)))
    assert not expired(key, datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc))
    assert expired(key, datetime(2027, 1, 1, tzinfo=timezone.utc))
    assert not expired(Key("b", "0" * 64), datetime(2100, 1, 1, tzinfo=timezone.utc))


def test_describe() -> None:
    assert describe(Policy()) == "no limits"
    assert describe(Policy(models=("a*",), images="deny", rpm=2, images_per_day=4)) == (
        "models a*; no images; 2 requests per minute; 4 images per day"
    )
