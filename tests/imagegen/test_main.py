"""codex-imagegen end to end: the installed console script, run as a subprocess against a real
gateway (token required, image generation on) and the fake upstream, which draws real images.

Every run goes through :func:`imagegen`, which also checks that no token ever reaches stdout
or stderr. Images are 64x64 or smaller so the file stays fast.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from codex_proxy.config import Settings
from codex_proxy.imagegen.credentials import resolve
from codex_proxy.imagegen.files import dimensions, slugify
from codex_proxy.imagegen.main import Progress
from codex_proxy.mock.events import text_response
from codex_proxy.mock.images import render_image
from codex_proxy.mock.server import FakeUpstream, Reply

from ..conftest import Gateway, start_gateway
from ..processes import clean_env, free_port

SCRIPT = Path(sys.executable).parent / "codex-imagegen"
TOKEN = "imgtok-RECOGNISABLE-5f3e9a1c"
WRONG = "imgtok-WRONG-0d7b2c44"
SECRETS = (TOKEN, WRONG, "devtoken")
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def paths(self) -> list[str]:
        return self.out.splitlines()


@pytest.fixture(scope="module")
def gw(base_settings: Settings) -> Iterator[Gateway]:
    """One gateway for the module: it checks a token and has image generation on."""
    server = start_gateway(replace(base_settings, gateway_token=TOKEN, enable_image_gen=True))
    yield server
    server.stop()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME: no ~/.config/codex-api of the machine running the tests."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """The agent's workspace: the current directory of each run."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def imagegen(*args: str, cwd: Path, home: Path, timeout: float = 20, **env: str) -> Run:
    """Run the console script; assert that no token leaked into its output."""
    proc = subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=clean_env(cwd, HOME=str(home), **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    for secret in SECRETS:
        assert secret not in proc.stdout and secret not in proc.stderr, "a token was printed"
    return Run(proc.returncode, proc.stdout, proc.stderr)


def connected(gw: Gateway, token: str = TOKEN) -> dict[str, str]:
    """Env for a run that reaches ``gw`` with ``token``."""
    return {"CODEX_API_BASE_URL": gw.url, "CODEX_API_TOKEN": token}


def write_config(
    home: Path, *, base_url: str | None = None, token: str | None = None, mode: int = 0o600
) -> Path:
    folder = home / ".config" / "codex-api"
    folder.mkdir(parents=True, exist_ok=True)
    if base_url is not None:
        (folder / "base_url").write_text(base_url + "\n")
    if token is not None:
        (folder / "token").write_text(token + "\n")
        (folder / "token").chmod(mode)
    return folder


def opened(path: Path) -> Image.Image:
    image = Image.open(io.BytesIO(path.read_bytes()))
    image.load()
    return image


def fake_image(prompt: str, width: int, height: int, fmt: str = "png") -> bytes:
    """The bytes the fake upstream draws for ``prompt`` (seeded by the prompt's crc32)."""
    return render_image(width, height, fmt, seed=zlib.crc32(prompt.encode()))


def png_bytes(
    size: tuple[int, int] = (32, 32), color: Any = (10, 200, 30), mode: str = "RGB"
) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, format="PNG")
    return out.getvalue()


def user_content(request: Any) -> list[dict[str, Any]]:
    [message] = [i for i in request.body["input"] if i.get("role") == "user"]
    return message["content"]


# -- writing files ---------------------------------------------------------------------------


def test_default_path_then_numbered_copies(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    prompt = "A Red Fox, in the snow!"
    first = imagegen(prompt, "--size", "64x64", cwd=work, home=home, **connected(gw))
    assert first.code == 0, first.err
    assert first.paths == ["assets/generated/a-red-fox-in-the-snow.png"]
    assert "wrote assets/generated/a-red-fox-in-the-snow.png (64x64 png" in first.err
    assert "revised prompt: A mock image of: A Red Fox, in the snow!" in first.err
    written = work / first.paths[0]
    assert written.read_bytes() == fake_image(prompt, 64, 64)
    image = opened(written)
    assert (image.format, image.size) == ("PNG", (64, 64))

    second = imagegen(prompt, "--size", "64x64", cwd=work, home=home, **connected(gw))
    assert second.code == 0, second.err
    assert second.paths == ["assets/generated/a-red-fox-in-the-snow-2.png"]
    assert written.read_bytes() == fake_image(prompt, 64, 64)  # the first one is untouched
    tool = upstream.responses_requests[-1].body["tools"][0]
    assert (tool["size"], tool["output_format"]) == ("64x64", "png")


def test_slug_rules() -> None:
    assert slugify("A Red Fox, in the snow!") == "a-red-fox-in-the-snow"
    assert slugify("  ...  ") == "image"
    assert slugify("Ünïcode café") == "n-code-caf"
    long = slugify("word " * 40)
    assert len(long) <= 60 and not long.endswith("-") and long.startswith("word-word")


def test_out_is_never_overwritten_without_force(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    target = work / "art" / "hero.png"
    target.parent.mkdir()
    target.write_bytes(b"keep me")
    refused = imagegen("a hero", "-o", "art/hero.png", cwd=work, home=home, **connected(gw))
    assert refused.code == 3
    assert "art/hero.png already exists" in refused.err and "--force" in refused.err
    assert refused.out == ""
    assert target.read_bytes() == b"keep me"
    assert upstream.responses_requests == []  # refused before spending any quota

    forced = imagegen(
        "a hero",
        "-o",
        "art/hero.png",
        "--size",
        "48x32",
        "--force",
        cwd=work,
        home=home,
        **connected(gw),
    )
    assert forced.code == 0, forced.err
    assert forced.paths == ["art/hero.png"]
    assert opened(target).size == (48, 32)
    assert [p.name for p in target.parent.iterdir()] == ["hero.png"]  # no temp file left


def test_out_creates_folders_and_format_follows_the_name(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    run = imagegen(
        "a photo of a lake",
        "-o",
        "public/img/lake.webp",
        "--size",
        "64x48",
        "--quiet",
        cwd=work,
        home=home,
        **connected(gw),
    )
    assert run.code == 0, run.err
    assert run.paths == ["public/img/lake.webp"]
    assert run.err == ""  # --quiet: no summary, no progress
    assert opened(work / "public/img/lake.webp").format == "WEBP"
    assert upstream.responses_requests[-1].body["tools"][0]["output_format"] == "webp"


def test_n_2_writes_two_numbered_files_and_json_parses(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    run = imagegen(
        "two app icons",
        "-n",
        "2",
        "--size",
        "32x32",
        "--format",
        "jpeg",
        "--json",
        cwd=work,
        home=home,
        **connected(gw),
    )
    assert run.code == 0, run.err
    result = json.loads(run.out)
    paths = [entry["path"] for entry in result["images"]]
    assert paths == ["assets/generated/two-app-icons.jpg", "assets/generated/two-app-icons-2.jpg"]
    assert result["path"] == paths[0]
    assert result["bytes"] == (work / paths[0]).stat().st_size
    assert result["size"] == "32x32"
    assert result["revised_prompt"] == "A mock image of: two app icons"
    assert isinstance(result["seconds"], float) and result["seconds"] >= 0
    assert result["endpoint"] == "/v1/images/generations"
    for path in paths:
        image = opened(work / path)
        assert (image.format, image.size) == ("JPEG", (32, 32))
    assert len(upstream.responses_requests) == 2


def test_edit_sends_the_file_and_the_mask(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    photo = png_bytes((40, 30))
    mask = png_bytes((40, 30), (0, 0, 0, 0), "RGBA")
    (work / "room.png").write_bytes(photo)
    (work / "mask.png").write_bytes(mask)
    run = imagegen(
        "add a window",
        "--edit",
        "room.png",
        "--mask",
        "mask.png",
        "--size",
        "40x30",
        "-o",
        "room-edited.png",
        cwd=work,
        home=home,
        **connected(gw),
    )
    assert run.code == 0, run.err
    assert "revised prompt: An edited mock image of: add a window" in run.err
    [request] = upstream.responses_requests
    images = [p for p in user_content(request) if p["type"] == "input_image"]
    assert [p["image_url"] for p in images] == [
        "data:image/png;base64," + base64.b64encode(photo).decode()
    ]
    tool = request.body["tools"][0]
    assert tool["input_image_mask"]["image_url"] == (
        "data:image/png;base64," + base64.b64encode(mask).decode()
    )
    assert opened(work / "room-edited.png").size == (40, 30)


# -- credentials -----------------------------------------------------------------------------


def test_flags_win_over_env_and_files(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    write_config(home, base_url=f"http://127.0.0.1:{free_port()}", token=WRONG)
    run = imagegen(
        "a cat",
        "--size",
        "16x16",
        "--base-url",
        f"{gw.url}/v1",
        "--token",
        TOKEN,
        "--verbose",
        cwd=work,
        home=home,
        CODEX_API_BASE_URL=f"http://127.0.0.1:{free_port()}",
        CODEX_API_TOKEN=WRONG,
    )
    assert run.code == 0, run.err
    assert "base URL from --base-url" in run.err and "token from --token" in run.err


def test_env_wins_over_files(gw: Gateway, upstream: FakeUpstream, work: Path, home: Path) -> None:
    write_config(home, base_url=f"http://127.0.0.1:{free_port()}", token=WRONG)
    run = imagegen("a cat", "--size", "16x16", "--verbose", cwd=work, home=home, **connected(gw))
    assert run.code == 0, run.err
    assert "base URL from env CODEX_API_BASE_URL" in run.err
    assert "token from env CODEX_API_TOKEN" in run.err
    assert "readable by other users" not in run.err  # the 0600 file is fine


def test_files_win_over_defaults_and_a_shared_token_file_warns(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    folder = write_config(home, base_url=gw.url, token=TOKEN, mode=0o644)
    run = imagegen("a cat", "--size", "16x16", "--verbose", cwd=work, home=home)
    assert run.code == 0, run.err
    assert f"base URL from file {folder / 'base_url'}" in run.err
    assert f"token from file {folder / 'token'}" in run.err
    assert f"{folder / 'token'} is readable by other users (mode 0644)" in run.err
    assert f"chmod 600 {folder / 'token'}" in run.err


def test_default_token_is_used_last_and_named_in_the_401(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    run = imagegen("a cat", "--base-url", gw.url, cwd=work, home=home)
    assert run.code == 5
    assert "wrong or missing gateway token (HTTP 401: Invalid gateway token.)" in run.err
    assert "the token came from the built-in default token" in run.err
    assert upstream.responses_requests == []


def test_resolution_order_value_by_value(tmp_path: Path) -> None:
    """Each value independently: flag, env, file, default."""
    write_config(tmp_path, base_url="http://file:1", token="file-token")
    env = {"CODEX_API_BASE_URL": "http://env:1/v1/", "CODEX_API_TOKEN": "env-token"}
    both = resolve(flag_base_url=None, flag_token="flag-token", environ=env, home=tmp_path)
    assert (both.base_url, both.token) == ("http://env:1", "flag-token")
    files = resolve(flag_base_url=None, flag_token=None, environ={}, home=tmp_path)
    assert (files.base_url, files.token) == ("http://file:1", "file-token")
    blank = {"CODEX_API_TOKEN": "  "}  # set but empty counts as unset
    empty = resolve(flag_base_url=None, flag_token=None, environ=blank, home=tmp_path / "none")
    assert (empty.base_url, empty.token) == ("http://127.0.0.1:8000", "devtoken")
    assert "file-token" not in repr(files)


# -- failures --------------------------------------------------------------------------------


def test_unreachable_gateway_is_exit_4(work: Path, home: Path) -> None:
    port = free_port()
    run = imagegen(
        "a cat",
        "--token",
        TOKEN,
        cwd=work,
        home=home,
        CODEX_API_BASE_URL=f"http://127.0.0.1:{port}",
    )
    assert run.code == 4
    assert f"failed to reach gateway at http://127.0.0.1:{port}: " in run.err
    assert "codex-proxy serve" in run.err and "launchctl kickstart" in run.err
    assert len(run.err.strip().splitlines()) == 1
    assert run.out == ""


def test_wrong_token_is_exit_5_and_says_where_it_came_from(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    run = imagegen("a cat", cwd=work, home=home, **connected(gw, WRONG))
    assert run.code == 5
    assert "HTTP 401" in run.err and "the token came from env CODEX_API_TOKEN" in run.err
    assert "--token" in run.err
    assert upstream.responses_requests == []


def test_rate_limit_is_exit_6_with_the_reset_time(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    body = {
        "error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "resets_at": 1_900_000_000,
            "resets_in_seconds": 3600,
        }
    }
    upstream.enqueue(Reply(status=429, body=body))
    run = imagegen("a cat", cwd=work, home=home, **connected(gw))
    assert run.code == 6
    assert "rate limited (HTTP 429): The usage limit has been reached" in run.err
    assert "resets at 2030-03-17" in run.err and "Retry after 3600 s" in run.err


def test_plain_429_passes_retry_after_on(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    upstream.enqueue(
        Reply(status=429, body={"error": {"message": "Slow down"}}, headers={"retry-after": "7"})
    )
    run = imagegen("a cat", cwd=work, home=home, **connected(gw))
    assert run.code == 6
    assert "rate limited (HTTP 429): Slow down Retry after 7 s" in run.err


def test_upstream_500_is_exit_7_with_the_gateway_message(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    upstream.enqueue(Reply(status=500, body={"error": {"message": "backend on fire"}}))
    run = imagegen("a cat", cwd=work, home=home, **connected(gw))
    assert run.code == 7
    assert "the gateway answered HTTP 502: Upstream error (HTTP 500): backend on fire" in run.err
    assert not (work / "assets").exists()


def test_text_only_answer_is_exit_2_quoting_the_text(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    upstream.enqueue(Reply(events=text_response("I would rather not draw that. " * 30)))
    run = imagegen("a cat", cwd=work, home=home, **connected(gw))
    assert run.code == 2
    [line] = run.err.strip().splitlines()
    prefix = "codex-imagegen: model did not return an image: I would rather not draw that."
    assert line.startswith(prefix)
    assert len(line) <= len("codex-imagegen: model did not return an image: ") + 500
    assert run.out == ""


def test_a_token_echoed_by_the_gateway_is_masked(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    """Errors never print the token, even when the other side quotes it back."""
    echo = {"error": {"message": f"Invalid value {TOKEN} for prompt"}}
    upstream.enqueue(Reply(status=400, body=echo))
    run = imagegen("a cat", cwd=work, home=home, **connected(gw))  # checks for the token
    assert run.code == 7
    assert "the gateway answered HTTP 400: Invalid value *** for prompt" in run.err


def test_timeout_is_exit_7(gw: Gateway, upstream: FakeUpstream, work: Path, home: Path) -> None:
    upstream.enqueue(Reply(events=text_response("late"), delay=5))
    run = imagegen("a cat", "--timeout", "1", cwd=work, home=home, **connected(gw))
    assert run.code == 7
    assert "timed out: no image from the gateway within 1 s" in run.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: prompt"),
        (("a cat", "--size", "big"), "--size must be auto or WIDTHxHEIGHT"),
        (("a cat", "--quality", "ultra"), "invalid choice: 'ultra'"),
        (("a cat", "-n", "9"), "-n must be 1 to 4"),
        (("a cat", "--compression", "101"), "--compression must be 0 to 100"),
        (("a cat", "--mask", "m.png"), "--mask needs --edit IMAGE"),
        (("a cat", "--edit", "missing.png"), "--edit missing.png: No such file or directory"),
        (("a cat", "--format", "jpeg", "--background", "transparent"), "needs --format png or"),
        (("a cat", "-o", "x.png", "--format", "webp"), "--format webp does not match"),
        (("a cat", "--base-url", "ftp://host"), "must start with http:// or https://"),
        (("a cat", "--tokn", TOKEN), "unrecognized arguments"),
    ],
)
def test_bad_arguments_are_exit_64(
    args: tuple[str, ...], message: str, work: Path, home: Path
) -> None:
    run = imagegen(*args, cwd=work, home=home)
    assert run.code == 64, run.err
    assert message in run.err
    assert len(run.err.strip().splitlines()) == 1
    assert run.out == ""


# -- the chat fallback -----------------------------------------------------------------------


class OldGateway:
    """A gateway without the Images API (an older codex-proxy build): the images routes answer
    ``missing``, everything else is passed to the real gateway as is."""

    def __init__(self, target: str, missing: int) -> None:
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                owner.paths.append(self.path)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if "/images/" in self.path:
                    error = {"message": f"Unknown path: POST {self.path}", "type": "x"}
                    self.answer(missing, json.dumps({"error": error}).encode())
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                reply = httpx.post(target + self.path, content=body, headers=headers, timeout=20)
                self.answer(reply.status_code, reply.content)

            def answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=[404, 405])
def old_gateway(request: pytest.FixtureRequest, gw: Gateway) -> Iterator[OldGateway]:
    stub = OldGateway(gw.url, request.param)
    yield stub
    stub.close()


def test_fallback_to_chat_when_the_images_api_is_missing(
    old_gateway: OldGateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    run = imagegen(
        "draw a lighthouse",
        "--size",
        "64x32",
        "--quality",
        "low",
        "--json",
        cwd=work,
        home=home,
        CODEX_API_BASE_URL=old_gateway.url,
        CODEX_API_TOKEN=TOKEN,
    )
    assert run.code == 0, run.err
    assert old_gateway.paths == ["/v1/images/generations", "/v1/chat/completions"]
    result = json.loads(run.out)
    assert result["endpoint"] == "/v1/chat/completions"
    assert result["size"] == "64x32"
    image = opened(work / result["path"])
    assert (image.format, image.size) == ("PNG", (64, 32))
    [request] = upstream.responses_requests
    assert request.body["tool_choice"] == {"type": "image_generation"}
    tool = request.body["tools"][0]
    assert (tool["size"], tool["quality"], tool["output_format"]) == ("64x32", "low", "png")
    text = user_content(request)[0]["text"]
    assert "image_generation tool" in text and text.endswith("draw a lighthouse")
    assert (work / result["path"]).read_bytes() == fake_image(text, 64, 32)


def test_fallback_edit_and_text_only_answer(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    stub = OldGateway(gw.url, 404)
    try:
        photo = png_bytes((24, 24))
        (work / "in.png").write_bytes(photo)
        env = {"CODEX_API_BASE_URL": stub.url, "CODEX_API_TOKEN": TOKEN}
        upstream.enqueue(Reply(events=text_response("Sorry, only words today.")))
        run = imagegen("make it blue", "--edit", "in.png", cwd=work, home=home, **env)
        assert stub.paths == ["/v1/images/edits", "/v1/chat/completions"]
    finally:
        stub.close()
    assert run.code == 2
    assert "model did not return an image: Sorry, only words today." in run.err
    images = [p for p in user_content(upstream.responses_requests[0]) if p["type"] == "input_image"]
    assert [p["image_url"] for p in images] == [
        "data:image/png;base64," + base64.b64encode(photo).decode()
    ]


def test_fallback_downloads_a_linked_image(
    make_gateway: Any, upstream: FakeUpstream, work: Path, home: Path, tmp_path: Path
) -> None:
    """A gateway that links images instead of inlining them (CODEX_IMAGE_DELIVERY=url)."""
    linking = make_gateway(gateway_token=TOKEN, image_delivery="url", image_dir=tmp_path / "images")
    stub = OldGateway(linking.url, 404)
    try:
        env = {"CODEX_API_BASE_URL": stub.url, "CODEX_API_TOKEN": TOKEN}
        run = imagegen("draw a kite", "--size", "24x16", cwd=work, home=home, **env)
    finally:
        stub.close()
    assert run.code == 0, run.err
    assert opened(work / run.paths[0]).size == (24, 16)
    [stored] = (tmp_path / "images").iterdir()
    assert (work / run.paths[0]).read_bytes() == stored.read_bytes()


def test_model_flag_uses_the_chat_route(
    gw: Gateway, upstream: FakeUpstream, work: Path, home: Path
) -> None:
    run = imagegen(
        "a paper plane",
        "--model",
        "gpt-5.1-codex-mini",
        "--size",
        "16x16",
        "--verbose",
        cwd=work,
        home=home,
        **connected(gw),
    )
    assert run.code == 0, run.err
    assert "using /v1/chat/completions" in run.err
    assert upstream.responses_requests[0].body["model"] == "gpt-5.1-codex-mini"
    assert opened(work / run.paths[0]).size == (16, 16)


# -- pieces that need no gateway -------------------------------------------------------------


class FakeStream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_lines_every_10_s_off_a_terminal() -> None:
    now = [0.0]
    stream = FakeStream(tty=False)
    progress = Progress(stream, enabled=True, label="generating", clock=lambda: now[0])
    for second in range(1, 26):
        now[0] = float(second)
        progress.tick()
    progress.clear()
    assert stream.getvalue().splitlines() == [
        "codex-imagegen: generating... 10 s",
        "codex-imagegen: generating... 20 s",
    ]


def test_progress_rewrites_one_line_on_a_terminal() -> None:
    now = [0.0]
    stream = FakeStream(tty=True)
    progress = Progress(stream, enabled=True, label="generating", clock=lambda: now[0])
    for second in (1, 2):
        now[0] = float(second)
        progress.tick()
    progress.clear()
    assert stream.getvalue() == (
        "\rcodex-imagegen: generating... 1 s\rcodex-imagegen: generating... 2 s\r\x1b[K"
    )


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_dimensions_from_headers(fmt: str) -> None:
    assert dimensions(render_image(37, 21, fmt), fmt) == (37, 21)


def test_the_client_does_not_import_the_gateway() -> None:
    """Start-up stays small: no app, starlette, uvicorn or orjson (timing is in bench/)."""
    code = (
        "import sys, codex_proxy.imagegen.main as m; m.build_parser();"
        "print(' '.join(sorted(sys.modules)))"
    )
    modules = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    heavy = {
        "starlette",
        "uvicorn",
        "orjson",
        "httpx",
        "codex_proxy.server.app",
        "codex_proxy.config",
    }
    assert heavy.isdisjoint(modules)
