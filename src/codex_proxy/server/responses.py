"""``/v1/responses``: the Responses API, with the conversation kept by the gateway.

The ChatGPT backend keeps nothing over HTTP (protocol.md 7.1), so on ChatGPT credentials every
turn is replayed in full: the stored chain of ``previous_response_id`` (``store/``), then the
new input with its item references resolved (``translate/responses_history.py``). A completed
turn is saved before its last event goes out, so a client that chains at once finds it. With an
API key the body goes to the public API nearly as sent, and it stores and chains itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Mapping
from contextlib import aclosing
from typing import Any

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from codex_proxy._json import SLICE, dumps_parts
from codex_proxy.server.chat import DROPPED_HEADER, request_options
from codex_proxy.server.http import JSONResponse, error_response, read_json
from codex_proxy.server.keys import CountingImages, check_model, image_permission, key_for
from codex_proxy.server.relay import (
    KEEPALIVE,
    SSE_HEADERS,
    TICK,
    EventStream,
    coalesce,
    encode_events,
    guarded,
    json_response_parts,
    with_ticks,
)
from codex_proxy.server.request_log import note
from codex_proxy.server.shutdown import Shutdown
from codex_proxy.store import (
    ChainError,
    InvalidListParameter,
    ResponseStore,
    StoredResponseNotFound,
    StoredTurn,
)
from codex_proxy.translate import errors
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.images import forces_image_tool
from codex_proxy.translate.responses_compact import compacted_response, prepare_compact_request
from codex_proxy.translate.responses_history import (
    Turn,
    assemble_input,
    images_sent,
    referenced_ids,
    resolve_references,
)
from codex_proxy.translate.responses_request import (
    PreparedResponse,
    ResponsesOptions,
    prepare_responses_request,
)
from codex_proxy.translate.responses_stream import (
    LIFECYCLE,
    ResponsesRelay,
    sse_frame,
    strip_encrypted,
)
from codex_proxy.upstream.auth import CHATGPT, Credentials
from codex_proxy.upstream.client import UpstreamClient

CACHE_KEY_FIELD = "_codex_proxy_prompt_cache_key"
"""Private field of a stored Response: the conversation's cache key, carried to each turn."""
ENCRYPTED_REASONING = "reasoning.encrypted_content"


def owner_of(request: Request) -> str | None:
    """Whose stored responses a request may read and write: every store call of this module
    passes it. None (unowned rows) until the gateway has client keys; then the name of the key
    the request came with."""
    key = key_for(request)
    return key.name if key is not None and not key.admin else None


def response_id() -> str:
    """The gateway's own id: the upstream's are not unique across turns (nor kept)."""
    return "resp_" + secrets.token_hex(24)


# ----------------------------------------------------------------------------- POST


async def create_response(request: Request) -> Any:
    state = request.app.state
    settings = state.settings
    owner = owner_of(request)
    try:
        body = await read_json(request)
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            note(model=body["model"], stream=body.get("stream") is True)
        # A key that may not make images (or has none left today) never gets the tool injected.
        images_ok = await image_permission(request, key_for(request), body)
        creds = await state.auth.credentials()
        options = await responses_options(request, creds, body, images_ok=images_ok)
        chatgpt = creds.mode == CHATGPT
        chain: list[StoredTurn] = []
        cache_key = None
        if chatgpt and isinstance(body, dict):
            chain = await _load_chain(state.store, body.get("previous_response_id"), owner)
            if chain:
                cache_key = chain[-1].response.get(CACHE_KEY_FIELD)
        prepared = prepare_responses_request(body, options, cache_key=cache_key)
        check_model(key_for(request), prepared.view.model)
        upstream_body = prepared.body
        new_items: list[dict[str, Any]] | None = None
        if prepared.chatgpt:
            new_items = await _resolved_input(state.store, prepared.input, owner)
            turns = await _turns(state.store, chain, settings.image_history)
            full = assemble_input(turns, new_items, image_history=settings.image_history)
            upstream_body = {**prepared.body, "input": full}
        else:
            upstream_body = {**prepared.body, "stream": True}  # aggregated here when asked
    except OpenAIError as error:
        return error_response(error)
    note(model=prepared.view.model, stream=prepared.stream)
    headers = {DROPPED_HEADER: ",".join(prepared.dropped)} if prepared.dropped else {}
    saving = prepared.chatgpt and prepared.view.store and state.store is not None
    forces_image = forces_image_tool(upstream_body.get("tool_choice"))
    run = ResponsesRun(
        client=state.client,
        creds=creds,
        prepared=prepared,
        body=upstream_body,
        response_id=response_id() if prepared.chatgpt else None,
        keepalive_seconds=settings.sse_keepalive_seconds,
        headers=headers,
        store=state.store if saving else None,
        input_items=new_items or [],
        owner=owner,
        limiter=state.image_jobs if forces_image else None,
        shutdown=state.shutdown,
    )
    key = key_for(request)
    return CountingImages(run, request, key, run) if key is not None else run


async def responses_options(
    request: Request, creds: Credentials, body: Any, *, images_ok: bool = True
) -> ResponsesOptions:
    """The chat route's options, and the image tool's."""
    settings = request.app.state.settings
    return ResponsesOptions(
        request=await request_options(request, creds, body),
        enable_image_gen=settings.enable_image_gen and images_ok,
        image_defaults=settings.image_options,
    )


async def _load_chain(
    store: ResponseStore | None, previous: Any, owner: str | None
) -> list[StoredTurn]:
    """The stored turns up to ``previous`` (oldest first); 400s the public API's way."""
    if not isinstance(previous, str) or not previous:
        return []  # absent, or a bad type the request check reports
    if store is None:
        raise errors.invalid_request(
            "'previous_response_id' needs the gateway's response store, which is off "
            "(CODEX_RESPONSES_STORE=off). Send the whole conversation in 'input' instead.",
            "previous_response_id",
            "previous_response_not_found",
        )
    try:
        return await store.load_chain(previous, owner=owner, with_bytes=False)  # see _turns
    except StoredResponseNotFound as missing:
        raise errors.invalid_request(
            f"Previous response with id '{missing.id}' not found.",
            "previous_response_id",
            "previous_response_not_found",
        ) from None
    except ChainError as bad:
        raise errors.invalid_request(str(bad), "previous_response_id", "invalid_value") from None


async def _turns(
    store: ResponseStore | None, chain: list[StoredTurn], image_history: str
) -> list[Turn]:
    """The chain as :func:`assemble_input` takes it, with the bytes of what it sends: every
    turn's input, and only the generated images the history mode sends back (the chain was
    loaded without image bytes; a 3-image chain in ``last`` mode reads one file, not three)."""
    turns: list[Turn] = [(turn.input_items, turn.output_items) for turn in chain]
    if store is None or not chain:
        return turns
    sent = sorted(images_sent(turns, image_history))
    inputs, images = await store.restore_blobs(
        [[turn.input_items for turn in chain], [chain[t].output_items[i] for t, i in sent]]
    )
    outputs = [list(turn.output_items) for turn in chain]
    for (t, i), image in zip(sent, images, strict=True):
        outputs[t][i] = image
    return list(zip(inputs, outputs, strict=True))


async def _resolved_input(
    store: ResponseStore | None, items: list[dict[str, Any]], owner: str | None
) -> list[dict[str, Any]]:
    """The new input with item references replaced by the stored items they name."""
    found: dict[str, dict[str, Any]] = {}
    if store is not None:
        for ref in referenced_ids(items):
            with contextlib.suppress(StoredResponseNotFound):  # resolve_references 400s it
                found[ref] = await store.get_item(ref, owner=owner)
    return resolve_references(items, found.get)


class ResponsesRun:
    """One ``POST /v1/responses`` call, validated and assembled: streams or answers it."""

    def __init__(
        self,
        *,
        client: UpstreamClient,
        creds: Credentials,
        prepared: PreparedResponse,
        body: dict[str, Any],
        response_id: str | None,
        keepalive_seconds: float,
        headers: Mapping[str, str],
        store: ResponseStore | None,
        input_items: list[dict[str, Any]],
        owner: str | None = None,
        limiter: asyncio.Semaphore | None = None,
        shutdown: Shutdown | None = None,
    ) -> None:
        self.client = client
        self.creds = creds
        self.prepared = prepared
        self.body = body
        self.keepalive_seconds = keepalive_seconds
        self.headers = dict(headers)
        self.store = store
        self.input_items = input_items
        self.owner = owner
        self.limiter = limiter  # an image job (the image tool forced): one of its slots
        self.relay = ResponsesRelay(prepared.view, response_id=response_id)
        self.session_id = prepared.prompt_cache_key or None
        self.shutdown = shutdown
        self._sequence = 0

    @property
    def count(self) -> int:
        """Images this turn generated (a client key's daily image count)."""
        return sum(
            1
            for item in self.relay.items
            if item.get("type") == "image_generation_call" and item.get("result")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        out = EventStream(send)

        async def run() -> None:
            if self.prepared.stream:
                await self._stream(out)
            else:
                await self._complete(send)

        async def fail(error: OpenAIError) -> None:
            event = {
                "type": "error",
                "code": error.code,
                "message": error.message,
                "param": error.param,
                "sequence_number": self._sequence + 1,
            }
            payload = b"".join(encode_events([event]))
            await out.fail(error, self.headers, payload, "response stream")

        await guarded(receive, run, fail, "response", limiter=self.limiter, shutdown=self.shutdown)

    async def _complete(self, send: Send) -> None:
        relay = self.relay
        async with self.client.open_stream(self.creds, self.body, self.session_id or "") as up:
            headers = {**self.headers, **up.headers}
            async with aclosing(up.batches()) as batches:
                async for batch in batches:
                    for event in batch:
                        relay.feed(event)
                        if relay.done:
                            break
                    batch.clear()
                    if relay.done:
                        break
        final = relay.final_response()
        await self._save()
        for message in json_response_parts(200, final, headers):
            await send(message)

    async def _stream(self, out: EventStream) -> None:
        """Events as they come. The lifecycle events are held until the first other one, so
        a failure before any output is still a real HTTP status."""
        relay = self.relay
        held: list[bytes] = []
        async with self.client.open_stream(self.creds, self.body, self.session_id or "") as up:
            headers = {**self.headers, **up.headers, **SSE_HEADERS}
            ticking = with_ticks(up.raw_batches(), self.keepalive_seconds)
            async with aclosing(ticking) as items:
                async for item in items:
                    if item is TICK:
                        await out.write_all([*held, KEEPALIVE], headers)
                        held = []
                        continue
                    writes: list[bytes] = []
                    for event, raw in item:
                        number = event.get("sequence_number")
                        if type(number) is int and number > self._sequence:  # no bool
                            self._sequence = number
                        replaced = relay.feed(event)
                        if replaced is not None or raw is None:
                            frames = _frames(event if replaced is None else replaced)
                        else:  # passed on as the upstream sent it, byte for byte
                            frames = _raw_frames(event["type"], raw)
                        if not out.started and not writes and event.get("type") in LIFECYCLE:
                            held.extend(frames)
                            continue
                        if relay.failure is not None and not out.started and not writes:
                            raise relay.failure  # nothing sent yet: a real status
                        writes += [*held, *frames]
                        held = []
                        if relay.done:
                            break
                    item.clear()
                    if relay.done:
                        # What came before the terminal event goes out first, so the save (a
                        # commit) delays only that event; it is saved before the terminal event
                        # goes out, since the client may chain at once.
                        if len(writes) > len(frames):
                            await out.write_all(coalesce(writes[: -len(frames)]), headers)
                        await self._save()
                        await out.write_all(coalesce(writes[-len(frames) :]), headers, more=False)
                        return
                    if writes:
                        await out.write_all(coalesce(writes), headers)
        relay.finish()  # the upstream closed without a terminal event: truncated

    async def _save(self) -> None:
        relay = self.relay
        if self.store is None or relay.failure is not None or relay.response is None:
            return
        saved = {
            **relay.response,
            "output": relay.items,
            CACHE_KEY_FIELD: self.prepared.prompt_cache_key,
        }
        await self.store.save(saved, self.input_items, owner=self.owner)


def _frames(event: Mapping[str, Any]) -> list[bytes]:
    """One event the gateway changed (or made) as SSE writes, re-encoded; an image is sliced
    rather than copied whole."""
    name = event.get("type")
    head = sse_frame(name if isinstance(name, str) else "message", b"")[:-2]
    parts = list(dumps_parts(event))
    if len(parts) == 1:  # nearly every event: one write, no generators
        return [head + parts[0] + b"\n\n"]
    return list(coalesce([head, *parts, b"\n\n"]))


def _raw_frames(name: str, raw: bytes | bytearray) -> list[bytes]:
    """An unchanged event with the upstream's own data bytes, framed as :func:`sse_frame`
    frames it; a large one (an image) is a write of its own, not copied (a ``bytearray``
    from the SSE decoder goes out as it is)."""
    if len(raw) < SLICE:  # nearly every event: one write, one concatenation
        return [b"event: " + name.encode() + b"\ndata: " + raw + b"\n\n"]
    return [b"event: " + name.encode() + b"\ndata: ", raw, b"\n\n"]


# ------------------------------------------------------------------------ GET, DELETE


async def get_response(request: Request) -> Any:
    state = request.app.state
    rid = request.path_params["response_id"]
    try:
        creds = await state.auth.credentials()
        if creds.mode != CHATGPT:
            answer = await state.client.request_json(
                creds, "GET", f"/responses/{rid}", params=_forwarded_query(request)
            )
            return _json(answer)
        store = _require_store(state.store, rid)
        keep_encrypted = ENCRYPTED_REASONING in _include(request)
        stored = await store.get_response(rid, owner=owner_of(request))
    except OpenAIError as error:
        return error_response(error)
    except StoredResponseNotFound:
        return error_response(_response_not_found(rid))
    return _json(public_response(stored, keep_encrypted=keep_encrypted))


INCLUDABLE = frozenset(
    {
        "code_interpreter_call.outputs",
        "computer_call_output.output.image_url",
        "file_search_call.results",
        "message.input_image.image_url",
        "message.output_text.logprobs",
        "reasoning.encrypted_content",
        "web_search_call.action.sources",
        "web_search_call.results",
    }
)
"""The public API's ``include`` values. Only ``reasoning.encrypted_content`` changes what the
store answers (it keeps the rest of every item whole); any other value is a 400, as there."""


def _include(request: Request) -> set[str]:
    """The ``include`` query values (``include[]=`` as the SDKs write it, or ``include=``);
    an unknown one is a 400 naming it."""
    query = request.query_params
    values = {*query.getlist("include"), *query.getlist("include[]")}
    unknown = sorted(values - INCLUDABLE)
    if unknown:
        supported = ", ".join(f"'{v}'" for v in sorted(INCLUDABLE))
        raise errors.invalid_request(
            f"Invalid value for 'include': '{unknown[0]}'. Supported values are: {supported}.",
            "include",
            "invalid_value",
        )
    return values


def _forwarded_query(request: Request) -> dict[str, list[str]]:
    """The query as the public API gets it in api_key mode, repeated keys (``include[]``)
    and all."""
    query = request.query_params
    return {key: query.getlist(key) for key in query}


def public_response(stored: Mapping[str, Any], *, keep_encrypted: bool) -> dict[str, Any]:
    """A stored Response as a client sees it: no private fields, reasoning without
    ``encrypted_content`` unless asked for."""
    out = {k: v for k, v in stored.items() if k != CACHE_KEY_FIELD}
    if not keep_encrypted and isinstance(out.get("output"), list):
        out["output"] = [strip_encrypted(item) for item in out["output"]]
    return out


async def delete_response(request: Request) -> Any:
    state = request.app.state
    rid = request.path_params["response_id"]
    try:
        creds = await state.auth.credentials()
        if creds.mode != CHATGPT:
            answer = await state.client.request_json(creds, "DELETE", f"/responses/{rid}")
            return _json(answer or {"id": rid, "object": "response.deleted", "deleted": True})
        await _require_store(state.store, rid).delete(rid, owner=owner_of(request))
    except OpenAIError as error:
        return error_response(error)
    except StoredResponseNotFound:
        return error_response(_response_not_found(rid))
    return JSONResponse({"id": rid, "object": "response.deleted", "deleted": True})


async def list_input_items(request: Request) -> Any:
    state = request.app.state
    rid = request.path_params["response_id"]
    query = request.query_params
    try:
        creds = await state.auth.credentials()
        if creds.mode != CHATGPT:
            answer = await state.client.request_json(
                creds, "GET", f"/responses/{rid}/input_items", params=_forwarded_query(request)
            )
            return _json(answer)
        store = _require_store(state.store, rid)
        keep_encrypted = ENCRYPTED_REASONING in _include(request)
        page = await store.list_input_items(
            rid,
            owner=owner_of(request),
            after=query.get("after") or None,
            before=query.get("before") or None,
            limit=_limit(query.get("limit")),
            order=query.get("order") or "desc",  # type: ignore[arg-type]  # the store checks
        )
    except OpenAIError as error:
        return error_response(error)
    except StoredResponseNotFound:
        return error_response(_response_not_found(rid))
    except InvalidListParameter as bad:
        return error_response(errors.invalid_request(str(bad), bad.param, "invalid_value"))
    if not keep_encrypted:  # reasoning sent back as input: as GET of the response does
        page = {**page, "data": [strip_encrypted(item) for item in page["data"]]}
    return _json(page)


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return 20
    try:
        return int(raw)
    except ValueError:
        raise errors.invalid_request(
            f"Invalid 'limit': expected an integer, got {raw!r}.", "limit", "invalid_value"
        ) from None


def _require_store(store: ResponseStore | None, rid: str) -> ResponseStore:
    if store is None:
        raise errors.not_found(
            f"Response with id '{rid}' not found: the gateway's response store is off "
            "(CODEX_RESPONSES_STORE=off)."
        )
    return store


def _response_not_found(rid: str) -> OpenAIError:
    return errors.not_found(f"Response with id '{rid}' not found.")


def _json(payload: Any, headers: Mapping[str, str] | None = None) -> _JSONParts:
    return _JSONParts(payload, headers or {})


class _JSONParts:
    """A 200 JSON answer that may carry images: sent in slices, never copied whole."""

    def __init__(self, payload: Any, headers: Mapping[str, str]) -> None:
        self.payload = payload
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        for message in json_response_parts(200, self.payload, self.headers):
            await send(message)


# ---------------------------------------------------------------------------- compact


async def compact_response(request: Request) -> Any:
    state = request.app.state
    settings = state.settings
    try:
        body = await read_json(request)
        creds = await state.auth.credentials()
        prepared = prepare_compact_request(body, await responses_options(request, creds, body))
        note(model=prepared.model, stream=False)
        upstream_body = prepared.body
        chatgpt = creds.mode == CHATGPT
        if chatgpt:
            owner = owner_of(request)
            chain = await _load_chain(state.store, prepared.previous_response_id, owner)
            new_items = await _resolved_input(state.store, prepared.body["input"], owner)
            turns = await _turns(state.store, chain, settings.image_history)
            full = assemble_input(turns, new_items, image_history=settings.image_history)
            upstream_body = {**prepared.body, "input": full}
        answer = await state.client.request_json(creds, "POST", "/responses/compact", upstream_body)
        if chatgpt:
            if not isinstance(answer, dict):
                raise errors.malformed_event("the compaction answer is not a JSON object")
            answer = compacted_response(
                answer, response_id=response_id(), created_at=int(time.time())
            )
    except OpenAIError as error:
        return error_response(error)
    headers = {DROPPED_HEADER: ",".join(prepared.dropped)} if prepared.dropped else {}
    return _json(answer, headers)
