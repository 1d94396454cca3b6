"""The command line, run as a user would: real processes, real ports, the SDK as the client."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from codex_proxy.config import Settings, refuse_reason

from ..conftest import write_auth_json
from ..processes import clean_env, free_port, running

BIN = Path(sys.executable).parent
USER = [{"role": "user", "content": "Say hello"}]


def ask(url: str, api_key: str = "unused") -> str | None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=api_key, max_retries=0)
    return (
        client.chat.completions.create(model="gpt-5.2-codex", messages=USER)
        .choices[0]
        .message.content
    )


@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "codex-proxy"), "serve"],
        [str(BIN / "agent-cli-to-api"), "codex"],
        [sys.executable, "-m", "codex_proxy", "serve"],
    ],
    ids=["codex-proxy", "agent-cli-to-api", "python-m"],
)
def test_serve_mock_answers_sdk(command: list[str], tmp_path: Path) -> None:
    port = free_port()
    with running(
        [*command, "--mock", "--port", str(port)], port, clean_env(tmp_path), tmp_path
    ) as url:
        assert ask(url) == "Mock reply to: Say hello"


def test_env_file_is_read_and_real_env_wins(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / ".env").write_text(f"CODEX_PORT={port}\nCODEX_GATEWAY_TOKEN=from-dotenv\n")
    env = clean_env(tmp_path)
    with running([str(BIN / "codex-proxy"), "serve", "--mock"], port, env, tmp_path) as url:
        assert ask(url, api_key="from-dotenv") == "Mock reply to: Say hello"
        with pytest.raises(openai.AuthenticationError):
            ask(url, api_key="wrong")
    env["CODEX_GATEWAY_TOKEN"] = "from-environment"
    with running([str(BIN / "codex-proxy"), "serve", "--mock"], port, env, tmp_path) as url:
        assert ask(url, api_key="from-environment") == "Mock reply to: Say hello"


def test_explicit_env_file(tmp_path: Path) -> None:
    port = free_port()
    settings_file = tmp_path / "gateway.env"
    settings_file.write_text(f"CODEX_PORT={port}\nCODEX_GATEWAY_TOKEN=file-token\n")
    command = [str(BIN / "codex-proxy"), "serve", "--mock", "--env-file", str(settings_file)]
    with running(command, port, clean_env(tmp_path), tmp_path) as url:
        assert ask(url, api_key="file-token") == "Mock reply to: Say hello"


def test_workers(tmp_path: Path) -> None:
    port = free_port()
    command = [str(BIN / "codex-proxy"), "serve", "--mock", "--workers", "2", "--port", str(port)]
    with running(command, port, clean_env(tmp_path), tmp_path) as url:
        assert [ask(url) for _ in range(4)] == ["Mock reply to: Say hello"] * 4


def test_refuses_public_bind_without_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "codex-proxy"), "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        env=clean_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "CODEX_GATEWAY_TOKEN" in result.stderr


def test_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "codex-proxy"), "serve"],
        env=clean_env(tmp_path, CODEX_AUTH_MODE="sometimes"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "CODEX_AUTH_MODE must be one of auto, chatgpt, api_key" in result.stderr


@pytest.mark.parametrize(
    ("host", "token", "allow", "refused"),
    [
        ("127.0.0.1", None, False, False),
        ("localhost", None, False, False),
        ("::1", None, False, False),
        ("0.0.0.0", None, False, True),
        ("192.168.1.5", None, False, True),
        ("0.0.0.0", "tok", False, False),
        ("0.0.0.0", None, True, False),
    ],
)
def test_refuse_reason(host: str, token: str | None, allow: bool, refused: bool) -> None:
    settings = Settings(host=host, gateway_token=token, allow_no_auth=allow)
    assert (refuse_reason(settings) is not None) == refused


def test_first_run_without_login_says_how_to_sign_in_or_try_mock(tmp_path: Path) -> None:
    """Never signed in: one warning at start naming both ways forward, and a 401 that says the
    same (not "sign in again")."""
    port = free_port()
    command = [str(BIN / "codex-proxy"), "serve", "--port", str(port)]
    with (
        running(command, port, clean_env(tmp_path), tmp_path) as url,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        ask(url)
    message = caught.value.body["message"]  # type: ignore[index]
    assert message.startswith("Not signed in:")
    assert "again" not in message
    assert "`codex-proxy login`" in message and "`codex-proxy serve --mock`" in message
    log = (tmp_path / f"gateway-{port}.log").read_text()
    assert log.count("WARNING: Not signed in") == 1
    warning = log.index("WARNING: Not signed in")
    assert warning < log.index("Started server process")  # before uvicorn's lines
    assert "codex-proxy login" in log[warning:] and "codex-proxy serve --mock" in log[warning:]


def test_no_warning_when_signed_in(tmp_path: Path) -> None:
    write_auth_json(tmp_path / "codex-home")
    port = free_port()
    command = [str(BIN / "codex-proxy"), "serve", "--port", str(port)]
    with running(command, port, clean_env(tmp_path), tmp_path):
        pass
    assert "WARNING" not in (tmp_path / f"gateway-{port}.log").read_text()


@pytest.mark.parametrize("command", [["serve"], ["doctor"], ["status"]])
def test_bad_log_level_is_one_line_everywhere(command: list[str], tmp_path: Path) -> None:
    """It used to be a raw ValueError traceback from serve, and `settings ok` from doctor."""
    result = subprocess.run(
        [str(BIN / "codex-proxy"), *command],
        env=clean_env(tmp_path, CODEX_LOG_LEVEL="verbose"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr
    said = result.stdout + result.stderr
    assert "CODEX_LOG_LEVEL must be one of info, debug, warning, error, critical" in said


def test_port_in_use_is_found_before_ready(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(BIN / "codex-proxy"), "serve", "--mock", "--port", str(port)],
            env=clean_env(tmp_path),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in result.stderr
    assert "another gateway running" in result.stderr and "--port" in result.stderr
    assert "codex-proxy ready" not in result.stderr and "Traceback" not in result.stderr


def test_no_arguments_prints_the_help(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "codex-proxy")], env=clean_env(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 2  # a usage error, as for any other wrong call
    assert result.stdout.startswith("usage: codex-proxy")
    for command in ("serve", "login", "status", "doctor", "config", "systemd"):
        assert command in result.stdout


def test_serve_help_has_a_description(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "codex-proxy"), "serve", "--help"],
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert "Run the OpenAI-compatible gateway" in result.stdout
    assert "--mock" in result.stdout


def test_mock_logs_start_and_stop_once(tmp_path: Path) -> None:
    port = free_port()
    command = [str(BIN / "codex-proxy"), "serve", "--mock", "--port", str(port)]
    with running(command, port, clean_env(tmp_path), tmp_path):
        pass
    log = (tmp_path / f"gateway-{port}.log").read_text()
    assert log.count("Started server process") == 1
    assert log.count("Finished server process") == 1


def test_refuses_cors_origins_without_token(tmp_path: Path) -> None:
    """A listed website could spend the subscription from any visitor's browser."""
    port = free_port()
    for origins in ("*", "https://chat.example.com"):
        result = subprocess.run(
            [str(BIN / "codex-proxy"), "serve", "--mock", "--port", str(port)],
            env=clean_env(tmp_path, CODEX_CORS_ORIGINS=origins),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2, result.stderr
        assert "refusing to allow web pages (CODEX_CORS_ORIGINS) without CODEX_GATEWAY_TOKEN" in (
            result.stderr
        )
        assert "CODEX_ALLOW_NO_AUTH=1" in result.stderr
    allowed = clean_env(tmp_path, CODEX_CORS_ORIGINS="*", CODEX_ALLOW_NO_AUTH="1")
    command = [str(BIN / "codex-proxy"), "serve", "--mock", "--port", str(port)]
    with running(command, port, allowed, tmp_path) as url:
        assert ask(url) == "Mock reply to: Say hello"


@pytest.mark.parametrize(
    ("origins", "token", "allow", "refused"),
    [
        ((), None, False, False),
        (("*",), None, False, True),
        (("https://a.example",), None, False, True),
        (("*",), "tok", False, False),
        (("*",), None, True, False),
    ],
)
def test_refuse_reason_cors(
    origins: tuple[str, ...], token: str | None, allow: bool, refused: bool
) -> None:
    settings = Settings(cors_origins=origins, gateway_token=token, allow_no_auth=allow)
    assert (refuse_reason(settings) is not None) == refused
