"""A fake ChatGPT/Codex Responses upstream: a real HTTP server on a loopback port.

Tests, ``codex-proxy serve --mock`` and the benchmarks point the gateway at it. It replays
scripted SSE replies (see :mod:`codex_proxy.mock.events`), validates requests the way the
ChatGPT backend does (``shared/protocol.md`` section 3.3), records everything it receives and
misbehaves on request: stall (:class:`Pause`, ``Reply.delay``), drop the connection
(:class:`Drop`) or send malformed bytes (:class:`RawData`). It also counts client disconnects,
which is how tests prove that the gateway cancels its upstream request.

It also behaves like the late-2026 backend when asked (protocol.md 7.5, 7.6): a model catalog
whose default can change (:meth:`FakeUpstream.set_default_model`), refusing models the catalog
does not list (``catalog_only``), a version floor (``min_client_version``), Cloudflare's
refusals (``edge_block``: one of :data:`EDGE_BLOCKS`) and the usage endpoint (``usage``).

    with FakeUpstream() as fake:
        fake.enqueue(Reply(events=text_response("Hello")))
        ...  # point the client at f"{fake.url}/responses"
        assert fake.responses_requests[0].body["store"] is False
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import socket
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codex_proxy.mock.events import ResponseScript, text_response, usage
from codex_proxy.mock.images import parse_size, render_or_png
from codex_proxy.mock.tokens import FakeTokenIssuer
from codex_proxy.mock.types import Drop, Gate, Pause, RawData, RecordedRequest, Reply, ReplyItem

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_USAGE",
    "EDGE_BLOCKS",
    "REJECTED_PARAMS",
    "Drop",
    "FakeUpstream",
    "Gate",
    "Pause",
    "RawData",
    "RecordedRequest",
    "Reply",
    "compact_reply",
    "default_reply",
    "encode_event",
    "reply_from_json",
    "strict_error",
]

# -- wire helpers ----------------------------------------------------------------------------


def encode_event(event: dict[str, Any]) -> bytes:
    """One SSE message: ``event: <type>`` plus a one-line ``data:``; JSON encoded once."""
    data = orjson.dumps(event)
    kind = event.get("type")
    if isinstance(kind, str):
        return b"".join((b"event: ", kind.encode(), b"\ndata: ", data, b"\n\n"))
    return b"".join((b"data: ", data, b"\n\n"))


def _body_bytes(body: Any) -> tuple[bytes, str]:
    """Reply body and its default content type."""
    if body is None:
        return b"", "application/json"
    if isinstance(body, bytes | bytearray):
        return bytes(body), "application/json"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return orjson.dumps(body), "application/json"


def _raw_headers(defaults: dict[str, str], extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Merge headers case-insensitively, ``extra`` winning."""
    merged = {k.lower(): v for k, v in defaults.items()}
    merged.update({k.lower(): v for k, v in extra.items()})
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]


def _detail(message: str, status: int = 400) -> Reply:
    """A FastAPI-style error, as the ChatGPT backend answers validation failures."""
    return Reply(status=status, body={"detail": message})


# -- strict validation (protocol.md 3.3) -----------------------------------------------------

REJECTED_PARAMS: tuple[str, ...] = (
    "temperature",
    "top_p",
    "max_output_tokens",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "metadata",
    "top_logprobs",
    "truncation",
    "safety_identifier",
    "prompt_cache_retention",
    "user",
    "stop",
)

_AUTH_ERROR: dict[str, Any] = {
    "error": {
        "message": "Missing bearer or basic authentication in header",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
}


def _has_auth(headers: dict[str, str]) -> bool:
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    return scheme.lower() in ("bearer", "basic") and bool(token.strip())


def strict_error(request: RecordedRequest) -> Reply | None:
    """The error the ChatGPT backend would answer ``request`` with, or None if it is valid."""
    if not _has_auth(request.headers):
        return Reply(status=401, body=_AUTH_ERROR)
    if not _is_responses_post(request):
        return None
    body = request.body
    if not isinstance(body, dict):
        return _detail("Request body must be a JSON object")
    stateless = _check_stateless(body)
    if stateless is not None:
        return stateless
    for check in (_check_flags, _check_params, _check_input, _check_tools, _check_call_pairs):
        message = check(body)
        if message:
            return _detail(message)
    return None


_NOT_PERSISTED = (
    "Item with id '{}' not found. Items are not persisted when `store` is set to false. "
    "Try again with `store` set to true, or remove this item from your input."
)


def _check_stateless(body: dict[str, Any]) -> Reply | None:
    """protocol.md 7.1-7.2: nothing is kept over HTTP, so a chain or a server-side item id
    cannot be resolved (400 for the parameter, 404 for the item)."""
    for name in ("previous_response_id", "conversation"):
        if body.get(name) is not None:
            return _detail(f"Unsupported parameter: {name}")
    if body.get("background") is True:
        return _detail("Unsupported parameter: background")
    items = body.get("input")
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and (item.get("type") == "item_reference" or "id" in item):
            return _detail(_NOT_PERSISTED.format(item.get("id")), status=404)
    return None


def compact_reply(request: RecordedRequest) -> Reply:
    """``POST {base}/responses/compact`` (protocol.md 7.4): the user messages of the input,
    then one opaque ``compaction`` item standing for everything else."""
    body = request.body if isinstance(request.body, dict) else {}
    items = body.get("input")
    if not isinstance(items, list):
        return _detail("Input must be a list")
    stateless = _check_stateless(body)
    if stateless is not None:
        return stateless
    users = [i for i in items if isinstance(i, dict) and i.get("role") == "user"]
    digest = zlib.crc32(request.raw)
    compaction = {"type": "compaction", "encrypted_content": f"gAAAA-mock-compaction-{digest:08x}"}
    used = usage(input_tokens=max(1, len(request.raw) // 4), output_tokens=8)
    return Reply(body={"output": [*users, compaction], "usage": used})


def _check_flags(body: dict[str, Any]) -> str | None:
    if body.get("store") is not False:
        return "Store must be set to false"
    if body.get("stream") is not True:
        return "Stream must be set to true"
    return None


def _check_params(body: dict[str, Any]) -> str | None:
    for name in REJECTED_PARAMS:
        if name in body:
            return f"Unsupported parameter: {name}"
    return None


def _check_input(body: dict[str, Any]) -> str | None:
    items = body.get("input")
    if not isinstance(items, list):
        return "Input must be a list"
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            return f"Invalid type for 'input[{i}]': expected an object"
        if item.get("type", "message") == "message" and item.get("role") == "system":
            return "System messages are not allowed"
    return None


def _check_tools(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "Invalid type for 'tools': expected an array"
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or "type" not in tool:
            return f"Missing required parameter: 'tools[{i}].type'"
        name = tool.get("name")
        if tool["type"] == "function" and not (isinstance(name, str) and name):
            return f"Missing required parameter: 'tools[{i}].name'"
    return None


_CALLS = ("function_call", "custom_tool_call")
_OUTPUTS = ("function_call_output", "custom_tool_call_output")


def _check_call_pairs(body: dict[str, Any]) -> str | None:
    """Every tool output needs an earlier call with its ``call_id`` (nothing is stored)."""
    seen: set[Any] = set()
    for item in body["input"]:
        kind = item.get("type")
        if kind in _CALLS:
            seen.add(item.get("call_id"))
        elif kind in _OUTPUTS and item.get("call_id") not in seen:
            return (
                f"No tool call found for function call output with call_id {item.get('call_id')}."
            )
    return None


def _is_responses_post(request: RecordedRequest) -> bool:
    return request.method == "POST" and _last_segment(request.path) == "responses"


def _is_compact_post(request: RecordedRequest) -> bool:
    return request.method == "POST" and request.path.rstrip("/").endswith("/responses/compact")


def _is_token_post(request: RecordedRequest) -> bool:
    return request.method == "POST" and request.path.rstrip("/").endswith("/oauth/token")


def _last_segment(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


# -- the built-in default reply --------------------------------------------------------------

_TOOL_COMMAND = re.compile(r"/tool\s+(\S+)\s*(.*)\Z", re.DOTALL)
_IMAGE_WORDS = re.compile(
    r"\b(images?|pictures?|draw(s|ing|n)?|drew|photo(s|graph|graphs)?|logos?|icons?"
    r"|illustrations?|sketch(es)?|paint(ing)?)\b",
    re.IGNORECASE,
)
_IMAGE_FORMATS = ("png", "jpeg", "webp")
_PARTIAL_SIDE = 64  # partial images are small previews; only their decodability matters
_PROMPT_LIMIT = 200


def default_reply(request: RecordedRequest) -> Reply:
    """Echo the last user text; ``/tool NAME {json}`` calls a declared function tool instead;
    with an ``image_generation`` tool, a forced ``tool_choice``, an image-ish prompt ("draw",
    "picture", "logo", ...) or an image in the conversation (a follow-up edits it) gets a short
    message and a real generated image."""
    body = request.body if isinstance(request.body, dict) else {}
    model = body.get("model") if isinstance(body.get("model"), str) else "gpt-5-codex"
    text = _last_user_text(body.get("input"))
    used = usage(input_tokens=max(1, len(request.raw) // 4), output_tokens=max(1, len(text) // 4))
    image_tool = _image_tool(body.get("tools"))
    forced = _forces_image(body.get("tool_choice"))
    call = None if forced else _tool_command(text, _function_names(body.get("tools")))
    wants_image = forced or _IMAGE_WORDS.search(text) or _has_input_image(body.get("input"))
    if image_tool is not None and call is None and wants_image:
        try:
            events = _image_events(image_tool, body, text, model, used)
        except ValueError as exc:
            return _detail(f"Invalid value for 'tools[{image_tool[0]}]': {exc}")
    elif call is not None:
        script = ResponseScript(model=model)
        script.start()
        name, arguments = call
        script.function_call(name, [arguments[i : i + 8] for i in range(0, len(arguments), 8)])
        script.completed(used)
        events = script.events
    else:
        events = text_response(f"Mock reply to: {text}", model=model, usage_=used)
    _stamp(events, f"resp_{uuid.uuid4().hex}", int(time.time()))
    return Reply(events=list(events))


def _image_tool(tools: Any) -> tuple[int, dict[str, Any]] | None:
    """The first declared ``image_generation`` tool and its index in ``tools``."""
    for index, tool in enumerate(tools if isinstance(tools, list) else []):
        if isinstance(tool, dict) and tool.get("type") == "image_generation":
            return index, tool
    return None


def _forces_image(choice: Any) -> bool:
    return isinstance(choice, dict) and choice.get("type") == "image_generation"


def _image_events(
    image_tool: tuple[int, dict[str, Any]],
    body: dict[str, Any],
    prompt: str,
    model: str,
    used: dict[str, Any],
) -> list[dict[str, Any]]:
    """Text then an ``image_generation_call`` whose ``result`` really is a ``size`` image in
    ``output_format``, so the gateway's decoding, size guard and storage run for real.
    Raises ValueError on a size or format the backend would reject."""
    tool = image_tool[1]
    width, height = parse_size(_str_option(tool, "size"))
    fmt = _str_option(tool, "output_format") or "png"
    if fmt not in _IMAGE_FORMATS:
        raise ValueError(f"output_format must be one of {', '.join(_IMAGE_FORMATS)}")
    seed = zlib.crc32(prompt.encode())
    background = _str_option(tool, "background") or "opaque"
    clear = background == "transparent"
    scale = _PARTIAL_SIDE / max(width, height)
    small = max(1, round(width * scale)), max(1, round(height * scale))
    partials = [
        _b64(render_or_png(*small, fmt, seed=seed + i + 1, transparent=clear)[0])
        for i in range(_partial_count(tool))
    ]
    final, fmt = render_or_png(width, height, fmt, seed=seed, transparent=clear)
    edited = tool.get("action") == "edit" or (
        tool.get("action") != "generate" and _has_input_image(body.get("input"))
    )
    subject = " ".join(prompt.split())[:_PROMPT_LIMIT] or "something"
    revised = f"{'An edited mock image' if edited else 'A mock image'} of: {subject}"
    script = ResponseScript(model=model)
    script.start()
    script.message(["Here is", " your image."])
    script.image(
        _b64(final),
        partials=partials,
        revised_prompt=revised,
        output_format=fmt,
        size=f"{width}x{height}",
        quality=_str_option(tool, "quality") or "auto",
        background=background,
    )
    script.completed(used)
    return script.events


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- the native images endpoints (protocol.md 7.3) -------------------------------------------

_NATIVE_KEYS = frozenset({"prompt", "model", "n", "size", "quality", "background"})
_BACKGROUNDS = ("auto", "opaque", "transparent")
_QUALITIES = ("auto", "low", "medium", "high")


def native_image_reply(request: RecordedRequest) -> Reply:
    """``POST {base}/images/generations`` or ``/images/edits``: JSON in, ``n`` real PNGs of the
    requested size out (RGBA with transparent pixels for ``background: transparent``); fields
    the backend does not take (a mask, ``stream``, ``output_format``, ...) are a 400."""
    body = request.body
    if not isinstance(body, dict):
        return _detail("Request body must be a JSON object")
    edit = _last_segment(request.path) == "edits"
    for key in body:
        if key not in _NATIVE_KEYS and not (edit and key == "images"):
            return _detail(f"Unsupported parameter: {key}")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return _detail("Missing required parameter: 'prompt'")
    n = body.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
        return _detail("Invalid value for 'n': must be 1 to 10")
    background = body.get("background", "auto")
    quality = body.get("quality", "auto")
    if background not in _BACKGROUNDS or quality not in _QUALITIES:
        return _detail("Invalid value for 'background' or 'quality'")
    images = body.get("images")
    if edit and not (
        isinstance(images, list)
        and images
        and all(
            isinstance(i, dict) and str(i.get("image_url", "")).startswith("data:image/")
            for i in images
        )
    ):
        return _detail("'images' must be a list of {'image_url': 'data:image/...'}")
    try:
        width, height = parse_size(body.get("size"))
    except ValueError as exc:
        return _detail(f"Invalid value for 'size': {exc}")
    seed = zlib.crc32(prompt.encode())
    clear = background == "transparent"
    data = [
        {"b64_json": _b64(render_or_png(width, height, seed=seed + i, transparent=clear)[0])}
        for i in range(n)
    ]
    text_tokens = max(1, len(prompt) // 4)
    image_tokens = 65 * len(images) if edit else 0
    output_tokens = 272 * n
    return Reply(
        body={
            "created": int(time.time()),
            "data": data,
            "background": "transparent" if clear else "opaque",
            "output_format": "png",
            "quality": quality,
            "size": f"{width}x{height}",
            "usage": {
                "input_tokens": text_tokens + image_tokens,
                "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
                "output_tokens": output_tokens,
                "output_tokens_details": {"text_tokens": 0, "image_tokens": output_tokens},
                "total_tokens": text_tokens + image_tokens + output_tokens,
            },
        }
    )


def _is_images_post(request: RecordedRequest) -> bool:
    path = request.path.rstrip("/")
    return request.method == "POST" and path.endswith(("/images/generations", "/images/edits"))


def _str_option(tool: dict[str, Any], name: str) -> str | None:
    value = tool.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _partial_count(tool: dict[str, Any]) -> int:
    """``partial_images`` clamped to the API's 0..3; anything else means none."""
    value = tool.get("partial_images")
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return min(max(value, 0), 3)


def _has_input_image(items: Any) -> bool:
    """An ``input_image`` part anywhere in the input: the user is editing a picture."""
    for item in items if isinstance(items, list) else []:
        content = item.get("content") if isinstance(item, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") == "input_image":
                return True
    return False


def _stamp(events: list[dict[str, Any]], response_id: str, created_at: int) -> None:
    """Give lifecycle events a unique response id, like the real backend."""
    for event in events:
        response = event.get("response")
        if isinstance(response, dict):
            response["id"] = response_id
            response["created_at"] = created_at


def _last_user_text(items: Any) -> str:
    if isinstance(items, str):
        return items
    for item in reversed(items if isinstance(items, list) else []):
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        content = item.get("content")
        if isinstance(content, str):
            return content
        parts = content if isinstance(content, list) else []
        return " ".join(
            p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _function_names(tools: Any) -> set[str]:
    return {
        t["name"]
        for t in (tools if isinstance(tools, list) else [])
        if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str)
    }


def _tool_command(text: str, names: set[str]) -> tuple[str, str] | None:
    """``(name, json_arguments)`` when ``text`` asks for a declared tool with valid JSON args."""
    match = _TOOL_COMMAND.match(text.strip())
    if not match or match.group(1) not in names:
        return None
    arguments = match.group(2).strip() or "{}"
    try:
        orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return None
    return match.group(1), arguments


# -- models catalog --------------------------------------------------------------------------


def _model(slug: str, name: str, priority: int, visibility: str = "list") -> dict[str, Any]:
    return {
        "slug": slug,
        "display_name": name,
        "description": f"Mock {name}",
        "default_reasoning_level": "medium",
        "supported_reasoning_levels": [
            {"effort": e, "description": e} for e in ("low", "medium", "high")
        ],
        "visibility": visibility,
        "supported_in_api": True,
        "priority": priority,
        "context_window": 272000,
    }


DEFAULT_MODELS: tuple[dict[str, Any], ...] = (
    _model("gpt-6-astra", "gpt-6-astra", 1),
    _model("gpt-5.6-sol", "gpt-5.6-sol", 2),
    _model("gpt-5.5", "gpt-5.5", 3),
    _model("gpt-5.4-mini", "gpt-5.4-mini", 4),
    _model("codex-internal-preview", "codex-internal-preview", 99, visibility="hide"),
)


def _default_models() -> list[dict[str, Any]]:
    return orjson.loads(orjson.dumps(list(DEFAULT_MODELS)))


def _listed_slugs(models: list[dict[str, Any]]) -> list[str]:
    """The slugs a user may pick (``visibility == "list"``), by priority."""
    listed = [m for m in models if m.get("visibility") == "list" and isinstance(m.get("slug"), str)]
    listed.sort(key=lambda m: m.get("priority") if isinstance(m.get("priority"), int) else 10**6)
    return [m["slug"] for m in listed]


def _version_tuple(text: str) -> tuple[int, ...] | None:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", text.strip())
    return tuple(int(part) for part in match.groups()) if match else None


# -- usage endpoint and the network edge (protocol.md 7.6) -----------------------------------

# The shape of ``GET /backend-api/wham/usage`` as the Codex CLI's backend models describe it
# (``RateLimitStatusPayload``); reset times are filled in when served.
DEFAULT_USAGE: dict[str, Any] = {
    "plan_type": "plus",
    "rate_limit": {
        "allowed": True,
        "limit_reached": False,
        "primary_window": {
            "used_percent": 7,
            "limit_window_seconds": 18000,
            "reset_after_seconds": 9000,
        },
        "secondary_window": {
            "used_percent": 31,
            "limit_window_seconds": 604800,
            "reset_after_seconds": 302400,
        },
    },
    "credits": {"has_credits": False, "unlimited": False, "balance": "0"},
}

_CHALLENGE_PAGE = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title></head>'
    "<body><noscript>Enable JavaScript and cookies to continue</noscript></body></html>"
)
# Cloudflare's answers to a client it will not serve: a challenge, a bare HTML 403, error 1010.
EDGE_BLOCKS: dict[str, Reply] = {
    "challenge": Reply(
        status=403,
        body=_CHALLENGE_PAGE.encode(),
        headers={"content-type": "text/html; charset=UTF-8", "cf-mitigated": "challenge"},
    ),
    "html": Reply(
        status=403,
        body=b"<html><head><title>403 Forbidden</title></head><body>Forbidden</body></html>",
        headers={"content-type": "text/html", "server": "cloudflare"},
    ),
    "1010": Reply(
        status=403,
        body=b"error code: 1010",
        headers={"content-type": "text/plain; charset=UTF-8", "server": "cloudflare"},
    ),
}


def _usage_payload(template: dict[str, Any]) -> dict[str, Any]:
    """``template`` with ``reset_at`` filled in from ``reset_after_seconds``."""
    payload = orjson.loads(orjson.dumps(template))
    limits = payload.get("rate_limit")
    now = int(time.time())
    for name in ("primary_window", "secondary_window"):
        window = limits.get(name) if isinstance(limits, dict) else None
        if isinstance(window, dict) and isinstance(window.get("reset_after_seconds"), int):
            window.setdefault("reset_at", now + window["reset_after_seconds"])
    return payload


def _is_usage_get(request: RecordedRequest) -> bool:
    return request.method == "GET" and request.path.rstrip("/").endswith("/wham/usage")


# -- JSON control surface --------------------------------------------------------------------

_REPLY_KEYS = {"events", "status", "body", "headers", "delay"}


def reply_from_json(obj: dict[str, Any]) -> Reply:
    """A :class:`Reply` from its JSON form; markers are ``{"pause": s}``, ``{"drop": true}``,
    ``{"raw": "text"}``. Raises ValueError on anything else."""
    if not isinstance(obj, dict) or not set(obj) <= _REPLY_KEYS:
        raise ValueError(f"a reply is an object with keys among {sorted(_REPLY_KEYS)}")
    events = obj.get("events")
    body = obj.get("body")
    return Reply(
        events=None if events is None else [_item_from_json(e) for e in events],
        status=int(obj.get("status", 200)),
        body=body.encode() if isinstance(body, str) else body,
        headers={str(k): str(v) for k, v in (obj.get("headers") or {}).items()},
        delay=float(obj.get("delay", 0)),
    )


def _item_from_json(item: Any) -> ReplyItem:
    if not isinstance(item, dict):
        raise ValueError(f"not an event or marker: {item!r}")
    if "type" in item:
        return item
    if set(item) == {"pause"}:
        return Pause(float(item["pause"]))
    if set(item) == {"drop"}:
        return Drop()
    if set(item) == {"raw"} and isinstance(item["raw"], str):
        return RawData(item["raw"].encode())
    raise ValueError(f"not an event or marker: {item!r}")


# -- serving a reply -------------------------------------------------------------------------


class _DropConnection(Exception):
    """Raised out of the ASGI app so that uvicorn closes the socket mid-response."""


class _QuietDrops(logging.Filter):
    """Keep scripted drops out of uvicorn's error log; they are not bugs."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, _DropConnection):
            return False
        # The fake's own server lines ("Started server process", "Shutting down"...) would
        # repeat the gateway's in the same log (serve --mock): only its problems are shown.
        return record.levelno >= logging.WARNING or not record.threadName.startswith(THREAD)


THREAD = "fake-upstream-"
_uvicorn_log = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _QuietDrops) for f in _uvicorn_log.filters):
    _uvicorn_log.addFilter(_QuietDrops())


class _ReplySender:
    """The ASGI response for one :class:`Reply`, racing the writer against client disconnect."""

    def __init__(self, owner: FakeUpstream, reply: Reply, request_id: str):
        self.owner = owner
        self.reply = reply
        self.request_id = request_id
        self.is_stream = reply.events is not None
        self._open = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer = asyncio.ensure_future(self._write(send))
        watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
        self.owner._writers.add(writer)
        self._set_open(True)
        try:
            await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            client_gone = watcher.done() and not writer.done()
        finally:
            self._set_open(False)
            self.owner._writers.discard(writer)
            watcher.cancel()
            writer.cancel()
            await asyncio.gather(writer, watcher, return_exceptions=True)
        if client_gone:
            if self.is_stream:
                self.owner._count_disconnect()
            return
        if writer.cancelled():  # the server is stopping: end the stream abruptly
            raise _DropConnection
        writer.result()  # re-raises a scripted Drop

    def _set_open(self, is_open: bool) -> None:
        """Count open SSE replies; closed before the last byte, so a client that has seen the
        end of a stream also sees ``open_streams`` already decremented."""
        if self.is_stream and is_open != self._open:
            self._open = is_open
            self.owner._add_open_streams(1 if is_open else -1)

    async def _write(self, send: Send) -> None:
        if self.reply.delay > 0:
            await asyncio.sleep(self.reply.delay)
        if self.reply.events is None:
            body, content_type = _body_bytes(self.reply.body)
            await self._start(send, {"content-type": content_type})
            await send({"type": "http.response.body", "body": body})
            return
        await self._start(send, {"content-type": "text/event-stream", "cache-control": "no-cache"})
        for item in self.reply.events:
            if isinstance(item, Pause):
                await asyncio.sleep(item.seconds)
                continue
            if isinstance(item, Drop):
                self._set_open(False)
                raise _DropConnection
            if isinstance(item, Gate):
                await _through(item)
                continue
            chunk = item.data if isinstance(item, RawData) else encode_event(item)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0)  # let a disconnect (and other streams) through
        self._set_open(False)
        await send({"type": "http.response.body", "body": b""})

    async def _start(self, send: Send, defaults: dict[str, str]) -> None:
        defaults = {**defaults, "x-request-id": self.request_id}
        headers = _raw_headers(defaults, self.reply.headers)
        await send({"type": "http.response.start", "status": self.reply.status, "headers": headers})


async def _through(gate: Gate) -> None:
    """Wait at ``gate`` until the test opens it or its timeout passes (polled: the test's
    thread sets it, and a cancelled reply must stop waiting at once)."""
    deadline = time.monotonic() + gate.timeout
    while not gate.opened.is_set():
        if time.monotonic() >= deadline:
            gate.timed_out.set()
            break
        await asyncio.sleep(0.005)
    gate.passed.set()


async def _wait_for_disconnect(receive: Receive) -> None:
    """Returns once the client has gone (the request body was already read)."""
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


# -- the server ------------------------------------------------------------------------------

DefaultBuilder = Callable[[RecordedRequest], Reply]


class FakeUpstream:
    """A scripted Responses upstream served by uvicorn in a daemon thread.

    ``enqueue`` replies (FIFO, one per ``POST .../responses``); when the queue is empty the
    ``default`` builder answers. Any path ending in ``/responses`` or ``/models`` is served,
    so ``{url}``, ``{url}/v1`` and ``{url}/backend-api/codex`` all work as a base URL.
    Control endpoints under ``/_mock/`` script it from other processes and are not recorded.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        strict: bool = True,
        default: DefaultBuilder | None = None,
    ):
        self.host = host
        self.port = port
        self.strict = strict
        self.default: DefaultBuilder = default or default_reply
        self.models: list[dict[str, Any]] = _default_models()
        self.models_reply: Reply | None = None
        self.catalog_only = False  # refuse /responses for models the catalog does not list
        self.min_client_version: str | None = None  # refuse an older `version` header
        self.edge_block: str | None = None  # answer everything as Cloudflare: see EDGE_BLOCKS
        self.usage: dict[str, Any] = orjson.loads(orjson.dumps(DEFAULT_USAGE))
        self.usage_reply: Reply | None = None
        # False: the native images endpoints answer 404, like an older backend
        self.native_images = True
        self.tokens = FakeTokenIssuer()  # the OAuth refresh endpoint, POST {url}/oauth/token
        self.app = self._build_app()
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._images_queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._open_streams = 0
        self._disconnects = 0
        self._writers: set[asyncio.Future[None]] = set()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        """Serve in a daemon thread; returns once connections are accepted."""
        if self._thread is not None:
            return self
        sock = _listen_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve(sock)),
            name=f"{THREAD}{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._wait_started()
        return self

    def stop(self) -> None:
        """Cut open streams, stop the server and join its thread."""
        if self._thread is None or self._server is None:
            return
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._abort_streams)
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._thread = self._server = self._loop = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(self, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        assert self._server is not None
        await self._server.serve(sockets=[sock])

    def _wait_started(self) -> None:
        deadline = time.monotonic() + 10
        while not (self._server and self._server.started):
            if self._thread is None or not self._thread.is_alive():
                raise RuntimeError("fake upstream failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError("fake upstream did not start within 10 s")
            time.sleep(0.002)

    def _abort_streams(self) -> None:
        for writer in list(self._writers):
            writer.cancel()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``; append ``/responses`` or ``/models``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- scripting and inspection ------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies for the next ``POST /responses`` calls, first in first out."""
        with self._lock:
            self._queue.extend(replies)

    def enqueue_images(self, *replies: Reply) -> None:
        """Queue replies for the next native images calls (``POST .../images/...``)."""
        with self._lock:
            self._images_queue.extend(replies)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received (any path except ``/_mock/``)."""
        with self._lock:
            return list(self._requests)

    @property
    def responses_requests(self) -> list[RecordedRequest]:
        """Only the ``POST .../responses`` requests."""
        return [r for r in self.requests if _is_responses_post(r)]

    @property
    def images_requests(self) -> list[RecordedRequest]:
        """Only the ``POST .../images/generations`` and ``.../images/edits`` requests."""
        return [r for r in self.requests if _is_images_post(r)]

    @property
    def token_requests(self) -> list[RecordedRequest]:
        """Only the ``POST /oauth/token`` (refresh) requests."""
        return [r for r in self.requests if _is_token_post(r)]

    @property
    def queued(self) -> int:
        """Replies still waiting in the queue."""
        with self._lock:
            return len(self._queue)

    @property
    def open_streams(self) -> int:
        """SSE replies being served right now (from ``delay`` until the last byte)."""
        return self._open_streams

    @property
    def connections(self) -> int:
        """TCP connections open to the fake right now (idle keep-alive ones included), to
        prove that a client which cancels requests does not leak connections."""
        server = self._server
        return len(server.server_state.connections) if server is not None else 0

    @property
    def disconnects(self) -> int:
        """SSE replies cut short because the client went away before their end."""
        return self._disconnects

    def clear(self) -> None:
        """Forget requests, queued replies and the disconnect count; restore the catalog."""
        with self._lock:
            self._queue.clear()
            self._images_queue.clear()
            self._requests.clear()
            self._disconnects = 0
        self.models = _default_models()
        self.models_reply = None
        self.catalog_only = False
        self.min_client_version = None
        self.edge_block = None
        self.usage = orjson.loads(orjson.dumps(DEFAULT_USAGE))
        self.usage_reply = None
        self.native_images = True
        self.tokens.clear()

    def set_default_model(self, slug: str) -> None:
        """Make ``slug`` the catalog's first listed model (added when missing), as the backend
        does when it moves its default."""
        models = [m for m in self.models if m.get("slug") != slug]
        for model in models:
            if isinstance(model.get("priority"), int):
                model["priority"] += 1
        self.models = [_model(slug, slug, 0), *models]

    def behave(self, **changes: Any) -> None:
        """Set ``catalog_only``, ``min_client_version`` or ``edge_block`` (None: off)."""
        for name, value in changes.items():
            if name not in ("catalog_only", "min_client_version", "edge_block"):
                raise ValueError(f"unknown behaviour {name!r}")
            if name == "edge_block" and value is not None and value not in EDGE_BLOCKS:
                raise ValueError(f"edge_block must be one of {sorted(EDGE_BLOCKS)} or null")
            bad_version = not isinstance(value, str) or _version_tuple(value) is None
            if name == "min_client_version" and value is not None and bad_version:
                raise ValueError("min_client_version must be a version such as 0.150.0")
            setattr(self, name, bool(value) if name == "catalog_only" else value)

    def _add_open_streams(self, delta: int) -> None:
        with self._lock:
            self._open_streams += delta

    def _count_disconnect(self) -> None:
        with self._lock:
            self._disconnects += 1

    # -- HTTP --------------------------------------------------------------------------------

    def _build_app(self) -> ASGIApp:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        routes = [
            Route("/_mock/enqueue", _json_endpoint(self._ctl_enqueue), methods=["POST"]),
            Route("/_mock/requests", _json_endpoint(self._ctl_requests), methods=["GET"]),
            Route("/_mock/reset", _json_endpoint(self._ctl_reset), methods=["POST"]),
            Route("/_mock/state", _json_endpoint(self._ctl_state), methods=["GET"]),
            Route("/_mock/models", _json_endpoint(self._ctl_models), methods=["POST"]),
            Route("/_mock/behaviour", _json_endpoint(self._ctl_behaviour), methods=["POST"]),
            Route("/_mock/usage", _json_endpoint(self._ctl_usage), methods=["POST"]),
            Route("/_mock/images", _json_endpoint(self._ctl_images), methods=["POST"]),
            Route("/{path:path}", self._handle, methods=methods),
        ]
        return _as_proxy(Starlette(routes=routes))

    async def _handle(self, request: Request) -> _ReplySender:
        recorded = await _record(request)
        with self._lock:
            self._requests.append(recorded)
        reply = self._choose_reply(recorded)
        return _ReplySender(self, reply, f"req_{uuid.uuid4().hex[:16]}")

    def _choose_reply(self, request: RecordedRequest) -> Reply:
        """Validation first (a rejected request keeps the queue intact), then queue, default."""
        if _is_token_post(request):
            return self.tokens.reply(request)
        if self.edge_block is not None:
            return EDGE_BLOCKS[self.edge_block]
        if self.strict:
            error = strict_error(request)
            if error is not None:
                return error
        segment = _last_segment(request.path)
        if request.method == "GET" and segment == "models":
            if self.models_reply is not None:
                return self.models_reply
            return Reply(body={"models": self.models}, headers={"etag": '"mock-models"'})
        if _is_usage_get(request):
            if self.usage_reply is not None:
                return self.usage_reply
            return Reply(body=_usage_payload(self.usage))
        if _is_images_post(request):
            if not self.native_images:
                return _detail("Not Found", status=404)
            with self._lock:
                queued = self._images_queue.popleft() if self._images_queue else None
            return queued if queued is not None else native_image_reply(request)
        if _is_compact_post(request):
            return compact_reply(request)
        if not _is_responses_post(request):
            return _detail("Not Found", status=404)
        refused = self._backend_refusal(request)
        if refused is not None:
            return refused
        with self._lock:
            queued = self._queue.popleft() if self._queue else None
        return queued if queued is not None else self.default(request)

    def _backend_refusal(self, request: RecordedRequest) -> Reply | None:
        """The late-2026 backend's 400s: a model the catalog does not list, an old client."""
        body = request.body if isinstance(request.body, dict) else {}
        model = body.get("model") if isinstance(body.get("model"), str) else ""
        if self.catalog_only and model not in _listed_slugs(self.models):
            return _detail(
                f"The '{model}' model is not supported when using Codex with a ChatGPT account."
            )
        floor = _version_tuple(self.min_client_version or "")
        if floor is not None:
            sent = _version_tuple(request.headers.get("version", ""))
            if sent is None or sent < floor:
                return _detail(
                    f"The '{model}' model requires a newer version of Codex. Please upgrade to "
                    "the latest app or CLI and try again."
                )
        return None

    async def _ctl_models(self, payload: Any) -> Any:
        """``{"default": slug}`` moves the default; ``{"models": [...]}`` replaces the list."""
        if not isinstance(payload, dict):
            raise ValueError('send {"default": "slug"} or {"models": [...]}')
        if isinstance(payload.get("models"), list):
            self.models = [m for m in payload["models"] if isinstance(m, dict)]
        if isinstance(payload.get("default"), str):
            self.set_default_model(payload["default"])
        return {"models": _listed_slugs(self.models)}

    async def _ctl_behaviour(self, payload: Any) -> Any:
        if not isinstance(payload, dict):
            raise ValueError("send an object of behaviours")
        self.behave(**payload)
        return {
            "catalog_only": self.catalog_only,
            "min_client_version": self.min_client_version,
            "edge_block": self.edge_block,
        }

    async def _ctl_usage(self, payload: Any) -> Any:
        """A usage payload to serve, or ``{"status": n, "body": ...}`` (a reply) to fail."""
        if not isinstance(payload, dict):
            raise ValueError("send the usage payload, or a reply object with a status")
        if "status" in payload:
            self.usage_reply = reply_from_json(payload)
        else:
            self.usage, self.usage_reply = payload, None
        return {"ok": True}

    async def _ctl_enqueue(self, payload: Any) -> Any:
        items = payload if isinstance(payload, list) else [payload]
        replies = [reply_from_json(item) for item in items]
        self.enqueue(*replies)
        return {"queued": self.queued}

    async def _ctl_requests(self, payload: Any) -> Any:
        return [r.to_json() for r in self.requests]

    async def _ctl_reset(self, payload: Any) -> Any:
        self.clear()
        return {"ok": True}

    async def _ctl_images(self, payload: Any) -> Any:
        """``{"native": false}`` makes the native images endpoints answer 404."""
        if not isinstance(payload, dict) or not isinstance(payload.get("native"), bool):
            raise ValueError('send {"native": true} or {"native": false}')
        self.native_images = payload["native"]
        return {"native": self.native_images}

    async def _ctl_state(self, payload: Any) -> Any:
        return {
            "open_streams": self.open_streams,
            "disconnects": self.disconnects,
            "queued": self.queued,
            "requests": len(self.requests),
        }


def _as_proxy(app: ASGIApp) -> ASGIApp:
    """Also answer requests sent to it as an HTTP proxy (``POST http://host/path``), as if
    they had come straight to ``/path``: tests prove a client honours ``HTTP_PROXY`` with it."""

    async def proxied(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(("http://", "https://")):
            target = urlsplit(path).path or "/"
            scope = {**scope, "path": target, "raw_path": target.encode()}
        await app(scope, receive, send)

    return proxied


async def _record(request: Request) -> RecordedRequest:
    raw = await request.body()
    headers: dict[str, str] = {}
    for key, value in request.scope["headers"]:
        name, text = key.decode("latin-1").lower(), value.decode("latin-1")
        headers[name] = f"{headers[name]}, {text}" if name in headers else text
    query = request.scope.get("query_string", b"").decode("latin-1")
    return RecordedRequest(
        method=request.method,
        path=request.url.path,
        query=dict(parse_qsl(query, keep_blank_values=True)),
        headers=headers,
        body=_parse_json(raw),
        raw=raw,
    )


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _json_endpoint(
    handler: Callable[[Any], Awaitable[Any]],
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a control handler: JSON in, JSON out, ValueError -> 400."""

    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        payload = _parse_json(raw)
        status, result = 200, None
        if raw and payload is None:
            status, result = 400, {"detail": "Body must be JSON"}
        else:
            try:
                result = await handler(payload)
            except (ValueError, TypeError) as exc:
                status, result = 400, {"detail": str(exc)}
        return Response(orjson.dumps(result), status, media_type="application/json")

    return endpoint


def _listen_socket(host: str, port: int) -> socket.socket:
    """Bind before serving, so an ephemeral port is known before the thread starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock
