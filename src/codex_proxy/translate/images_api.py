"""The Images API's shapes, without I/O: a validated request, the Responses body of one
image, the images collected from an event stream and the ``ImagesResponse`` they become."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codex_proxy._image_options import ImageOptionError, check_option, whole_number
from codex_proxy._sniff import sniff_format
from codex_proxy.translate import errors
from codex_proxy.translate.images import IMAGE_TOOL, MIME_TYPES, ImageRenderer, data_uri

MAX_N = 4
MAX_INPUT_IMAGES = 16
RESPONSE_FORMATS = ("b64_json", "url")
_COMMON_OPTIONS = ("model", "size", "quality", "output_format", "output_compression", "background")
GENERATION_OPTIONS = (*_COMMON_OPTIONS, "moderation")
EDIT_OPTIONS = (*_COMMON_OPTIONS, "input_fidelity")
# Partial images only matter to a streaming client; these endpoints answer once, at the end.
_UNUSED_DEFAULTS = frozenset({"partial_images"})
_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")


@dataclass(frozen=True)
class ImageRequest:
    """A validated Images API request: one Responses call per image, ``n`` times."""

    prompt: str
    n: int
    response_format: str
    tool: dict[str, Any]
    input_images: tuple[str, ...] = ()  # data URIs, for edits


def generation_request(body: Any, defaults: Mapping[str, Any]) -> ImageRequest:
    """A ``/v1/images/generations`` JSON body, checked; raises OpenAIError (400) naming the
    field that is wrong."""
    if not isinstance(body, Mapping):
        raise errors.invalid_request("Request body must be a JSON object.", None, "invalid_type")
    return _image_request(body, defaults, GENERATION_OPTIONS, from_text=False)


def edit_request(
    fields: Mapping[str, Any],
    images: Sequence[bytes],
    mask: bytes | None,
    defaults: Mapping[str, Any],
) -> ImageRequest:
    """A ``/v1/images/edits`` form, checked: text ``fields``, the image files' bytes and the
    optional mask's; the images go up as data URIs, the mask as ``input_image_mask``."""
    if not images:
        raise errors.invalid_request(
            "image is required: send 1 to 16 PNG, JPEG or WebP files as image or image[].",
            "image",
            "missing_required_parameter",
        )
    if len(images) > MAX_INPUT_IMAGES:
        raise errors.invalid_request(
            f"Too many images: {len(images)}; at most {MAX_INPUT_IMAGES} are allowed.",
            "image",
            "invalid_value",
        )
    uris = []
    for index, data in enumerate(images):
        fmt = sniff_format(data)
        if fmt is None:
            which = f"image {index + 1} of {len(images)}" if len(images) > 1 else "image"
            raise errors.invalid_request(
                f"The {which} is not a PNG, JPEG or WebP file.", "image", "invalid_image_format"
            )
        uris.append(data_uri(base64.b64encode(data).decode("ascii"), fmt))
    request = _image_request(fields, defaults, EDIT_OPTIONS, from_text=True)
    tool = {**request.tool, "action": "edit"}
    if mask is not None:
        if sniff_format(mask) != "png":
            raise errors.invalid_request(
                "The mask must be a PNG file (with an alpha channel).",
                "mask",
                "invalid_image_format",
            )
        tool["input_image_mask"] = {"image_url": data_uri(base64.b64encode(mask).decode(), "png")}
    return ImageRequest(request.prompt, request.n, request.response_format, tool, tuple(uris))


def responses_body(request: ImageRequest, *, model: str, instructions: str) -> dict[str, Any]:
    """The Responses body of one image: the prompt (and input images) as a user message, the
    image tool forced. Minimal on purpose: the ChatGPT backend rejects what it does not know."""
    content: list[dict[str, Any]] = [{"type": "input_text", "text": request.prompt}]
    content += [
        {"type": "input_image", "image_url": uri, "detail": "auto"} for uri in request.input_images
    ]
    return {
        "model": model,
        "instructions": instructions,
        "input": [{"type": "message", "role": "user", "content": content}],
        "tools": [request.tool],
        "tool_choice": {"type": IMAGE_TOOL},
        "parallel_tool_calls": False,
        "store": False,
        "stream": True,
    }


def _image_request(
    fields: Mapping[str, Any],
    defaults: Mapping[str, Any],
    allowed: tuple[str, ...],
    *,
    from_text: bool,
) -> ImageRequest:
    """The fields both endpoints share. ``from_text``: form fields, where numbers are text."""
    prompt = fields.get("prompt")
    if prompt is None:
        raise errors.invalid_request("prompt is required.", "prompt", "missing_required_parameter")
    if not isinstance(prompt, str) or not prompt.strip():
        raise errors.invalid_request(
            "prompt must be a non-empty string.", "prompt", "invalid_value"
        )
    stream = fields.get("stream")
    if stream is True or (isinstance(stream, str) and stream.lower() == "true"):
        raise errors.invalid_request(
            "Streaming image generation is not supported by this gateway; omit stream.",
            "stream",
            "unsupported_parameter",
        )
    response_format = fields.get("response_format")
    response_format = "b64_json" if response_format in (None, "") else response_format
    if response_format not in RESPONSE_FORMATS:
        raise errors.invalid_request(
            f"Invalid response_format {response_format!r}: must be one of "
            f"{', '.join(RESPONSE_FORMATS)}.",
            "response_format",
            "invalid_value",
        )
    tool: dict[str, Any] = {"type": IMAGE_TOOL}
    tool.update((k, v) for k, v in defaults.items() if k not in _UNUSED_DEFAULTS)
    for name in allowed:
        value = fields.get(name)
        if value is None or (from_text and value == ""):
            continue
        try:
            tool[name] = check_option(name, value, from_text=from_text)
        except ImageOptionError as exc:
            raise errors.invalid_request(
                f"Invalid {name} {value!r}: {exc}.", name, "invalid_value"
            ) from None
    return ImageRequest(prompt, _count(fields.get("n"), from_text), response_format, tool)


def _count(value: Any, from_text: bool) -> int:
    """``n``: how many images, 1 to 4 (absent: 1)."""
    if value is None or (from_text and value == ""):
        return 1
    try:
        return whole_number(value, 1, MAX_N, from_text=from_text)
    except ImageOptionError as exc:
        raise errors.invalid_request(f"Invalid n {value!r}: {exc}.", "n", "invalid_value") from None


class ImageCollector(ImageRenderer):
    """A renderer that renders nothing: it keeps each finished ``image_generation_call`` item
    (once per item, though the translator may offer it again from ``response.output``)."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[Mapping[str, Any]] = []
        self._seen: set[Any] = set()

    def __call__(self, item: Mapping[str, Any]) -> None:
        result = item.get("result")
        key = item.get("id") or len(self.items)
        if isinstance(result, str) and result and key not in self._seen:
            self._seen.add(key)
            self.items.append(item)
        return None


def images_response(
    job: ImageRequest,
    items: Sequence[Mapping[str, Any]],
    usages: Sequence[Mapping[str, Any] | None],
    created: int,
    save: Callable[[str, str], str],
) -> dict[str, Any]:
    """The OpenAI ``ImagesResponse``: data entries, then what the first image reports about
    itself (falling back to what was asked for). ``save(b64, format)`` stores a url-mode image
    and returns its URL."""
    data = []
    for item in items:
        b64 = item["result"]
        entry: dict[str, Any]
        if job.response_format == "url":
            fmt = _format(item.get("output_format")) or job.tool.get("output_format", "png")
            entry = {"url": save(b64, fmt)}
        else:
            entry = {"b64_json": b64}
        if isinstance(item.get("revised_prompt"), str):
            entry["revised_prompt"] = item["revised_prompt"]
        data.append(entry)
    payload: dict[str, Any] = {"created": created, "data": data}
    first = items[0]
    for key in ("output_format", "size", "quality", "background"):
        value = first.get(key) if isinstance(first.get(key), str) else job.tool.get(key)
        if key == "output_format":
            value = _format(value) or value
        if isinstance(value, str):
            payload[key] = value
    if all(usage is not None for usage in usages):
        payload["usage"] = {
            key: sum(_tokens(usage, key) for usage in usages if usage is not None)
            for key in _USAGE_KEYS
        }
    return payload


def _format(value: Any) -> str | None:
    """An image item's ``output_format`` as one of our file formats, or None."""
    try:
        fmt = check_option("output_format", value)
    except ImageOptionError:
        return None
    return fmt if fmt in MIME_TYPES else None


def _tokens(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    if key == "total_tokens" and not isinstance(value, int):
        return _tokens(usage, "input_tokens") + _tokens(usage, "output_tokens")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
