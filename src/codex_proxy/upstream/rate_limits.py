"""The latest usage-limit snapshot the upstream reported in its ``x-codex-*`` answer headers.

The ChatGPT backend sends, on every ``/responses`` answer (200 and 429 alike), how much of the
plan's short ("primary", e.g. 5 h) and long ("secondary", e.g. weekly) windows is used, when each
resets, and the credit balance (``shared/protocol.md`` 3.8). The upstream client hands every
answer's headers to :meth:`RateLimits.update`; ``/v1/status`` shows :meth:`RateLimits.snapshot`.
An answer without such headers (an API-key upstream, an error page) leaves the last one in place.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

PREFIX = "x-codex-"
MAIN_FAMILY = "codex"
_WINDOW = re.compile(
    r"x-(?P<family>codex(?:-[a-z0-9]+)*?)-(?P<window>primary|secondary)-"
    r"(?P<field>used-percent|window-minutes|reset-at|reset-after-seconds)"
)
_WINDOW_FIELDS = {
    "used-percent": "used_percent",
    "window-minutes": "window_minutes",
    "reset-at": "resets_at",
    "reset-after-seconds": "reset_after_seconds",
}
_CREDITS = {
    "x-codex-credits-has-credits": "has_credits",
    "x-codex-credits-unlimited": "unlimited",
    "x-codex-credits-balance": "balance",
}
_INFO = {"x-codex-plan-type": "plan_type", "x-codex-active-limit": "active_limit"}


class RateLimits:
    """Holds the newest snapshot; one event loop per process, so no lock is needed."""

    def __init__(self) -> None:
        self._latest: dict[str, Any] | None = None

    def update(self, headers: Iterable[tuple[str, str]] | Any) -> None:
        """Read an upstream answer's headers (``httpx.Headers`` or ``(name, value)`` pairs)."""
        items = headers.items() if hasattr(headers, "items") else headers
        windows: dict[str, dict[str, dict[str, Any]]] = {}
        credits: dict[str, Any] = {}
        info: dict[str, str] = {}
        for raw_name, value in items:
            name = raw_name.lower()
            if not name.startswith(PREFIX):
                continue
            if name in _CREDITS:
                key = _CREDITS[name]
                credits[key] = value.strip() if key == "balance" else _flag(value)
                continue
            if name in _INFO:
                info[_INFO[name]] = value.strip()
                continue
            match = _WINDOW.fullmatch(name)
            if match is None:
                continue
            number = _number(value)
            if number is None:
                continue
            family = match["family"].replace("-", "_")
            window = windows.setdefault(family, {}).setdefault(match["window"], {})
            window[_WINDOW_FIELDS[match["field"]]] = number
        if not windows and not credits:
            return
        now = time.time()
        for family in windows.values():
            for window in family.values():
                after = window.pop("reset_after_seconds", None)
                if "resets_at" not in window and after is not None:
                    window["resets_at"] = int(now + after)
        main = windows.pop(MAIN_FAMILY, {})
        self._latest = {
            "updated_at": now,
            "plan_type": info.get("plan_type"),
            "active_limit": info.get("active_limit"),
            "primary": main.get("primary"),
            "secondary": main.get("secondary"),
            "credits": credits or None,
            "other_limits": windows or None,
        }

    def snapshot(self, now: float | None = None) -> dict[str, Any] | None:
        """The latest snapshot, each window with ``resets_in_seconds`` from ``now``; or None."""
        latest = self._latest
        if latest is None:
            return None
        now = time.time() if now is None else now
        out = dict(latest)
        out["age_seconds"] = round(now - latest["updated_at"], 1)
        for key in ("primary", "secondary"):
            out[key] = _with_countdown(latest[key], now)
        if latest["other_limits"]:
            out["other_limits"] = {
                family: {name: _with_countdown(w, now) for name, w in windows.items()}
                for family, windows in latest["other_limits"].items()
            }
        return out


def _with_countdown(window: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
    if window is None:
        return None
    out = dict(window)
    resets_at = window.get("resets_at")
    if isinstance(resets_at, (int, float)):
        out["resets_in_seconds"] = max(0, int(resets_at - now))
    return out


def _number(value: str) -> int | float | None:
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


def _flag(value: str) -> bool | None:
    text = value.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    return None
