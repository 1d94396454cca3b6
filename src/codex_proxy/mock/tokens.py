"""A fake OAuth token endpoint (``POST /oauth/token``) for the refresh flow of ``protocol.md`` 3.5.

It rotates refresh tokens and rejects a reused one with ``refresh_token_reused``, like the real
issuer, so a gateway that refreshes twice with the same token fails loudly in tests.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
from collections import deque
from typing import Any

import orjson

from codex_proxy.mock.types import RecordedRequest, Reply

CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
MOCK_ACCOUNT_ID = "acct-mock-123"
MOCK_EMAIL = "user@example.com"


def fake_jwt(claims: dict[str, Any]) -> str:
    """An unsigned JWT carrying ``claims`` (clients read the payload, nobody checks signatures)."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sig"


def id_token(account_id: str = MOCK_ACCOUNT_ID, email: str = MOCK_EMAIL, plan: str = "plus") -> str:
    return fake_jwt(
        {
            "email": email,
            "https://api.openai.com/auth": {
                "chatgpt_account_id": account_id,
                "chatgpt_plan_type": plan,
            },
        }
    )


def access_token(lifetime: float = 3600.0, serial: int = 0) -> str:
    return fake_jwt({"exp": int(time.time() + lifetime), "sub": "user", "serial": serial})


class FakeTokenIssuer:
    """Answers refresh requests: scripted replies first, else fresh rotated tokens."""

    def __init__(self) -> None:
        self.lifetime = 3600.0
        self.delay = 0.0
        self.account_id = MOCK_ACCOUNT_ID
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._used: set[str] = set()
        self._serial = itertools.count(1)

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._used.clear()
        self.lifetime, self.delay, self.account_id = 3600.0, 0.0, MOCK_ACCOUNT_ID

    def reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        body = request.body if isinstance(request.body, dict) else {}
        if body.get("client_id") != CLIENT_ID or body.get("grant_type") != "refresh_token":
            return Reply(status=400, body={"error": "invalid_request"}, delay=self.delay)
        token = body.get("refresh_token")
        with self._lock:
            reused = not isinstance(token, str) or token in self._used
            if not reused:
                self._used.add(token)
            serial = next(self._serial)
        if reused:
            error = {"code": "refresh_token_reused", "message": "Refresh token already used."}
            return Reply(status=401, body={"error": error}, delay=self.delay)
        answer = {
            "id_token": id_token(self.account_id),
            "access_token": access_token(self.lifetime, serial),
            "refresh_token": f"rt-rotated-{serial}",
            "expires_in": int(self.lifetime),
            "token_type": "Bearer",
        }
        return Reply(body=answer, delay=self.delay)
