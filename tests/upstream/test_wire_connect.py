"""Happy Eyeballs' address order, and a race where every address fails."""

from __future__ import annotations

import asyncio
import socket

import pytest

from codex_proxy.upstream.wire_connect import Address, interleave, race

V4, V6 = socket.AF_INET, socket.AF_INET6


def test_families_alternate_starting_with_the_resolvers_first() -> None:
    addresses: list[Address] = [
        (V6, 6, ("::1", 1, 0, 0)),
        (V6, 6, ("::2", 1, 0, 0)),
        (V6, 6, ("::3", 1, 0, 0)),
        (V4, 6, ("10.0.0.1", 1)),
    ]
    assert [a[2][0] for a in interleave(addresses)] == ["::1", "10.0.0.1", "::2", "::3"]


def test_when_every_address_refuses_the_error_names_them_all() -> None:
    async def scenario() -> None:
        ports = []
        for _ in range(2):
            server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
            ports.append(server.sockets[0].getsockname()[1])
            server.close()
            await server.wait_closed()
        loop = asyncio.get_running_loop()
        with pytest.raises(OSError, match="all 2 addresses failed"):
            await race(loop, [(V4, 6, ("127.0.0.1", port)) for port in ports])

    asyncio.run(scenario())
