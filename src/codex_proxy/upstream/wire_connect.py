"""Opening a TCP socket to a name with several addresses: Happy Eyeballs (RFC 8305).

An address that never answers (a black-holed IPv6 route, a dead load balancer node) must not
cost the whole connect timeout while the next address would answer at once. Attempts start a
quarter second apart, or as soon as the previous one failed, alternating address families;
the first to connect wins and the others are cancelled. uvloop's ``create_connection`` has no
``happy_eyeballs_delay``, so the race is done here on plain sockets, then handed to the loop.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from typing import Any

ATTEMPT_DELAY = 0.25  # RFC 8305 "Connection Attempt Delay"

Address = tuple[int, int, Any]  # family, proto, sockaddr


async def open_socket(host: str, port: int) -> socket.socket:
    """A connected, non-blocking socket to ``host:port``; OSError when no address answers."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"no address found for {host}")
    return await race(loop, interleave([(f, p, addr) for f, _, p, _, addr in infos]))


def interleave(addresses: list[Address]) -> list[Address]:
    """The resolver's order, but alternating families, first family first (RFC 8305 4)."""
    families: dict[int, list[Address]] = {}
    for address in addresses:
        families.setdefault(address[0], []).append(address)
    mixed = itertools.zip_longest(*families.values())
    return [address for group in mixed for address in group if address is not None]


async def race(loop: asyncio.AbstractEventLoop, addresses: list[Address]) -> socket.socket:
    """Staggered connection attempts; the first connected socket. Losers are closed."""
    waiting = iter(addresses)
    running: set[asyncio.Task[socket.socket]] = set()
    errors: list[OSError] = []
    more = True

    def start_next() -> None:
        nonlocal more
        address = next(waiting, None)
        if address is None:
            more = False
        else:
            running.add(loop.create_task(_attempt(loop, address)))

    start_next()
    try:
        while running:
            done, _ = await asyncio.wait(
                running,
                timeout=ATTEMPT_DELAY if more else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            winner = None
            for task in done:
                running.discard(task)
                error = task.exception()
                if error is None:
                    if winner is None:
                        winner = task.result()
                    else:
                        task.result().close()
                else:
                    errors.append(error)  # type: ignore[arg-type]
            if winner is not None:
                return winner
            start_next()  # the delay passed, or an attempt failed: the next one now
    finally:
        for task in running:
            task.cancel()
        for late in await asyncio.gather(*running, return_exceptions=True):
            if isinstance(late, socket.socket):  # connected just as the race ended
                late.close()
    if len(errors) == 1:
        raise errors[0]
    raise OSError(f"all {len(errors)} addresses failed: " + "; ".join(map(str, errors)))


async def _attempt(loop: asyncio.AbstractEventLoop, address: Address) -> socket.socket:
    family, proto, sockaddr = address
    sock = socket.socket(family, socket.SOCK_STREAM, proto)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.sock_connect(sock, sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock
