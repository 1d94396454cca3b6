"""Client keys end to end: the openai SDK, the running gateway, the fake upstream.

Two keys: ``artist-free`` may not make images; ``narrow`` may make 2 requests a minute and
use only ``gpt-5.[45]*`` models. The gateway token stays the admin key.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import httpx
import openai
import pytest

from codex_proxy.keys.file import Key, Policy, save, token_hash
from codex_proxy.mock.server import FakeUpstream

from ..conftest import Gateway

ADMIN = "admin-token"
NO_IMAGES = "sk-cp-no-images-token"
NARROW = "sk-cp-narrow-token"
USER = [{"role": "user", "content": "Say hello"}]


def write_keys(path: Path) -> None:
    save(
        path,
        {
            "artist-free": Key("artist-free", token_hash(NO_IMAGES), Policy(images="deny")),
            "narrow": Key("narrow", token_hash(NARROW), Policy(models=("gpt-5.[45]*",), rpm=2)),
        },
    )


@pytest.fixture
def keyed(make_gateway, upstream: FakeUpstream, tmp_path: Path) -> Gateway:
    write_keys(tmp_path / "keys.json")
    return make_gateway(
        gateway_token=ADMIN,
        keys_file=tmp_path / "keys.json",
        data_dir=tmp_path / "data",
        enable_image_gen=True,
    )


def sdk(gateway: Gateway, token: str) -> openai.OpenAI:
    return gateway.client(api_key=token)


def error_of(caught: pytest.ExceptionInfo) -> dict:
    return caught.value.body  # the SDK keeps the "error" object as the body


def test_unknown_key_is_401(keyed: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(keyed, "sk-cp-nobody").chat.completions.create(model="gpt-5.5", messages=USER)
    assert error_of(caught) == {
        "message": "Invalid gateway token.",
        "type": "authentication_error",
        "param": None,
        "code": "invalid_api_key",
    }


def test_expired_key_is_401(make_gateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    old = Policy(expires=datetime(2020, 1, 1, tzinfo=timezone.utc))
    save(path, {"old": Key("old", token_hash("sk-cp-old"), old)})
    gateway = make_gateway(keys_file=path, data_dir=tmp_path / "data")
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(gateway, "sk-cp-old").models.list()
    assert error_of(caught)["message"] == "The key 'old' has expired."


def test_keys_file_alone_requires_a_key(
    make_gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    write_keys(tmp_path / "keys.json")
    gateway = make_gateway(keys_file=tmp_path / "keys.json", data_dir=tmp_path / "data")
    response = httpx.get(f"{gateway.url}/v1/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert [m.id for m in sdk(gateway, NARROW).models.list()] == ["gpt-5.5", "gpt-5.4-mini"]
    assert sdk(gateway, NARROW).models.retrieve("gpt-5.5").id == "gpt-5.5"


def test_images_denied_key(keyed: Gateway, upstream: FakeUpstream) -> None:
    client = sdk(keyed, NO_IMAGES)
    answer = client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert answer.choices[0].message.content == "Mock reply to: Say hello"
    tools = upstream.responses_requests[-1].body.get("tools") or []
    assert all(tool.get("type") != "image_generation" for tool in tools)  # never injected
    denied = {
        "message": "The key 'artist-free' may not generate images.",
        "type": "permission_error",
        "param": None,
        "code": "permission_denied",
    }
    asks = [
        {"tools": [{"type": "image_generation"}]},
        {"modalities": ["text", "image"]},
        {"tool_choice": {"type": "image_generation"}},
    ]
    for extra in asks:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            client.chat.completions.create(model="gpt-5.2-codex", messages=USER, extra_body=extra)
        assert error_of(caught) == denied
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.images.generate(prompt="a fox")
    assert error_of(caught) == denied
    assert len(upstream.responses_requests) == 1  # none of the refused went upstream


def test_narrow_key_models_and_rate(keyed: Gateway, upstream: FakeUpstream) -> None:
    client = sdk(keyed, NARROW)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
    assert error_of(caught) == {
        "message": (
            "The key 'narrow' may not use the model 'gpt-5.2-codex'; it may use: gpt-5.[45]*."
        ),
        "type": "permission_error",
        "param": "model",
        "code": "model_not_allowed",
    }
    answer = client.chat.completions.create(model="gpt-5.5", messages=USER)  # 2
    assert answer.choices[0].message.content == "Mock reply to: Say hello"
    with pytest.raises(openai.RateLimitError) as caught:
        client.models.list()  # request 3 in this minute
    body = error_of(caught)
    assert body["code"] == "rate_limit_exceeded" and body["type"] == "rate_limit_error"
    wait = int(caught.value.response.headers["retry-after"])
    assert 1 <= wait <= 60
    assert body["message"] == (
        f"The key 'narrow' is over its limit of 2 requests per minute; try again in {wait} s."
    )
    # the admin and the other key are not limited by it
    assert sdk(keyed, ADMIN).models.list().data
    assert sdk(keyed, NO_IMAGES).models.list().data


def test_models_list_only_allowed(keyed: Gateway) -> None:
    assert [m.id for m in sdk(keyed, NARROW).models.list()] == ["gpt-5.5", "gpt-5.4-mini"]
    with pytest.raises(openai.NotFoundError):
        sdk(keyed, NARROW).models.retrieve("gpt-5")
    assert len(sdk(keyed, ADMIN).models.list().data) == 4  # the whole catalog


def test_status_names_the_key_and_hides_others(keyed: Gateway) -> None:
    sdk(keyed, NO_IMAGES).models.list()
    mine = httpx.get(f"{keyed.url}/v1/status", headers={"Authorization": f"Bearer {NARROW}"}).json()
    assert mine["key"] == {
        "name": "narrow",
        "policy": {"models": ["gpt-5.[45]*"], "rpm": 2},
        "usage": {
            "requests_this_minute": 1,
            "images_today": 0,
            "requests_total": 1,
            "images_total": 0,
        },
        "remaining": {
            "requests": {
                "limit": "2 requests per minute",
                "remaining": 1,
                "resets_in_seconds": mine["key"]["remaining"]["requests"]["resets_in_seconds"],
            }
        },
    }
    assert "keys" not in mine
    admin = httpx.get(f"{keyed.url}/v1/status", headers={"Authorization": f"Bearer {ADMIN}"})
    payload = admin.json()
    assert payload["key"] == {"name": "admin", "admin": True}
    assert {k["name"]: k["usage"]["requests_total"] for k in payload["keys"]} == {
        "artist-free": 1,
        "narrow": 1,
    }


def test_revoked_while_running(keyed: Gateway, tmp_path: Path) -> None:
    client = sdk(keyed, NO_IMAGES)
    assert client.models.list().data
    save(tmp_path / "keys.json", {})
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    assert sdk(keyed, ADMIN).models.list().data


def test_garbage_file_keeps_last_good_keys(
    keyed: Gateway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = sdk(keyed, NO_IMAGES)
    assert client.models.list().data
    with caplog.at_level(logging.WARNING, logger="codex_proxy"):
        (tmp_path / "keys.json").write_text("{garbage")
        assert client.models.list().data
    assert any(
        "keys file unusable, keeping the last good keys" in r.getMessage()
        and "not JSON" in r.getMessage()
        for r in caplog.records
    )


def test_access_log_names_the_key(keyed: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="codex_proxy.access"):
        sdk(keyed, NO_IMAGES).models.list()
    lines = [r.getMessage() for r in caplog.records if r.name == "codex_proxy.access"]
    assert any("key=artist-free" in line for line in lines)
    assert all(NO_IMAGES not in line and token_hash(NO_IMAGES) not in line for line in lines)


PAINTER = "sk-cp-painter-token"


@pytest.fixture
def painter(make_gateway, upstream: FakeUpstream, tmp_path: Path) -> Gateway:
    policy = Policy(images_per_day=2)
    save(tmp_path / "keys.json", {"painter": Key("painter", token_hash(PAINTER), policy)})
    return make_gateway(
        keys_file=tmp_path / "keys.json", data_dir=tmp_path / "data", enable_image_gen=True
    )


def images_today(gateway: Gateway) -> int:
    status = httpx.get(f"{gateway.url}/v1/status", headers={"Authorization": f"Bearer {PAINTER}"})
    return status.json()["key"]["usage"]["images_today"]


def test_images_per_day(painter: Gateway, upstream: FakeUpstream) -> None:
    client = sdk(painter, PAINTER)
    answer = client.chat.completions.create(
        model="gpt-5.2-codex", messages=[{"role": "user", "content": "Draw a fox"}]
    )
    assert "data:image/png;base64," in (answer.choices[0].message.content or "")
    assert images_today(painter) == 1  # a chat's images are counted when it ends
    with pytest.raises(openai.RateLimitError) as caught:
        client.images.generate(prompt="a fox", n=2)  # 1 + 2 > 2
    assert error_of(caught)["message"].startswith(
        "The key 'painter' is over its limit of 2 images per day; try again in "
    )
    assert client.images.generate(prompt="a fox", n=1).data[0].b64_json
    assert images_today(painter) == 2
    sent = len(upstream.responses_requests)
    answer = client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
    tools = upstream.responses_requests[-1].body.get("tools") or []
    assert all(tool.get("type") != "image_generation" for tool in tools)  # none left today
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-5.2-codex", messages=USER, extra_body={"modalities": ["text", "image"]}
        )
    assert len(upstream.responses_requests) == sent + 1


def test_no_such_key_and_wrong_key_do_the_same_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One hash, one constant-time compare of two 64-character strings, found or not."""
    import hmac

    from codex_proxy.server.keys import KeyGate

    write_keys(tmp_path / "keys.json")
    gate = KeyGate(None, tmp_path / "keys.json", tmp_path / "data")
    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert gate.identify(f"Bearer {NARROW}".encode()).name == "narrow"  # type: ignore[union-attr]
    assert gate.identify(b"Bearer sk-cp-nobody") is None
    assert gate.identify(b"") is None
    assert compared == [(64, 64)] * 3


# -- /v1/responses ---------------------------------------------------------------------------


def test_responses_route_enforces_images_and_models(keyed: Gateway, upstream: FakeUpstream) -> None:
    artist_free = sdk(keyed, NO_IMAGES)
    answer = artist_free.responses.create(model="gpt-5.5", input="Say hello")
    assert answer.output_text
    tools = upstream.responses_requests[-1].body.get("tools") or []
    assert [t for t in tools if t.get("type") == "image_generation"] == []  # never injected
    with pytest.raises(openai.PermissionDeniedError) as caught:
        artist_free.responses.create(
            model="gpt-5.5", input="Draw a fox", tools=[{"type": "image_generation"}]
        )
    assert error_of(caught) == {
        "message": "The key 'artist-free' may not generate images.",
        "type": "permission_error",
        "param": None,
        "code": "permission_denied",
    }
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(keyed, NARROW).responses.create(model="gpt-6-astra", input="Say hello")
    assert error_of(caught)["code"] == "model_not_allowed"
    assert "it may use: gpt-5.[45]*" in error_of(caught)["message"]


def test_stored_responses_belong_to_their_key(keyed: Gateway, upstream: FakeUpstream) -> None:
    first = sdk(keyed, NO_IMAGES).responses.create(model="gpt-5.5", input="Say hello")
    assert sdk(keyed, NO_IMAGES).responses.retrieve(first.id).id == first.id
    other = sdk(keyed, NARROW)  # 2 requests a minute: exactly these two
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError) as caught:
        other.responses.create(model="gpt-5.5", input="And now?", previous_response_id=first.id)
    assert error_of(caught)["code"] == "previous_response_not_found"
    admin = sdk(keyed, ADMIN)  # the gateway token is not the key either
    with pytest.raises(openai.NotFoundError):
        admin.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        admin.responses.input_items.list(first.id)
    with pytest.raises(openai.NotFoundError):
        admin.responses.delete(first.id)
    sdk(keyed, NO_IMAGES).responses.delete(first.id)  # its own key still may
