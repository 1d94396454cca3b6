"""Image bytes of stored items live in files named by their sha256, never in the database.

What goes to a blob file (decoded, so the same picture as an ``image_generation_call`` result
and as a later ``input_image`` data URL is one file):

* ``image_generation_call.result`` (base64), always;
* ``input_image.image_url`` data URLs and ``input_file.file_data`` longer than
  :data:`INLINE_LIMIT` characters (anywhere in an item: message content, tool outputs).

In the stored JSON such a string becomes a marker object::

    {"$blob": "sha256:<64 hex>", "prefix": "data:image/png;base64,", "media_type": "image/png",
     "size": 123456}

``prefix`` + base64(bytes) is the original string (``""`` for a bare base64 ``result``);
``media_type`` and ``size`` (decoded bytes) let a caller decide without reading the file. Loads
``with_bytes=False`` hand these markers out as they are; :func:`restore` puts the strings back.
Strings that are not clean base64 stay inline.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from codex_proxy._files import write_atomic
from codex_proxy._sniff import sniff_format
from codex_proxy.store.base import StoredResponseNotFound

INLINE_LIMIT = 64 * 1024
MARKER = "$blob"
_HEX = re.compile(r"^[0-9a-f]{64}$")
_DATA_URL = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*?);base64,", re.IGNORECASE)
STALE_TEMP_SECONDS = 24 * 3600


class BlobStore:
    """Content-addressed files ``<root>/<2 hex>/<64 hex>``, mode 0600 in 0700 folders."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put(self, digest: str, data: bytes) -> None:
        """Write once: an existing file only gets its mtime refreshed, which keeps a concurrent
        prune (it spares young files) from taking it before our row commits."""
        path = self.path(digest)
        try:
            os.utime(path)
            return
        except FileNotFoundError:
            pass
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(path, data, 0o600)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise StoredResponseNotFound("blob", f"sha256:{digest}") from None

    def files(self) -> Iterator[tuple[str, float]]:
        """Every blob file (digest, mtime); temp files of crashed writes that are a day old go."""
        if not self.root.is_dir():
            return
        now = time.time()
        for folder in self.root.iterdir():
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                if _HEX.match(path.name):
                    with contextlib.suppress(FileNotFoundError):
                        yield path.name, path.stat().st_mtime
                elif path.name.endswith(".tmp") and _older(path, now - STALE_TEMP_SECONDS):
                    with contextlib.suppress(OSError):
                        path.unlink()

    def remove_if_older(self, digest: str, cutoff: float) -> bool:
        path = self.path(digest)
        if not _older(path, cutoff):
            return False
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime <= cutoff
    except FileNotFoundError:
        return False


def is_blob_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get(MARKER), str)


def blob_digest(marker: dict[str, Any]) -> str:
    return str(marker[MARKER]).removeprefix("sha256:")


def externalize(value: Any, found: dict[str, bytes]) -> Any:
    """A copy of ``value`` with its large binary strings replaced by markers; the decoded
    bytes are added to ``found`` by digest. ``value`` itself is not changed."""
    if isinstance(value, list):
        return [externalize(v, found) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: externalize(v, found) for k, v in value.items()}
    kind = value.get("type")
    if kind == "image_generation_call":
        _swap(out, "result", found, 0, _media_from_format(value.get("output_format")))
    elif kind == "input_image":
        _swap(out, "image_url", found, INLINE_LIMIT, None)
    elif kind == "input_file":
        _swap(out, "file_data", found, INLINE_LIMIT, None)
    return out


def restore(value: Any, read_b64: Callable[[str], str]) -> Any:
    """A copy of ``value`` with markers (only where :func:`externalize` puts them) turned back
    into their strings; ``read_b64(digest)`` gives a blob's base64."""
    if isinstance(value, list):
        return [restore(v, read_b64) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: restore(v, read_b64) for k, v in value.items()}
    field = _BLOB_FIELDS.get(value.get("type"))  # type: ignore[arg-type]
    if field and is_blob_ref(out.get(field)):
        marker = out[field]
        out[field] = str(marker.get("prefix", "")) + read_b64(blob_digest(marker))
    return out


_BLOB_FIELDS = {
    "image_generation_call": "result",
    "input_image": "image_url",
    "input_file": "file_data",
}


def _swap(
    item: dict[str, Any],
    field: str,
    found: dict[str, bytes],
    min_length: int,
    media_type: str | None,
) -> None:
    text = item.get(field)
    if not isinstance(text, str) or not text or len(text) <= min_length:
        return
    prefix = ""
    match = _DATA_URL.match(text)
    if match:
        prefix = match.group(0)
        media_type = match.group(1).lower() or None
    elif field != "result" and text.startswith("data:"):
        return  # a data URL that is not base64: leave it alone
    if field == "image_url" and not prefix:
        return  # an http(s) URL
    payload = text[len(prefix) :]
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return
    if base64.b64encode(data).decode("ascii") != payload:
        return  # would not round-trip to the same string
    digest = hashlib.sha256(data).hexdigest()
    found[digest] = data
    sniffed = sniff_format(data)
    item[field] = {
        MARKER: f"sha256:{digest}",
        "prefix": prefix,
        "media_type": f"image/{sniffed}" if sniffed else media_type or "application/octet-stream",
        "size": len(data),
    }


def _media_from_format(fmt: Any) -> str | None:
    return f"image/{fmt}" if isinstance(fmt, str) and fmt in ("png", "jpeg", "webp") else None


def check_no_markers(value: Any) -> None:
    """Refuse client JSON that already holds a marker where a blob field is: restoring it
    would read a file the client named."""
    if isinstance(value, list):
        for v in value:
            check_no_markers(v)
    elif isinstance(value, dict):
        field = _BLOB_FIELDS.get(value.get("type"))  # type: ignore[arg-type]
        if field and not isinstance(value.get(field), (str, type(None))):
            raise ValueError(f"{value.get('type')}.{field} must be a string")
        for v in value.values():
            check_no_markers(v)
