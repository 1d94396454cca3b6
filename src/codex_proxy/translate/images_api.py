"""The Images API's shapes, without I/O: a validated request, the route that can serve it, the
native endpoints' body, the Responses body of one image, the images collected from an event
stream and the ``ImagesResponse`` they become."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
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
# Partial images only matter to a streaming client: they go into the tool only then.
_UNUSED_DEFAULTS = frozenset({"partial_images"})
_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")
DEFAULT_NATIVE_MODEL = "gpt-image-2"
# What the native endpoints take besides prompt, images and n (protocol.md 7.3).
NATIVE_OPTIONS = ("model", "size", "quality", "background")
# Client options only the image tool understands: asking for one sends the request that way.
TOOL_ONLY_OPTIONS = ("output_format", "output_compression", "moderation", "input_fidelity")


@dataclass(frozen=True)
class ImageRequest:
    """A validated Images API request: one Responses call per image, ``n`` times."""

    prompt: str
    n: int
    response_format: str
    tool: dict[str, Any]
    input_images: tuple[str, ...] = ()  # data URIs, for edits
    stream: bool = False
    asked: frozenset[str] = frozenset()  # the options the client set (not the defaults)
    edit: bool = False

    @property
    def has_mask(self) -> bool:
        return "input_image_mask" in self.tool


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
    return replace(request, tool=tool, input_images=tuple(uris), edit=True)


def native_unsuitable(job: ImageRequest) -> str | None:
    """Why the native images endpoints cannot serve ``job`` (they take no mask, do not stream
    and lack some options), or None when they can."""
    if job.stream:
        return "stream"
    if job.has_mask:
        return "mask"
    for name in TOOL_ONLY_OPTIONS:
        if name in job.asked:
            return name
    return None


def native_body(job: ImageRequest) -> dict[str, Any]:
    """The JSON body of ``POST {base}/images/generations`` or ``/images/edits``: the client's
    model, else ``CODEX_IMAGE_MODEL``, else gpt-image-2; the input images as data URLs."""
    body: dict[str, Any] = {"prompt": job.prompt, "model": DEFAULT_NATIVE_MODEL, "n": job.n}
    body.update((k, job.tool[k]) for k in NATIVE_OPTIONS if k in job.tool)
    if job.edit:
        body["images"] = [{"image_url": uri} for uri in job.input_images]
    return body


def native_images_response(
    job: ImageRequest, answer: Any, created: int, save: Callable[[str, str], str]
) -> dict[str, Any]:
    """The native endpoint's answer in the public API's shape (``url`` mode saves the files);
    raises OpenAIError (502) when it holds no image."""
    data = answer.get("data") if isinstance(answer, Mapping) else None
    entries = [
        e for e in data or () if isinstance(e, Mapping) and isinstance(e.get("b64_json"), str)
    ]
    if not entries:
        raise errors.OpenAIError(
            502,
            "The images endpoint answered without an image.",
            "server_error",
            None,
            "no_image_generated",
        )
    fmt = output_format_of(answer.get("output_format")) or "png"
    out = []
    for entry in entries:
        one: dict[str, Any] = (
            {"url": save(entry["b64_json"], fmt)}
            if job.response_format == "url"
            else {"b64_json": entry["b64_json"]}
        )
        if isinstance(entry.get("revised_prompt"), str):
            one["revised_prompt"] = entry["revised_prompt"]
        out.append(one)
    stamp = answer.get("created")
    payload: dict[str, Any] = {
        "created": stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else created,
        "data": out,
        "output_format": fmt,
    }
    payload.update(_described(answer, job))
    payload["usage"] = public_usage([answer.get("usage")])
    return payload


def definite(reported: Any, requested: Any) -> str | None:
    """What an answer states for ``quality`` (or ``size``, ``background``): what the upstream
    says the image has, else what was asked for; never ``auto`` (that describes no image), so
    None when neither is definite."""
    for value in (reported, requested):
        if isinstance(value, str) and value and value != "auto":
            return value
    return None


def public_usage(usages: Sequence[Any]) -> dict[str, Any]:
    """The public API's image ``usage``, summed over the calls: totals plus
    ``input_tokens_details`` (text, image) and ``output_tokens_details`` (text, image), which
    clients such as pydantic-ai read without checking. Unknown counts are 0."""
    total = {key: 0 for key in _USAGE_KEYS}
    details = {
        "input_tokens_details": {"text_tokens": 0, "image_tokens": 0},
        "output_tokens_details": {"text_tokens": 0, "image_tokens": 0},
    }
    for usage in usages:
        if not isinstance(usage, Mapping):
            continue
        for key in _USAGE_KEYS:
            total[key] += _tokens(usage, key)
        for name, counts in details.items():
            found = usage.get(name)
            if isinstance(found, Mapping):
                for key in counts:
                    counts[key] += _tokens(found, key)
    return {**total, **details}


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
    stream = _stream_flag(fields.get("stream"))
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
    asked = []
    for name in (*allowed, "partial_images"):
        value = fields.get(name)
        if value is None or (from_text and value == ""):
            continue
        try:
            tool[name] = check_option(name, value, from_text=from_text)
        except ImageOptionError as exc:
            raise errors.invalid_request(
                f"Invalid {name} {value!r}: {exc}.", name, "invalid_value"
            ) from None
        asked.append(name)
    if stream:  # CODEX_IMAGE_PARTIAL_IMAGES is the default; 0 when neither says
        tool.setdefault("partial_images", defaults.get("partial_images", 0))
    else:  # the public API ignores partial_images without stream
        tool.pop("partial_images", None)
    n = _count(fields.get("n"), from_text)
    return ImageRequest(prompt, n, response_format, tool, (), stream, frozenset(asked))


def _stream_flag(value: Any) -> bool:
    """``stream``: true or false (a form field sends them as text)."""
    if value is None or value is False or value == "" or value == "false":
        return False
    if value is True or value == "true":
        return True
    raise errors.invalid_request(
        f"Invalid stream {value!r}: must be true or false.", "stream", "invalid_type"
    )


def _count(value: Any, from_text: bool) -> int:
    """``n``: how many images, 1 to 4 (absent: 1)."""
    if value is None or (from_text and value == ""):
        return 1
    try:
        return whole_number(value, 1, MAX_N, from_text=from_text)
    except ImageOptionError as exc:
        raise errors.invalid_request(f"Invalid n {value!r}: {exc}.", "n", "invalid_value") from None


TEXT_LIMIT = 500  # characters of a text-only answer quoted in the 502


def no_image_error(completion: Mapping[str, Any]) -> errors.OpenAIError:
    """The 502 for a host model that answered (a ``chat.completion``) without an image,
    quoting what it said instead."""
    choice = completion["choices"][0]
    message = choice["message"]
    text = (message.get("content") or message.get("refusal") or "").strip()
    detail = text[:TEXT_LIMIT] or f"no text either (finish_reason {choice['finish_reason']})"
    return errors.OpenAIError(
        502,
        f"The model answered without an image: {detail}",
        "server_error",
        None,
        "no_image_generated",
    )


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
            fmt = output_format_of(item.get("output_format")) or job.tool.get(
                "output_format", "png"
            )
            entry = {"url": save(b64, fmt)}
        else:
            entry = {"b64_json": b64}
        if isinstance(item.get("revised_prompt"), str):
            entry["revised_prompt"] = item["revised_prompt"]
        data.append(entry)
    payload: dict[str, Any] = {"created": created, "data": data}
    first = items[0]
    fmt = output_format_of(first.get("output_format")) or job.tool.get("output_format")
    if isinstance(fmt, str):
        payload["output_format"] = fmt
    payload.update(_described(first, job))
    payload["usage"] = public_usage(usages)
    return payload


def _described(source: Mapping[str, Any], job: ImageRequest) -> dict[str, str]:
    """``size``, ``quality`` and ``background`` of an answer: what the upstream reports,
    falling back to what was asked, never ``auto`` (it says nothing about the image)."""
    out: dict[str, str] = {}
    for key in ("size", "quality", "background"):
        value = definite(source.get(key), job.tool.get(key))
        if value is not None:
            out[key] = value
    return out


def output_format_of(value: Any) -> str | None:
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
