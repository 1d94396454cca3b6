"""The usage snapshot from the in-stream ``codex.rate_limits`` event and from the usage
endpoint (``wham/usage``), besides the answer headers (tested with /v1/status)."""

from __future__ import annotations

import time

from codex_proxy.upstream.client import usage_url
from codex_proxy.upstream.rate_limits import RateLimits

EVENT = {
    "type": "codex.rate_limits",
    "plan_type": "pro",
    "rate_limits": {
        "primary": {"used_percent": 12.5, "window_minutes": 300, "reset_at": 1900000000},
        "secondary": {"used_percent": 40, "window_minutes": 10080, "reset_at": 1900500000},
    },
    "credits": {"has_credits": True, "unlimited": False, "balance": "17.5"},
    "metered_limit_name": "codex",
}


def test_event_sets_the_snapshot() -> None:
    limits = RateLimits()
    limits.update_from_event(EVENT)
    snap = limits.snapshot(now=1899999000)
    assert snap["source"] == "codex.rate_limits event"
    assert snap["plan_type"] == "pro"
    assert snap["primary"] == {
        "used_percent": 12.5,
        "window_minutes": 300,
        "resets_at": 1900000000,
        "resets_in_seconds": 1000,
    }
    assert snap["secondary"]["used_percent"] == 40
    assert snap["credits"] == {"has_credits": True, "unlimited": False, "balance": "17.5"}


def test_event_of_another_family_keeps_the_codex_windows() -> None:
    limits = RateLimits()
    limits.update_from_event(EVENT)
    other = {
        "type": "codex.rate_limits",
        "rate_limits": {"primary": {"used_percent": 3, "window_minutes": 60}},
        "metered_limit_name": "codex_bengalfox",
    }
    limits.update_from_event(other)
    snap = limits.snapshot()
    assert snap["primary"]["used_percent"] == 12.5
    assert snap["other_limits"]["codex_bengalfox"]["primary"]["used_percent"] == 3


def test_event_without_windows_changes_nothing() -> None:
    limits = RateLimits()
    for junk in ({"type": "codex.rate_limits"}, {"rate_limits": {"primary": "x"}}):
        limits.update_from_event(junk)
    assert limits.snapshot() is None and limits.age() is None


def test_usage_endpoint_payload() -> None:
    limits = RateLimits()
    now = time.time()
    payload = {
        "plan_type": "plus",
        "rate_limit": {
            "allowed": True,
            "limit_reached": False,
            "primary_window": {
                "used_percent": 6,
                "limit_window_seconds": 18000,
                "reset_after_seconds": 600,
                "reset_at": 1900000000,
            },
            "secondary_window": {
                "used_percent": 24,
                "limit_window_seconds": 604800,
                "reset_after_seconds": 3600,
            },
        },
        "credits": {"has_credits": True, "unlimited": False, "balance": 5.39},
        "additional_rate_limits": [
            {"limit_name": "codex-other", "rate_limit": {"primary_window": {"used_percent": 1}}},
            "junk",
        ],
    }
    assert limits.update_from_usage(payload) is True
    snap = limits.snapshot()
    assert snap["source"] == "usage endpoint" and snap["plan_type"] == "plus"
    assert snap["primary"]["used_percent"] == 6 and snap["primary"]["window_minutes"] == 300
    assert snap["primary"]["resets_at"] == 1900000000  # reset_at wins
    assert abs(snap["secondary"]["resets_at"] - (now + 3600)) < 60
    assert snap["secondary"]["window_minutes"] == 10080
    assert snap["credits"]["balance"] == "5.39"
    assert snap["other_limits"]["codex_other"]["primary"]["used_percent"] == 1


def test_usage_payload_without_anything_usable() -> None:
    limits = RateLimits()
    for junk in ({}, {"rate_limit": None}, {"rate_limit": {"primary_window": {"x": 1}}}):
        assert limits.update_from_usage(junk) is False
    assert limits.snapshot() is None


def test_usage_url_from_the_upstream_base() -> None:
    chatgpt = "https://chatgpt.com/backend-api/codex"
    assert usage_url(chatgpt) == "https://chatgpt.com/backend-api/wham/usage"
    assert usage_url(chatgpt + "/") == "https://chatgpt.com/backend-api/wham/usage"
    assert usage_url("http://127.0.0.1:9999") == "http://127.0.0.1:9999/wham/usage"
