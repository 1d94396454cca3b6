"""JSON encoding that never copies a huge string whole.

An answer carrying a 20 MB image as a data URI would otherwise exist three times at once: as the
Python string, as the encoded JSON document, and as that document joined with its SSE framing.
Here the document is encoded with a placeholder in place of every large string, and each large
string is then encoded slice by slice between the pieces, so it is written out in pieces of
``SLICE`` characters and the whole never exists a second time. The bytes are exactly those of
``orjson.dumps`` (JSON escaping works character by character, so slices escape the same).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import orjson

LARGE = 1024 * 1024
"""Strings at least this long are spliced in rather than encoded with the document."""
SLICE = 1024 * 1024
_PLACEHOLDER = "\x00codex-proxy-splice-" + secrets.token_hex(8)
_ENCODED_PLACEHOLDER = orjson.dumps(_PLACEHOLDER)


def dumps_parts(value: Any, large: int = LARGE) -> list[bytes]:
    """``orjson.dumps(value)`` as a list of byte strings whose concatenation is that document;
    a document without large strings (nearly all of them) comes back as one piece."""
    if not _has_large(value, large):
        return [orjson.dumps(value)]
    found: list[str] = []
    pieces = orjson.dumps(_swap_large(value, large, found)).split(_ENCODED_PLACEHOLDER)
    if len(pieces) != len(found) + 1:  # the placeholder itself in the data: encode plainly
        return [orjson.dumps(value)]
    out = [pieces[0]]
    for text, after in zip(found, pieces[1:], strict=True):
        out.append(b'"')
        out.extend(_encode_slices(text))
        out.append(b'"' + after)
    return out


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
