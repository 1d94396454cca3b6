"""url-mode image files: saved under ``CODEX_IMAGE_DIR`` with random 128-bit names, linked
from answers, deleted after ``CODEX_IMAGE_TTL_DAYS``.

Disk work never runs on the event loop: :class:`FileSaver` hands out a file's URL at once and
writes it in a worker thread (the relay awaits :meth:`FileSaver.flush` before it sends the
URL), the chat route reads history images in a thread (each planned file once), and the sweep
of old files runs in a thread from a background task of the app's lifespan.

The name is the capability: the files route serves them without the gateway token, so names are
unguessable and only names of exactly our own shape are ever turned into a path (no ``..``, no
encoded slashes, no symlinks).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import re
import secrets
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from starlette.requests import Request

from codex_proxy._files import write_atomic
from codex_proxy.config import Settings
from codex_proxy.translate.images import MIME_TYPES, ImageRenderer, data_uri

log = logging.getLogger("codex_proxy")

FILES_PATH = "/v1/images/files/"
NAME = re.compile(r"^[0-9a-f]{32}\.(png|jpeg|webp)$")
DAY = 86400.0
SWEEP_INTERVAL = 3600.0  # seconds between two sweeps of expired files


class ImageStore:
    """Saves decoded images, finds them again by name, forgets them after ``ttl_days``
    (0: never). Its methods block: call them from a worker thread."""

    def __init__(self, folder: Path, ttl_days: float = 0) -> None:
        self.folder = folder
        self.ttl_seconds = ttl_days * DAY

    @staticmethod
    def new_name(fmt: str) -> str:
        return f"{secrets.token_hex(16)}.{fmt}"

    def save_b64(self, b64: str, fmt: str, name: str | None = None) -> str:
        """Decode and save; returns the file name (``<32 hex>.<fmt>``)."""
        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            data = base64.b64decode(b64 + "=" * (-len(b64) % 4))
        return self.save_bytes(data, fmt, name)

    def save_bytes(self, data: bytes, fmt: str, name: str | None = None) -> str:
        name = name or self.new_name(fmt)
        write_atomic(self.folder / name, data, 0o600)
        return name

    def sweep(self, now: float | None = None) -> int:
        """Delete our files older than the TTL; returns how many went."""
        if self.ttl_seconds <= 0:
            return 0
        cutoff = (time.time() if now is None else now) - self.ttl_seconds
        removed = 0
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return 0  # no folder yet: nothing saved
        for entry in entries:
            try:
                if NAME.match(entry.name) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue  # gone already, or not ours to delete
        return removed

    def path(self, name: str) -> Path | None:
        """The regular file behind ``name``, or None (bad name, missing, or a symlink)."""
        if not NAME.match(name):
            return None
        candidate = self.folder / name
        try:
            info = os.lstat(candidate)
        except OSError:
            return None
        if self.ttl_seconds > 0 and info.st_mtime < time.time() - self.ttl_seconds:
            return None  # expired, waiting for the next sweep
        return candidate if stat.S_ISREG(info.st_mode) else None

    def data_uri(self, name: str) -> str | None:
        """A stored image as a data URI, for re-sending it upstream in a later turn."""
        path = self.path(name)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        return data_uri(base64.b64encode(data).decode("ascii"), name.rsplit(".", 1)[1])

    def data_uris(self, names: Iterable[str]) -> dict[str, str | None]:
        """Each named image once, as a data URI (None: gone). Blocking: run it in a thread."""
        return {name: self.data_uri(name) for name in names}


def media_type(name: str) -> str:
    return MIME_TYPES[name.rsplit(".", 1)[1]]


class FileSaver:
    """``save(b64, format) -> URL`` for the pure renderers: the URL at once, the file written
    in a worker thread. :meth:`flush` waits for every write so far (and raises if one
    failed); call it before an answer carrying those URLs goes out."""

    def __init__(self, store: ImageStore, url_for: Callable[[str], str]) -> None:
        self.store = store
        self.url_for = url_for
        self.pending: list[asyncio.Future[Any]] = []

    def __call__(self, b64: str, fmt: str) -> str:
        name = self.store.new_name(fmt)
        write = asyncio.to_thread(self.store.save_b64, b64, fmt, name)
        self.pending.append(asyncio.ensure_future(write))
        return self.url_for(name)

    async def flush(self) -> None:
        pending, self.pending = self.pending, []
        if pending:
            await asyncio.gather(*pending)


def file_saver(settings: Settings, store: ImageStore, request: Request) -> FileSaver:
    return FileSaver(store, lambda name: image_file_url(settings, request, name))


async def flush_saves(renderer: Any) -> None:
    """Wait for the files a renderer's :class:`FileSaver` is still writing."""
    store = getattr(renderer, "store", None)
    if isinstance(store, FileSaver):
        await store.flush()


def image_renderer(
    settings: Settings, store: ImageStore, request: Request, requested_format: str | None
) -> ImageRenderer:
    """How this request's images reach the client; url links point at this gateway."""
    return ImageRenderer(
        delivery=settings.image_delivery,
        requested_format=requested_format,
        max_bytes=int(settings.image_max_mb * 1024 * 1024),
        store=file_saver(settings, store, request),
    )


async def sweep_forever(store: ImageStore, interval: float = SWEEP_INTERVAL) -> None:
    """The lifespan's background task: delete expired files now, then every ``interval``."""
    while True:
        try:
            removed = await asyncio.to_thread(store.sweep)
            if removed:
                log.info("deleted %d image file(s) older than the TTL", removed)
        except Exception:
            log.exception("image file sweep failed")
        await asyncio.sleep(interval)


def image_file_url(settings: Settings, request: Request, name: str) -> str:
    """The link to a stored image: ``CODEX_PUBLIC_BASE_URL`` (for a gateway behind a proxy)
    or else the base URL this request came in on."""
    base = settings.public_base_url or str(request.base_url).rstrip("/")
    return f"{base}{FILES_PATH}{name}"
