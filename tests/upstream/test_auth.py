"""Credential resolution from auth.json and the environment."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from codex_proxy.config import Settings
from codex_proxy.mock.tokens import fake_jwt
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.upstream.auth import API_KEY, CHATGPT, AuthProvider
from codex_proxy.upstream.auth_store import jwt_claims

from ..conftest import ACCOUNT_ID, write_auth_json


def creds(settings: Settings):
    return asyncio.run(AuthProvider(settings).credentials())


def test_chatgpt_tokens(tmp_path: Path) -> None:
    auth = write_auth_json(tmp_path)
    result = creds(Settings(codex_home=tmp_path))
    assert (result.mode, result.token, result.account_id) == (
        CHATGPT,
        auth["tokens"]["access_token"],
        ACCOUNT_ID,
    )
    assert auth["tokens"]["access_token"] not in repr(result)


def test_account_id_falls_back_to_id_token_claim(tmp_path: Path) -> None:
    auth = write_auth_json(tmp_path)
    del auth["tokens"]["account_id"]
    (tmp_path / "auth.json").write_text(json.dumps(auth))
    assert creds(Settings(codex_home=tmp_path)).account_id == ACCOUNT_ID


def test_auto_prefers_tokens_over_key_in_file(tmp_path: Path) -> None:
    write_auth_json(tmp_path, OPENAI_API_KEY="sk-file")
    assert creds(Settings(codex_home=tmp_path)).mode == CHATGPT


def test_explicit_auth_mode_in_file_wins_in_auto(tmp_path: Path) -> None:
    write_auth_json(tmp_path, OPENAI_API_KEY="sk-file", auth_mode="apikey")
    result = creds(Settings(codex_home=tmp_path))
    assert (result.mode, result.token) == (API_KEY, "sk-file")


def test_key_from_env_when_no_login(tmp_path: Path) -> None:
    result = creds(Settings(codex_home=tmp_path, openai_api_key="sk-env"))
    assert (result.mode, result.token) == (API_KEY, "sk-env")


def test_forced_chatgpt_mode_without_login_is_401(tmp_path: Path) -> None:
    with pytest.raises(OpenAIError) as info:
        creds(Settings(codex_home=tmp_path, auth_mode="chatgpt", openai_api_key="sk-env"))
    assert info.value.status == 401
    assert "codex-proxy login" in info.value.message


def test_corrupt_auth_json_is_a_clear_401(tmp_path: Path) -> None:
    (tmp_path / "auth.json").write_text("{not json")
    with pytest.raises(OpenAIError) as info:
        creds(Settings(codex_home=tmp_path))
    assert info.value.status == 401
    assert "not valid JSON" in info.value.message


def test_token_changed_on_disk_is_offered_after_401(tmp_path: Path) -> None:
    write_auth_json(tmp_path)
    provider = AuthProvider(Settings(codex_home=tmp_path))

    async def scenario() -> None:
        first = await provider.credentials()
        written = write_auth_json(tmp_path, access_exp=9_999_999_999)
        changed = await provider.after_unauthorized(first)
        assert changed is not None
        assert changed.token == written["tokens"]["access_token"] != first.token

    asyncio.run(scenario())


def test_jwt_claims() -> None:
    assert jwt_claims(fake_jwt({"exp": 5, "email": "a@b"})) == {"exp": 5, "email": "a@b"}
    assert jwt_claims("not-a-jwt") == {}
    assert jwt_claims("a.%%%.c") == {}
    assert jwt_claims(None) == {}
