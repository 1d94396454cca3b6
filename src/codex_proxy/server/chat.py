"""``POST /v1/chat/completions``: a chat request in, a Responses call up, chat chunks back.

The translation is ``translate/request.py`` (and the image tool of ``translate/images.py``);
the streaming and the answer are :class:`~codex_proxy.server.relay.ChatCompletionRun`.
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from starlette.requests import Request

from codex_proxy.server.http import error_response, read_json
from codex_proxy.server.image_files import image_renderer
from codex_proxy.server.keys import CountingImages, check_model, image_permission, key_for
from codex_proxy.server.models import default_model_for
from codex_proxy.server.relay import ChatCompletionRun
from codex_proxy.server.request_log import note
from codex_proxy.translate.errors import OpenAIError, too_many_images
from codex_proxy.translate.images import (
    apply_image_tool,
    forces_image_tool,
    plan_image_history,
    resolver_of,
    restore_image_history,
)
from codex_proxy.translate.request import RequestOptions, translate_request
from codex_proxy.upstream.auth import CHATGPT, Credentials

DROPPED_HEADER = "x-codex-proxy-dropped-params"


async def request_options(request: Request, creds: Credentials, body: Any) -> RequestOptions:
    """What the translation needs from the settings and the request, with the default model
    resolved (the catalog's, unless the body names its model or CODEX_MODEL is set). The chat
    and Responses routes share it."""
    settings = request.app.state.settings
    return RequestOptions(
        chatgpt_backend=creds.mode == CHATGPT,
        default_model=await default_model_for(body, request.app.state.models),
        instructions=settings.instructions,
        reasoning_summary=settings.reasoning_summary,
        model_aliases=settings.model_aliases,
        session_id=request.headers.get("x-session-id") or None,
        max_messages=settings.max_messages,
        max_images=settings.max_images,
    )


async def chat_completions(request: Request) -> Any:
    state = request.app.state
    settings = state.settings
    try:
        body = await read_json(request)
    except OpenAIError as error:
        return error_response(error)
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        note(model=body["model"], stream=body.get("stream") is True)  # for a refused request
    if isinstance(body, dict) and "messages" in body:
        # Count first, then read each stored file the history re-sends once, off the loop.
        plan = plan_image_history(body["messages"], settings.image_history)
        if plan.images > settings.max_images:
            return error_response(too_many_images(plan.images, settings.max_images))
        files = await to_thread.run_sync(state.images.data_uris, plan.names) if plan.names else {}
        messages = restore_image_history(
            body["messages"], settings.image_history, resolver_of(files)
        )
        body = {**body, "messages": messages}
    key = key_for(request)
    try:
        # A key that may not make images (or has none left today) never gets the tool injected.
        images_ok = await image_permission(request, key, body)
        creds = await state.auth.credentials()
        translated = translate_request(body, await request_options(request, creds, body))
        check_model(key, translated.model)
        image_format = apply_image_tool(
            translated.body,
            body,
            enabled=settings.enable_image_gen and images_ok,
            defaults=settings.image_options,
        )
    except OpenAIError as error:
        return error_response(error)
    headers = {DROPPED_HEADER: ",".join(translated.dropped)} if translated.dropped else {}
    forces_image = forces_image_tool(translated.body.get("tool_choice"))
    renderer = image_renderer(settings, state.images, request, image_format)
    note(model=translated.model, stream=translated.stream, image_counter=renderer)
    run = ChatCompletionRun(
        client=state.client,
        creds=creds,
        request=translated,
        keepalive_seconds=settings.sse_keepalive_seconds,
        headers=headers,
        image_renderer=renderer,
        limiter=state.image_jobs if forces_image else None,
        shutdown=state.shutdown,
    )
    return CountingImages(run, request, key, renderer) if key is not None else run
