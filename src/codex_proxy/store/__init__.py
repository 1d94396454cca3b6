"""Durable storage of ``/v1/responses`` turns (the ChatGPT backend keeps none over HTTP).

The route uses :func:`open_store` and the :class:`ResponseStore` interface only::

    store = open_store(settings)          # None when CODEX_RESPONSES_STORE=off
    task = asyncio.create_task(prune_periodically(store)) if store else None
    ...
    turns = await store.load_chain(previous_response_id, owner=key_name)
    await store.save(final_response, resolved_input_items, owner=key_name)
    ...
    await store.close()
"""

from __future__ import annotations

from codex_proxy.config import Settings
from codex_proxy.store.base import (
    DEFAULT_LIST_LIMIT,
    MAX_CHAIN_DEPTH,
    MAX_LIST_LIMIT,
    ChainError,
    InvalidListParameter,
    PruneReport,
    ResponseExists,
    ResponseStore,
    StoredResponseNotFound,
    StoredTurn,
    StoreError,
)
from codex_proxy.store.blobs import INLINE_LIMIT, blob_digest, is_blob_ref
from codex_proxy.store.retention import prune_periodically
from codex_proxy.store.sqlite import SQLiteBackend
from codex_proxy.store.threaded import ThreadedStore

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "INLINE_LIMIT",
    "MAX_CHAIN_DEPTH",
    "MAX_LIST_LIMIT",
    "ChainError",
    "InvalidListParameter",
    "PruneReport",
    "ResponseExists",
    "ResponseStore",
    "SQLiteBackend",
    "StoreError",
    "StoredResponseNotFound",
    "StoredTurn",
    "ThreadedStore",
    "blob_digest",
    "is_blob_ref",
    "open_store",
    "prune_periodically",
]


def open_store(settings: Settings) -> ResponseStore | None:
    """The configured store, or None when ``CODEX_RESPONSES_STORE=off`` (the route then answers
    ``previous_response_id`` and item references as not found and saves nothing). Cheap and
    touches no file: the database and folders are created on the first call, off the loop."""
    if not settings.responses_store:
        return None
    backend = SQLiteBackend(settings.data_dir, ttl_days=settings.responses_ttl_days)
    return ThreadedStore(backend)
