"""The async face of a blocking backend: each call runs on a small private thread pool, so
SQLite and blob file I/O never run on the event loop.

A private pool (not the loop's default executor, not anyio's 40 workers) bounds the number of
SQLite connections, which are one per thread, and lets :meth:`close` close them all. A caller
that is cancelled stops waiting; the call itself finishes in its thread (a save still lands).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from codex_proxy.store.base import (
    DEFAULT_LIST_LIMIT,
    MAX_CHAIN_DEPTH,
    Order,
    PruneReport,
    StoredTurn,
)
from codex_proxy.store.sqlite import SQLiteBackend

T = TypeVar("T")
DEFAULT_THREADS = 4


class ThreadedStore:
    """:class:`codex_proxy.store.base.ResponseStore` over :class:`SQLiteBackend`."""

    def __init__(self, backend: SQLiteBackend, *, threads: int = DEFAULT_THREADS) -> None:
        self.backend = backend
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="codex-store")

    async def _run(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))

    async def save(
        self,
        response: Mapping[str, Any],
        input_items: Sequence[Mapping[str, Any]],
        *,
        owner: str | None = None,
    ) -> None:
        await self._run(self.backend.save, response, input_items, owner=owner)

    async def load_chain(
        self,
        response_id: str,
        *,
        owner: str | None = None,
        with_bytes: bool = True,
        max_depth: int = MAX_CHAIN_DEPTH,
    ) -> list[StoredTurn]:
        return await self._run(
            self.backend.load_chain,
            response_id,
            owner=owner,
            with_bytes=with_bytes,
            max_depth=max_depth,
        )

    async def get_response(
        self, response_id: str, *, owner: str | None = None, with_bytes: bool = True
    ) -> dict[str, Any]:
        return await self._run(
            self.backend.get_response, response_id, owner=owner, with_bytes=with_bytes
        )

    async def get_item(
        self, item_id: str, *, owner: str | None = None, with_bytes: bool = True
    ) -> dict[str, Any]:
        return await self._run(self.backend.get_item, item_id, owner=owner, with_bytes=with_bytes)

    async def delete(self, response_id: str, *, owner: str | None = None) -> None:
        await self._run(self.backend.delete, response_id, owner=owner)

    async def list_input_items(
        self,
        response_id: str,
        *,
        owner: str | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
        order: Order = "desc",
        with_bytes: bool = True,
    ) -> dict[str, Any]:
        return await self._run(
            self.backend.list_input_items,
            response_id,
            owner=owner,
            after=after,
            before=before,
            limit=limit,
            order=order,
            with_bytes=with_bytes,
        )

    async def restore_blobs(self, value: Any) -> Any:
        return await self._run(self.backend.restore_blobs, value)

    async def prune(self, now: float | None = None) -> PruneReport:
        return await self._run(self.backend.prune, now)

    async def close(self) -> None:
        """Wait for running calls, then close every thread's connection."""
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        self.backend.close()
