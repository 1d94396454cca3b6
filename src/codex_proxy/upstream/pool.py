"""Upstream connections spread over several small httpcore pools.

httpcore's pool walks all of its connections, with a socket check for each idle one, every
time a request starts or ends, and counts its idle connections inside that walk, so its cost
grows with the square of the open connections. With 64 streams in flight that bookkeeping was
40% of the gateway's CPU (py-spy). Handing requests round-robin to ``SHARDS`` pools keeps
each pool small; each still reuses its keep-alive connections as before.
"""

from __future__ import annotations

import itertools

import httpx

SHARDS = 8


class ShardedTransport(httpx.AsyncBaseTransport):
    """``shards`` ``httpx.AsyncHTTPTransport`` pools, used in turn."""

    def __init__(self, limits: httpx.Limits, shards: int = SHARDS) -> None:
        keepalive = limits.max_keepalive_connections
        per_shard = httpx.Limits(
            max_connections=None
            if limits.max_connections is None
            else max(1, limits.max_connections // shards),
            max_keepalive_connections=None if keepalive is None else max(1, keepalive // shards),
            keepalive_expiry=limits.keepalive_expiry,
        )
        self._pools = [httpx.AsyncHTTPTransport(limits=per_shard) for _ in range(shards)]
        self._next = itertools.cycle(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
