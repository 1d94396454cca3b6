"""What a key may do: pure decisions on a :class:`~codex_proxy.keys.file.Policy`.

Limits count in fixed windows (the minute, the UTC day): a refusal names the moment the window
frees, which is what ``retry-after`` tells the client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from codex_proxy.keys.file import Key, Policy

MINUTE = 60
DAY = 86_400
REQUESTS = "requests"
IMAGES = "images"
IMAGE_TOOL = "image_generation"
WINDOW_SECONDS = {REQUESTS: MINUTE, IMAGES: DAY}


def window_start(kind: str, now: float) -> int:
    """The start of the window of ``kind`` holding ``now`` (epoch seconds)."""
    seconds = WINDOW_SECONDS[kind]
    return int(now) - int(now) % seconds


@dataclass(frozen=True)
class Limit:
    """One counted limit of a key: what is counted, how many per window, the window length."""

    kind: str
    allowed: int
    seconds: int
    label: str

    def retry_after(self, now: float) -> int:
        """Whole seconds until the window frees (at least 1)."""
        return max(1, window_start(self.kind, now) + self.seconds - int(now))


def limits(policy: Policy) -> list[Limit]:
    found = []
    if policy.rpm is not None:
        found.append(Limit(REQUESTS, policy.rpm, MINUTE, f"{policy.rpm} requests per minute"))
    if policy.images_per_day is not None:
        n = policy.images_per_day
        found.append(Limit(IMAGES, n, DAY, f"{n} images per day"))
    return found


def limit_for(policy: Policy, kind: str) -> Limit | None:
    return next((limit for limit in limits(policy) if limit.kind == kind), None)


def expired(key: Key, now: datetime) -> bool:
    return key.policy.expires is not None and now >= key.policy.expires


def model_allowed(policy: Policy, model: str) -> bool:
    """True when no patterns are set or one matches (``fnmatch`` globs, case-sensitive)."""
    return not policy.models or any(fnmatchcase(model, p) for p in policy.models)


def allowed_models(
    policy: Policy, ids: Iterable[str], aliases: Mapping[str, str] | None = None
) -> list[str]:
    """The ids a key may use: matched themselves, or an alias whose target matches."""
    aliases = aliases or {}
    return [i for i in ids if model_allowed(policy, i) or model_allowed(policy, aliases.get(i, i))]


def images_allowed(policy: Policy) -> bool:
    return policy.images != "deny"


def asks_for_images(body: Mapping[str, Any]) -> bool:
    """True when a chat or Responses request explicitly asks for image generation: its own
    image tool, ``modalities`` with "image", ``"image_generation": true``, or ``tool_choice``
    naming the image tool."""
    if body.get("image_generation") is True:
        return True
    tools = body.get("tools")
    if isinstance(tools, list) and any(
        isinstance(t, Mapping) and t.get("type") == IMAGE_TOOL for t in tools
    ):
        return True
    modalities = body.get("modalities")
    if isinstance(modalities, list) and "image" in modalities:
        return True
    choice = body.get("tool_choice")
    return isinstance(choice, Mapping) and choice.get("type") == IMAGE_TOOL


def describe(policy: Policy) -> str:
    """One line for ``keys list``."""
    parts = []
    if policy.models:
        parts.append("models " + ", ".join(policy.models))
    if not images_allowed(policy):
        parts.append("no images")
    parts += [limit.label for limit in limits(policy)]
    if policy.expires is not None:
        parts.append("expires " + policy.expires.isoformat())
    return "; ".join(parts) or "no limits"
