"""Client keys at the gateway: who is asking (:class:`KeyGate`, used by the auth middleware)
and what their key lets them do (the ``check_*`` and ``count_*`` functions the routes call).

The keys file is re-read when it changes (one ``stat`` per request); the counts live in SQLite
under ``CODEX_DATA_DIR`` so that limits hold across ``--workers N``. SQLite calls block, so
they run in a thread; only a count that gets the write lock at once runs on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from codex_proxy.config import Settings
from codex_proxy.keys.file import ADMIN, Key, KeyRing
from codex_proxy.keys.policy import (
    IMAGES,
    REQUESTS,
    asks_for_images,
    expired,
    images_allowed,
    limit_for,
    limits,
    model_allowed,
)
from codex_proxy.keys.usage import Usage, usage_path
from codex_proxy.translate.errors import OpenAIError

_NO_SUCH_HASH = "0" * 64  # compared against when no key has the presented hash


class KeyGate:
    """The admin token, the keys file and the usage counts of one process."""

    def __init__(
        self, token: str | None, keys_file: Path | None = None, data_dir: Path | None = None
    ) -> None:
        self.admin_header = f"Bearer {token}".encode() if token else None
        self.ring = KeyRing(keys_file) if keys_file is not None else None
        self._usage_path = usage_path(data_dir) if data_dir is not None else None
        self._usage: Usage | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyGate:
        return cls(settings.gateway_token, settings.keys_file, settings.data_dir)

    @property
    def required(self) -> bool:
        """True when clients must present a token: a gateway token, or a keys file (once it
        has existed, so deleting it never opens the gateway)."""
        if self.admin_header is not None:
            return True
        if self.ring is None:
            return False
        self.ring.keys()
        return self.ring.required

    def identify(self, header: bytes) -> Key | None:
        """The key an ``Authorization`` header value presents, or None.

        The admin token is compared in constant time, as before. A client token is hashed
        once, then looked up by its hash. The lookup's time depends only on the sha256 of
        the presented token, which the client cannot steer towards a stored hash (that would
        take a preimage), so it tells nothing about any stored token; and whether or not the
        hash is found, exactly one ``compare_digest`` of two 64-character strings follows
        (against a dummy when none is found), so "no such key" and "wrong key" cost the same.
        """
        if self.admin_header is not None and hmac.compare_digest(header, self.admin_header):
            return ADMIN
        if self.ring is None:
            return None
        scheme, _, token = header.partition(b" ")
        digest = hashlib.sha256(token.strip() if scheme.lower() == b"bearer" else b"").hexdigest()
        found = self.ring.by_hash().get(digest)
        same = hmac.compare_digest(digest, found.hash if found else _NO_SUCH_HASH)
        return found if same and found is not None else None

    def usage(self) -> Usage:
        if self._usage is None:
            assert self._usage_path is not None, "a gate without a data folder counts nothing"
            self._usage = Usage(self._usage_path)
        return self._usage

    async def take(self, key: Key, kind: str, amount: int, allowed: int | None) -> bool:
        """Count on the event loop when SQLite's write lock is free (no wait, no thread hop:
        about 0.1 ms less per request), else in a thread where waiting is harmless."""
        usage, at = self.usage(), now()
        done = usage.try_take(key.name, kind, amount, allowed, at)
        if done is not None:
            return done
        return await asyncio.to_thread(usage.take, key.name, kind, amount, allowed, at)

    async def figures(self, key: Key) -> dict[str, Any]:
        return await asyncio.to_thread(key_figures, self.usage(), key, now())


def now() -> float:
    return time.time()


def is_expired(key: Key) -> bool:
    return expired(key, datetime.now(timezone.utc))


def key_for(request: Request) -> Key | None:
    """The key the request came with: a client key, :data:`ADMIN` for the gateway token,
    None on a gateway that asks for no token."""
    return request.scope.get("state", {}).get("key")


def gate(request: Request) -> KeyGate:
    return request.app.state.keys


def set_key(scope: Scope, key: Key) -> None:
    scope.setdefault("state", {})["key"] = key


# -- decisions --------------------------------------------------------------------------------


def check_model(key: Key | None, model: str) -> None:
    """403 when the key may not use ``model``."""
    if key is None or model_allowed(key.policy, model):
        return
    raise OpenAIError(
        403,
        f"The key {key.name!r} may not use the model {model!r}; it may use: "
        f"{', '.join(key.policy.models)}.",
        "permission_error",
        "model",
        "model_not_allowed",
    )


def may_generate_images(key: Key | None) -> bool:
    return key is None or images_allowed(key.policy)


def images_denied(key: Key) -> OpenAIError:
    return OpenAIError(
        403,
        f"The key {key.name!r} may not generate images.",
        "permission_error",
        None,
        "permission_denied",
    )


def check_images(key: Key | None, body: Mapping[str, Any]) -> None:
    """403 when the request explicitly asks for images and the key may not generate them."""
    if key is not None and not images_allowed(key.policy) and asks_for_images(body):
        raise images_denied(key)


async def image_permission(request: Request, key: Key | None, body: Any) -> bool:
    """Whether the gateway may offer the image tool to this request (chat or Responses): 403
    when it explicitly asks for images and the key may not make them, 429 when it asks and the
    key has none left today; False (never injected) for such a key that did not ask."""
    if key is None or not isinstance(body, Mapping):
        return True
    check_images(key, body)
    allowed = may_generate_images(key) and await images_left(request, key) != 0
    if not allowed and asks_for_images(body):
        raise over_limit(key, IMAGES)  # denied keys were refused just above
    return allowed


def over_limit(key: Key, kind: str) -> OpenAIError:
    limit = limit_for(key.policy, kind)
    assert limit is not None
    wait = limit.retry_after(now())
    return OpenAIError(
        429,
        f"The key {key.name!r} is over its limit of {limit.label}; try again in {wait} s.",
        "rate_limit_error",
        None,
        "rate_limit_exceeded",
        headers={"retry-after": str(wait)},
    )


async def count_request(request: Request, key: Key | None = None) -> None:
    """Count one request against the key's per-minute limit; 429 when over it. The auth
    middleware already does this for every route; a route only calls it for extra calls."""
    await count_request_for(gate(request), key or key_for(request))


async def count_request_for(keys: KeyGate, key: Key | None) -> None:
    """The same, from the middleware (admin and open gateways count nothing)."""
    if key is None or key.admin:
        return
    if not await keys.take(key, REQUESTS, 1, key.policy.rpm):
        raise over_limit(key, REQUESTS)


async def images_left(request: Request, key: Key | None) -> int | None:
    """How many images the key may still make today (None: no limit)."""
    if key is None or key.admin or key.policy.images_per_day is None:
        return None
    used = await asyncio.to_thread(gate(request).usage().used, key.name, IMAGES, now())
    return max(0, key.policy.images_per_day - used)


async def reserve_images(request: Request, key: Key | None, n: int) -> None:
    """Count ``n`` images up front (the Images API knows ``n``); 403 when the key may not make
    images, 429 when they would cross its daily limit."""
    if key is None or key.admin:
        return
    if not images_allowed(key.policy):
        raise images_denied(key)
    if not await gate(request).take(key, IMAGES, n, key.policy.images_per_day):
        raise over_limit(key, IMAGES)


async def count_images(request: Request, key: Key | None, n: int) -> None:
    """Count images a chat answer made (only known afterwards, so never refused)."""
    if key is not None and not key.admin and n:
        await gate(request).take(key, IMAGES, n, None)


class CountingImages:
    """Wraps a streamed chat answer: once it is over, counts the images it carried."""

    def __init__(self, inner: Any, request: Request, key: Key, counter: Any) -> None:
        self.inner = inner
        self.request = request
        self.key = key
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, send)
        finally:
            await asyncio.shield(count_images(self.request, self.key, self.counter.count))


def key_figures(usage: Usage, key: Key, at: float) -> dict[str, Any]:
    """A key's policy, counts and what is left of its limits (blocking: SQLite)."""
    counts = {
        "requests_this_minute": usage.used(key.name, REQUESTS, at),
        "images_today": usage.used(key.name, IMAGES, at),
        "requests_total": usage.total(key.name, REQUESTS),
        "images_total": usage.total(key.name, IMAGES),
    }
    remaining = {}
    for limit in limits(key.policy):
        used = counts["requests_this_minute" if limit.kind == REQUESTS else "images_today"]
        remaining[limit.kind] = {
            "limit": limit.label,
            "remaining": max(0, limit.allowed - used),
            "resets_in_seconds": limit.retry_after(at),
        }
    return {
        "name": key.name,
        "policy": key.policy.to_json(),
        "usage": counts,
        "remaining": remaining,
    }
