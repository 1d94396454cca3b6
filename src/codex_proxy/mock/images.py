"""Real, decodable images for the fake upstream's ``image_generation_call`` items.

The gateway decodes, sizes, stores and re-sends generated images, so the fake must return
genuine files of the requested size and format rather than placeholder base64. PNG is written
with the standard library only (fast enough to build a 1024x1024 image per request); JPEG and
WebP need Pillow, imported lazily so the gateway itself never depends on it.

    png = render_image(1024, 1536, seed=7)  # a deterministic gradient and checkerboard
    big = render_image(2304, 2304, noise=True)  # incompressible: about 16 MB, for size guards
    b64 = image_b64(256, 256, "webp")
"""

from __future__ import annotations

import base64
import io
import logging
import random
import re
import struct
import zlib
from types import ModuleType

__all__ = [
    "FORMATS",
    "MAX_SIDE",
    "PILLOW_HINT",
    "image_b64",
    "parse_size",
    "render_image",
    "render_or_png",
]

FORMATS: tuple[str, ...] = ("png", "jpeg", "webp")
MAX_SIDE = 4096  # keeps a typo'd size from eating the test machine's memory
PILLOW_HINT = "the mock upstream needs Pillow for jpeg/webp: pip install pillow"
log = logging.getLogger("codex_proxy.mock")

_ALIASES = {"jpg": "jpeg"}
_PIL_FORMATS = {"jpeg": "JPEG", "webp": "WEBP"}
_SIZE = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*\Z")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def parse_size(size: str | None) -> tuple[int, int]:
    """``(width, height)`` of an image tool ``size``; ``"auto"``/None mean 1024x1024.

    Raises ValueError on anything that is not ``"WxH"`` with positive sides, so the fake can
    answer a malformed tool with a 400 like the backend instead of rendering garbage.
    """
    if size is None or size.strip().lower() in ("", "auto"):
        return 1024, 1024
    match = _SIZE.match(size)
    if not match:
        raise ValueError(f"size must be 'auto' or 'WIDTHxHEIGHT', not {size!r}")
    width, height = int(match.group(1)), int(match.group(2))
    _check_sides(width, height)
    return width, height


def render_image(
    width: int,
    height: int,
    fmt: str = "png",
    *,
    seed: int = 0,
    noise: bool = False,
    transparent: bool = False,
) -> bytes:
    """Encode a ``width`` x ``height`` RGB image as ``fmt`` (png, jpeg/jpg or webp).

    The content depends only on ``seed``: a gradient with a checkerboard, or with
    ``noise=True`` pseudo-random pixels that do not compress, so tests can build PNGs of a
    known large byte size (``3 * width * height`` plus a little). ``transparent``: RGBA where
    every other checkerboard cell is fully transparent (``background: transparent``; JPEG
    has no alpha and stays opaque).
    """
    fmt = _format(fmt)
    _check_sides(width, height)
    rows = _noise_rows(width, height, seed) if noise else _pattern_rows(width, height, seed)
    alpha = transparent and fmt != "jpeg"
    if alpha:
        rows = _with_alpha(rows, width, seed)
    if fmt == "png":
        return _png(width, height, rows, level=0 if noise else 1, alpha=alpha)
    return _pillow_encode(width, height, b"".join(rows), fmt, alpha=alpha)


def render_or_png(
    width: int, height: int, fmt: str = "png", *, seed: int = 0, transparent: bool = False
) -> tuple[bytes, str]:
    """:func:`render_image` and the format it is in: without Pillow a JPEG or WebP request
    gets a PNG, and the log says so (the fake keeps answering)."""
    try:
        return render_image(width, height, fmt, seed=seed, transparent=transparent), _format(fmt)
    except RuntimeError:
        log.warning(
            "mock upstream: Pillow is not installed, answering PNG instead of %s "
            "(pip install 'codex-proxy[mock]')",
            fmt,
        )
        return render_image(width, height, "png", seed=seed, transparent=transparent), "png"


def image_b64(
    width: int, height: int, fmt: str = "png", *, seed: int = 0, noise: bool = False
) -> str:
    """:func:`render_image` as base64 text, the way ``result`` and partial images carry it."""
    data = render_image(width, height, fmt, seed=seed, noise=noise)
    return base64.b64encode(data).decode("ascii")


# -- pixels ----------------------------------------------------------------------------------


def _format(fmt: str) -> str:
    name = fmt.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in FORMATS:
        raise ValueError(f"output format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return name


def _check_sides(width: int, height: int) -> None:
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"image sides must be 1..{MAX_SIDE} pixels, not {width}x{height}")


def _pattern_rows(width: int, height: int, seed: int) -> list[bytes]:
    """RGB rows: red ramps across, green ramps down, blue is a checkerboard; all shifted by
    ``seed``. Built with slice assignment on two template rows, so no per-pixel Python."""
    red = bytes((x * 255 // max(1, width - 1) + seed * 53) & 255 for x in range(width))
    cell = max(4, min(width, height) // 8)
    low, high = (seed * 29) & 255, (seed * 29 + 160) & 255
    templates = []
    for phase in (0, 1):
        row = bytearray(3 * width)
        row[0::3] = red
        row[2::3] = bytes(high if (x // cell + phase) % 2 else low for x in range(width))
        templates.append(row)
    rows = []
    for y in range(height):
        row = bytearray(templates[(y // cell) % 2])
        row[1::3] = bytes(((y * 255 // max(1, height - 1) + seed * 101) & 255,)) * width
        rows.append(bytes(row))
    return rows


def _with_alpha(rows: list[bytes], width: int, seed: int) -> list[bytes]:
    """RGBA rows: alpha 0 where the blue checkerboard is low, 255 elsewhere."""
    low = (seed * 29) & 255
    table = bytes(0 if value == low else 255 for value in range(256))
    out = []
    for row in rows:
        rgba = bytearray(4 * width)
        for channel in range(3):
            rgba[channel::4] = row[channel::3]
        rgba[3::4] = row[2::3].translate(table)
        out.append(bytes(rgba))
    return out


def _noise_rows(width: int, height: int, seed: int) -> list[bytes]:
    """Deterministic random RGB rows (``Random(seed).randbytes``): zlib cannot shrink them."""
    stride = 3 * width
    data = random.Random(seed).randbytes(stride * height)
    return [data[i : i + stride] for i in range(0, len(data), stride)]


# -- encoders --------------------------------------------------------------------------------


def _png(
    width: int, height: int, rows: list[bytes], *, level: int = 1, alpha: bool = False
) -> bytes:
    """An 8-bit RGB (or RGBA) PNG: filter type 0 on every row, one IDAT. Level 1 because speed
    matters more than size here; noise is stored (level 0): deflate could not shrink it."""
    raw = b"\x00" + b"\x00".join(rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 6 if alpha else 2, 0, 0, 0)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(raw, level)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return b"".join((struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)))


def _pillow() -> ModuleType:
    """``PIL.Image``, imported on first use: only jpeg/webp need it."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise RuntimeError(PILLOW_HINT) from exc
    return Image


def _pillow_encode(
    width: int, height: int, pixels: bytes, fmt: str, *, alpha: bool = False
) -> bytes:
    image = _pillow().frombytes("RGBA" if alpha else "RGB", (width, height), pixels)
    out = io.BytesIO()
    image.save(out, format=_PIL_FORMATS[fmt], quality=90)
    return out.getvalue()
