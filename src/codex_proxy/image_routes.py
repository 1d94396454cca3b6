"""The Images API over the subscription: ``POST /v1/images/generations`` and ``/v1/images/edits``.

The ChatGPT backend has no images endpoint, only the ``image_generation`` tool of the Responses
API. So each requested image is one Responses call to a chat host model that is forced to call
the tool; its events go through the same :class:`ChatCompletionBuilder` as a chat answer, so
failures (``response.failed``, ``error`` events, truncated streams) map to the same OpenAI
errors, and the finished ``image_generation_call`` items become the OpenAI images answer.

The request -> Responses body part is pure (:func:`generation_request`, :func:`edit_request`,
:func:`responses_body`); :class:`ImageRoutes` is the I/O shell.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from .config import Settings
from .image_magic import sniff_format
from .image_store import image_file_url
from .images import IMAGE_TOOL, MIME_TYPES, ImageOptionError, ImageRenderer, check_option, data_uri
from .relay import cancelled_on_disconnect, internal_error
from .request_log import note
from .responses import JSONResponse, error_response
from .translate import errors
from .translate.aggregate import ChatCompletionBuilder
from .translate.errors import OpenAIError
from .upstream.auth import Credentials
from .upstream.client import UpstreamClient

log = logging.getLogger("codex_proxy")
T = TypeVar("T")

MAX_N = 4
MAX_INPUT_IMAGES = 16
TEXT_LIMIT = 500  # characters of a text-only answer quoted in the 502
RESPONSE_FORMATS = ("b64_json", "url")
GENERATION_OPTIONS = (
    "model",
    "size",
    "quality",
    "output_format",
    "output_compression",
    "background",
    "moderation",
)
EDIT_OPTIONS = (
    "model",
    "size",
    "quality",
    "output_format",
    "output_compression",
    "background",
    "input_fidelity",
)
# Partial images only matter to a streaming client; these endpoints answer once, at the end.
_UNUSED_DEFAULTS = frozenset({"partial_images"})
_TERMINAL = frozenset({"response.completed", "response.incomplete"})
_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")


# -- the pure part: validated request -> Responses body --------------------------------------


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
    number = value
    if from_text and isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_N:
        raise errors.invalid_request(
            f"Invalid n {value!r}: must be a whole number from 1 to {MAX_N}.", "n", "invalid_value"
        )
    return number


# -- collecting images from the event stream -------------------------------------------------


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


@dataclass
class GeneratedImage:
    """One Responses call's outcome: the image item, the usage and the headers worth forwarding."""

    item: Mapping[str, Any]
    usage: Mapping[str, Any] | None
    headers: dict[str, str]


async def generate_one(
    client: UpstreamClient,
    creds: Credentials,
    body: Mapping[str, Any],
    session_id: str,
    limiter: asyncio.Semaphore,
) -> GeneratedImage:
    """One upstream call, holding an image job slot while it runs (others wait their turn)."""
    collector = ImageCollector()
    builder = ChatCompletionBuilder(
        completion_id="img-" + uuid.uuid4().hex,
        created=int(time.time()),
        model=str(body.get("model")),
        image_renderer=collector,
    )
    usage: Mapping[str, Any] | None = None
    async with limiter, client.open_stream(creds, body, session_id) as up:
        async with aclosing(up.events()) as events:
            async for event in events:
                builder.feed(event)
                if event.get("type") in _TERMINAL:
                    response = event.get("response")
                    found = response.get("usage") if isinstance(response, Mapping) else None
                    usage = found if isinstance(found, Mapping) else None
        completion = builder.result()
        headers = dict(up.headers)
    if not collector.items:
        choice = completion["choices"][0]
        message = choice["message"]
        text = (message.get("content") or message.get("refusal") or "").strip()
        detail = text[:TEXT_LIMIT] or f"no text either (finish_reason {choice['finish_reason']})"
        raise OpenAIError(
            502,
            f"The model answered without an image: {detail}",
            "server_error",
            None,
            "no_image_generated",
        )
    return GeneratedImage(collector.items[0], usage, headers)


async def gather_all(jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the jobs at once; the first failure (or our own cancellation) cancels the rest, and
    they are awaited so that every upstream connection is closed before we answer.

    Each task is cancelled exactly once (``asyncio.gather`` would cancel them on its own and a
    second cancel could interrupt the connection cleanup of the first).
    """
    tasks = [asyncio.ensure_future(job()) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()  # no effect on finished ones
        with anyio.CancelScope(shield=True):
            await asyncio.wait(tasks)
    for task in tasks:
        if task in done and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return [task.result() for task in tasks]


# -- the endpoints ---------------------------------------------------------------------------


class ImageRoutes:
    """The two endpoints; state (client, auth, image store, job slots) comes from the app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def generations(self, request: Request) -> Response:
        """JSON in, like ``client.images.generate(...)`` sends it."""
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return error_response(
                errors.invalid_request(
                    f"Request body is not valid JSON: {exc}", None, "invalid_json"
                )
            )
        try:
            job = generation_request(body, self.settings.image_options)
        except OpenAIError as error:
            return error_response(error)
        return await self._answer(request, job)

    async def edits(self, request: Request) -> Response:
        """multipart/form-data in, like ``client.images.edit(image=..., mask=...)`` sends it."""
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return error_response(
                errors.invalid_request(
                    "Send /v1/images/edits as multipart/form-data with image file(s) and a "
                    f"prompt (got content-type {content_type or 'none'!r}).",
                    None,
                    "invalid_content_type",
                )
            )
        async with request.form() as form:
            fields: dict[str, Any] = {}
            images: list[bytes] = []
            mask: bytes | None = None
            try:
                for key, value in form.multi_items():
                    if key in ("image", "image[]", "mask"):
                        if not isinstance(value, UploadFile):
                            raise errors.invalid_request(
                                f"{key} must be a file upload.", key.rstrip("[]"), "invalid_type"
                            )
                        data = await value.read()
                        if key == "mask":
                            mask = data
                        else:
                            images.append(data)
                    elif isinstance(value, str):
                        fields[key] = value
                job = edit_request(fields, images, mask, self.settings.image_options)
            except OpenAIError as error:
                return error_response(error)
        return await self._answer(request, job)

    async def _answer(self, request: Request, job: ImageRequest) -> Response:
        """Run the ``n`` calls, watching for the client leaving (that cancels them all)."""
        state = request.app.state
        settings = self.settings
        body = responses_body(
            job,
            model=settings.image_host_model or settings.model,
            instructions=settings.instructions,
        )
        session_id = str(uuid.uuid4())
        note(model=str(body.get("model")), stream=False)
        answer: Response = Response(status_code=499)  # only ever "sent" to a departed client
        async with cancelled_on_disconnect(request.receive):
            try:
                creds = await state.auth.credentials()

                def job_for_one() -> Awaitable[GeneratedImage]:
                    return generate_one(state.client, creds, body, session_id, state.image_jobs)

                generated = await gather_all([job_for_one] * job.n)
                note(images=len(generated))
                payload = self._images_response(request, job, generated)
                headers: dict[str, str] = {}
                for one in generated:
                    headers.update(one.headers)
                answer = JSONResponse(payload, headers=headers)
            except OpenAIError as error:
                answer = error_response(error)
            except Exception:
                log.exception("image request failed")
                answer = error_response(internal_error())
        return answer

    def _images_response(
        self, request: Request, job: ImageRequest, generated: Sequence[GeneratedImage]
    ) -> dict[str, Any]:
        """The OpenAI ``ImagesResponse``: data entries, then what the first image reports
        about itself (falling back to what was asked for)."""
        data = []
        for one in generated:
            item = one.item
            b64 = item["result"]
            entry: dict[str, Any]
            if job.response_format == "url":
                fmt = _format(item.get("output_format")) or job.tool.get("output_format", "png")
                name = request.app.state.images.save_b64(b64, fmt)
                entry = {"url": image_file_url(self.settings, request, name)}
            else:
                entry = {"b64_json": b64}
            if isinstance(item.get("revised_prompt"), str):
                entry["revised_prompt"] = item["revised_prompt"]
            data.append(entry)
        payload: dict[str, Any] = {"created": int(time.time()), "data": data}
        first = generated[0].item
        for key in ("output_format", "size", "quality", "background"):
            value = first.get(key) if isinstance(first.get(key), str) else job.tool.get(key)
            if key == "output_format":
                value = _format(value) or value
            if isinstance(value, str):
                payload[key] = value
        usages = [one.usage for one in generated]
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
