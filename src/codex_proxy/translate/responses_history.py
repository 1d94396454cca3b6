"""The full upstream ``input`` from a stored chain of turns, for a backend that keeps nothing.

The ChatGPT backend refuses ``previous_response_id`` and answers 404 for any server-side item
id, so every turn sends the whole conversation: each earlier turn's input then its output,
oldest first, then the new input, with item ``id``s removed (``call_id``s and reasoning
``encrypted_content`` stay: they are what the model needs to continue). Generated images go
back the way the chat path sends them (``images.restore_image_history``): a ``[image N]``
placeholder where the image was, and the picture itself as an ``input_image`` in a user message
after that turn, for the most recent image only (``last``), every one (``all``) or none.

References in the new input (``item_reference``, ``image_generation_call`` by id) are resolved
through a lookup the caller fills beforehand, so this stays pure.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from codex_proxy._sniff import sniff_format
from codex_proxy.translate.errors import invalid_request
from codex_proxy.translate.images import IMAGE_TOOL, data_uri

__all__ = [
    "IMAGE_HISTORY_MODES",
    "Lookup",
    "Turn",
    "assemble_input",
    "image_message",
    "images_sent",
    "referenced_ids",
    "resolve_references",
    "upstream_item",
]

IMAGE_HISTORY_MODES = ("last", "all", "none")

Lookup = Callable[[str], Mapping[str, Any] | None]
"""A stored item id -> the stored item (any type), or None when the store does not know it."""
Turn = tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]]
"""One stored turn: (its input items, its output items)."""

_ENCRYPTED = "encrypted_content"


def referenced_ids(items: Iterable[Mapping[str, Any]]) -> list[str]:
    """Ids the route must fetch before :func:`resolve_references`: item references, images
    named by id, and reasoning items sent back without their ``encrypted_content``."""
    ids: list[str] = []
    for item in items:
        ref = item.get("id")
        if not isinstance(ref, str) or ref in ids:
            continue
        kind = item.get("type")
        if (
            kind == "item_reference"
            or (kind == IMAGE_TOOL + "_call" and not item.get("result"))
            or (kind == "reasoning" and not item.get(_ENCRYPTED))
        ):
            ids.append(ref)
    return ids


def resolve_references(items: Sequence[Mapping[str, Any]], lookup: Lookup) -> list[dict[str, Any]]:
    """The new input with every reference replaced by what it names.

    ``item_reference`` -> the stored item; an image (by reference, by id, or sent in full)
    -> an ``input_image`` in a user message (the client chose it, so the history mode does not
    apply); a reasoning item without ``encrypted_content`` -> the stored one, or nothing (the
    backend cannot use it). An unknown id is a 400 naming it, as the public API answers.
    """
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        kind = item.get("type")
        if kind == "item_reference":
            found = _found(item, lookup, i)
            if found.get("type") == _IMAGE_CALL:
                out.extend(_image_or_nothing(found))
            else:
                out.append(dict(found))
        elif kind == _IMAGE_CALL:
            source = item if item.get("result") else _found(item, lookup, i)
            if source.get("type") != _IMAGE_CALL or not source.get("result"):
                raise invalid_request(
                    f"Item with id '{item.get('id')}' (input[{i}]) is not a generated image.",
                    "input",
                    "invalid_value",
                )
            out.extend(_image_or_nothing(source))
        elif kind == "reasoning" and not item.get(_ENCRYPTED):
            found = lookup(item["id"]) if isinstance(item.get("id"), str) else None
            if found is not None and found.get(_ENCRYPTED):
                out.append(dict(found))
        else:
            out.append(dict(item))
    return out


def assemble_input(
    ancestors: Sequence[Turn],
    new_items: Sequence[Mapping[str, Any]],
    *,
    image_history: str = "last",
) -> list[dict[str, Any]]:
    """Every ancestor's input then output (oldest first), then the new input; ready to send.

    ``new_items`` should already be resolved (:func:`resolve_references`).
    """
    sent = images_sent(ancestors, image_history)
    number = 0
    out: list[dict[str, Any]] = []
    for t, (inputs, output) in enumerate(ancestors):
        out.extend(_replayed(inputs))
        kept: list[tuple[int, str]] = []
        for i, item in enumerate(output):
            if item.get("type") == _IMAGE_CALL:
                if not _has_image(item):
                    continue  # a failed generation: nothing to show
                number += 1
                out.append(_placeholder(number))
                if (t, i) in sent:
                    kept.append((number, _image_uri(item)))
                continue
            replayed = upstream_item(item)
            if replayed is not None:
                out.append(replayed)
        if kept:
            out.append(_labelled_images(kept))
    out.extend(_replayed(new_items))
    return out


def images_sent(ancestors: Sequence[Turn], image_history: str = "last") -> set[tuple[int, int]]:
    """Which generated images of the ancestors :func:`assemble_input` sends as pictures:
    ``(turn index, output index)`` pairs. The others only get a placeholder, so a caller that
    loads stored turns without their image bytes restores just these (and every turn's input,
    which goes back whole). An image call counts when its ``result`` is a non-empty string
    or a mapping (a stand-in for bytes not loaded yet)."""
    if image_history not in IMAGE_HISTORY_MODES:
        raise ValueError(f"image_history must be one of {IMAGE_HISTORY_MODES}")
    found = [
        (t, i)
        for t, (_, output) in enumerate(ancestors)
        for i, item in enumerate(output)
        if item.get("type") == _IMAGE_CALL and _has_image(item)
    ]
    if image_history == "all":
        return set(found)
    if image_history == "last" and found:
        return {found[-1]}
    return set()


def upstream_item(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """One stored item as the backend takes it back: without its server-side ``id``; None for
    what cannot go back (reasoning without ``encrypted_content``, an unresolved reference)."""
    kind = item.get("type")
    if kind == "item_reference":
        return None
    if kind == "reasoning" and not item.get(_ENCRYPTED):
        return None
    if "id" not in item:
        return dict(item)
    return {k: v for k, v in item.items() if k != "id"}


def image_message(b64: str, output_format: Any = None) -> dict[str, Any]:
    """A generated image (base64) as a user message the model can look at."""
    return {
        "type": "message",
        "role": "user",
        "content": [_image_part(_data_uri(b64, output_format))],
    }


# ------------------------------------------------------------------------------ helpers

_IMAGE_CALL = IMAGE_TOOL + "_call"


def _found(item: Mapping[str, Any], lookup: Lookup, index: int) -> Mapping[str, Any]:
    ref = item.get("id")
    found = lookup(ref) if isinstance(ref, str) else None
    if found is None:
        raise invalid_request(
            f"Item with id '{ref}' (input[{index}]) not found: no stored response holds it.",
            "input",
            "item_not_found",
        )
    return found


def _image_or_nothing(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    result = item.get("result")
    return [image_message(result, item.get("output_format"))] if result else []


def _has_image(item: Mapping[str, Any]) -> bool:
    """Whether an image_generation_call finished with a picture (its base64, or a stand-in
    for bytes the caller did not load)."""
    result = item.get("result")
    return (isinstance(result, str) and bool(result)) or isinstance(result, Mapping)


def _image_uri(item: Mapping[str, Any]) -> str:
    """The data URI of a finished image_generation_call that is sent."""
    result = item.get("result")
    if not isinstance(result, str):
        raise ValueError("an image that is sent needs its bytes (restore them first)")
    return _data_uri(result, item.get("output_format"))


def _data_uri(b64: str, output_format: Any) -> str:
    """The bytes decide the type; the item's ``output_format`` is the fallback."""
    try:
        head = base64.b64decode(b64[:24], validate=False)
    except (binascii.Error, ValueError):
        head = b""
    fmt = sniff_format(head)
    if fmt is None:
        claimed = output_format.lower() if isinstance(output_format, str) else ""
        fmt = {"jpg": "jpeg"}.get(claimed, claimed) or "png"
    return data_uri(b64, fmt)


def _replayed(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        if item.get("type") == _IMAGE_CALL:
            out.extend(_image_or_nothing(item))
            continue
        replayed = upstream_item(item)
        if replayed is not None:
            out.append(replayed)
    return out


def _image_part(uri: str) -> dict[str, Any]:
    return {"type": "input_image", "image_url": uri, "detail": "auto"}


def _placeholder(number: int) -> dict[str, Any]:
    """Where a generated image was: the model sees it made one, and which number it has."""
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": f"[image {number}]"}],
    }


def _labelled_images(kept: list[tuple[int, str]]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for number, uri in kept:
        content.append({"type": "input_text", "text": f"[image {number}]"})
        content.append(_image_part(uri))
    return {"type": "message", "role": "user", "content": content}
