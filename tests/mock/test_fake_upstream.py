"""The fake Responses upstream is faithful: real clients (the official SDK, httpx) see what the
ChatGPT backend would send, and the misbehaviours (stall, drop, garbage) look real on the wire."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
)

from codex_proxy.mock.events import ResponseScript, text_response
from codex_proxy.mock.server import (
    REJECTED_PARAMS,
    Drop,
    FakeUpstream,
    Pause,
    RawData,
    Reply,
)

AUTH = {"authorization": "Bearer test-token"}
USER_HELLO = [{"role": "user", "content": [{"type": "input_text", "text": "hello there"}]}]


def valid_body(**changes: Any) -> dict[str, Any]:
    """A request the strict backend accepts."""
    body: dict[str, Any] = {
        "model": "gpt-5-codex",
        "instructions": "",
        "input": USER_HELLO,
        "store": False,
        "stream": True,
    }
    body.update(changes)
    return body


@pytest.fixture(scope="module")
def server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def fake(server: FakeUpstream) -> Iterator[FakeUpstream]:
    server.clear()
    server.strict = True
    yield server
    server.strict = True


@pytest.fixture(scope="module")
def sdk(server: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def http(server: FakeUpstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
        yield client


def create_stream(sdk: openai.OpenAI, **changes: Any) -> Any:
    kwargs: dict[str, Any] = {
        "model": "gpt-5-codex",
        "input": USER_HELLO,
        "instructions": "",
        "store": False,
        "stream": True,
    }
    kwargs.update(changes)
    return sdk.responses.create(**kwargs)


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> float:
    """Seconds until ``predicate()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail("condition not reached in time")
        time.sleep(0.005)
    return time.monotonic() - start


# -- fidelity with the official SDK -------------------------------------------------------------


def test_sdk_iterates_typed_events_in_sequence(fake: FakeUpstream, sdk: openai.OpenAI) -> None:
    script = text_response(["Hel", "lo"])
    fake.enqueue(Reply(events=script))

    events = list(create_stream(sdk))

    assert [e.type for e in events] == [e["type"] for e in script]
    assert [e.sequence_number for e in events] == list(range(len(script)))
    assert isinstance(events[0], ResponseCreatedEvent)
    assert [e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)] == ["Hel", "lo"]
    assert isinstance(events[-1], ResponseCompletedEvent)
    assert events[-1].response.usage is not None and events[-1].response.usage.total_tokens == 32


def test_async_sdk_streams_too(fake: FakeUpstream) -> None:
    fake.enqueue(Reply(events=text_response("async works")))

    async def run() -> str:
        async with openai.AsyncOpenAI(base_url=fake.url, api_key="x", max_retries=0) as client:
            stream = await client.responses.create(
                model="gpt-5", input=USER_HELLO, instructions="", store=False, stream=True
            )
            return "".join(
                [e.delta async for e in stream if e.type == "response.output_text.delta"]
            )

    assert asyncio.run(run()) == "async works"


def test_stream_helper_with_backend_style_empty_completed_output(
    fake: FakeUpstream, sdk: openai.OpenAI
) -> None:
    """Like the real backend, ``response.completed`` carries ``output: []``; the SDK helper
    keeps that empty list as the final output, so the text must be taken from the events."""
    fake.enqueue(Reply(events=text_response("Hello world")))

    with sdk.responses.stream(
        model="gpt-5", input=USER_HELLO, instructions="", store=False
    ) as stream:
        deltas = [e for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()

    assert deltas[-1].snapshot == "Hello world"
    assert final.output == []


@pytest.mark.parametrize("shape", ["with_output", "output_omitted"])
def test_stream_helper_final_response_text(
    fake: FakeUpstream, sdk: openai.OpenAI, shape: str
) -> None:
    script = ResponseScript(model="gpt-5")
    script.start()
    script.message(["Hello", " world"])
    script.completed(with_output=True)
    if shape == "output_omitted":  # the SDK then rebuilds the output from the item events
        del script.events[-1]["response"]["output"]
    fake.enqueue(Reply(events=script.events))

    with sdk.responses.stream(
        model="gpt-5", input=USER_HELLO, instructions="", store=False
    ) as stream:
        final = stream.get_final_response()

    assert final.output_text == "Hello world"
    assert final.id == "resp_1"


def test_nested_error_event_raises_api_error(fake: FakeUpstream, sdk: openai.OpenAI) -> None:
    script = ResponseScript()
    script.start()
    script.error("insufficient_quota", "You ran out", nested=True)
    fake.enqueue(Reply(events=script.events))

    seen = []
    with pytest.raises(openai.APIError) as info:
        for event in create_stream(sdk):
            seen.append(event.type)

    assert seen == ["response.created", "response.in_progress"]
    assert info.value.message == "You ran out"
    assert info.value.body == {
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "message": "You ran out",
        "param": None,
    }


def test_flat_error_event_is_yielded_not_raised(fake: FakeUpstream, sdk: openai.OpenAI) -> None:
    script = ResponseScript()
    script.start()
    script.error("server_error", "boom", nested=False)
    fake.enqueue(Reply(events=script.events))

    events = list(create_stream(sdk))

    assert isinstance(events[-1], ResponseErrorEvent)
    assert (events[-1].code, events[-1].message) == ("server_error", "boom")


def test_http_error_reply_maps_to_sdk_exception(fake: FakeUpstream, sdk: openai.OpenAI) -> None:
    body = {"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached"}}
    fake.enqueue(Reply(status=429, body=body, headers={"x-request-id": "req_429"}))

    with pytest.raises(openai.RateLimitError) as info:
        create_stream(sdk)

    assert info.value.body == body["error"]
    assert str(info.value) == "Error code: 429 - The usage limit has been reached"
    assert info.value.request_id == "req_429"


def test_default_reply_echoes_user_text_and_model(fake: FakeUpstream, sdk: openai.OpenAI) -> None:
    events = list(create_stream(sdk, model="gpt-5-codex-mini"))

    text = "".join(e.delta for e in events if isinstance(e, ResponseTextDeltaEvent))
    assert text == "Mock reply to: hello there"
    assert len([e for e in events if isinstance(e, ResponseTextDeltaEvent)]) == 5
    assert events[0].response.model == "gpt-5-codex-mini"
    assert events[0].response.id == events[-1].response.id != "resp_1"


def test_default_reply_tool_command_calls_the_tool(fake: FakeUpstream, sdk: openai.OpenAI) -> None:
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    command = [{"role": "user", "content": '/tool get_weather {"city": "Paris"}'}]

    events = list(create_stream(sdk, input=command, tools=tools))

    deltas = [e.delta for e in events if isinstance(e, ResponseFunctionCallArgumentsDeltaEvent)]
    assert "".join(deltas) == '{"city": "Paris"}'
    item = next(e.item for e in events if isinstance(e, ResponseOutputItemDoneEvent))
    assert (item.type, item.name, item.arguments) == (
        "function_call",
        "get_weather",
        '{"city": "Paris"}',
    )


def test_recorded_request_holds_headers_body_and_query(
    fake: FakeUpstream, sdk: openai.OpenAI, http: httpx.Client
) -> None:
    list(create_stream(sdk))
    http.get("/models", params={"client_version": "1.2.3"})

    first, second = fake.requests
    assert (first.method, first.path) == ("POST", "/responses")
    assert first.headers["authorization"] == "Bearer x"
    assert first.headers["user-agent"].startswith("OpenAI/Python")
    assert first.body["store"] is False and first.body["input"] == USER_HELLO
    assert first.raw.startswith(b"{")
    assert (second.method, second.path) == ("GET", "/models")
    assert second.query == {"client_version": "1.2.3"}
    assert fake.responses_requests == [first]


def test_big_event_line_passes_through_the_sdk(fake: FakeUpstream, sdk: openai.OpenAI) -> None:
    image = "A" * 20_000_000
    script = ResponseScript()
    script.start()
    script.image(image)
    script.completed()
    fake.enqueue(Reply(events=script.events))

    done = [e for e in create_stream(sdk) if isinstance(e, ResponseOutputItemDoneEvent)]

    assert done[0].item.result == image


def test_streams_thousands_of_events_quickly(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.enqueue(Reply(events=text_response(["x"] * 5000)))

    start = time.monotonic()
    with http.stream("POST", "/responses", json=valid_body()) as response:
        count = sum(1 for line in response.iter_lines() if line.startswith("data: "))

    assert count == 5000 + 8
    assert time.monotonic() - start < 3


# -- strict validation ------------------------------------------------------------------------


def test_strict_rejection_is_a_bad_request_for_the_sdk(
    fake: FakeUpstream, sdk: openai.OpenAI
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        create_stream(sdk, temperature=0.2)

    assert info.value.status_code == 400
    assert info.value.body == {"detail": "Unsupported parameter: temperature"}
    # SDK v3 quotes only an ``error.message``/``message`` in str(exc), never a FastAPI detail
    assert str(info.value) == "Error code: 400"


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"store": None}, "Store must be set to false"),
        ({"store": True}, "Store must be set to false"),
        ({"stream": False}, "Stream must be set to true"),
        ({"stream": None}, "Stream must be set to true"),
        ({"input": "hello"}, "Input must be a list"),
        (
            {"input": [{"role": "system", "content": "be nice"}, *USER_HELLO]},
            "System messages are not allowed",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
            "Missing required parameter: 'tools[0].name'",
        ),
        (
            {"input": [{"type": "function_call_output", "call_id": "call_9", "output": "1"}]},
            "No tool call found for function call output with call_id call_9.",
        ),
        *[({name: 1}, f"Unsupported parameter: {name}") for name in REJECTED_PARAMS],
    ],
)
def test_strict_mode_rejects_like_the_backend(
    fake: FakeUpstream, http: httpx.Client, changes: dict[str, Any], detail: str
) -> None:
    body = {k: v for k, v in valid_body(**changes).items() if v is not None}
    fake.enqueue(Reply(events=text_response("kept")))

    response = http.post("/responses", json=body)

    assert response.status_code == 400
    assert response.json() == {"detail": detail}
    assert len(fake.responses_requests) == 1  # recorded...
    assert fake.queued == 1  # ...but the queued reply is still there


def test_strict_mode_accepts_paired_calls_and_developer_messages(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    items = [
        {"role": "developer", "content": "be nice"},
        *USER_HELLO,
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "42"},
        {"type": "function_call", "call_id": "call_2", "name": "f", "arguments": "{}"},
    ]
    tools = [{"type": "function", "name": "f", "parameters": {}}, {"type": "image_generation"}]

    response = http.post("/responses", json=valid_body(input=items, tools=tools))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")


def test_missing_authorization_is_an_openai_style_401(fake: FakeUpstream) -> None:
    response = httpx.post(f"{fake.url}/responses", json=valid_body())

    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "message": "Missing bearer or basic authentication in header",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_non_strict_mode_accepts_anything(fake: FakeUpstream) -> None:
    fake.strict = False

    response = httpx.post(f"{fake.url}/v1/responses", json={"input": "hi", "temperature": 0.1})

    assert response.status_code == 200
    assert "Mock reply to: hi" in response.text


# -- misbehaviour on request ------------------------------------------------------------------


def test_pause_holds_the_stream_open(fake: FakeUpstream, http: httpx.Client) -> None:
    events = text_response("late")
    fake.enqueue(Reply(events=[events[0], Pause(0.3), *events[1:]]))

    arrivals: dict[str, float] = {}
    with http.stream("POST", "/responses", json=valid_body()) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                arrivals.setdefault(line[7:], time.monotonic())

    gap = arrivals["response.in_progress"] - arrivals["response.created"]
    assert 0.25 < gap < 1.0
    assert "response.completed" in arrivals


def test_delay_stalls_before_the_headers(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.enqueue(Reply(events=text_response("slow"), delay=0.3))

    start = time.monotonic()
    with http.stream("POST", "/responses", json=valid_body()) as response:
        waited = time.monotonic() - start
        response.read()

    assert waited >= 0.28
    assert response.status_code == 200


def test_drop_breaks_the_chunked_body(fake: FakeUpstream, http: httpx.Client) -> None:
    events = text_response("never finished")
    fake.enqueue(Reply(events=[*events[:4], Drop(), *events[4:]]))

    received = bytearray()
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", "/responses", json=valid_body()) as response,
    ):
        for chunk in response.iter_raw():
            received += chunk

    assert response.status_code == 200
    assert received.count(b"\n\n") == 4
    assert b"response.completed" not in received


def test_drop_is_a_connection_error_for_the_sdk(fake: FakeUpstream, sdk: openai.OpenAI) -> None:
    events = text_response("cut")
    fake.enqueue(Reply(events=[*events[:3], Drop()]))

    seen = []
    with pytest.raises(openai.APIConnectionError):
        for event in create_stream(sdk):
            seen.append(event.type)

    assert len(seen) == 3


def test_raw_data_is_written_verbatim(fake: FakeUpstream, http: httpx.Client) -> None:
    events = text_response("x")
    garbage = b"data: {not json\n\n"
    fake.enqueue(Reply(events=[events[0], RawData(garbage), *events[1:]]))

    body = http.post("/responses", json=valid_body()).content

    first = b"event: response.created\ndata: "
    assert body.startswith(first)
    assert body.split(b"\n\n")[1] + b"\n\n" == garbage
    assert body.count(b"event: ") == len(events)


def test_reply_headers_are_sent(fake: FakeUpstream, http: httpx.Client) -> None:
    headers = {"x-codex-primary-used-percent": "12.5", "x-codex-primary-window-minutes": "300"}
    fake.enqueue(Reply(events=text_response("hi"), headers=headers))

    response = http.post("/responses", json=valid_body())

    assert response.headers["x-codex-primary-used-percent"] == "12.5"
    assert response.headers["x-codex-primary-window-minutes"] == "300"
    assert response.headers["x-request-id"].startswith("req_")


def test_disconnect_during_pause_is_counted_quickly(fake: FakeUpstream, http: httpx.Client) -> None:
    events = text_response("abandoned")
    fake.enqueue(Reply(events=[*events[:3], Pause(30), *events[3:]]))

    with http.stream("POST", "/responses", json=valid_body()) as response:
        chunks = response.iter_raw()  # keep it: a collected iterator closes the connection
        next(chunks)
        time.sleep(0.05)
        assert (fake.open_streams, fake.disconnects) == (1, 0)
    elapsed = wait_until(lambda: fake.disconnects == 1)

    assert elapsed < 0.5
    assert fake.open_streams == 0


def test_completed_and_concurrent_streams_are_not_disconnects(fake: FakeUpstream) -> None:
    events = text_response("together")
    for _ in range(3):
        fake.enqueue(Reply(events=[events[0], Pause(0.3), *events[1:]]))
    results: list[int] = []

    def consume() -> None:
        response = httpx.post(f"{fake.url}/responses", json=valid_body(), headers=AUTH)
        results.append(response.text.count("event: "))

    threads = [threading.Thread(target=consume) for _ in range(3)]
    for thread in threads:
        thread.start()
    wait_until(lambda: fake.open_streams == 3)
    for thread in threads:
        thread.join(timeout=5)

    assert results == [len(events)] * 3
    assert (fake.open_streams, fake.disconnects) == (0, 0)


def test_stop_cuts_open_streams() -> None:
    local = FakeUpstream().start()
    events = text_response("stopping")
    local.enqueue(Reply(events=[*events[:2], Pause(30), *events[2:]]))

    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", f"{local.url}/responses", json=valid_body(), headers=AUTH) as r,
    ):
        chunks = r.iter_raw()
        next(chunks)
        start = time.monotonic()
        local.stop()
        assert time.monotonic() - start < 2
        list(chunks)

    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{local.url}/models", headers=AUTH)


# -- models catalog ---------------------------------------------------------------------------


def test_models_catalog(fake: FakeUpstream, http: httpx.Client) -> None:
    response = http.get("/models", params={"client_version": "0.50.0"})

    models = response.json()["models"]
    assert response.status_code == 200
    assert models[0]["slug"] == "gpt-6-astra"
    assert {m["visibility"] for m in models} == {"list", "hide"}
    assert all({"slug", "display_name", "supported_in_api", "priority"} <= set(m) for m in models)


def test_models_can_be_replaced_or_fail(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.models = [{"slug": "only-one", "visibility": "list"}]
    assert http.get("/models").json() == {"models": [{"slug": "only-one", "visibility": "list"}]}

    fake.models_reply = Reply(status=503, body={"detail": "busy"})
    assert http.get("/models").status_code == 503

    fake.clear()
    assert len(http.get("/models").json()["models"]) > 1


# -- HTTP control surface ---------------------------------------------------------------------


def test_enqueue_over_http(fake: FakeUpstream, http: httpx.Client, sdk: openai.OpenAI) -> None:
    events = text_response("scripted remotely")
    payload = [
        {"events": [events[0], {"pause": 0.01}, *events[1:]], "headers": {"x-test": "1"}},
        {"status": 500, "body": {"detail": "upstream broke"}},
        {"events": [events[0], {"raw": "data: {oops\n\n"}, {"drop": True}]},
    ]

    assert http.post("/_mock/enqueue", json=payload).json() == {"queued": 3}

    text = "".join(e.delta for e in create_stream(sdk) if isinstance(e, ResponseTextDeltaEvent))
    assert text == "scripted remotely"
    with pytest.raises(openai.InternalServerError):
        create_stream(sdk)
    with (
        http.stream("POST", "/responses", json=valid_body()) as response,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        response.read()
    assert fake.queued == 0


def test_enqueue_over_http_rejects_bad_replies(fake: FakeUpstream, http: httpx.Client) -> None:
    response = http.post("/_mock/enqueue", json=[{"events": [{"sleep": 1}]}])

    assert response.status_code == 400
    assert "not an event or marker" in response.json()["detail"]
    assert fake.queued == 0


def test_requests_state_and_reset_over_http(fake: FakeUpstream, http: httpx.Client) -> None:
    http.post("/responses", json=valid_body()).read()

    recorded = http.get("/_mock/requests").json()
    assert len(recorded) == 1
    assert recorded[0]["path"] == "/responses"
    assert recorded[0]["headers"]["authorization"] == AUTH["authorization"]
    assert recorded[0]["body"]["model"] == "gpt-5-codex"
    state = http.get("/_mock/state").json()
    assert state == {"open_streams": 0, "disconnects": 0, "queued": 0, "requests": 1}

    http.post("/_mock/reset")

    assert http.get("/_mock/requests").json() == []
    assert fake.requests == []


# -- the late-2026 backend: catalog default, refusals, Cloudflare, usage -----------------------


def test_default_model_moves(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.set_default_model("gpt-5.4-mini")  # already listed: moved to the front, once
    slugs = [m["slug"] for m in http.get("/models").json()["models"]]
    assert slugs[0] == "gpt-5.4-mini" and slugs.count("gpt-5.4-mini") == 1
    answer = http.post("/_mock/models", json={"default": "gpt-7"})
    assert answer.json()["models"][:2] == ["gpt-7", "gpt-5.4-mini"]
    assert http.post("/_mock/models", json=[1]).status_code == 400


def test_catalog_only_refuses_unlisted_models(fake: FakeUpstream, http: httpx.Client) -> None:
    assert http.post("/responses", json=valid_body(model="gpt-5.3-codex")).status_code == 200
    http.post("/_mock/behaviour", json={"catalog_only": True}).raise_for_status()
    refused = http.post("/responses", json=valid_body(model="gpt-5.3-codex"))
    assert refused.status_code == 400
    assert refused.json() == {
        "detail": "The 'gpt-5.3-codex' model is not supported when using Codex with a ChatGPT "
        "account."
    }
    hidden = http.post("/responses", json=valid_body(model="codex-internal-preview"))
    assert hidden.status_code == 400
    assert http.post("/responses", json=valid_body(model="gpt-5.5")).status_code == 200


def test_version_floor(fake: FakeUpstream, http: httpx.Client) -> None:
    fake.behave(min_client_version="0.150.0")
    for version in (None, "0.149.9", "junk"):
        headers = {"version": version} if version else {}
        old = http.post("/responses", json=valid_body(model="gpt-5.5"), headers=headers)
        assert old.status_code == 400
        assert "requires a newer version of Codex" in old.json()["detail"]
    for version in ("0.150.0", "0.171.0-alpha.1", "1.0.0"):
        ok = http.post("/responses", json=valid_body(), headers={"version": version})
        assert ok.status_code == 200
    bad = http.post("/_mock/behaviour", json={"min_client_version": "new"})
    assert bad.status_code == 400
    assert http.post("/_mock/behaviour", json={"sideways": 1}).status_code == 400


@pytest.mark.parametrize("shape", ["challenge", "html", "1010"])
def test_edge_blocks(fake: FakeUpstream, http: httpx.Client, shape: str) -> None:
    http.post("/_mock/behaviour", json={"edge_block": shape}).raise_for_status()
    for answer in (http.post("/responses", json=valid_body()), http.get("/models")):
        assert answer.status_code == 403
        if shape == "challenge":
            assert answer.headers["cf-mitigated"] == "challenge"
            assert answer.text.startswith("<!DOCTYPE html>")
        elif shape == "1010":
            assert answer.text == "error code: 1010"
        else:
            assert answer.headers["content-type"].startswith("text/html")
    assert http.post("/_mock/behaviour", json={"edge_block": "nope"}).status_code == 400
    fake.clear()
    assert http.get("/models").status_code == 200


def test_usage_endpoint(fake: FakeUpstream, http: httpx.Client) -> None:
    for path in ("/wham/usage", "/backend-api/wham/usage"):
        usage = http.get(path).json()
        window = usage["rate_limit"]["primary_window"]
        assert window["limit_window_seconds"] == 18000
        assert window["reset_at"] - window["reset_after_seconds"] == pytest.approx(
            time.time(), abs=60
        )
    http.post("/_mock/usage", json={"plan_type": "pro"}).raise_for_status()
    assert http.get("/wham/usage").json() == {"plan_type": "pro"}
    http.post("/_mock/usage", json={"status": 500, "body": {"detail": "down"}})
    assert http.get("/wham/usage").status_code == 500
    assert http.get("/wham/usage", headers={"authorization": ""}).status_code == 401


# -- statelessness (protocol.md 7.1-7.2) and compaction (7.4) --------------------------------


def test_refuses_previous_response_id(fake: FakeUpstream, http: httpx.Client) -> None:
    answer = http.post("/responses", json=valid_body(previous_response_id="resp_1"))
    assert answer.status_code == 400
    assert answer.json() == {"detail": "Unsupported parameter: previous_response_id"}


@pytest.mark.parametrize(
    "item",
    [
        {"type": "item_reference", "id": "msg_1"},
        {"type": "image_generation_call", "id": "ig_1"},
        {"type": "message", "id": "msg_2", "role": "user", "content": "hi"},
    ],
)
def test_items_with_server_ids_are_not_found(
    fake: FakeUpstream, http: httpx.Client, item: dict[str, Any]
) -> None:
    answer = http.post("/responses", json=valid_body(input=[item]))
    assert answer.status_code == 404
    assert answer.json()["detail"].startswith(f"Item with id '{item['id']}' not found.")
    assert fake.queued == 0 and len(fake.responses_requests) == 1


def test_compact_answers_user_messages_and_a_compaction(
    fake: FakeUpstream, http: httpx.Client
) -> None:
    body = {"model": "gpt-5-codex", "instructions": "", "input": USER_HELLO}
    answer = http.post("/responses/compact", json=body)
    assert answer.status_code == 200
    output = answer.json()["output"]
    assert output[:-1] == [i for i in USER_HELLO if i.get("role") == "user"]
    assert output[-1]["type"] == "compaction" and output[-1]["encrypted_content"]
    assert fake.responses_requests == []  # not a /responses call
