"""Security posture: request size limits, CORS, secrets kept out of logs and answers, no
fetching of client URLs, the public image files route, binding and the gateway token.

server/test_app.py, cli/test_main.py and server/test_image_chat.py already cover the token on
every route, the refused public bind and the basic traversal cases; this file extends them.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from codex_proxy.config import Settings, load_settings, refuse_reason
from codex_proxy.mock.events import ResponseScript, text_response
from codex_proxy.mock.images import render_image
from codex_proxy.mock.server import FakeUpstream, Reply
from codex_proxy.mock.tokens import fake_jwt, id_token
from codex_proxy.server import middleware as app_module
from codex_proxy.server.image_files import ImageStore

from ..conftest import ACCOUNT_ID, Gateway, start_gateway
from ..processes import clean_env, free_port, running

MODEL = "gpt-5.2-codex"
USER = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"


def chat_body(**extra: Any) -> bytes:
    return json.dumps({"model": MODEL, "messages": USER, **extra}).encode()


def read_response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 answer with a Content-Length from a raw socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk
        rest += chunk
    return status, headers, rest[:length]


def raw_head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def port_of(gw: Gateway) -> int:
    return int(gw.url.rsplit(":", 1)[1])


# -- request body limit -----------------------------------------------------------------------


def test_declared_length_over_the_limit_is_413_before_any_body_byte(gateway: Gateway) -> None:
    declared = 50 * 1024 * 1024 + 1  # default CODEX_MAX_REQUEST_MB is 50
    with socket.create_connection(("127.0.0.1", port_of(gateway))) as sock:
        sock.sendall(
            raw_head(CHAT, {"content-type": "application/json", "content-length": str(declared)})
        )  # and not one byte of the body
        status, headers, payload = read_response(sock)
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert json.loads(payload) == {
        "error": {
            "message": "Request body is larger than the gateway accepts "
            "(50 MB, CODEX_MAX_REQUEST_MB).",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_too_large",
        }
    }


@pytest.fixture(scope="module")
def small_limit(base_settings: Settings) -> Iterator[Gateway]:
    server = start_gateway(replace(base_settings, max_request_mb=0.01))  # 10 KiB
    yield server
    server.stop()


def send_chunked(sock: socket.socket, path: str, chunks: list[bytes], content_type: str) -> None:
    """A chunked body; deliberately never sends the final empty chunk."""
    sock.sendall(raw_head(path, {"content-type": content_type, "transfer-encoding": "chunked"}))
    for chunk in chunks:
        sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")


def test_chunked_body_is_counted_and_cut_at_the_limit(
    small_limit: Gateway, upstream: FakeUpstream
) -> None:
    with socket.create_connection(("127.0.0.1", port_of(small_limit))) as sock:
        # 12 KiB sent, more "to come": the gateway must answer without waiting for the rest
        send_chunked(sock, CHAT, [b"x" * 4096] * 3, "application/json")
        status, _, payload = read_response(sock)
    assert status == 413
    assert json.loads(payload)["error"]["code"] == "request_too_large"
    assert "(0.01 MB, CODEX_MAX_REQUEST_MB)" in json.loads(payload)["error"]["message"]
    assert upstream.responses_requests == []


def test_chunked_multipart_edit_over_the_limit_is_413(small_limit: Gateway) -> None:
    boundary = "b0undary"
    part = (
        (
            f'--{boundary}\r\ncontent-disposition: form-data; name="image"; filename="a.png"\r\n'
            "content-type: image/png\r\n\r\n"
        ).encode()
        + b"\x89PNG"
        + b"\0" * 6000
    )
    with socket.create_connection(("127.0.0.1", port_of(small_limit))) as sock:
        send_chunked(
            sock,
            "/v1/images/edits",
            [part, b"\0" * 6000],
            f"multipart/form-data; boundary={boundary}",
        )
        status, _, payload = read_response(sock)
    assert status == 413
    assert json.loads(payload)["error"]["code"] == "request_too_large"


def test_bodies_under_the_limit_pass(small_limit: Gateway, upstream: FakeUpstream) -> None:
    padding = "y" * 8000
    reply = small_limit.client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": padding}]
    )
    assert reply.choices[0].message.content == f"Mock reply to: {padding}"
    with httpx.Client(base_url=small_limit.url) as http:
        over = http.post(CHAT, content=chat_body(pad="z" * 11000))
        assert over.status_code == 413
        assert http.get("/healthz").status_code == 200  # and the gateway carries on


# -- message and image counts ------------------------------------------------------------------


def test_message_and_image_limits(make_gateway, upstream: FakeUpstream) -> None:
    client = make_gateway(max_messages=3, max_images=2).client()
    turns = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    assert client.chat.completions.create(model=MODEL, messages=[*turns, USER[0]]).choices
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[*turns, *turns])
    assert info.value.code == "too_many_messages"
    assert info.value.param == "messages"
    assert info.value.body == {
        "message": "Too many messages: 4; this gateway accepts at most 3 (CODEX_MAX_MESSAGES).",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "too_many_messages",
    }
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    two = [{"role": "user", "content": [image, image]}]
    assert client.chat.completions.create(model=MODEL, messages=two).choices
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=[*two, {"role": "user", "content": [image]}]
        )
    assert info.value.code == "too_many_images"
    assert info.value.body["message"] == (
        "Too many images: 3 in this request; this gateway accepts at most 2 (CODEX_MAX_IMAGES)."
    )
    assert len(upstream.responses_requests) == 2  # refused requests never went upstream


def test_limit_defaults_and_env_names() -> None:
    defaults = load_settings(environ={})
    assert (defaults.max_request_mb, defaults.max_messages, defaults.max_images) == (50, 2000, 64)
    assert defaults.cors_origins == ()
    custom = load_settings(
        environ={
            "CODEX_MAX_REQUEST_MB": "5",
            "CODEX_MAX_MESSAGES": "10",
            "CODEX_MAX_IMAGES": "0",
            "CODEX_CORS_ORIGINS": "https://a.example/, http://localhost:3000",
            "CODEX_REFRESH_TIMEOUT": "7.5",
        }
    )
    assert (custom.max_request_mb, custom.max_messages, custom.max_images) == (5, 10, 0)
    assert custom.cors_origins == ("https://a.example", "http://localhost:3000")
    assert custom.refresh_timeout == 7.5


# -- CORS --------------------------------------------------------------------------------------

ORIGIN = "https://chat.example.com"
PREFLIGHT = {
    "origin": ORIGIN,
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type, x-stainless-os",
}


def test_cors_is_off_by_default(gateway: Gateway, upstream: FakeUpstream) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        preflight = http.options(CHAT, headers=PREFLIGHT)
        assert preflight.status_code == 403
        assert "access-control-allow-origin" not in preflight.headers
        upstream.enqueue(Reply(events=text_response("ok")))
        answer = http.post(CHAT, content=chat_body())  # an SDK or curl: no Origin header
        assert answer.status_code == 200
        assert not [h for h in answer.headers if h.startswith("access-control-")]


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1:8000"])
def test_web_pages_cannot_drive_a_tokenless_gateway(
    gateway: Gateway, upstream: FakeUpstream, origin: str
) -> None:
    """A cross-site "simple" POST (text/plain, no preflight) from any page the user visits, or
    a DNS-rebound page, would otherwise spend the subscription of a loopback gateway."""
    with httpx.Client(base_url=gateway.url) as http:
        response = http.post(
            CHAT, content=chat_body(), headers={"origin": origin, "content-type": "text/plain"}
        )
    assert response.status_code == 403
    assert response.json()["error"] == {
        "message": f"Requests from web pages are refused: the origin {origin!r} is not in "
        "CODEX_CORS_ORIGINS.",
        "type": "permission_error",
        "param": None,
        "code": "origin_not_allowed",
    }
    assert "access-control-allow-origin" not in response.headers
    assert upstream.responses_requests == []


def test_cors_wildcard_allows_any_origin(make_gateway, upstream: FakeUpstream) -> None:
    gw = make_gateway(cors_origins=("*",))
    upstream.enqueue(Reply(events=text_response("ok")))
    with httpx.Client(base_url=gw.url) as http:
        response = http.post(CHAT, content=chat_body(), headers={"origin": "https://any.example"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.fixture(scope="module")
def cors_gateway(base_settings: Settings) -> Iterator[Gateway]:
    server = start_gateway(
        replace(base_settings, cors_origins=(ORIGIN,), gateway_token="cors-gw-token")
    )
    yield server
    server.stop()


def test_cors_preflight_allowed_origin_needs_no_token(cors_gateway: Gateway) -> None:
    with httpx.Client(base_url=cors_gateway.url) as http:
        response = http.options(CHAT, headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "x-stainless-os" in allowed
    assert "access-control-allow-credentials" not in response.headers


def test_cors_preflight_denied_origin(cors_gateway: Gateway) -> None:
    with httpx.Client(base_url=cors_gateway.url) as http:
        response = http.options(CHAT, headers={**PREFLIGHT, "origin": "https://evil.example"})
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_cors_actual_requests(cors_gateway: Gateway, upstream: FakeUpstream) -> None:
    auth = {"authorization": "Bearer cors-gw-token", "content-type": "application/json"}
    with httpx.Client(base_url=cors_gateway.url) as http:
        upstream.enqueue(Reply(events=text_response("ok")))
        allowed = http.post(CHAT, content=chat_body(), headers={**auth, "origin": ORIGIN})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "x-request-id" in allowed.headers["access-control-expose-headers"]
        # the token is still required, and the browser may read why it failed
        refused = http.post(CHAT, content=chat_body(), headers={"origin": ORIGIN})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == ORIGIN
        foreign = http.post(
            CHAT, content=chat_body(), headers={**auth, "origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert "access-control-allow-origin" not in foreign.headers


# -- secrets never in logs or answers ----------------------------------------------------------

SECRET_GATEWAY = "gwtok-SECRET-GATEWAY-7d41"
SECRET_WRONG = "gwtok-SECRET-WRONG-93aa"
SECRET_REFRESH = "rt-SECRET-REFRESH-1f0c"
SECRET_REFRESH_2 = "rt-SECRET-REFRESH-ROTATED-55e2"
SECRET_API_KEY = "sk-SECRET-APIKEY-b7e9"
SECRET_FIELD = "SECRET-AUTHJSON-FIELD-c3d8"


def jwt(claims: dict[str, Any], signature: str) -> str:
    head, payload, _ = fake_jwt(claims).split(".")
    return f"{head}.{payload}.{signature}"


def secret_auth_json(home: Path, *, expired: bool) -> dict[str, Any]:
    """auth.json whose every secret is recognisable, plus an unknown field."""
    home.mkdir(parents=True, exist_ok=True)
    exp = time.time() + (-60 if expired else 3600)
    auth = {
        "OPENAI_API_KEY": SECRET_API_KEY,
        "tokens": {
            "id_token": id_token(ACCOUNT_ID),
            "access_token": jwt({"exp": int(exp), "sub": "u", "n": 1}, "SECRET-ACCESS-SIG-1"),
            "refresh_token": SECRET_REFRESH,
            "account_id": ACCOUNT_ID,
        },
        "last_refresh": "2026-11-01T00:00:00Z",
        "private_note": SECRET_FIELD,
    }
    path = home / "auth.json"
    path.write_text(json.dumps(auth))
    path.chmod(0o600)
    return auth


def rotated_tokens() -> dict[str, Any]:
    return {
        "access_token": jwt({"exp": int(time.time()) + 3600, "n": 2}, "SECRET-ACCESS-SIG-2"),
        "refresh_token": SECRET_REFRESH_2,
        "id_token": id_token(ACCOUNT_ID),
    }


def secrets_of(*auths: dict[str, Any]) -> list[str]:
    """Every secret string, plus each JWT's payload alone (a partial leak shows it)."""
    found = [SECRET_GATEWAY, SECRET_WRONG, SECRET_API_KEY, SECRET_FIELD, "SECRET-"]
    for auth in auths:
        tokens = auth.get("tokens", auth)
        for name in ("access_token", "refresh_token", "id_token"):
            value = tokens.get(name)
            if isinstance(value, str):
                found.append(value)
                if value.count(".") == 2:
                    found.append(value.split(".")[1])
    return found


def assert_clean(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, (
            f"{secret[:24]}... found in {where}: "
            + text[max(0, text.find(secret) - 200) : text.find(secret) + 100]
        )


class Capture(logging.Handler):
    """Every record, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


LOGGERS = ("codex_proxy", "uvicorn", "uvicorn.access", "httpx", "httpcore")


@pytest.fixture
def captured_logs() -> Iterator[Capture]:
    """Attach after the gateways started: uvicorn reconfigures its loggers on start."""
    handler = Capture()
    saved = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.removeHandler(handler)
        logger.setLevel(saved[name])


def answer_text(response: httpx.Response) -> str:
    return f"{response.status_code} {dict(response.headers)} {response.text}"


def test_no_secret_in_logs_or_answers(
    make_gateway, upstream: FakeUpstream, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    home = tmp_path / "home"
    original = secret_auth_json(home, expired=True)
    rotated = rotated_tokens()
    gw = make_gateway(
        codex_home=home,
        gateway_token=SECRET_GATEWAY,
        enable_image_gen=True,
        image_delivery="both",
        image_dir=tmp_path / "images",
    )
    logs: Capture = request.getfixturevalue("captured_logs")
    answers: list[str] = []
    good = {"authorization": f"Bearer {SECRET_GATEWAY}", "content-type": "application/json"}
    with httpx.Client(base_url=gw.url, timeout=20) as http:

        def post(content: bytes, headers: dict[str, str] = good) -> httpx.Response:
            response = http.post(CHAT, content=content, headers=headers)
            answers.append(answer_text(response))
            return response

        # refresh (expired token), then success, streaming and not
        upstream.tokens.enqueue(Reply(body=rotated))
        assert post(chat_body()).status_code == 200
        assert post(chat_body(stream=True)).status_code == 200
        # 401 from upstream, refreshed and retried ... then 401 twice: a login error
        upstream.tokens.enqueue(Reply(body={**rotated_tokens(), "refresh_token": "rt-SECRET-3"}))
        upstream.enqueue(Reply(status=401, body={"error": {"message": "expired"}}))
        assert post(chat_body()).status_code == 200
        upstream.tokens.enqueue(Reply(body={**rotated_tokens(), "refresh_token": "rt-SECRET-4"}))
        upstream.enqueue(Reply(status=401, body={"error": {"message": "expired"}}))
        upstream.enqueue(Reply(status=401, body={"error": {"message": "expired"}}))
        assert post(chat_body()).status_code == 401
        # a token endpoint that quotes the refresh token back in its error
        upstream.tokens.enqueue(
            Reply(status=400, body={"error": {"code": "invalid_grant", "message": SECRET_REFRESH}})
        )
        upstream.enqueue(Reply(status=401, body={"error": {"message": "expired"}}))
        assert post(chat_body()).status_code == 502
        # upstream failures, before and after the first byte
        upstream.enqueue(Reply(status=500, body=b"oops"))
        assert post(chat_body()).status_code == 502
        s = ResponseScript()
        s.start()
        s.message(["part"])
        upstream.enqueue(Reply(events=s.events[:5]))
        assert post(chat_body(stream=True)).status_code == 200
        # images
        png = render_image(16, 16, "png", seed=1)
        s = ResponseScript()
        s.start()
        s.image(base64.b64encode(png).decode())
        s.completed()
        upstream.enqueue(Reply(events=s.events))
        assert post(chat_body()).status_code == 200
        # wrong, missing and malformed gateway tokens
        assert post(chat_body(), {"authorization": f"Bearer {SECRET_WRONG}"}).status_code == 401
        assert post(chat_body(), {"authorization": SECRET_WRONG}).status_code == 401
        assert post(chat_body(), {}).status_code == 401
        answers.append(answer_text(http.get("/v1/models", headers=good)))
        # a broken auth.json holding secrets
        (home / "auth.json").write_text('{"tokens": {"refresh_token": "' + SECRET_REFRESH)
        assert post(chat_body()).status_code == 401
    # the upstream saw the access token, never the gateway token
    assert all(SECRET_GATEWAY not in str(r.headers) for r in upstream.requests)
    secrets = secrets_of(original, rotated, json.loads((home / "auth.json").read_text() + '"}}'))
    assert_clean("\n".join(answers), secrets, "an answer")
    assert any("access token refreshed" in line for line in logs.lines)
    assert any("uvicorn.access" in line for line in logs.lines)  # the access log was on
    assert_clean("\n".join(logs.lines), secrets, "the log")


def test_unsendable_credentials_are_not_echoed(make_gateway, upstream, tmp_path) -> None:
    """A key pasted with its newline works; one with a newline inside is refused by name,
    never quoted (the HTTP library's own error would quote the whole header)."""
    pasted = make_gateway(
        auth_mode="api_key", openai_api_key=f"{SECRET_API_KEY}\n", codex_home=tmp_path
    )
    pasted.client().chat.completions.create(model=MODEL, messages=USER)
    assert upstream.responses_requests[-1].headers["authorization"] == f"Bearer {SECRET_API_KEY}"
    broken = make_gateway(
        auth_mode="api_key", openai_api_key=f"{SECRET_API_KEY}\nX: y", codex_home=tmp_path
    )
    with httpx.Client(base_url=broken.url) as http:
        response = http.post(CHAT, content=chat_body())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_upstream_credentials"
    assert "OPENAI_API_KEY" in response.json()["error"]["message"]
    assert_clean(response.text, [SECRET_API_KEY], "the answer")


def test_subprocess_gateway_output_has_no_secret(upstream: FakeUpstream, tmp_path: Path) -> None:
    home = tmp_path / "codex-home"
    original = secret_auth_json(home, expired=True)
    rotated = rotated_tokens()
    upstream.tokens.enqueue(Reply(body=rotated))
    port = free_port()
    env = clean_env(
        tmp_path,
        CODEX_HOME=str(home),
        CODEX_AUTH_MODE="chatgpt",
        CODEX_UPSTREAM_BASE_URL=upstream.url,
        CODEX_REFRESH_TOKEN_URL_OVERRIDE=f"{upstream.url}/oauth/token",
        CODEX_GATEWAY_TOKEN=SECRET_GATEWAY,
        CODEX_LOG_LEVEL="debug",
    )
    command = [sys.executable, "-m", "codex_proxy", "serve", "--port", str(port)]
    with running(command, port, env, tmp_path) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=SECRET_GATEWAY, max_retries=0)
        assert client.chat.completions.create(model=MODEL, messages=USER).choices
        upstream.enqueue(Reply(status=401, body={"error": {"message": "no"}}))
        upstream.enqueue(Reply(status=401, body={"error": {"message": "no"}}))
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(model=MODEL, messages=USER)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key=SECRET_WRONG, max_retries=0).models.list()
    output = (tmp_path / f"gateway-{port}.log").read_text(errors="replace")
    assert "codex-proxy ready" in output and "access token refreshed" in output
    assert_clean(output, secrets_of(original, rotated), "the gateway's output")


# -- the gateway never fetches what clients point at -------------------------------------------


class Listener:
    """A loopback port that counts every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_client_urls_are_passed_on_never_fetched(make_gateway, upstream: FakeUpstream) -> None:
    listener = Listener()
    base = f"http://127.0.0.1:{listener.port}"
    try:
        gw = make_gateway(image_history="all")
        stored = f"{base}/v1/images/files/{'e' * 32}.png"
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": f"{base}/cat.png"}},
                    {"type": "file", "file": {"file_url": f"{base}/doc.pdf"}},
                ],
            },
            {"role": "assistant", "content": f"![old]({stored}) ![x]({base}/other.png)"},
            {"role": "user", "content": "again"},
        ]
        gw.client().chat.completions.create(model=MODEL, messages=messages)
        time.sleep(0.2)
        assert listener.hits == 0
    finally:
        listener.close()
    sent = upstream.responses_requests[-1].body["input"]
    assert sent[0]["content"][1] == {
        "type": "input_image",
        "image_url": f"{base}/cat.png",
        "detail": "auto",
    }
    assert sent[0]["content"][2]["file_url"] == f"{base}/doc.pdf"


# -- the public image files route --------------------------------------------------------------


def test_files_route_more_traversal_attempts(make_gateway, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (tmp_path / "secret.png").write_bytes(b"not yours")
    real = f"{'a' * 32}.png"
    (folder / real).write_bytes(b"real")
    (folder / f"{'b' * 32}.png").mkdir()  # a directory with an image's name
    os.mkfifo(folder / f"{'f' * 32}.png")  # reading a FIFO would hang the request
    gw = make_gateway(image_dir=folder, gateway_token="files-token")
    port = port_of(gw)
    assert raw_request(port, "GET", f"/v1/images/files/{real}")[2] == b"real"
    assert raw_request(port, "GET", f"/images/files/{real}")[2] == b"real"
    for path in (
        "/v1/images/files/",
        "/v1/images/files/../secret.png",
        "/v1/images/files/..%5csecret.png",
        "/v1/images/files/%252e%252e%252fsecret.png",
        "/v1/images/files/%2F..%2Fsecret.png",
        "/v1/images/files/..%2F..%2F..%2Fsecret.png",
        f"/v1/images/files/./{real}",
        f"/v1/images/files/{real}%00.png",
        f"/v1/images/files/{real.upper()}",
        f"/v1/images/files/{'b' * 32}.png",
        f"/v1/images/files/{'f' * 32}.png",
        f"/v1/images/files/{real}/",
    ):
        status, _, payload = raw_request(port, "GET", path)
        assert status == 404, path
        assert json.loads(payload)["error"]["type"] == "invalid_request_error"
        assert b"not yours" not in payload
    # the public prefix lets nothing else through without the token
    for method, path in (
        ("GET", "/v1/images/files/../../models"),
        ("GET", "/v1/images/files/..%2F..%2Fmodels"),
        ("POST", "/images/files/../chat/completions"),
        ("POST", f"/v1/images/files/{real}"),
    ):
        status, _, payload = raw_request(port, method, path, chat_body())
        assert status in (404, 405), (method, path)
        assert b"Mock reply" not in payload and b'"object":"list"' not in payload


def raw_request(
    port: int, method: str, path: str, payload: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """A request whose path goes out byte for byte (httpx would normalise ``..`` away)."""
    head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
    head += f"content-length: {len(payload)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.encode() + payload)
        return read_response(sock)


# -- binding and the gateway token -------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("::", True),
        ("", True),
        ("0:0:0:0:0:0:0:0", True),
        ("gateway.example", True),
        ("127.0.0.2", False),
        ("[::1]", False),
    ],
)
def test_more_bind_addresses(host: str, refused: bool) -> None:
    assert (refuse_reason(Settings(host=host)) is not None) == refused


def test_public_bind_from_the_environment_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "codex_proxy", "serve"],
        env=clean_env(tmp_path, CODEX_HOST="::", CODEX_PORT=str(free_port())),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "refusing to listen on :: without CODEX_GATEWAY_TOKEN" in result.stderr


def test_token_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []

    real_compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    reached: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    guard = app_module.GatewayAuth(inner, "right-token")
    for presented in (b"Bearer right-token", b"Bearer right-tokem", b"Bearer right"):
        scope = {"type": "http", "path": "/v1/models", "headers": [(b"authorization", presented)]}
        asyncio.run(guard(scope, None, send))  # type: ignore[arg-type]
    assert reached == ["/v1/models"]
    assert [a for a, _ in compared] == [
        b"Bearer right-token",
        b"Bearer right-tokem",
        b"Bearer right",
    ]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [401, 401]


# -- images in the chat history ----------------------------------------------------------------


def test_image_history_reads_each_stored_file_once_and_only_when_needed(
    make_gateway, upstream: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many links to one stored file: counted before any read, each distinct file read once,
    and nothing read when the history re-sends no image."""
    reads: list[str] = []
    original = ImageStore.data_uri

    def counted(self: ImageStore, name: str) -> str | None:
        reads.append(name)
        return original(self, name)

    monkeypatch.setattr(ImageStore, "data_uri", counted)
    folder = tmp_path / "images"
    folder.mkdir()
    name = ImageStore(folder).save_bytes(render_image(16, 16, "png", seed=1), "png")
    link = f"![fox](http://127.0.0.1:8000/v1/images/files/{name})"

    def ask(gw: Gateway, links: int) -> httpx.Response:
        messages = [
            USER[0],
            {"role": "assistant", "content": " ".join([link] * links)},
            {"role": "user", "content": "again"},
        ]
        return httpx.post(gw.url + CHAT, json={"model": MODEL, "messages": messages}, timeout=10)

    def images_sent() -> int:
        sent = upstream.responses_requests[-1].body["input"]
        return sum(
            part.get("type") == "input_image" for item in sent for part in item.get("content", [])
        )

    every = make_gateway(image_dir=folder, image_history="all", max_images=5)
    assert ask(every, 3).status_code == 200
    assert images_sent() == 3
    assert reads == [name]

    reads.clear()
    refused = ask(every, 400)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "too_many_images"
    assert "400 in this request" in refused.json()["error"]["message"]
    assert reads == []
    assert len(upstream.responses_requests) == 1

    for mode, expected in (("none", 0), ("last", 1)):
        gw = make_gateway(image_dir=folder, image_history=mode, max_images=5)
        assert ask(gw, 400).status_code == 200
        assert images_sent() == expected
        assert reads == [name] * expected
        reads.clear()


# -- DNS rebinding: the Host header ------------------------------------------------------------

REBOUND = "attacker.example:8000"


def test_rebinding_host_is_refused_on_a_tokenless_loopback_gateway(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    """A page on attacker.example, its name pointed at 127.0.0.1, sends same-origin GETs with
    no Origin: the Host header is what gives it away, on every path (/healthz too)."""
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        for path in ("/v1/status", "/v1/models", "/healthz"):
            refused = http.get(path, headers={"host": REBOUND})
            assert refused.status_code == 403, path
            assert refused.json()["error"]["code"] == "host_not_allowed"
            assert refused.json()["error"]["type"] == "permission_error"
            assert "@" not in refused.text  # no account email
        post = http.post(CHAT, content=chat_body(), headers={"host": "ATTACKER.example"})
        assert post.status_code == 403
        assert upstream.responses_requests == []
        port = port_of(gateway)
        for host in (f"localhost:{port}", "127.0.0.1", f"[::1]:{port}", "LocalHost"):
            assert http.get("/healthz", headers={"host": host}).status_code == 200, host
        assert http.get("/v1/status", headers={"host": f"127.0.0.1:{port}"}).status_code == 200


def test_allowed_hosts_and_a_token_let_other_names_in(make_gateway, upstream: FakeUpstream) -> None:
    listed = make_gateway(allowed_hosts=("codex.lan",))
    with httpx.Client(base_url=listed.url, timeout=10) as http:
        assert http.get("/healthz", headers={"host": "codex.lan:8000"}).status_code == 200
        assert http.get("/healthz", headers={"host": "localhost"}).status_code == 200
        assert http.get("/healthz", headers={"host": REBOUND}).status_code == 403
    # With a token a rebinding page cannot read anything: it does not have the token. Any
    # name is accepted, so a reverse proxy may pass its public name through.
    tokened = make_gateway(gateway_token="tok-rebind")
    with httpx.Client(base_url=tokened.url, timeout=10) as http:
        assert http.get("/v1/status", headers={"host": REBOUND}).status_code == 401
        authorized = {"host": "codex.example.com", "authorization": "Bearer tok-rebind"}
        assert http.get("/v1/status", headers=authorized).status_code == 200


def test_allowed_hosts_setting() -> None:
    settings = load_settings(environ={"CODEX_ALLOWED_HOSTS": "Codex.LAN, box:8000, [::2]:80"})
    assert settings.allowed_hosts == ("codex.lan", "box", "[::2]")
    assert load_settings(environ={}).allowed_hosts == ()
