"""The latest usage-limit snapshot the upstream reported in its ``x-codex-*`` answer headers.

The ChatGPT backend sends, on every ``/responses`` answer (200 and 429 alike), how much of the
plan's short ("primary", e.g. 5 h) and long ("secondary", e.g. weekly) windows is used, when each
resets, and the credit balance (``shared/protocol.md`` 3.8). The upstream client hands every
answer's headers to :meth:`RateLimits.update`, each in-stream ``codex.rate_limits`` event to
:meth:`RateLimits.update_from_event` and the usage endpoint's answer to
:meth:`RateLimits.update_from_usage`; ``/v1/status`` shows :meth:`RateLimits.snapshot`, which
says which of the three it came from (``source``). An answer without such headers (an API-key
upstream, an error page) leaves the last one in place.
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
FROM_HEADERS = "headers"
FROM_EVENT = "codex.rate_limits event"
FROM_USAGE = "usage endpoint"


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
        self._store(FROM_HEADERS, main, credits, windows, info, now)

    def update_from_event(self, event: dict[str, Any]) -> None:
        """An in-stream ``codex.rate_limits`` event: ``rate_limits.primary/secondary`` with
        ``used_percent``, ``window_minutes``, ``reset_at``; ``credits``; ``plan_type``;
        ``metered_limit_name`` (or ``limit_name``) for a family other than codex."""
        limits = event.get("rate_limits")
        if not isinstance(limits, dict):
            return
        main = {k: w for k in ("primary", "secondary") if (w := _event_window(limits.get(k)))}
        if not main:
            return
        family = event.get("metered_limit_name") or event.get("limit_name") or MAIN_FAMILY
        info = {"plan_type": event["plan_type"]} if isinstance(event.get("plan_type"), str) else {}
        credits = _credits(event.get("credits"))
        family = str(family).replace("-", "_")
        if family != MAIN_FAMILY and self._latest is not None:
            # another metered family: the codex windows stay, this family changes
            others = dict(self._latest.get("other_limits") or {})
            others[family] = main
            latest = self._latest
            self._store(
                FROM_EVENT,
                {k: latest[k] for k in ("primary", "secondary") if latest.get(k)},
                credits or latest.get("credits") or {},
                others,
                {"plan_type": info.get("plan_type") or latest.get("plan_type")},
                time.time(),
            )
            return
        others = {family: main} if family != MAIN_FAMILY else {}
        self._store(FROM_EVENT, {} if others else main, credits, others, info, time.time())

    def update_from_usage(self, payload: dict[str, Any]) -> bool:
        """The usage endpoint's answer (``GET .../wham/usage``): ``plan_type``, ``rate_limit``
        with ``primary_window`` / ``secondary_window`` (``used_percent``,
        ``limit_window_seconds``, ``reset_at``, ``reset_after_seconds``), ``credits``. Read
        defensively (the endpoint is undocumented); False when nothing in it was usable."""
        now = time.time()
        main = _usage_windows(payload.get("rate_limit"), now)
        others: dict[str, dict[str, dict[str, Any]]] = {}
        extra = payload.get("additional_rate_limits")
        for entry in extra if isinstance(extra, list) else []:
            if not isinstance(entry, dict):
                continue
            name = entry.get("limit_name") or entry.get("metered_feature")
            windows = _usage_windows(entry.get("rate_limit"), now)
            if isinstance(name, str) and name and windows:
                others[name.replace("-", "_")] = windows
        credits = _credits(payload.get("credits"))
        if not main and not others and not credits:
            return False
        plan = payload.get("plan_type")
        info = {"plan_type": plan} if isinstance(plan, str) else {}
        self._store(FROM_USAGE, main, credits, others, info, now)
        return True

    def _store(
        self,
        source: str,
        main: dict[str, dict[str, Any]],
        credits: dict[str, Any],
        others: dict[str, dict[str, dict[str, Any]]],
        info: dict[str, Any],
        now: float,
    ) -> None:
        self._latest = {
            "updated_at": now,
            "source": source,
            "plan_type": info.get("plan_type"),
            "active_limit": info.get("active_limit"),
            "primary": main.get("primary"),
            "secondary": main.get("secondary"),
            "credits": credits or None,
            "other_limits": others or None,
        }

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the last snapshot, or None when there is none."""
        if self._latest is None:
            return None
        return (time.time() if now is None else now) - self._latest["updated_at"]

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


def _event_window(raw: Any) -> dict[str, Any] | None:
    """One window of a ``codex.rate_limits`` event, in the snapshot's field names."""
    if not isinstance(raw, dict):
        return None
    window: dict[str, Any] = {}
    for source, target in (
        ("used_percent", "used_percent"),
        ("window_minutes", "window_minutes"),
        ("reset_at", "resets_at"),
        ("resets_at", "resets_at"),
    ):
        value = raw.get(source)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            window[target] = value
    return window or None


def _usage_windows(raw: Any, now: float) -> dict[str, dict[str, Any]]:
    """``primary`` / ``secondary`` from the usage endpoint's ``rate_limit`` object."""
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(raw, dict):
        return out
    for name in ("primary", "secondary"):
        source = raw.get(f"{name}_window")
        if not isinstance(source, dict):
            continue
        window: dict[str, Any] = {}
        used = _plain_number(source.get("used_percent"))
        if used is not None:
            window["used_percent"] = used
        seconds = _plain_number(source.get("limit_window_seconds"))
        if seconds is not None:
            window["window_minutes"] = int(seconds // 60)
        reset_at = _plain_number(source.get("reset_at"))
        after = _plain_number(source.get("reset_after_seconds"))
        if reset_at is not None:
            window["resets_at"] = int(reset_at)
        elif after is not None:
            window["resets_at"] = int(now + after)
        if window:
            out[name] = window
    return out


def _credits(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        return {}
    out: dict[str, Any] = {}
    for key in ("has_credits", "unlimited"):
        if isinstance(raw.get(key), bool):
            out[key] = raw[key]
    balance = raw.get("balance")
    if isinstance(balance, (str, int, float)) and not isinstance(balance, bool):
        out["balance"] = str(balance)
    return out


def _plain_number(value: Any) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


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
