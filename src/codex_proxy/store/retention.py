"""Retention: the app prunes at start and then periodically (every worker may; each prune is
a few short transactions and sparing young blob files keeps concurrent saves safe)."""

from __future__ import annotations

import asyncio
import logging

from codex_proxy.store.base import ResponseStore

log = logging.getLogger("codex_proxy.store")
PRUNE_EVERY_SECONDS = 3600.0


async def prune_periodically(
    store: ResponseStore, every_seconds: float = PRUNE_EVERY_SECONDS
) -> None:
    """Prune now and then every ``every_seconds``, until cancelled; a failed prune is logged
    and retried next time (a full disk must not stop the gateway). Run it as a task in the
    lifespan and cancel it on shutdown."""
    while True:
        try:
            report = await store.prune()
        except Exception as exc:
            log.warning("response store prune failed: %s", exc)
        else:
            if report.responses or report.blobs:
                log.info(
                    "response store pruned %d responses, %d image files",
                    report.responses,
                    report.blobs,
                )
        await asyncio.sleep(every_seconds)
