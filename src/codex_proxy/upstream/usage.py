"""The usage windows for ``/v1/status`` when no answer has brought them lately.

The ChatGPT backend reports them on every ``/responses`` answer, but a gateway that has served
nothing for a while (or since it started) knows none. Then the usage endpoint
(``GET .../backend-api/wham/usage``, protocol.md 7.6) is asked, at most once per ``ttl``
seconds, so a status page that polls does not poll the backend. A failure is kept with its
time, so the status says what it still knows and since when.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from codex_proxy.translate import errors
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.upstream.auth import CHATGPT, AuthProvider
from codex_proxy.upstream.client import UpstreamClient

USAGE_TTL = 60.0


class UsageReader:
    """Asks the usage endpoint when the snapshot is older than ``ttl`` (or missing)."""

    def __init__(self, client: UpstreamClient, auth: AuthProvider, ttl: float = USAGE_TTL):
        self._client = client
        self._auth = auth
        self._ttl = ttl
        self._asked_at: float | None = None  # monotonic time of the last attempt
        self._lock = asyncio.Lock()
        self.error: dict[str, Any] | None = None  # the last failure: message, code, at

    async def refresh(self) -> None:
        """Bring the client's rate-limit snapshot up to date when it is stale; never raises."""
        if self._fresh():
            return
        async with self._lock:
            if self._fresh():
                return
            self._asked_at = time.monotonic()
            try:
                creds = await self._auth.credentials()
                if creds.mode != CHATGPT:
                    return  # an API key has no usage windows
                payload = await self._client.fetch_usage(creds)
                if not self._client.rate_limits.update_from_usage(payload):
                    raise errors.malformed_event("the usage endpoint reported no usage windows")
            except OpenAIError as error:
                self.error = {"message": error.message, "code": error.code, "at": int(time.time())}
            else:
                self.error = None

    def _fresh(self) -> bool:
        age = self._client.rate_limits.age()
        if age is not None and age < self._ttl:
            return True
        asked = self._asked_at
        return asked is not None and time.monotonic() - asked < self._ttl
