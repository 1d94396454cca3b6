"""The fake upstream's scripting types: what a test queues (``Reply`` and its items) and what
the fake records (``RecordedRequest``). Their own module, so the server and the token issuer
both use them without importing each other."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pause:
    """Sleep before the next item; the connection stays open (a stalled upstream)."""

    seconds: float


@dataclass(frozen=True)
class Drop:
    """Close the connection mid-stream, without the terminating chunk (a dying upstream)."""


@dataclass(frozen=True)
class RawData:
    """Bytes written verbatim, for malformed or oversized SSE lines."""

    data: bytes


@dataclass(frozen=True)
class Gate:
    """Hold the next item until the test sets ``opened`` (or ``timeout`` passes): a stall
    that ends when the test says, so it can check what got through meanwhile. ``passed`` is
    set once the fake goes on, ``timed_out`` when it went on without ``opened``."""

    opened: threading.Event = field(default_factory=threading.Event)
    passed: threading.Event = field(default_factory=threading.Event)
    timed_out: threading.Event = field(default_factory=threading.Event)
    timeout: float = 10.0


ReplyItem = dict[str, Any] | Pause | Drop | RawData | Gate


@dataclass
class Reply:
    """One scripted answer: an SSE stream when ``events`` is set, else a plain ``body``."""

    events: list[ReplyItem] | None = None
    status: int = 200
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0


@dataclass
class RecordedRequest:
    """What the fake received, for assertions on the gateway's upstream requests."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw: bytes

    def to_json(self) -> dict[str, Any]:
        """A JSON-able view for ``GET /_mock/requests`` (``raw`` only when not JSON)."""
        out: dict[str, Any] = {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
        }
        if self.body is None and self.raw:
            out["raw"] = self.raw.decode("utf-8", "replace")
        return out
