"""Where the Codex version the gateway claims comes from: the setting, the Codex CLI's
version.json, ``codex --version``, the built-in number; in that order."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from codex_proxy.config import DEFAULT_CLIENT_VERSION, Settings
from codex_proxy.upstream import client_version
from codex_proxy.upstream.client_version import ClientVersion, cli_version, resolve, version_file


def fake_codex(folder: Path, script: str) -> Path:
    """A ``codex`` executable in ``folder`` that runs ``script`` (sh)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "codex"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def no_codex_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


def test_the_setting_wins(tmp_path: Path) -> None:
    (tmp_path / "version.json").write_text(json.dumps({"latest_version": "0.160.0"}))
    settings = Settings(codex_home=tmp_path, client_version="0.999.1")
    assert resolve(settings) == ClientVersion("0.999.1", "CODEX_CLIENT_VERSION")


def test_version_json_of_the_codex_cli(tmp_path: Path, no_codex_on_path: Path) -> None:
    record = {"latest_version": "0.168.2", "last_checked_at": "2026-11-30T08:00:00Z"}
    (tmp_path / "version.json").write_text(json.dumps(record) + "\n")
    fake_codex(no_codex_on_path, "echo 'codex-cli 0.100.0'")
    assert resolve(Settings(codex_home=tmp_path)) == ClientVersion("0.168.2", "version.json")


@pytest.mark.parametrize(
    "content",
    ["", "{not json", "[]", '{"latest_version": 168}', '{"latest_version": "soon"}', "{}"],
)
def test_unusable_version_json_is_skipped(tmp_path: Path, content: str) -> None:
    path = tmp_path / "version.json"
    path.write_text(content)
    assert version_file(path) is None


def test_codex_version_on_path(tmp_path: Path, no_codex_on_path: Path) -> None:
    fake_codex(no_codex_on_path, "echo 'codex-cli 0.170.3-alpha.2'")
    found = resolve(Settings(codex_home=tmp_path))
    assert found == ClientVersion("0.170.3-alpha.2", "codex --version")


def test_built_in_without_any_codex(tmp_path: Path, no_codex_on_path: Path) -> None:
    found = resolve(Settings(codex_home=tmp_path))
    assert found == ClientVersion(DEFAULT_CLIENT_VERSION, "built-in")
    assert found.describe() == f"{DEFAULT_CLIENT_VERSION} (from built-in)"


def test_a_failing_or_silent_codex_is_ignored(tmp_path: Path, no_codex_on_path: Path) -> None:
    fake_codex(no_codex_on_path, "echo 'codex-cli 0.170.0'; exit 3")
    assert cli_version() is None
    fake_codex(no_codex_on_path, "echo 'no version here'")
    assert cli_version() is None


def test_a_hanging_codex_is_cut_off(tmp_path: Path, no_codex_on_path: Path) -> None:
    fake_codex(no_codex_on_path, "exec sleep 30")
    assert cli_version(timeout=0.3) is None


def test_a_non_executable_file_named_codex_is_not_run(
    tmp_path: Path, no_codex_on_path: Path
) -> None:
    path = fake_codex(no_codex_on_path, "echo 'codex-cli 0.170.0'")
    path.chmod(0o644)
    assert not os.access(path, os.X_OK)
    assert cli_version() is None


def test_configured_never_looks_at_the_machine(tmp_path: Path) -> None:
    (tmp_path / "version.json").write_text(json.dumps({"latest_version": "0.168.2"}))
    settings = Settings(codex_home=tmp_path)
    assert client_version.configured(settings).source == "built-in"
