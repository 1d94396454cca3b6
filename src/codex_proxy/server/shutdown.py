"""Shutdown on SIGINT / SIGTERM: open requests get a grace period, then every one still running
ends with an OpenAI-shaped ``server_shutting_down`` error (an ``error`` event inside a stream)
and its upstream request is cancelled, rather than the client being cut off mid-stream.

uvicorn stops accepting connections and waits for open requests when it gets the signal; it
cannot tell a stream to end. :class:`Shutdown` wraps uvicorn's signal handlers (installed before
the lifespan starts, in the main thread of each process) so that the first signal also starts the
grace timer, and a second SIGINT (Ctrl-C again) ends the streams at once instead of forcing uvicorn
out with cancelled tasks and tracebacks. A third signal is uvicorn's again (force quit).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("codex_proxy")

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Shutdown:
    """The process is stopping: who must end now, and when."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.ending = False  # the grace period is over: requests still running end now
        self._signals = 0
        self._enders: set[Callable[[], None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, Any] = {}
        self._timer: asyncio.TimerHandle | None = None

    def on_end(self, ender: Callable[[], None]) -> Callable[[], None]:
        """Call ``ender`` when the grace period is over (at once if it is); returns the undo.
        A set and a callback rather than a waiting task: this runs for every request."""
        if self.ending:
            ender()
            return _nothing
        self._enders.add(ender)
        return lambda: self._enders.discard(ender)

    def begin(self) -> None:
        """Stopping was asked for: end what still runs after the grace period."""
        if self._timer is None and not self.ending:
            loop = asyncio.get_running_loop()
            log.info(
                "shutting down: open requests get %g s (CODEX_SHUTDOWN_GRACE_SECONDS)",
                self.grace_seconds,
            )
            self._timer = loop.call_later(self.grace_seconds, self.end)

    def end(self) -> None:
        """End every request still running, now."""
        if self.ending:
            return
        self.ending = True
        if self._timer is not None:
            self._timer.cancel()
        if self._enders:
            log.warning(
                "ending %d open request(s): the gateway is shutting down", len(self._enders)
            )
        for ender in list(self._enders):
            ender()
        self._enders.clear()

    # -- signals -----------------------------------------------------------------------------

    def hook_signals(self) -> None:
        """Wrap the current SIGINT / SIGTERM handlers (uvicorn's); only the main thread can."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            previous = signal.getsignal(sig)
            if callable(previous):
                self._previous[sig] = previous
                signal.signal(sig, self._on_signal)

    def unhook_signals(self) -> None:
        for sig, previous in self._previous.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, previous)
        self._previous.clear()

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self._signals += 1
        loop = self._loop
        if self._signals == 1 or self._signals > 2:
            self._previous[sig](sig, frame)  # uvicorn: stop accepting, wait (or force quit)
        if loop is None or loop.is_closed():
            return
        if self._signals == 1:
            loop.call_soon_threadsafe(self.begin)
        elif self._signals == 2:
            loop.call_soon_threadsafe(self.end)


def _nothing() -> None:
    return None
