"""The Images API over the subscription: ``POST /v1/images/generations`` and ``/v1/images/edits``.

Two routes (``server/images_native.py`` picks one). The native one posts the request to the
backend's own images endpoints. The tool route makes each requested image one Responses call
to a chat host model that is forced to call the ``image_generation`` tool; its events go
through the same :class:`ChatCompletionBuilder` as a chat answer, so failures
(``response.failed``, ``error`` events, truncated streams) map to the same OpenAI errors, and
the finished ``image_generation_call`` items become the OpenAI images answer. It serves what
the native endpoints cannot: masks, streaming (``server/images_stream.py``), output formats.

The request -> Responses body part is pure (``translate/images_api.py``); this module is the
I/O shell.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from codex_proxy.server.http import JSONResponse, error_response, read_json
from codex_proxy.server.image_files import FileSaver, file_saver
from codex_proxy.server.images_native import NativeUnavailable, generate_native
from codex_proxy.server.images_stream import ImageStreamRun
from codex_proxy.server.keys import key_for, reserve_images
from codex_proxy.server.relay import cancelled_on_disconnect, internal_error
from codex_proxy.server.request_log import note
from codex_proxy.translate import errors
from codex_proxy.translate.aggregate import ChatCompletionBuilder
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.images_api import (
    DEFAULT_NATIVE_MODEL,
    ImageCollector,
    ImageRequest,
    edit_request,
    generation_request,
    images_response,
    native_images_response,
    no_image_error,
    responses_body,
)
from codex_proxy.upstream.auth import Credentials
from codex_proxy.upstream.client import UpstreamClient

log = logging.getLogger("codex_proxy")
T = TypeVar("T")

_TERMINAL = frozenset({"response.completed", "response.incomplete"})


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
        raise no_image_error(completion)
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


async def generations(request: Request) -> Response:
    """JSON in, like ``client.images.generate(...)`` sends it."""
    try:
        body = await read_json(request)
        job = generation_request(body, request.app.state.settings.image_options)
    except OpenAIError as error:
        return error_response(error)
    return await answer(request, job)


async def edits(request: Request) -> Response:
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
            job = edit_request(fields, images, mask, request.app.state.settings.image_options)
        except OpenAIError as error:
            return error_response(error)
    return await answer(request, job)


async def answer(request: Request, job: ImageRequest) -> Any:
    """Stream, or run the request on its route, watching for the client leaving (that cancels
    every upstream call)."""
    state = request.app.state
    settings = state.settings
    body = responses_body(
        job,
        model=settings.image_host_model or await state.models.default_model(),
        instructions=settings.instructions,
    )
    session_id = str(uuid.uuid4())
    try:
        await reserve_images(request, key_for(request), job.n)
    except OpenAIError as error:
        return error_response(error)
    if job.stream:
        note(model=str(body.get("model")), stream=True)
        return ImageStreamRun(
            client=state.client,
            auth=state.auth,
            job=job,
            body=body,
            session_id=session_id,
            keepalive_seconds=settings.sse_keepalive_seconds,
            limiter=state.image_jobs,
        )
    note(model=str(body.get("model")), stream=False)
    answer: Response = Response(status_code=499)  # only ever "sent" to a departed client
    async with cancelled_on_disconnect(request.receive, state.shutdown) as watch:
        try:
            creds = await state.auth.credentials()
            payload, headers = None, {}
            if state.native_images.wanted(job, creds):
                note(model=native_body_model(job))
                try:
                    async with state.image_jobs:
                        found, headers = await generate_native(
                            state.client, creds, job, session_id, state.native_images
                        )
                    saver = _saver(request)
                    payload = native_images_response(job, found, int(time.time()), saver)
                    await saver.flush()
                except NativeUnavailable:
                    note(model=str(body.get("model")))
            if payload is None:
                payload, headers = await _tool_route(request, job, creds, body, session_id)
            note(images=len(payload["data"]))
            answer = JSONResponse(payload, headers=headers)
        except OpenAIError as error:
            answer = error_response(error)
        except Exception:
            log.exception("image request failed")
            answer = error_response(internal_error())
    if watch.shutting_down:
        answer = error_response(errors.shutting_down())
    return answer


async def _tool_route(
    request: Request, job: ImageRequest, creds: Credentials, body: Mapping[str, Any], session: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """``n`` Responses calls at once, each forced to call the image tool."""
    state = request.app.state

    def job_for_one() -> Awaitable[GeneratedImage]:
        return generate_one(state.client, creds, body, session, state.image_jobs)

    generated = await gather_all([job_for_one] * job.n)
    items = [one.item for one in generated]
    usages = [one.usage for one in generated]
    saver = _saver(request)
    payload = images_response(job, items, usages, int(time.time()), saver)
    await saver.flush()
    headers: dict[str, str] = {}
    for one in generated:
        headers.update(one.headers)
    return payload, headers


def native_body_model(job: ImageRequest) -> str:
    return str(job.tool.get("model") or DEFAULT_NATIVE_MODEL)


def _saver(request: Request) -> FileSaver:
    """``save(b64, format) -> URL`` for url-mode answers; the writes run in a thread."""
    state = request.app.state
    return file_saver(state.settings, state.images, request)
