"""Routes, gateway auth, model list and OpenAI-shaped errors of the running app."""

from __future__ import annotations

import httpx
import openai
import pytest

from codex_proxy.config import BUILTIN_MODELS
from codex_proxy.mock.events import text_response
from codex_proxy.mock.server import FakeUpstream, Reply

from ..conftest import Gateway

USER = [{"role": "user", "content": "hi"}]


def test_healthz(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_paths_without_v1_prefix(http: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response("no prefix")))
    response = http.post("/chat/completions", json={"model": "gpt-5.2-codex", "messages": USER})
    assert response.json()["choices"][0]["message"]["content"] == "no prefix"
    assert http.get("/models").json()["object"] == "list"


def test_unknown_path_is_openai_shaped_404(http: httpx.Client) -> None:
    response = http.get("/v1/nothing-here")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_wrong_method_is_405(http: httpx.Client) -> None:
    response = http.get("/v1/chat/completions")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_models_from_backend_catalog(make_gateway, upstream: FakeUpstream) -> None:
    client = make_gateway().client()
    ids = [m.id for m in client.models.list().data]
    listed = [m["slug"] for m in upstream.models if m.get("visibility") == "list"]
    hidden = [m["slug"] for m in upstream.models if m.get("visibility") != "list"]
    assert set(ids) == set(listed)
    assert not set(ids) & set(hidden)
    catalog_calls = [r for r in upstream.requests if r.path == "/models"]
    assert catalog_calls and catalog_calls[-1].query["client_version"] == "0.135.0"
    model = client.models.retrieve(ids[0])
    assert (model.id, model.object, model.owned_by) == (ids[0], "model", "openai")


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"


def test_models_fall_back_to_builtin_list(make_gateway, upstream: FakeUpstream) -> None:
    upstream.models_reply = Reply(status=500, body=b"catalog down")
    try:
        gw = make_gateway()
        ids = [m.id for m in gw.client().models.list().data]
    finally:
        upstream.models_reply = None
    assert ids[: len(BUILTIN_MODELS)] == list(BUILTIN_MODELS)


def test_api_key_mode_lists_configured_models(make_gateway, tmp_path) -> None:
    gw = make_gateway(
        auth_mode="api_key", openai_api_key="sk-x", codex_home=tmp_path, models=("m-one", "m-two")
    )
    assert [m.id for m in gw.client().models.list().data] == ["m-one", "m-two"]


def test_aliases_are_listed_and_resolved(make_gateway, upstream: FakeUpstream) -> None:
    gw = make_gateway(model_aliases={"fast": "gpt-5.1-codex-mini"})
    assert "fast" in [m.id for m in gw.client().models.list().data]
    upstream.enqueue(Reply(events=text_response("quick")))
    completion = gw.client().chat.completions.create(model="fast", messages=USER)
    assert completion.model == "fast"
    assert upstream.responses_requests[-1].body["model"] == "gpt-5.1-codex-mini"


def test_default_model_when_none_given(http: httpx.Client, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response("defaulted")))
    response = http.post("/v1/chat/completions", json={"model": "default", "messages": USER})
    assert response.json()["model"] == "gpt-5.2-codex"
    assert upstream.responses_requests[-1].body["model"] == "gpt-5.2-codex"


# -- gateway token ---------------------------------------------------------------------------


@pytest.fixture
def guarded(make_gateway) -> Gateway:
    return make_gateway(gateway_token="s3cret-gateway-token")


def test_token_required_on_every_route_but_healthz(guarded: Gateway) -> None:
    with httpx.Client(base_url=guarded.url) as http:
        assert http.get("/healthz").status_code == 200
        for method, path in [
            ("POST", "/v1/chat/completions"),
            ("GET", "/v1/models"),
            ("GET", "/models/x"),
        ]:
            response = http.request(method, path, json={})
            assert response.status_code == 401
            assert response.json()["error"]["type"] == "authentication_error"
            assert "s3cret" not in response.text


def test_wrong_token_is_authentication_error(guarded: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        guarded.client(api_key="wrong").models.list()
    assert info.value.type == "authentication_error"


def test_right_token_passes(guarded: Gateway, upstream: FakeUpstream) -> None:
    upstream.enqueue(Reply(events=text_response("let in")))
    completion = guarded.client().chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert completion.choices[0].message.content == "let in"
    # the client's gateway token is never sent upstream
    assert "s3cret" not in upstream.responses_requests[-1].headers["authorization"]


def test_no_credentials_is_401_with_login_hint(make_gateway, tmp_path) -> None:
    gw = make_gateway(codex_home=tmp_path / "empty", auth_mode="auto")
    with pytest.raises(openai.AuthenticationError) as info:
        gw.client().chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert "codex-proxy login" in info.value.message
    with httpx.Client(base_url=gw.url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
