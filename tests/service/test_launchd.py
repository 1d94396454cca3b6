"""``codex-proxy launchd ...`` run as real processes, with a fake ``launchctl`` first on PATH
and a temporary HOME; install waits for a real gateway's /healthz."""

from __future__ import annotations

import plistlib
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from codex_proxy.service.launchd import JobState, parse_print

from ..conftest import Gateway
from ..fake_tools import FakeTool, codex_proxy, service_env, uid
from ..processes import free_port

ROOT = Path(__file__).resolve().parents[2]
LABEL = "com.codex-api.gateway"
SECRETS = {"OPENAI_API_KEY": "sk-test-secret-1234", "CODEX_GATEWAY_TOKEN": "gw-secret-5678"}

PRINT_RUNNING = f"""gui/{uid()}/{LABEL} = {{
\tactive count = 1
\tpath = /Users/me/Library/LaunchAgents/{LABEL}.plist
\ttype = LaunchAgent
\tstate = running

\tprogram = /Users/me/.venv/bin/python3
\targuments = {{
\t\t/Users/me/.venv/bin/python3
\t}}

\tendpoints = {{
\t\tstate = active
\t}}
\tlast exit code = 0
\tpid = 4242
}}
"""


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    return tmp_path / "bin"


@pytest.fixture
def launchctl(bin_dir: Path) -> FakeTool:
    return FakeTool("launchctl", bin_dir)


def printed_plist(tmp_path: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    result = codex_proxy(["launchd", "print", *args], env, tmp_path)
    assert result.returncode == 0, result.stderr
    for secret in SECRETS.values():
        assert secret not in result.stdout
        assert secret not in result.stderr
    job = plistlib.loads(result.stdout.encode())
    assert isinstance(job, dict)
    return job


def test_print_is_a_complete_plist_without_secrets(tmp_path: Path, bin_dir: Path) -> None:
    env = service_env(tmp_path, bin_dir, **SECRETS)
    job = printed_plist(tmp_path, env, "--port", "8123")
    home = Path(env["HOME"])

    assert job["Label"] == LABEL
    program = job["ProgramArguments"]
    assert all(isinstance(arg, str) for arg in program)
    assert Path(program[0]).is_absolute()
    assert Path(program[0]).resolve() == Path(sys.executable).resolve()
    settings = str(tmp_path / "config/codex-proxy/settings.env")  # the default settings file
    assert program[1:] == [
        "-m", "codex_proxy", "serve", "--host", "127.0.0.1", "--port", "8123",
        "--env-file", settings,
    ]  # fmt: skip
    assert job["EnvironmentVariables"] == {
        "CODEX_HOME": env["CODEX_HOME"],
        "CODEX_SETTINGS_FILE": settings,
        "HOME": str(home),
        "PYTHONUNBUFFERED": "1",
    }
    assert job["RunAtLoad"] is True
    assert job["KeepAlive"] == {"SuccessfulExit": False}
    assert isinstance(job["ThrottleInterval"], int) and job["ThrottleInterval"] > 0
    assert job["ProcessType"] == "Background"
    assert Path(job["WorkingDirectory"]).is_absolute()
    assert job["StandardOutPath"] == str(home / "Library/Logs/codex-proxy.log")
    assert job["StandardErrorPath"] == str(home / "Library/Logs/codex-proxy.err.log")


def test_print_warns_by_name_about_settings_the_service_will_not_see(
    tmp_path: Path, bin_dir: Path
) -> None:
    env = service_env(tmp_path, bin_dir, **SECRETS)
    result = codex_proxy(["launchd", "print"], env, tmp_path)
    assert "CODEX_GATEWAY_TOKEN, OPENAI_API_KEY are set in this shell" in result.stderr


def test_print_with_env_file_and_label(tmp_path: Path, bin_dir: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "gateway.env").write_text(
        f"CODEX_HOST=0.0.0.0\nCODEX_PORT=9001\nCODEX_GATEWAY_TOKEN={SECRETS['CODEX_GATEWAY_TOKEN']}\n"
    )
    env = service_env(tmp_path, bin_dir)
    job = printed_plist(folder, env, "--env-file", "gateway.env", "--label", "org.example.proxy")
    env_file = str(folder / "gateway.env")
    assert job["Label"] == "org.example.proxy"
    assert job["ProgramArguments"][-6:] == [
        "--host", "0.0.0.0", "--port", "9001", "--env-file", env_file,
    ]  # fmt: skip
    assert job["WorkingDirectory"] == str(folder)
    assert job["StandardErrorPath"].endswith("/Library/Logs/org.example.proxy.err.log")


def test_print_uses_dotenv_of_the_current_folder(tmp_path: Path, bin_dir: Path) -> None:
    (tmp_path / ".env").write_text("CODEX_PORT=9002\n")
    job = printed_plist(tmp_path, service_env(tmp_path, bin_dir))
    assert job["ProgramArguments"][-4:] == ["--port", "9002", "--env-file", str(tmp_path / ".env")]


def test_print_refuses_a_service_that_would_not_start(tmp_path: Path, bin_dir: Path) -> None:
    """The token is only in the shell: the service would refuse a public bind without it."""
    env = service_env(tmp_path, bin_dir, CODEX_GATEWAY_TOKEN="in-the-shell-only")
    result = codex_proxy(["launchd", "print", "--host", "0.0.0.0"], env, tmp_path)
    assert result.returncode == 2
    assert "the service would not start" in result.stderr
    assert "in-the-shell-only" not in result.stderr


def test_print_rejects_a_label_that_is_not_a_file_name(tmp_path: Path, bin_dir: Path) -> None:
    env = service_env(tmp_path, bin_dir)
    result = codex_proxy(["launchd", "print", "--label", "../evil"], env, tmp_path)
    assert result.returncode == 2
    assert "invalid label" in result.stderr


def test_template_has_the_keys_install_writes(tmp_path: Path, bin_dir: Path) -> None:
    template = plistlib.loads((ROOT / "launchd" / f"{LABEL}.plist").read_bytes())
    job = printed_plist(tmp_path, service_env(tmp_path, bin_dir))
    assert set(template) == set(job)
    assert template["Label"] == LABEL
    for key in ("KeepAlive", "RunAtLoad", "ThrottleInterval", "ProcessType"):
        assert template[key] == job[key]
    assert set(template["EnvironmentVariables"]) == set(job["EnvironmentVariables"])


def test_install_status_uninstall(
    tmp_path: Path, bin_dir: Path, launchctl: FakeTool, gateway: Gateway
) -> None:
    port = gateway.url.rsplit(":", 1)[1]
    env = service_env(tmp_path, bin_dir, **SECRETS)
    home = Path(env["HOME"])
    plist = home / "Library/LaunchAgents" / f"{LABEL}.plist"
    launchctl.respond("bootout", stderr="Boot-out failed: 3: No such process", rc=3)

    result = codex_proxy(["launchd", "install", "--port", port, "--wait", "5"], env, tmp_path)

    assert result.returncode == 0, result.stderr
    assert f"codex-proxy is up at http://127.0.0.1:{port}" in result.stdout
    assert stat.S_IMODE(plist.stat().st_mode) == 0o644
    job = plistlib.loads(plist.read_bytes())
    assert job["ProgramArguments"][-4:-2] == ["--port", port]  # then --env-file, settings file
    assert (home / "Library/Logs").is_dir()
    domain = f"gui/{uid()}"
    assert launchctl.calls() == [
        f"bootout {domain}/{LABEL}",
        f"bootstrap {domain} {plist}",
        f"enable {domain}/{LABEL}",
        f"kickstart -k {domain}/{LABEL}",
    ]
    for secret in SECRETS.values():
        assert secret not in result.stdout + result.stderr + plist.read_text()

    launchctl.respond("print", stdout=PRINT_RUNNING)
    (home / "Library/Logs/codex-proxy.err.log").write_text(
        "".join(f"line {n}\n" for n in range(30))
    )
    result = codex_proxy(["launchd", "status"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{LABEL}: loaded, running, pid 4242, last exit code 0" in result.stdout
    assert f"http://127.0.0.1:{port}/healthz: answers" in result.stdout
    assert "line 29" in result.stdout and "line 10" in result.stdout
    assert "line 9\n" not in result.stdout  # only the last 20 lines
    assert launchctl.calls()[-1] == f"print {domain}/{LABEL}"

    launchctl.respond("bootout")
    result = codex_proxy(["launchd", "uninstall"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"removed {plist}" in result.stdout
    assert not plist.exists()
    assert launchctl.calls()[-1] == f"bootout {domain}/{LABEL}"


def test_install_says_when_the_gateway_does_not_come_up(
    tmp_path: Path, bin_dir: Path, launchctl: FakeTool
) -> None:
    env = service_env(tmp_path, bin_dir)
    port = str(free_port())
    result = codex_proxy(["launchd", "install", "--port", port, "--wait", "0.3"], env, tmp_path)
    assert result.returncode == 1
    assert f"http://127.0.0.1:{port}/healthz did not answer within 0.3 s" in result.stderr
    assert str(Path(env["HOME"]) / "Library/Logs/codex-proxy.err.log") in result.stderr


def test_install_fails_clearly_when_bootstrap_fails(
    tmp_path: Path, bin_dir: Path, launchctl: FakeTool
) -> None:
    launchctl.respond("bootstrap", stderr="Bootstrap failed: 5: Input/output error", rc=5)
    env = service_env(tmp_path, bin_dir)
    result = codex_proxy(["launchd", "install", "--wait", "0"], env, tmp_path)
    assert result.returncode == 1
    assert "Bootstrap failed: 5: Input/output error" in result.stderr
    assert "kickstart" not in " ".join(launchctl.calls())


def test_status_of_a_job_that_is_not_loaded(
    tmp_path: Path, bin_dir: Path, launchctl: FakeTool
) -> None:
    launchctl.respond("print", stderr=f'Could not find service "{LABEL}" in domain', rc=113)
    result = codex_proxy(["launchd", "status"], service_env(tmp_path, bin_dir), tmp_path)
    assert result.returncode == 3
    assert f"{LABEL}: not loaded" in result.stdout
    assert "(not installed)" in result.stdout
    assert "none yet" in result.stdout


def test_uninstall_when_nothing_is_installed(
    tmp_path: Path, bin_dir: Path, launchctl: FakeTool
) -> None:
    launchctl.respond("bootout", rc=113)
    result = codex_proxy(["launchd", "uninstall"], service_env(tmp_path, bin_dir), tmp_path)
    assert result.returncode == 0
    assert "was not installed" in result.stdout


@pytest.mark.parametrize("action", ["install", "uninstall", "status"])
def test_without_launchctl(tmp_path: Path, bin_dir: Path, action: str) -> None:
    bin_dir.mkdir()
    result = codex_proxy(["launchd", action], service_env(tmp_path, bin_dir), tmp_path)
    assert result.returncode == 1
    assert "`launchctl` was not found on PATH" in result.stderr
    assert not (tmp_path / "home/Library/LaunchAgents").exists()


def test_parse_print_reads_the_jobs_own_lines() -> None:
    assert parse_print(PRINT_RUNNING) == JobState(True, "running", 4242, "0")
    waiting = "gui/501/x = {\n\tstate = not running\n\tlast exit code = (never exited)\n}\n"
    assert parse_print(waiting) == JobState(True, "not running", None, "(never exited)")
