"""The periodic prune keeps going after a failure and stops when cancelled."""

from __future__ import annotations

import asyncio
import logging

import pytest

from codex_proxy.store import PruneReport
from codex_proxy.store.retention import prune_periodically


class CountingStore:
    def __init__(self) -> None:
        self.calls = 0

    async def prune(self, now: float | None = None) -> PruneReport:
        self.calls += 1
        if self.calls == 2:
            raise OSError("disk full")
        return PruneReport(responses=self.calls, blobs=0)


def test_prune_periodically_survives_failures(caplog: pytest.LogCaptureFixture) -> None:
    store = CountingStore()

    async def run() -> None:
        task = asyncio.create_task(prune_periodically(store, every_seconds=0))  # type: ignore[arg-type]
        while store.calls < 4:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.INFO, logger="codex_proxy.store"):
        asyncio.run(run())
    assert store.calls >= 4
    assert "prune failed: disk full" in caplog.text
    assert "pruned 3 responses" in caplog.text
