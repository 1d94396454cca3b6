"""Where ``codex-imagegen`` writes, and what it wrote: file names, no-clobber writes, formats.

Nothing here ever overwrites a file by accident: default names are claimed with an exclusive
create (two agents writing the same slug at once both succeed, as ``x.png`` and ``x-2.png``),
and an explicit target is replaced only on request, atomically. Standard library only.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from codex_proxy._files import write_atomic

DEFAULT_DIR = Path("assets") / "generated"
SLUG_LIMIT = 60
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_MAX_NUMBER = 10_000  # a folder with that many copies of one slug is a runaway loop, not a plan


def slugify(prompt: str) -> str:
    """The prompt as a file stem: lowercase ``[a-z0-9]`` runs joined by ``-``, at most 60
    characters, ``image`` when nothing is left."""
    slug = _NOT_SLUG.sub("-", prompt.lower()).strip("-")
    return slug[:SLUG_LIMIT].rstrip("-") or "image"


def numbered(path: Path, number: int) -> Path:
    """``x.png``, ``x-2.png``, ``x-3.png``...: the one naming scheme for copies and for ``-n``."""
    return path if number == 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")


@dataclass(frozen=True)
class Target:
    """Where the images of one run go: a fixed path (``-o FILE``) or a folder and a stem that
    gets the first free number at write time."""

    path: Path  # the file (fixed) or folder/stem.ext (automatic)
    fixed: bool

    def paths(self, count: int) -> list[Path]:
        """The fixed paths of ``count`` images (for checking them before spending quota)."""
        return [numbered(self.path, i) for i in range(1, count + 1)]


def plan_target(out: str | None, prompt: str, fmt: str) -> Target:
    """``-o`` as given (a folder when it ends with ``/`` or is one), else
    ``assets/generated/<slug>.<ext>`` under the current directory."""
    name = f"{slugify(prompt)}.{EXTENSIONS[fmt]}"
    if out is None:
        return Target(DEFAULT_DIR / name, fixed=False)
    path = Path(out).expanduser()
    if out.endswith(("/", os.sep)) or path.is_dir():
        return Target(path / name, fixed=False)
    return Target(path, fixed=True)


def taken(target: Target, count: int) -> list[Path]:
    """The fixed paths that already exist (nothing for automatic names)."""
    return [p for p in target.paths(count) if p.exists()] if target.fixed else []


def write_image(target: Target, index: int, data: bytes, fmt: str, *, force: bool) -> Path:
    """Write image ``index`` (1-based) and return its path. Automatic names take the format's
    extension and the first free number; fixed ones are created exclusively unless ``force``
    (then replaced atomically). Raises FileExistsError or another OSError."""
    if target.fixed:
        path = numbered(target.path, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        if force:
            write_atomic(path, data)
        else:
            _create(path, data)
        return path
    base = target.path.with_suffix(f".{EXTENSIONS[fmt]}")
    base.parent.mkdir(parents=True, exist_ok=True)
    for number in range(1, _MAX_NUMBER):
        path = numbered(base, number)
        try:
            _create(path, data)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{_MAX_NUMBER} files named like {base} already exist")


def _create(path: Path, data: bytes) -> None:
    """Exclusive create: fails rather than replacing a file another process just wrote."""
    with path.open("xb") as handle:
        handle.write(data)


# -- what the bytes are ----------------------------------------------------------------------


def dimensions(data: bytes, fmt: str) -> tuple[int, int] | None:
    """``(width, height)`` read from the header, or None when it cannot be found."""
    try:
        if fmt == "png":
            return struct.unpack(">II", data[16:24])
        if fmt == "jpeg":
            return _jpeg_dimensions(data)
        if fmt == "webp":
            return _webp_dimensions(data)
    except (struct.error, IndexError):
        return None
    return None


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_dimensions(data: bytes) -> tuple[int, int] | None:
    """Walk the segments to the first start-of-frame marker, which holds the size."""
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None


def _webp_dimensions(data: bytes) -> tuple[int, int] | None:
    """The three WebP flavours keep the size in different places."""
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None
