"""End to end: the official openai SDK and curl against the running gateway and fake upstream."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time

import httpx
import openai
import pydantic
import pytest

from codex_proxy.mock.events import ResponseScript, text_response, usage
from codex_proxy.mock.server import Drop, FakeUpstream, Pause, RawData, Reply

from ..conftest import ACCOUNT_ID, Gateway, wait_for

USER = [{"role": "user", "content": "Say hello"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def two_calls_script() -> list[dict]:
    """Reasoning, then two parallel calls at upstream output_index 1 and 2."""
    s = ResponseScript()
    s.start()
    s.reasoning([["Need ", "weather"]])
    s.function_call("get_weather", ['{"city":', '"Paris"}'], call_id="call_paris")
    s.function_call("get_weather", ['{"city":"Ro', 'me"}'], call_id="call_rome")
    s.completed(usage(30, 10, reasoning=4))
    return s.events


# -- non-streaming ---------------------------------------------------------------------------


def test_text_completion_exact(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response("Hello there, friend", usage_=usage(20, 12, 5, 3))))
    completion = client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-5.2-codex"
    choice = completion.choices[0]
    assert choice.message.content == "Hello there, friend"
    assert choice.message.role == "assistant"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 20
    assert completion.usage.completion_tokens == 12
    assert completion.usage.total_tokens == 32
    assert completion.usage.prompt_tokens_details.cached_tokens == 5
    assert completion.usage.completion_tokens_details.reasoning_tokens == 3


def test_upstream_receives_codex_request(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response("ok")))
    client.chat.completions.create(
        model="gpt-5.2-codex-high",
        messages=[{"role": "system", "content": "Be brief."}, *USER],
    )
    sent = upstream.responses_requests[-1]
    body = sent.body
    assert body["model"] == "gpt-5.2-codex"
    assert body["store"] is False
    assert body["stream"] is True
    assert body["instructions"] == ""
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["input"] == [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "Be brief."}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Say hello"}],
        },
    ]
    headers = sent.headers
    assert headers["authorization"].startswith("Bearer ey")
    assert headers["chatgpt-account-id"] == ACCOUNT_ID
    assert headers["originator"] == "codex_cli_rs"
    assert headers["accept"] == "text/event-stream"
    assert headers["version"] == "0.135.0"
    assert headers["user-agent"].startswith("codex_cli_rs/0.135.0 (")
    assert headers["session_id"] == body["prompt_cache_key"]


def test_session_key_stable_across_turns_and_header_wins(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    for _ in range(3):
        upstream.enqueue(Reply(events=text_response("ok")))
    client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
    client.chat.completions.create(
        model="gpt-5.2-codex",
        messages=[
            *USER,
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "more"},
        ],
    )
    client.chat.completions.create(
        model="gpt-5.2-codex", messages=USER, extra_headers={"x-session-id": "conv-42"}
    )
    first, second, third = (r.body["prompt_cache_key"] for r in upstream.responses_requests)
    assert first == second
    assert third == "conv-42"
    assert upstream.responses_requests[2].headers["session_id"] == "conv-42"


def test_dropped_params_are_named_in_a_header(
    gateway: Gateway, upstream: FakeUpstream, http: httpx.Client
) -> None:
    upstream.enqueue(Reply(events=text_response("ok")))
    response = http.post(
        "/v1/chat/completions",
        json={"model": "gpt-5.2-codex", "messages": USER, "temperature": 0.2, "max_tokens": 50},
    )
    assert response.status_code == 200
    assert response.headers["x-codex-proxy-dropped-params"] == "temperature,max_tokens"
    body = upstream.responses_requests[-1].body
    assert "temperature" not in body and "max_output_tokens" not in body


def test_rate_limit_headers_and_request_id_are_forwarded(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    limits = {"x-codex-primary-used-percent": "12.5", "x-request-id": "req_up_1"}
    upstream.enqueue(Reply(events=text_response("ok"), headers=limits))
    upstream.enqueue(Reply(events=text_response("ok"), headers=limits))
    raw = client.chat.completions.with_raw_response.create(model="gpt-5.2-codex", messages=USER)
    assert raw.headers["x-codex-primary-used-percent"] == "12.5"
    assert raw.request_id == "req_up_1"
    with client.chat.completions.with_streaming_response.create(
        model="gpt-5.2-codex", messages=USER, stream=True
    ) as streamed:
        assert streamed.headers["x-codex-primary-used-percent"] == "12.5"
        assert streamed.headers["x-request-id"] == "req_up_1"


def test_tool_calls_non_streaming(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=two_calls_script()))
    completion = client.chat.completions.create(
        model="gpt-5.2-codex", messages=USER, tools=[WEATHER_TOOL]
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_paris", "get_weather", '{"city":"Paris"}'),
        ("call_rome", "get_weather", '{"city":"Rome"}'),
    ]
    assert message.model_extra["reasoning_content"] == "Need weather"
    assert upstream.responses_requests[-1].body["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": WEATHER_TOOL["function"]["parameters"],
            "strict": False,
        }
    ]


def test_tool_results_round_trip(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response("It is sunny in Paris.")))
    completion = client.chat.completions.create(
        model="gpt-5.2-codex",
        tools=[WEATHER_TOOL],
        messages=[
            *USER,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_paris",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_paris", "content": '{"sky":"sunny"}'},
        ],
    )
    assert completion.choices[0].message.content == "It is sunny in Paris."
    assert upstream.responses_requests[-1].body["input"][1:] == [
        {
            "type": "function_call",
            "call_id": "call_paris",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_paris", "output": '{"sky":"sunny"}'},
    ]


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


def test_parse_with_pydantic_model(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response(['{"city":"Paris",', '"celsius":21}'])))
    completion = client.chat.completions.parse(
        model="gpt-5.2-codex", messages=USER, response_format=Weather
    )
    assert completion.choices[0].message.parsed == Weather(city="Paris", celsius=21)
    text_format = upstream.responses_requests[-1].body["text"]["format"]
    assert text_format["type"] == "json_schema"
    assert text_format["name"] == "Weather"
    assert text_format["strict"] is True
    assert text_format["schema"]["required"] == ["city", "celsius"]


# -- streaming -------------------------------------------------------------------------------


def test_stream_text_chunks(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response(["Hel", "lo", " world"])))
    chunks = list(client.chat.completions.create(model="gpt-5.2-codex", messages=USER, stream=True))
    assert [c.choices[0].delta.content for c in chunks] == ["Hel", "lo", " world", None]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:])
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, "stop"]
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert all(c.usage is None for c in chunks)


def test_stream_usage_chunk(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response("Hi", usage_=usage(7, 3))))
    chunks = list(
        client.chat.completions.create(
            model="gpt-5.2-codex",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (
        7,
        3,
        10,
    )
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_stream_two_parallel_tool_calls(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=two_calls_script()))
    chunks = list(
        client.chat.completions.create(
            model="gpt-5.2-codex", messages=USER, tools=[WEATHER_TOOL], stream=True
        )
    )
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    heads = [(d.index, d.id, d.function.name) for d in deltas if d.id]
    assert heads == [(0, "call_paris", "get_weather"), (1, "call_rome", "get_weather")]
    arguments = {0: "", 1: ""}
    for d in deltas:
        arguments[d.index] += d.function.arguments or ""
        if not d.id:
            assert d.function.name is None
    assert arguments == {0: '{"city":"Paris"}', 1: '{"city":"Rome"}'}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]


def test_stream_helper_accumulates_tool_calls(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    upstream.enqueue(Reply(events=two_calls_script()))
    with client.chat.completions.stream(
        model="gpt-5.2-codex", messages=USER, tools=[WEATHER_TOOL]
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [(c.id, c.function.arguments) for c in calls] == [
        ("call_paris", '{"city":"Paris"}'),
        ("call_rome", '{"city":"Rome"}'),
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_stream_length_finish(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    s = ResponseScript()
    s.start()
    s.message(["cut"])
    s.incomplete("max_output_tokens")
    upstream.enqueue(Reply(events=s.events))
    chunks = list(client.chat.completions.create(model="gpt-5.2-codex", messages=USER, stream=True))
    assert [c.choices[0].finish_reason for c in chunks] == [None, "length"]


def test_async_stream(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response(["As", "ync"])))

    async def run() -> str:
        async with gateway.async_client() as aclient:
            stream = await aclient.chat.completions.create(
                model="gpt-5.2-codex", messages=USER, stream=True
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream])

    assert asyncio.run(run()) == "Async"


def test_async_non_streaming(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response("Async answer")))

    async def run() -> str | None:
        async with gateway.async_client() as aclient:
            completion = await aclient.chat.completions.create(model="gpt-5.2-codex", messages=USER)
            return completion.choices[0].message.content

    assert asyncio.run(run()) == "Async answer"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_stream(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response(["Hi", "!"])))
    body = json.dumps({"model": "gpt-5.2-codex", "messages": USER, "stream": True})
    out = subprocess.run(
        [
            "curl",
            "-sN",
            f"{gateway.url}/v1/chat/completions",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    events = [line[len("data: ") :] for line in out.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hi!"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


# -- keep-alive and cancellation --------------------------------------------------------------


def test_keepalive_comments_during_silence(make_gateway, upstream: FakeUpstream) -> None:
    gw = make_gateway(sse_keepalive_seconds=0.2)
    s = ResponseScript()
    s.start()
    events = [*s.events, Pause(0.9)]
    s.message(["late"])
    s.completed()
    events += s.events[2:]
    upstream.enqueue(Reply(events=events))
    body = {"model": "gpt-5.2-codex", "messages": USER, "stream": True}
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body, timeout=10) as response:
        lines = [line for line in response.iter_lines() if line]
    keepalives = [line for line in lines if line.startswith(":")]
    assert len(keepalives) >= 2
    assert lines.index(keepalives[0]) < next(i for i, line in enumerate(lines) if "late" in line)
    assert lines[-1] == "data: [DONE]"


def test_streaming_disconnect_cancels_upstream(gateway: Gateway, upstream: FakeUpstream) -> None:
    s = ResponseScript()
    s.start()
    s.message(["first"])
    events = [*s.events[:5], Pause(10), *s.events[5:]]
    upstream.enqueue(Reply(events=events))
    before = upstream.disconnects
    body = {"model": "gpt-5.2-codex", "messages": USER, "stream": True}
    with httpx.stream("POST", f"{gateway.url}/v1/chat/completions", json=body, timeout=10) as r:
        for line in r.iter_lines():
            if "first" in line:
                break
    closed_at = time.monotonic()
    assert wait_for(lambda: upstream.disconnects > before, timeout=3)
    assert time.monotonic() - closed_at < 1.5
    assert wait_for(lambda: upstream.open_streams == 0, timeout=2)


def test_non_streaming_disconnect_cancels_upstream(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    s = ResponseScript()
    s.start()
    upstream.enqueue(Reply(events=[*s.events, Pause(10)]))
    before = upstream.disconnects
    body = {"model": "gpt-5.2-codex", "messages": USER}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=0.5)
    closed_at = time.monotonic()
    assert wait_for(lambda: upstream.disconnects > before, timeout=3)
    assert time.monotonic() - closed_at < 1.5


# -- errors ----------------------------------------------------------------------------------


def test_invalid_json_body(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"


def test_n_greater_than_one_is_refused(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-5.2-codex", messages=USER, n=2)
    assert info.value.param == "n"
    assert upstream.responses_requests == []


def test_missing_messages(http: httpx.Client, upstream: FakeUpstream) -> None:
    response = http.post("/v1/chat/completions", json={"model": "gpt-5.2-codex"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


def test_upstream_detail_400(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(status=400, body={"detail": "Unsupported model: gpt-x"}))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert "Unsupported model: gpt-x" in info.value.message


def test_upstream_401_after_refresh_tells_how_to_log_in(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    expired = {
        "error": {
            "message": "Provided authentication token is expired.",
            "type": "invalid_request_error",
            "code": "token_expired",
            "param": None,
        }
    }
    upstream.enqueue(Reply(status=401, body=expired), Reply(status=401, body=expired))
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="gpt-5.2-codex", messages=USER, stream=True)
    assert "codex-proxy login" in info.value.message
    assert info.value.code == "token_expired"
    assert len(upstream.token_requests) == 1
    assert len(upstream.responses_requests) == 2


def test_usage_limit_is_429_without_retries(gateway: Gateway, upstream: FakeUpstream) -> None:
    resets_at = int(time.time()) + 3600
    body = {
        "error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": "plus",
            "resets_at": resets_at,
            "resets_in_seconds": 3600,
        }
    }
    upstream.enqueue(Reply(status=429, body=body), Reply(status=429, body=body))
    client = gateway.client(max_retries=2)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert len(upstream.responses_requests) == 1
    assert info.value.response.headers["x-should-retry"] == "false"
    assert info.value.response.headers["retry-after"] == "3600"
    assert "resets at" in info.value.message
    assert info.value.code == "usage_limit_reached"


def test_plain_429_keeps_retry_after(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(
        Reply(status=429, body={"error": {"message": "Slow down"}}, headers={"retry-after": "7"})
    )
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert info.value.response.headers["retry-after"] == "7"


def test_upstream_5xx_is_502(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(status=503, body=b"upstream overloaded"))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert info.value.status_code == 502
    assert "upstream overloaded" in info.value.message


def test_failed_before_content_is_an_http_error_in_streaming(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    s = ResponseScript()
    s.start()
    s.failed("rate_limit_exceeded", "Rate limit reached. Please try again in 11.054s.")
    upstream.enqueue(Reply(events=s.events))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-5.2-codex", messages=USER, stream=True)
    assert "try again in 11.054s" in info.value.message


def test_context_length_failure_is_400(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    s = ResponseScript()
    s.start()
    s.failed("context_length_exceeded", "Your input exceeds the context window.")
    upstream.enqueue(Reply(events=s.events))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert info.value.code == "context_length_exceeded"


@pytest.mark.parametrize("nested", [True, False])
def test_error_event_mid_stream_raises_api_error(
    client: openai.OpenAI, upstream: FakeUpstream, nested: bool
) -> None:
    s = ResponseScript()
    s.start()
    events = s.message(["partial answer"])[:3]
    s.error("server_error", "The server had an error", nested=nested)
    upstream.enqueue(Reply(events=[*s.events[:2], *events, s.events[-1]]))
    stream = client.chat.completions.create(model="gpt-5.2-codex", messages=USER, stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["partial answer"]
    assert "The server had an error" in info.value.message


@pytest.mark.parametrize(
    "tail",
    [[Drop()], [], [RawData(b"data: {not json\n\n")]],
    ids=["dropped-connection", "no-terminal-event", "malformed-json"],
)
def test_broken_upstream_stream_is_an_error_not_a_stop(
    client: openai.OpenAI, upstream: FakeUpstream, tail: list
) -> None:
    s = ResponseScript()
    s.start()
    s.message(["partial"])
    upstream.enqueue(Reply(events=[*s.events[:5], *tail]))
    stream = client.chat.completions.create(model="gpt-5.2-codex", messages=USER, stream=True)
    with pytest.raises(openai.APIError):
        for chunk in stream:
            assert chunk.choices[0].finish_reason is None

    upstream.enqueue(Reply(events=[*s.events[:5], *tail]))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert info.value.status_code == 502


def test_unknown_events_are_ignored(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    s = ResponseScript()
    s.start()
    s.raw({"type": "codex.rate_limits", "rate_limits": {}}, {"type": "response.brand_new.thing"})
    s.message(["fine"])
    s.completed()
    upstream.enqueue(Reply(events=s.events))
    completion = client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert completion.choices[0].message.content == "fine"


def test_idle_timeout_is_504(make_gateway, upstream: FakeUpstream) -> None:
    gw = make_gateway(upstream_idle_timeout=0.3)
    s = ResponseScript()
    s.start()
    upstream.enqueue(Reply(events=[*s.events, Pause(3)]))
    with pytest.raises(openai.APIStatusError) as info:
        gw.client().chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert info.value.status_code == 504


def test_unreachable_upstream_is_502(make_gateway, upstream: FakeUpstream) -> None:
    gw = make_gateway(upstream_base_url="http://127.0.0.1:9")
    with pytest.raises(openai.InternalServerError) as info:
        gw.client().chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert info.value.status_code == 502
    assert info.value.code == "upstream_unreachable"
    assert gw.client().models.list().data  # the gateway still serves


def test_api_key_mode_forwards_sampling_params(make_gateway, tmp_path) -> None:
    with FakeUpstream(strict=False) as open_upstream:
        gw = make_gateway(
            auth_mode="api_key",
            openai_api_key="sk-test-key",
            codex_home=tmp_path,
            upstream_base_url=open_upstream.url,
        )
        open_upstream.enqueue(Reply(events=text_response("keyed")))
        completion = gw.client().chat.completions.create(
            model="gpt-5.2", messages=USER, temperature=0.3, max_completion_tokens=99
        )
        assert completion.choices[0].message.content == "keyed"
        sent = open_upstream.responses_requests[-1]
    assert sent.headers["authorization"] == "Bearer sk-test-key"
    assert "chatgpt-account-id" not in sent.headers
    assert sent.body["temperature"] == 0.3
    assert sent.body["max_output_tokens"] == 99
