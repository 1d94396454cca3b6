"""``codex-proxy systemd ...`` run as real processes, with fake ``systemctl`` and ``journalctl``
first on PATH and a temporary HOME; install waits for a real gateway's /healthz."""

from __future__ import annotations

import shlex
import stat
import sys
from pathlib import Path

import pytest

from codex_proxy.service.systemd import env_quote, exec_quote, parse_show

from ..conftest import Gateway
from ..fake_tools import FakeTool, codex_proxy, service_env
from ..processes import free_port

UNIT = "codex-proxy.service"
SECRETS = {"OPENAI_API_KEY": "sk-test-secret-1234", "CODEX_GATEWAY_TOKEN": "gw-secret-5678"}
SHOW_RUNNING = (
    "LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=4242\nExecMainStatus=0\n"
)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    return tmp_path / "bin"


@pytest.fixture
def systemctl(bin_dir: Path) -> FakeTool:
    tool = FakeTool("systemctl", bin_dir)
    tool.respond("is-active", stdout="inactive\n", rc=3)
    return tool


@pytest.fixture
def journalctl(bin_dir: Path) -> FakeTool:
    return FakeTool("journalctl", bin_dir)


def unit_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def exec_start(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_print_is_a_complete_unit_without_secrets(tmp_path: Path, bin_dir: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    env_file = folder / "gateway.env"
    env_file.write_text(f"CODEX_GATEWAY_TOKEN={SECRETS['CODEX_GATEWAY_TOKEN']}\n")
    env = service_env(tmp_path, bin_dir, **SECRETS)
    result = codex_proxy(
        ["systemd", "print", "--port", "8124", "--env-file", str(env_file)], env, tmp_path
    )
    assert result.returncode == 0, result.stderr
    for secret in SECRETS.values():
        assert secret not in result.stdout + result.stderr

    argv = exec_start(result.stdout)
    assert Path(argv[0]).is_absolute()
    assert Path(argv[0]).resolve() == Path(sys.executable).resolve()
    assert argv[1:] == [
        "-m", "codex_proxy", "serve", "--host", "127.0.0.1", "--port", "8124",
        "--env-file", str(env_file),
    ]  # fmt: skip
    lines = unit_lines(result.stdout)
    assert lines[:3] == [
        "[Unit]",
        "Description=codex-proxy gateway (OpenAI-compatible API for a ChatGPT subscription)",
        "After=network-online.target",
    ]
    for expected in (
        "[Service]",
        f"EnvironmentFile=-{env_file}",
        f'Environment="CODEX_HOME={env["CODEX_HOME"]}"',
        f'Environment="HOME={env["HOME"]}"',
        f"WorkingDirectory={folder}",
        "Restart=on-failure",
        "RestartSec=5",
    ):
        assert expected in lines
    assert lines[-2:] == ["[Install]", "WantedBy=default.target"]


def test_print_without_env_file_uses_the_settings_file(tmp_path: Path, bin_dir: Path) -> None:
    """No --env-file and no ./.env: the service still reads a known file, the settings file."""
    result = codex_proxy(["systemd", "print"], service_env(tmp_path, bin_dir), tmp_path)
    assert result.returncode == 0, result.stderr
    settings = tmp_path / "config/codex-proxy/settings.env"
    assert f"EnvironmentFile=-{settings}" in result.stdout
    assert f'Environment="CODEX_SETTINGS_FILE={settings}"' in result.stdout
    assert exec_start(result.stdout)[-4:] == ["--port", "8000", "--env-file", str(settings)]
    assert f"the service reads {settings}; install creates it" in result.stderr
    assert not settings.exists()  # print writes nothing


def test_install_creates_a_private_commented_settings_file(
    tmp_path: Path, bin_dir: Path, systemctl: FakeTool, gateway: Gateway
) -> None:
    port = gateway.url.rsplit(":", 1)[1]
    env = service_env(tmp_path, bin_dir)
    result = codex_proxy(["systemd", "install", "--port", port, "--wait", "5"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    settings = tmp_path / "config/codex-proxy/settings.env"
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600
    text = settings.read_text()
    assert all(line == "" or line.startswith("#") for line in text.splitlines())
    unit = (Path(env["HOME"]) / ".config/systemd/user" / UNIT).read_text()
    assert f"EnvironmentFile=-{settings}" in unit
    settings.write_text("CODEX_MODEL=kept\n")  # an existing file is left as it is
    assert codex_proxy(["systemd", "install", "--port", port], env, tmp_path).returncode == 0
    assert settings.read_text() == "CODEX_MODEL=kept\n"


def test_print_says_a_shell_only_token_must_go_in_the_settings_file(
    tmp_path: Path, bin_dir: Path
) -> None:
    env = service_env(tmp_path, bin_dir, CODEX_GATEWAY_TOKEN="in-the-shell-only")
    result = codex_proxy(["systemd", "print", "--host", "0.0.0.0"], env, tmp_path)
    assert result.returncode == 2
    settings = tmp_path / "config/codex-proxy/settings.env"
    assert "the service would not start: CODEX_GATEWAY_TOKEN is set in this shell" in result.stderr
    assert f"Put it in {settings}" in result.stderr
    assert "in-the-shell-only" not in result.stderr


def test_install_status_uninstall(
    tmp_path: Path, bin_dir: Path, systemctl: FakeTool, journalctl: FakeTool, gateway: Gateway
) -> None:
    port = gateway.url.rsplit(":", 1)[1]
    env = service_env(tmp_path, bin_dir, **SECRETS)
    unit = Path(env["HOME"]) / ".config/systemd/user" / UNIT

    result = codex_proxy(["systemd", "install", "--port", port, "--wait", "5"], env, tmp_path)

    assert result.returncode == 0, result.stderr
    assert f"codex-proxy is up at http://127.0.0.1:{port}" in result.stdout
    assert "loginctl enable-linger" in result.stderr
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert exec_start(unit.read_text())[-4:-2] == ["--port", port]  # then --env-file SETTINGS
    assert systemctl.calls() == [
        f"--user is-active --quiet {UNIT}",
        "--user daemon-reload",
        f"--user enable --now {UNIT}",
    ]
    for secret in SECRETS.values():
        assert secret not in result.stdout + result.stderr + unit.read_text()

    systemctl.respond("show", stdout=SHOW_RUNNING)
    journalctl.respond(UNIT, stdout="Nov 21 gateway: started\nNov 21 gateway: healthy\n")
    result = codex_proxy(["systemd", "status"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{UNIT}: active (running), pid 4242, last exit status 0" in result.stdout
    assert f"http://127.0.0.1:{port}/healthz: answers" in result.stdout
    assert "  Nov 21 gateway: healthy" in result.stdout
    assert systemctl.calls()[-1] == (
        f"--user show {UNIT} -p LoadState,ActiveState,SubState,MainPID,ExecMainStatus"
    )
    assert journalctl.calls() == [f"--user -u {UNIT} -n 20 --no-pager"]

    result = codex_proxy(["systemd", "uninstall"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not unit.exists()
    assert systemctl.calls()[-2:] == [f"--user disable --now {UNIT}", "--user daemon-reload"]


def test_reinstall_restarts_a_running_service(
    tmp_path: Path, bin_dir: Path, systemctl: FakeTool, gateway: Gateway
) -> None:
    systemctl.respond("is-active", stdout="active\n")
    port = gateway.url.rsplit(":", 1)[1]
    env = service_env(tmp_path, bin_dir)
    result = codex_proxy(["systemd", "install", "--port", port], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert systemctl.calls()[-2:] == [f"--user enable --now {UNIT}", f"--user restart {UNIT}"]


def test_install_says_when_the_gateway_does_not_come_up(
    tmp_path: Path, bin_dir: Path, systemctl: FakeTool
) -> None:
    port = str(free_port())
    env = service_env(tmp_path, bin_dir)
    result = codex_proxy(["systemd", "install", "--port", port, "--wait", "0.3"], env, tmp_path)
    assert result.returncode == 1
    assert f"http://127.0.0.1:{port}/healthz did not answer within 0.3 s" in result.stderr
    assert f"journalctl --user -u {UNIT}" in result.stderr


def test_install_fails_clearly_when_systemctl_fails(
    tmp_path: Path, bin_dir: Path, systemctl: FakeTool
) -> None:
    systemctl.respond("daemon-reload", stderr="Failed to connect to bus: No medium found", rc=1)
    result = codex_proxy(["systemd", "install"], service_env(tmp_path, bin_dir), tmp_path)
    assert result.returncode == 1
    assert "Failed to connect to bus" in result.stderr


def test_status_without_journalctl(tmp_path: Path, bin_dir: Path, systemctl: FakeTool) -> None:
    systemctl.respond("show", stdout="LoadState=not-found\nActiveState=inactive\nSubState=dead\n")
    result = codex_proxy(["systemd", "status"], service_env(tmp_path, bin_dir), tmp_path)
    assert result.returncode == 3
    assert f"{UNIT}: not installed" in result.stdout
    assert "journalctl not found" in result.stdout


def test_uninstall_when_nothing_is_installed(
    tmp_path: Path, bin_dir: Path, systemctl: FakeTool
) -> None:
    result = codex_proxy(["systemd", "uninstall"], service_env(tmp_path, bin_dir), tmp_path)
    assert result.returncode == 0
    assert "was not installed" in result.stdout


@pytest.mark.parametrize("action", ["install", "uninstall", "status"])
def test_without_systemctl(tmp_path: Path, bin_dir: Path, action: str) -> None:
    bin_dir.mkdir()
    result = codex_proxy(["systemd", action], service_env(tmp_path, bin_dir), tmp_path)
    assert result.returncode == 1
    assert "`systemctl` was not found on PATH" in result.stderr


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("/usr/bin/python3", "/usr/bin/python3"),
        ("/Users/me/My Env/python", '"/Users/me/My Env/python"'),
        ("/odd/100%/x", "/odd/100%%/x"),
        ("/odd/$HOME", "/odd/$$HOME"),
        ('/q"uote', '"/q\\"uote"'),
    ],
)
def test_exec_quote(arg: str, quoted: str) -> None:
    assert exec_quote(arg) == quoted


def test_env_quote_and_parse_show() -> None:
    assert env_quote("CODEX_HOME", "/a b/50%") == '"CODEX_HOME=/a b/50%%"'
    assert parse_show(SHOW_RUNNING)["MainPID"] == "4242"


def test_status_without_a_user_bus_says_what_that_means(
    tmp_path: Path, bin_dir: Path, systemctl: FakeTool
) -> None:
    systemctl.respond("show", stderr="Failed to connect to bus: No medium found", rc=1)
    result = codex_proxy(["systemd", "status"], service_env(tmp_path, bin_dir), tmp_path)
    assert result.returncode == 1
    assert "cannot reach your user's service manager (no user bus)" in result.stderr
    assert "loginctl enable-linger" in result.stderr
    assert "Failed to connect to bus" not in result.stderr
