"""Image generation for chat clients: the injected tool, images in answers, images in history.

Pure functions and small value types; the only I/O (saving url-mode files) is behind the
``store`` callable the shell hands to :class:`ImageRenderer`, and the ``resolve`` callable
handed to :func:`restore_image_history`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from codex_proxy._image_options import ImageOptionError, check_option
from codex_proxy.translate.errors import invalid_request

MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
DEFAULT_ALT = "generated image"
ALT_LIMIT = 120
IMAGE_TOOL = "image_generation"

_ALT_SPECIALS = re.compile(r"([\[\]()\\])")
_DATA_URI = r"data:image/[a-zA-Z0-9.+-]+;base64,[A-Za-z0-9+/=]+"
_STORED_NAME = r"[0-9a-f]{32}\.(?:png|jpeg|webp)"
# A markdown image whose target is a data URI or one of our stored files.
_MARKDOWN_IMAGE = re.compile(
    r"!\[(?:\\.|[^\]\\])*\]\((?P<target>" + _DATA_URI + r"|[^()\s]*/v1/images/files/"
    r"(?P<name>" + _STORED_NAME + r"))\)"
)
_STORED_URL = re.compile(r"/v1/images/files/(?P<name>" + _STORED_NAME + r")$")


def image_tool(
    defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None, param: str
) -> dict:
    """The upstream tool: configured defaults, then the client's fields, each one checked."""
    tool: dict[str, Any] = {"type": IMAGE_TOOL, **defaults, **(overrides or {})}
    for name, value in list(tool.items()):
        if name == "type":
            continue
        try:
            tool[name] = check_option(name, value)
        except ImageOptionError as exc:
            raise invalid_request(
                f"Invalid {param}.{name} {value!r}: {exc}.", f"{param}.{name}", "invalid_value"
            ) from None
    return tool


def apply_image_tool(
    body: dict[str, Any], chat: Mapping[str, Any], *, enabled: bool, defaults: Mapping[str, Any]
) -> str | None:
    """Put the image tool into a translated Responses ``body``; returns its output format.

    A client's own ``image_generation`` tool is honoured (its fields win over the defaults)
    even when the gateway flag is off. Otherwise :func:`should_inject_image_tool` decides.
    """
    tools: list[dict[str, Any]] = body.setdefault("tools", [])
    for index, tool in enumerate(tools):
        if tool.get("type") == IMAGE_TOOL:
            overrides = {k: v for k, v in tool.items() if k != "type"}
            tools[index] = image_tool(defaults, overrides, f"tools[{index}]")
            return tools[index].get("output_format")
    text = body.get("text")
    text_format = text.get("format") if isinstance(text, Mapping) else None
    if should_inject_image_tool(
        chat, enabled=enabled, tool_choice=body.get("tool_choice"), text_format=text_format
    ):
        tool = image_tool(defaults, None, "tools")
        tools.append(tool)
        return tool.get("output_format")
    return None


STRUCTURED_FORMATS = frozenset({"json_schema", "json_object"})


def forces_image_tool(tool_choice: Any) -> bool:
    """Whether a Responses ``tool_choice`` forces the image tool: such a call is an image job
    and takes one of the CODEX_IMAGE_CONCURRENCY slots, on every route."""
    return isinstance(tool_choice, Mapping) and tool_choice.get("type") == IMAGE_TOOL


def should_inject_image_tool(
    request: Mapping[str, Any], *, enabled: bool, tool_choice: Any, text_format: Any
) -> bool:
    """Whether the gateway adds the ``image_generation`` tool to one Responses call.

    ``request`` is the client's body (chat or Responses), read only for its per-request
    switches: ``"image_generation": true|false`` and ``modalities`` (``["text", "image"]`` turns
    image generation on, a list without ``"image"`` turns it off). ``tool_choice`` and
    ``text_format`` are the Responses-shaped values about to go upstream (``body["tool_choice"]``
    and ``body["text"]["format"]``), so the chat route and the Responses route share the rule:

    1. ``tool_choice: {"type": "image_generation"}`` always injects (the client forces it);
    2. structured output (``json_schema``/``json_object``) never does: an image after the JSON
       breaks ``parse()``;
    3. a forced choice of anything else (``"required"``, a named function, ...) or ``"none"``
       never does: the model must not pick the image tool over the client's functions;
    4. else the request's own switch, else the gateway's ``enabled`` (CODEX_ENABLE_IMAGE_GEN).

    Raises OpenAIError (400) on a malformed switch.
    """
    if forces_image_tool(tool_choice):
        return True
    if isinstance(text_format, Mapping) and text_format.get("type") in STRUCTURED_FORMATS:
        return False
    if tool_choice is not None and tool_choice != "auto":
        return False
    opt_in = _image_switch(request)
    return enabled if opt_in is None else opt_in


def _image_switch(request: Mapping[str, Any]) -> bool | None:
    """The request's own on/off for image generation, or None when it says nothing."""
    flag = request.get("image_generation")
    if flag is not None and not isinstance(flag, bool):
        raise invalid_request(
            "image_generation must be true or false.", "image_generation", "invalid_type"
        )
    if flag is not None:
        return flag
    modalities = request.get("modalities")
    if isinstance(modalities, list) and modalities:
        return "image" in modalities
    return None


def alt_text(revised_prompt: Any) -> str:
    """Markdown alt text: the revised prompt on one line, at most 120 characters, escaped."""
    if not isinstance(revised_prompt, str) or not revised_prompt.strip():
        return DEFAULT_ALT
    text = " ".join(revised_prompt.split())[:ALT_LIMIT]
    return _ALT_SPECIALS.sub(r"\\\1", text)


def mime_type(fmt: str) -> str:
    return MIME_TYPES.get(fmt, "image/" + fmt)


def data_uri(b64: str, fmt: str) -> str:
    return f"data:{mime_type(fmt)};base64,{b64}"


def decoded_size(b64: str) -> int:
    """Bytes the base64 text decodes to, without decoding it."""
    return len(b64) * 3 // 4 - b64[-2:].count("=")


@dataclass(frozen=True)
class RenderedImage:
    """How one generated image reaches the chat client."""

    markdown: str | None  # text for message.content
    entry: dict[str, Any] | None  # an entry for message.images
    metadata: dict[str, Any]  # revised prompt, size, ... for message.image_metadata
    linked_because_large: bool = False


Store = Callable[[str, str], str]  # (base64, format) -> URL of the saved file


class ImageRenderer:
    """Turns ``image_generation_call`` items into content, ``images`` entries or links.

    ``delivery``: markdown | images | both | url. ``store`` saves an image and returns its
    URL (url mode, and images over ``max_bytes`` in every mode: never a truncated data URI).
    """

    def __init__(
        self,
        *,
        delivery: str = "markdown",
        requested_format: str | None = None,
        max_bytes: int = 20 * 1024 * 1024,
        store: Store | None = None,
    ) -> None:
        self.delivery = delivery
        self.requested_format = requested_format
        self.max_bytes = max_bytes
        self.store = store
        self.count = 0
        self.linked_because_large = 0

    def __call__(self, item: Mapping[str, Any]) -> RenderedImage | None:
        b64 = item.get("result")
        if not isinstance(b64, str) or not b64:
            return None
        self.count += 1
        fmt = _format_of(item.get("output_format")) or self.requested_format or "png"
        metadata = {"revised_prompt": item.get("revised_prompt")}
        for key in ("size", "quality", "output_format", "background"):
            if isinstance(item.get(key), str):
                metadata[key] = item[key]
        alt = alt_text(item.get("revised_prompt"))
        too_large = decoded_size(b64) > self.max_bytes
        if (self.delivery == "url" or too_large) and self.store is not None:
            url = self.store(b64, fmt)
            self.linked_because_large += too_large and self.delivery != "url"
            entry = {"type": "image_url", "image_url": {"url": url}}
            wants_entry = self.delivery in ("images", "both")
            return RenderedImage(
                f"![{alt}]({url})", entry if wants_entry else None, metadata, too_large
            )
        # Each string built in one step: the image may be 20 MB, so no intermediate copies.
        markdown = (
            f"![{alt}](data:{mime_type(fmt)};base64,{b64})"
            if self.delivery in ("markdown", "both")
            else None
        )
        entry = (
            {"type": "image_url", "image_url": {"url": data_uri(b64, fmt)}}
            if self.delivery in ("images", "both")
            else None
        )
        return RenderedImage(markdown, entry, metadata)


def _format_of(value: Any) -> str | None:
    if isinstance(value, str):
        value = "jpeg" if value.lower() == "jpg" else value.lower()
        return value if value in MIME_TYPES else None
    return None


# -- images in the chat history ------------------------------------------------------------


Resolve = Callable[[str], "str | StoredImage | None"]
"""stored file name -> its data URI; a :class:`StoredImage` for an image that is not re-sent
(so it was not read); None for an unknown name, whose link stays as it is."""


@dataclass(frozen=True)
class StoredImage:
    """A link to one of our stored files, standing for the image without its bytes."""

    name: str


@dataclass(frozen=True)
class HistoryPlan:
    """What restoring the history needs, known before any file is read."""

    names: tuple[str, ...]  # distinct stored files the history re-sends: read each one once
    images: int  # image parts the request's user messages will carry (client's and re-sent)


def plan_image_history(messages: Any, mode: str) -> HistoryPlan:
    """The stored files :func:`restore_image_history` will need in ``mode``, and the images
    the request will carry, so the caller can refuse too many images before reading a byte and
    read each file once, off its event loop. A link counts as an image whether or not its file
    still exists (that is only known by looking)."""
    restored = restore_image_history(messages, mode, StoredImage)
    if not isinstance(restored, list):
        return HistoryPlan((), 0)
    names: dict[str, None] = {}
    images = 0
    for message in restored:
        if not isinstance(message, Mapping) or message.get("role") != "user":
            continue
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            if not isinstance(part, Mapping) or part.get("type") != "image_url":
                continue
            images += 1
            url = part.get("image_url")
            url = url.get("url") if isinstance(url, Mapping) else url
            if isinstance(url, StoredImage):
                names[url.name] = None
    return HistoryPlan(tuple(names), images)


def resolver_of(files: Mapping[str, str | None]) -> Resolve:
    """The resolver for :func:`restore_image_history` once the planned ``files`` are read
    (name -> data URI, None for a file that is gone): any other link is an image that is not
    re-sent."""

    def resolve(name: str) -> str | StoredImage | None:
        return files[name] if name in files else StoredImage(name)

    return resolve


def restore_image_history(messages: Any, mode: str, resolve: Resolve | None = None) -> Any:
    """Take generated images out of assistant messages so the model can see them again.

    Each data-URI image (markdown in the content, or an ``images`` entry) and each link to one
    of our stored files becomes a ``[image N]`` placeholder in the assistant text, and is
    re-sent as an ``image_url`` part of a user message right after that assistant message:
    ``last`` re-sends only the most recent image, ``all`` every one, ``none`` none. Anything
    that is not a well-formed message list is returned as it is (validation happens later).
    ``resolve`` turns a stored file's name into its data URI; the gateway reads the files
    :func:`plan_image_history` names first and hands over :func:`resolver_of` them.
    """
    if not isinstance(messages, list) or not any(
        isinstance(m, Mapping) and m.get("role") == "assistant" for m in messages
    ):
        return messages
    counter = [0]
    rewritten: list[tuple[Any, list[tuple[int, Any]]]] = []
    for message in messages:
        if isinstance(message, Mapping) and message.get("role") == "assistant":
            rewritten.append(_take_images(message, counter, resolve))
        else:
            rewritten.append((message, []))
    last = counter[0]
    out: list[Any] = []
    for message, found in rewritten:
        out.append(message)
        keep = [uri for n, uri in found if mode == "all" or (mode == "last" and n == last)]
        if resolve is not StoredImage:  # a real run: never send an image that was not read
            keep = [uri for uri in keep if isinstance(uri, str)]
        if keep:
            parts = [{"type": "image_url", "image_url": {"url": uri}} for uri in keep]
            out.append({"role": "user", "content": parts})
    return out


def _take_images(
    message: Mapping[str, Any], counter: list[int], resolve: Resolve | None
) -> tuple[Any, list[tuple[int, Any]]]:
    """The message with placeholders instead of images, and the (number, data URI) it held."""
    found: list[tuple[int, Any]] = []

    def replace(match: re.Match[str]) -> str:
        target = match.group("target")
        name = match.group("name")
        uri = target if name is None else (resolve(name) if resolve else None)
        if uri is None:
            return match.group(0)  # a link we cannot resolve stays as it was
        counter[0] += 1
        found.append((counter[0], uri))
        return f"[image {counter[0]}]"

    content = message.get("content")
    new_content: Any = content
    if isinstance(content, str) and "![" in content:
        new_content = _MARKDOWN_IMAGE.sub(replace, content)
    elif isinstance(content, list):
        new_content = [
            {**part, "text": _MARKDOWN_IMAGE.sub(replace, part["text"])}
            if isinstance(part, Mapping)
            and isinstance(part.get("text"), str)
            and "![" in part["text"]
            else part
            for part in content
        ]
    extra: list[str] = []
    entries = message.get("images")
    for entry in entries if isinstance(entries, list) else []:
        url = _entry_url(entry)
        uri = _entry_data_uri(url, resolve)
        if uri is None or any(uri == seen for _, seen in found):
            continue
        counter[0] += 1
        found.append((counter[0], uri))
        extra.append(f"[image {counter[0]}]")
    if not found and "images" not in message:
        return message, []
    rewritten = {k: v for k, v in message.items() if k != "images"}
    if extra:
        joined = "\n\n".join(extra)
        if isinstance(new_content, str) and new_content:
            new_content = f"{new_content}\n\n{joined}"
        elif isinstance(new_content, list):
            new_content = [*new_content, {"type": "text", "text": joined}]
        else:
            new_content = joined
    rewritten["content"] = new_content
    return rewritten, found


def _entry_url(entry: Any) -> str | None:
    if not isinstance(entry, Mapping):
        return None
    image_url = entry.get("image_url")
    url = image_url.get("url") if isinstance(image_url, Mapping) else image_url
    return url if isinstance(url, str) else None


def _entry_data_uri(url: str | None, resolve: Resolve | None) -> str | StoredImage | None:
    if url is None:
        return None
    if url.startswith("data:image/"):
        return url
    match = _STORED_URL.search(url)
    return resolve(match.group("name")) if match and resolve else None
