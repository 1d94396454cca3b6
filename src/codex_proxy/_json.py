"""JSON encoding and decoding that never copy a huge string whole.

An answer carrying a 20 MB image as a data URI would otherwise exist three times at once: as the
Python string, as the encoded JSON document, and as that document joined with its SSE framing.
Here the document is encoded with a placeholder in place of every large string, and each large
string is then encoded slice by slice between the pieces, so it is written out in pieces of
``SLICE`` characters and the whole never exists a second time. The bytes are exactly those of
``orjson.dumps`` (JSON escaping works character by character, so slices escape the same).

Decoding has the mirror problem: orjson copies its input and reserves a value pool in proportion
to it, so a 20 MB upstream event briefly costs well over ten times its size. :func:`loads_large`
cuts the known image fields out of the raw bytes first, parses the small rest, and puts each
image back as a string made straight from the raw bytes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

LARGE = 1024 * 1024
"""Strings at least this long are spliced in rather than encoded with the document."""
SLICE = 1024 * 1024
_PLACEHOLDER = "\x00codex-proxy-splice-" + secrets.token_hex(8)
_ENCODED_PLACEHOLDER = orjson.dumps(_PLACEHOLDER)
IMAGE_FIELDS = (b'"result":"', b'"partial_image_b64":"')
"""Where the Responses API puts base64 images, as they appear in its compact JSON."""


def dumps_parts(value: Any, large: int = LARGE) -> Iterator[bytes]:
    """``orjson.dumps(value)`` as byte strings whose concatenation is that document, made as
    they are taken; a document without large strings (nearly all) comes as one piece."""
    if not _has_large(value, large):
        yield orjson.dumps(value)
        return
    found: list[str] = []
    pieces = orjson.dumps(_swap_large(value, large, found)).split(_ENCODED_PLACEHOLDER)
    if len(pieces) != len(found) + 1:  # the placeholder itself in the data: encode plainly
        yield orjson.dumps(value)
        return
    yield pieces[0]
    for text, after in zip(found, pieces[1:], strict=True):
        yield b'"'
        yield from _encode_slices(text)
        yield b'"' + after


def _has_large(value: Any, large: int) -> bool:
    """Whether a large string sits anywhere in ``value``; on the hot path of every chunk, so
    exact type checks and no generator."""
    kind = type(value)
    if kind is str:
        return len(value) >= large
    if kind is dict:
        value = value.values()
    elif kind is not list and kind is not tuple:
        return False
    for item in value:
        kind = type(item)
        if kind is str:
            if len(item) >= large:
                return True
        elif (kind is dict or kind is list or kind is tuple) and _has_large(item, large):
            return True
    return False


def _swap_large(value: Any, large: int, found: list[str]) -> Any:
    """A copy of the containers in ``value`` with each large string replaced by the placeholder,
    collected into ``found`` in the order ``orjson`` writes them (the containers' own order)."""
    if isinstance(value, str):
        if len(value) >= large:
            found.append(value)
            return _PLACEHOLDER
        return value
    if isinstance(value, dict):
        return {key: _swap_large(item, large, found) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_swap_large(item, large, found) for item in value]
    return value


def _encode_slices(text: str) -> Iterator[bytes]:
    for start in range(0, len(text), SLICE):
        yield orjson.dumps(text[start : start + SLICE])[1:-1]


def loads_large(
    data: bytes | bytearray, fields: Sequence[bytes] = IMAGE_FIELDS, large: int = LARGE
) -> Any:
    """``orjson.loads(data)`` for a document that may hold huge strings under ``fields``
    (``b'"name":"'``): each such value with no escape in it is taken out of the raw bytes
    before parsing. Anything unusual is left to ``orjson.loads`` itself, so the result (or the
    ``JSONDecodeError``) is the one it would give, with one exception not worth a 25 ms scan of
    every image: a raw control character inside such a value, which strict JSON forbids, is
    kept rather than refused."""
    cuts = _large_values(data, fields, large)
    if not cuts:
        return orjson.loads(data)
    view = memoryview(data)
    try:
        texts = [_text(view[begin:end]) for begin, end in cuts]
    except UnicodeDecodeError:
        return orjson.loads(data)
    rest: list[bytes | bytearray] = []
    offset = 0
    for begin, end in cuts:
        rest += (data[offset:begin], _PLACEHOLDER_RAW)
        offset = end
    rest.append(data[offset:])
    skeleton = b"".join(rest)
    # The placeholder can only be in the data where nothing was cut (a cut value has no
    # backslash), so the small skeleton tells whether the data itself holds it.
    if skeleton.count(_PLACEHOLDER_RAW) != len(cuts):
        return orjson.loads(data)
    try:
        value = orjson.loads(skeleton)
    except orjson.JSONDecodeError:
        return orjson.loads(data)
    texts.reverse()
    value = _restore(value, texts)
    if texts:  # a placeholder went missing (it cannot, in valid JSON): trust orjson alone
        return orjson.loads(data)
    return value


_PLACEHOLDER_RAW = _ENCODED_PLACEHOLDER[1:-1]


def _large_values(
    data: bytes | bytearray, fields: Sequence[bytes], large: int
) -> list[tuple[int, int]]:
    """Where the values of ``fields`` that are at least ``large`` long and hold no escape
    begin and end. Every field starts with a quote, so it steps from quote to quote (few,
    outside the huge values) instead of searching the whole data once per field.

    In valid JSON a ``"name":"`` found anywhere is a member whose value is a string: an
    unescaped quote cannot sit inside a string, and after a closing quote only ``:``, ``,``
    or a bracket may follow, never a name.
    """
    cuts: list[tuple[int, int]] = []
    at = data.find(b'"')
    while at >= 0:
        for field in fields:
            if data.startswith(field, at):
                begin = at + len(field)
                end = data.find(b'"', begin)
                if end < 0:
                    return cuts
                if end - begin >= large and data.find(b"\\", begin, end) < 0:
                    cuts.append((begin, end))
                at = end
                break
        at = data.find(b'"', at + 1)
    return cuts


def _text(raw: memoryview) -> str:
    """Base64 is ASCII, the fast decoder; anything else as UTF-8 (orjson's reading)."""
    try:
        return str(raw, "ascii")
    except UnicodeDecodeError:
        return str(raw, "utf-8")


def _restore(value: Any, texts: list[str]) -> Any:
    """``value`` with each placeholder replaced, in document order, by the next of ``texts``
    (given in reverse, taken from the end)."""
    if type(value) is str:
        return texts.pop() if value == _PLACEHOLDER and texts else value
    if type(value) is dict:
        return {key: _restore(item, texts) for key, item in value.items()}
    if type(value) is list:
        return [_restore(item, texts) for item in value]
    return value
