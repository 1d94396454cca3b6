"""url-mode image files: saved under ``CODEX_IMAGE_DIR`` with random 128-bit names, and
linked from answers.

The name is the capability: the files route serves them without the gateway token, so names are
unguessable and only names of exactly our own shape are ever turned into a path (no ``..``, no
encoded slashes, no symlinks).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from starlette.requests import Request

from codex_proxy._files import write_atomic
from codex_proxy.config import Settings
from codex_proxy.translate.images import MIME_TYPES, ImageRenderer, data_uri

FILES_PATH = "/v1/images/files/"
NAME = re.compile(r"^[0-9a-f]{32}\.(png|jpeg|webp)$")


class ImageStore:
    """Saves decoded images and finds them again by name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save_b64(self, b64: str, fmt: str) -> str:
        """Decode and save; returns the file name (``<32 hex>.<fmt>``)."""
        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            data = base64.b64decode(b64 + "=" * (-len(b64) % 4))
        return self.save_bytes(data, fmt)

    def save_bytes(self, data: bytes, fmt: str) -> str:
        name = f"{secrets.token_hex(16)}.{fmt}"
        write_atomic(self.folder / name, data, 0o600)
        return name

    def path(self, name: str) -> Path | None:
        """The regular file behind ``name``, or None (bad name, missing, or a symlink)."""
        if not NAME.match(name):
            return None
        candidate = self.folder / name
        try:
            info = os.lstat(candidate)
        except OSError:
            return None
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


def image_renderer(
    settings: Settings, store: ImageStore, request: Request, requested_format: str | None
) -> ImageRenderer:
    """How this request's images reach the client; url links point at this gateway."""

    def save(b64: str, fmt: str) -> str:
        return image_file_url(settings, request, store.save_b64(b64, fmt))

    return ImageRenderer(
        delivery=settings.image_delivery,
        requested_format=requested_format,
        max_bytes=int(settings.image_max_mb * 1024 * 1024),
        store=save,
    )


def image_file_url(settings: Settings, request: Request, name: str) -> str:
    """The link to a stored image: ``CODEX_PUBLIC_BASE_URL`` (for a gateway behind a proxy)
    or else the base URL this request came in on."""
    base = settings.public_base_url or str(request.base_url).rstrip("/")
    return f"{base}{FILES_PATH}{name}"
