"""auth.json on disk: atomic saves, rotation of tokens, timestamps, the start-up description."""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from codex_proxy.config import Settings
from codex_proxy.mock.tokens import id_token
from codex_proxy.upstream.auth import AuthProvider
from codex_proxy.upstream.auth_store import (
    parse_auth_file,
    read_auth_file,
    rfc3339,
    save_auth_file,
    with_new_tokens,
)

from ..conftest import write_auth_json


def test_failed_rename_leaves_the_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = write_auth_json(tmp_path)
    before = (tmp_path / "auth.json").read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError("killed mid-save")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="killed mid-save"):
        save_auth_file(tmp_path / "auth.json", {**written, "tokens": {"access_token": "new"}})
    assert (tmp_path / "auth.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["auth.json"]  # no temp file left


def test_save_is_0600_and_replaces_a_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text("{}")
    path.chmod(0o644)
    save_auth_file(path, {"tokens": {"access_token": "a"}})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"tokens": {"access_token": "a"}}


def test_rotation_keeps_unknown_fields_and_takes_what_came_back(tmp_path: Path) -> None:
    written = write_auth_json(tmp_path, custom={"keep": True})
    file = read_auth_file(tmp_path / "auth.json")
    assert file is not None
    new_id = id_token("acct-new")
    raw = with_new_tokens(file, {"access_token": "at-2", "id_token": new_id}, now=0)
    assert raw["custom"] == {"keep": True}
    assert raw["tokens"] == {
        "id_token": new_id,
        "access_token": "at-2",
        "refresh_token": written["tokens"]["refresh_token"],  # not rotated this time
        "account_id": "acct-new",
    }
    assert raw["last_refresh"] == "1970-01-01T00:00:00.000Z"


def test_rfc3339_and_nanosecond_timestamps() -> None:
    assert rfc3339(1_700_000_000.5) == "2023-11-14T22:13:20.500Z"
    raw = b'{"last_refresh": "2025-09-01T12:34:56.789123456Z"}'
    parsed = parse_auth_file(raw, Path("auth.json")).last_refresh
    assert parsed == datetime(2025, 9, 1, 12, 34, 56, 789123, tzinfo=timezone.utc)


def test_describe_names_account_plan_and_expiry_but_no_token(tmp_path: Path) -> None:
    exp = time.time() + 3600
    written = write_auth_json(tmp_path, access_exp=exp)
    line = AuthProvider(Settings(codex_home=tmp_path)).describe()
    assert "auth mode chatgpt" in line
    assert "user@example.com" in line
    assert "plan plus" in line
    assert time.strftime("%Y-%m-%d %H:%M", time.gmtime(exp)) in line
    for secret in written["tokens"].values():
        assert secret not in line
