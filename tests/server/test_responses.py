"""``/v1/responses`` end to end: the openai SDK, the running gateway, the fake upstream.

The fake enforces the backend's statelessness (protocol.md 7.1-7.2): it refuses
``previous_response_id`` and 404s any item id, so every chained turn here proves that the
gateway replayed the stored history in full.
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import orjson
import pytest
from pydantic import BaseModel

from codex_proxy.mock.events import ResponseScript, text_response
from codex_proxy.mock.server import Drop, FakeUpstream, Pause, RawData, Reply
from codex_proxy.store.blobs import BlobStore

from ..conftest import Gateway, peak_open_streams, wait_for

MODEL = "gpt-5.2-codex"
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def without_id(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "id"}


def raw_create(client: openai.OpenAI, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """The parsed Response and the JSON the gateway sent."""
    raw = client.responses.with_raw_response.create(model=MODEL, **kwargs)
    return raw.parse(), raw.http_response.json()


@pytest.fixture
def image_gateway(make_gateway) -> Gateway:
    return make_gateway(enable_image_gen=True)


# -- create ----------------------------------------------------------------------------------


def test_create_not_streaming(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    response = client.responses.create(model=MODEL, input="hi")
    assert response.output_text == "Mock reply to: hi"
    assert response.id.startswith("resp_") and len(response.id) == 5 + 48
    assert response.store is True and response.previous_response_id is None
    sent = upstream.responses_requests[0].body
    assert sent["store"] is False and sent["stream"] is True
    assert sent["input"] == [user("hi")]
    assert "previous_response_id" not in sent


def test_create_streaming(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    events = list(client.responses.create(model=MODEL, input="hello there", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "Mock reply to: hello there"
    final = events[-1].response
    assert final.output_text == deltas  # rebuilt: the backend sends output []
    assert {e.response.id for e in events if hasattr(e, "response")} == {final.id}


def test_stream_helper_final_response(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    with client.responses.stream(model=MODEL, input="stream me") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == "Mock reply to: stream me"


class Weather(BaseModel):
    city: str
    celsius: int


def test_parse_with_text_format(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response('{"city": "Paris", "celsius": 22}')))
    parsed = client.responses.parse(model=MODEL, input="Weather?", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Paris", celsius=22)
    fmt = upstream.responses_requests[0].body["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["name"] == "Weather"


def test_dropped_params_header(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    raw = client.responses.with_raw_response.create(model=MODEL, input="hi", temperature=0.2)
    assert raw.headers["x-codex-proxy-dropped-params"] == "temperature"
    assert "temperature" not in upstream.responses_requests[0].body


# -- stored responses ------------------------------------------------------------------------


def test_retrieve_input_items_delete(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    created = client.responses.create(model=MODEL, input="remember me")
    got = client.responses.retrieve(created.id)
    assert got.id == created.id and got.output_text == "Mock reply to: remember me"
    assert got.model_dump() == created.model_dump()
    items = client.responses.input_items.list(created.id)
    assert [(i.type, i.role, i.content[0].text) for i in items.data] == [
        ("message", "user", "remember me")
    ]
    assert items.data[0].id  # the store gives input items ids
    assert client.responses.delete(created.id) is None  # the SDK returns nothing
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_delete_answer_shape(http: httpx.Client, client: openai.OpenAI) -> None:
    created = client.responses.create(model=MODEL, input="bye")
    answer = http.delete(f"/v1/responses/{created.id}")
    assert answer.json() == {"id": created.id, "object": "response.deleted", "deleted": True}
    assert http.delete(f"/responses/{created.id}").status_code == 404  # also without /v1


def test_input_items_pagination(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    created = client.responses.create(
        model=MODEL, input=[user("a"), user("b"), user("c")], store=True
    )
    first = client.responses.input_items.list(created.id, limit=2, order="asc")
    assert [i.content[0].text for i in first.data] == ["a", "b"] and first.has_more
    rest = client.responses.input_items.list(created.id, after=first.data[-1].id, order="asc")
    assert [i.content[0].text for i in rest.data] == ["c"]
    with pytest.raises(openai.BadRequestError):
        client.responses.input_items.list(created.id, order="sideways")  # type: ignore[arg-type]


def test_include_encrypted_reasoning_on_retrieve_and_input_items(
    client: openai.OpenAI, http: httpx.Client, upstream: FakeUpstream
) -> None:
    """``reasoning.encrypted_content`` comes back only when ``include`` asks for it, from the
    response and from its input items alike (as the SDK sends it: ``include[]``)."""
    s = ResponseScript()
    s.start()
    s.reasoning([["thinking"]], encrypted_content="gAAAA-out")
    s.message(["done"])
    s.completed()
    upstream.enqueue(Reply(events=s.events))
    sent_back = {
        "type": "reasoning",
        "id": "rs_client",
        "summary": [],
        "encrypted_content": "gAAAA-in",
    }
    created = client.responses.create(model=MODEL, input=[user("hi"), sent_back])
    include = ["reasoning.encrypted_content"]

    def encrypted(items: list[Any]) -> list[Any]:
        return [i.encrypted_content for i in items if i.type == "reasoning"]

    assert encrypted(client.responses.retrieve(created.id).output) == [None]
    assert encrypted(client.responses.retrieve(created.id, include=include).output) == ["gAAAA-out"]
    assert encrypted(client.responses.input_items.list(created.id).data) == [None]
    listed = client.responses.input_items.list(created.id, include=include)  # type: ignore[arg-type]
    assert encrypted(listed.data) == ["gAAAA-in"]
    for path in (f"/v1/responses/{created.id}", f"/v1/responses/{created.id}/input_items"):
        bad = http.get(path, params={"include[]": "everything"})
        assert bad.status_code == 400
        assert (bad.json()["error"]["param"], bad.json()["error"]["code"]) == (
            "include",
            "invalid_value",
        )


def test_store_false_is_not_kept(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    created = client.responses.create(model=MODEL, input="forget me", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_unknown_ids(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_unknown")
    with pytest.raises(openai.NotFoundError):
        client.responses.delete("resp_unknown")
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list("resp_unknown")
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_unknown")
    assert info.value.code == "previous_response_not_found"
    assert info.value.param == "previous_response_id"
    assert info.value.body["message"] == "Previous response with id 'resp_unknown' not found."
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input=[{"type": "item_reference", "id": "msg_nope"}])
    assert info.value.code == "item_not_found"
    assert upstream.responses_requests == []


def test_store_off_refuses_previous_response_id(make_gateway, upstream: FakeUpstream) -> None:
    client = make_gateway(responses_store=False).client()
    created = client.responses.create(model=MODEL, input="hi")
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="again", previous_response_id=created.id)
    assert "CODEX_RESPONSES_STORE=off" in info.value.message
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


# -- chains ----------------------------------------------------------------------------------


def test_three_turn_chain_replays_history(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    first, first_json = raw_create(client, input="one")
    second, second_json = raw_create(client, input="two", previous_response_id=first.id)
    third = client.responses.create(model=MODEL, input="three", previous_response_id=second.id)
    assert second.previous_response_id == first.id
    assert third.output_text == "Mock reply to: three"
    sent = [r.body for r in upstream.responses_requests]
    assert sent[2]["input"] == [
        user("one"),
        *[without_id(i) for i in first_json["output"]],
        user("two"),
        *[without_id(i) for i in second_json["output"]],
        user("three"),
    ]
    assert all("previous_response_id" not in body for body in sent)
    assert len({body["prompt_cache_key"] for body in sent}) == 1  # one cache for the chain


def test_client_cache_key_is_carried_down(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    first = client.responses.create(model=MODEL, input="one", prompt_cache_key="conv-42")
    client.responses.create(model=MODEL, input="two", previous_response_id=first.id)
    assert [r.body["prompt_cache_key"] for r in upstream.responses_requests] == [
        "conv-42",
        "conv-42",
    ]


def test_function_tool_round_trip(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    first = client.responses.create(
        model=MODEL, input='/tool get_weather {"city": "Paris"}', tools=[WEATHER_TOOL]
    )
    (call,) = [i for i in first.output if i.type == "function_call"]
    assert (call.name, call.arguments) == ("get_weather", '{"city": "Paris"}')
    upstream.enqueue(Reply(events=text_response("Sunny in Paris.")))
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "Sunny in Paris."
    sent = upstream.responses_requests[1].body["input"]
    assert [i["type"] for i in sent] == ["message", "function_call", "function_call_output"]
    assert sent[1]["call_id"] == sent[2]["call_id"] == call.call_id
    assert "id" not in sent[1]


def test_image_generated_then_edited(image_gateway: Gateway, upstream: FakeUpstream) -> None:
    client = image_gateway.client()
    first = client.responses.create(model=MODEL, input="Draw a red fox")
    (image,) = [i for i in first.output if i.type == "image_generation_call"]
    assert base64.b64decode(image.result)[:8] == b"\x89PNG\r\n\x1a\n"
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        input="Make the picture's background a kitchen counter",
    )
    (edited,) = [i for i in second.output if i.type == "image_generation_call"]
    assert edited.revised_prompt.startswith("An edited mock image")
    uri = f"data:image/png;base64,{image.result}"
    assert uri in images_sent(upstream.responses_requests[1].body["input"])

    third = client.responses.create(
        model=MODEL,
        input=[
            {"type": "image_generation_call", "id": image.id},
            {"role": "user", "content": "Redraw this picture in blue"},
        ],
    )
    assert [i.type for i in third.output][-1] == "image_generation_call"
    sent = upstream.responses_requests[2].body["input"]
    assert images_sent(sent) == [uri]
    assert sent[-1] == user("Redraw this picture in blue")


def images_sent(items: list[dict[str, Any]]) -> list[str]:
    return [
        part["image_url"]
        for item in items
        for part in item.get("content", [])
        if isinstance(part, dict) and part.get("type") == "input_image"
    ]


def test_last_image_mode_reads_only_the_last_image(
    make_gateway, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain of three generated images, CODEX_IMAGE_HISTORY=last: the next turn reads one
    image file from the store, not three."""
    client = make_gateway(image_history="last").client()
    pictures = [
        base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes([n]) * 4096).decode() for n in range(3)
    ]
    previous = None
    for picture in pictures:
        s = ResponseScript()
        s.start()
        s.image(picture)
        s.completed()
        upstream.enqueue(Reply(events=s.events))
        previous = client.responses.create(
            model=MODEL, input="draw", previous_response_id=previous
        ).id
    reads: list[str] = []
    real_read = BlobStore.read
    monkeypatch.setattr(BlobStore, "read", lambda self, d: reads.append(d) or real_read(self, d))
    client.responses.create(model=MODEL, input="again", previous_response_id=previous)
    assert len(reads) == 1
    sent = upstream.responses_requests[-1].body["input"]
    assert images_sent(sent) == [f"data:image/png;base64,{pictures[-1]}"]


@pytest.mark.parametrize(("tool_choice", "peak"), [({"type": "image_generation"}, 1), ("auto", 2)])
def test_forced_image_tool_takes_an_image_slot(
    make_gateway, upstream: FakeUpstream, tool_choice: Any, peak: int
) -> None:
    """CODEX_IMAGE_CONCURRENCY=1: two calls forcing the image tool run one after the other,
    as on the chat route; other calls are not image jobs and run side by side."""
    client = make_gateway(image_concurrency=1, enable_image_gen=True).client()
    picture = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 64).decode()
    for _ in range(2):
        s = ResponseScript()
        s.start()
        head = list(s.events)
        s.events.clear()
        s.image(picture)
        s.completed()
        upstream.enqueue(Reply(events=[*head, Pause(0.3), *s.events]))

    def create() -> Any:
        return client.responses.create(model=MODEL, input="draw", tool_choice=tool_choice)

    with peak_open_streams(upstream) as seen, ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: create(), range(2)))
    assert all(a.output[-1].type == "image_generation_call" for a in answers)
    assert seen[0] == peak


def test_store_survives_a_restart(make_gateway, upstream: FakeUpstream, tmp_path) -> None:
    data = tmp_path / "data"
    before = make_gateway(data_dir=data)
    created = before.client().responses.create(model=MODEL, input="durable")
    before.stop()
    after = make_gateway(data_dir=data).client()
    assert after.responses.retrieve(created.id).output_text == "Mock reply to: durable"
    chained = after.responses.create(model=MODEL, input="next", previous_response_id=created.id)
    assert chained.output_text == "Mock reply to: next"
    assert upstream.responses_requests[-1].body["input"][0] == user("durable")


# -- compact ---------------------------------------------------------------------------------


def test_compact(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    first = client.responses.create(model=MODEL, input="long story")
    compacted = client.responses.compact(
        model=MODEL, previous_response_id=first.id, input="and then?"
    )
    assert compacted.object == "response.compaction"
    kinds = [i.type for i in compacted.output]
    assert kinds == ["message", "message", "compaction"]
    (request,) = [r for r in upstream.requests if r.path.endswith("/responses/compact")]
    assert [i.get("role") for i in request.body["input"]] == ["user", "assistant", "user"]
    assert "stream" not in request.body and "store" not in request.body


# -- failures --------------------------------------------------------------------------------

LIMIT = {
    "error": {
        "type": "usage_limit_reached",
        "message": "The usage limit has been reached",
        "resets_in_seconds": 600,
    }
}


@pytest.mark.parametrize("stream", [False, True])
def test_usage_limit_before_first_byte(
    gateway: Gateway, upstream: FakeUpstream, stream: bool
) -> None:
    upstream.enqueue(Reply(status=429, body=LIMIT))
    with pytest.raises(openai.RateLimitError) as info:
        result = gateway.client().responses.create(model=MODEL, input="hi", stream=stream)
        list(result) if stream else None
    assert info.value.code == "usage_limit_reached"
    assert info.value.response.headers["x-should-retry"] == "false"


def test_failure_right_after_created_is_a_status(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    s = ResponseScript()
    s.start()
    s.failed(code="rate_limit_exceeded", message="Slow down")
    upstream.enqueue(Reply(events=s.events))
    with pytest.raises(openai.APIStatusError) as info:
        list(client.responses.create(model=MODEL, input="hi", stream=True))
    assert info.value.status_code == 429


def test_mid_stream_failure_is_an_event_and_not_saved(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    s = ResponseScript()
    s.start()
    s.message(["partial", " answer"])
    upstream.enqueue(Reply(events=[*s.events, Drop()]))
    events = list(client.responses.create(model=MODEL, input="hi", stream=True))
    assert events[-1].type == "error"
    assert events[-1].code == "upstream_stream_truncated"
    rid = events[0].response.id
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(rid)


def test_unchanged_events_keep_the_upstream_bytes(gateway: Gateway, upstream: FakeUpstream) -> None:
    """An event the relay does not change goes out with its data bytes as the upstream wrote
    them: odd spacing, key order and escapes survive (a re-encoding would normalise them)."""
    odd = (
        b'{ "sequence_number" : 3,"type":"response.output_text.delta",  "item_id": "msg_odd",'
        b' "output_index":0, "content_index" :0,"delta":"caf\\u00e9 " }'
    )
    s = ResponseScript()
    s.start()
    head = list(s.events)
    s.events.clear()
    s.message(["the end"])
    s.completed()
    raw = RawData(b"event: response.output_text.delta\ndata: " + odd + b"\n\n")
    upstream.enqueue(Reply(events=[*head, raw, *s.events]))
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        body = http.post("/v1/responses", json={"model": MODEL, "input": "hi", "stream": True})
    assert body.status_code == 200
    assert b"event: response.output_text.delta\ndata: " + odd + b"\n\n" in body.content
    assert b"the end" in body.content


def test_large_image_events_stream_whole(gateway: Gateway, upstream: FakeUpstream) -> None:
    """A partial and a final image of several MB (lines that span many reads) reach the client
    whole and parse back to the same base64."""
    big = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 12_000).decode()
    s = ResponseScript()
    s.start()
    s.image(big, partials=[big[: len(big) // 2]])
    s.completed()
    upstream.enqueue(Reply(events=s.events))
    events = list(gateway.client().responses.create(model=MODEL, input="draw", stream=True))
    (partial,) = [e for e in events if e.type == "response.image_generation_call.partial_image"]
    assert partial.partial_image_b64 == big[: len(big) // 2]
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert [i.result for i in done if i.type == "image_generation_call"] == [big]
    assert events[-1].response.output[-1].result == big


def test_keepalive_during_silence(make_gateway, upstream: FakeUpstream) -> None:
    gateway = make_gateway(sse_keepalive_seconds=0.05)
    s = ResponseScript()
    s.start()
    events: list[Any] = [*s.events, Pause(0.4)]
    s.events.clear()
    s.message(["after the pause"])
    s.completed()
    upstream.enqueue(Reply(events=[*events, *s.events]))
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        body = http.post("/v1/responses", json={"model": MODEL, "input": "hi", "stream": True})
    assert body.status_code == 200
    text = body.text
    assert ": keep-alive" in text
    assert text.index("response.created") < text.index("after the pause")


def test_disconnect_cancels_upstream_and_saves_nothing(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    s = ResponseScript()
    s.start()
    s.message(["first words"])
    head = list(s.events)
    s.events.clear()
    s.message(["never seen"])
    s.completed()
    upstream.enqueue(Reply(events=[*head, Pause(30), *s.events]))
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        request = {"model": MODEL, "input": "hi", "stream": True}
        with http.stream("POST", "/v1/responses", json=request) as answer:
            seen = b""
            for chunk in answer.iter_bytes():
                seen += chunk
                if b"first words" in seen:
                    break
    assert wait_for(lambda: upstream.disconnects == 1)
    rid = seen.split(b'"id":"', 1)[1].split(b'"', 1)[0].decode()
    assert rid.startswith("resp_")
    with pytest.raises(openai.NotFoundError):
        gateway.client().responses.retrieve(rid)


def test_api_key_mode_forwards_and_keeps_nothing(make_gateway, tmp_path) -> None:
    with FakeUpstream(strict=False) as open_upstream:
        gw = make_gateway(
            auth_mode="api_key",
            openai_api_key="sk-test-key",
            codex_home=tmp_path,
            upstream_base_url=open_upstream.url,
        )
        s = ResponseScript(response_id="resp_public")
        s.start()
        s.message(["keyed"])
        s.completed(with_output=True)
        open_upstream.enqueue(Reply(events=s.events))
        response = gw.client().responses.create(
            model=MODEL, input="hi", temperature=0.3, previous_response_id="resp_earlier"
        )
        sent = open_upstream.responses_requests[-1]
        with pytest.raises(openai.NotFoundError):  # the public API is asked, not a local store
            gw.client().responses.retrieve(response.id)
        asked = open_upstream.requests[-1]
    assert response.output_text == "keyed" and response.id == "resp_public"
    assert sent.headers["authorization"] == "Bearer sk-test-key"
    assert sent.body["temperature"] == 0.3
    assert sent.body["previous_response_id"] == "resp_earlier"
    assert sent.body["input"] == "hi" and sent.body["stream"] is True
    assert (asked.method, asked.path) == ("GET", "/responses/resp_public")


def test_default_model_is_the_catalog_default(make_gateway, upstream: FakeUpstream) -> None:
    """No CODEX_MODEL and no model in the request: the backend catalog's first model."""
    gateway = make_gateway(model=None)
    upstream.set_default_model("gpt-7-test")
    answer = httpx.post(f"{gateway.url}/v1/responses", json={"input": "hi"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert upstream.responses_requests[-1].body["model"] == "gpt-7-test"
    assert answer.json()["model"] == "gpt-7-test"


@pytest.mark.parametrize("size", [10, 3 * 1024 * 1024])
def test_event_frames_are_the_sse_framing_of_the_json(size: int) -> None:
    from codex_proxy.server.responses import _frames

    event = {"type": "response.output_item.done", "item": {"result": "A" * size}}
    frames = _frames(event)
    expected = b"event: response.output_item.done\ndata: " + orjson.dumps(event) + b"\n\n"
    assert b"".join(frames) == expected
    if size < 1024 * 1024:
        assert len(frames) == 1  # one write for an ordinary event
    else:
        assert max(len(f) for f in frames) <= 1024 * 1024  # an image in slices, not one copy
