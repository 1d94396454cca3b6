"""The access log: one line per request with its fields, text or JSON, and never a secret.

Lines are read from a handler on the ``codex_proxy.access`` logger (and, for the secrets scan,
on the root logger at DEBUG), while the real gateway serves real SDK and httpx clients.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from codex_proxy.mock.events import text_response
from codex_proxy.mock.images import render_image
from codex_proxy.mock.server import FakeUpstream, Pause, Reply
from codex_proxy.server.request_log import TEXT_FORMAT, JsonFormatter

from ..conftest import write_auth_json
from ..processes import clean_env, free_port, running

FIELDS = {
    "method",
    "path",
    "status",
    "model",
    "stream",
    "upstream_status",
    "ttfb_ms",
    "total_ms",
    "bytes",
    "images",
    "request_id",
    "key",
}
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{200,}")


class Collect(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def access(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.name == "codex_proxy.access"]

    def wait_for(self, count: int) -> list[logging.LogRecord]:
        """The line is written once the answer is out, so a fast client can be ahead of it."""
        deadline = time.monotonic() + 5
        while len(self.access()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.access()


@pytest.fixture
def lines() -> Iterator[Collect]:
    handler = Collect()
    logger = logging.getLogger("codex_proxy.access")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_one_line_per_request_with_its_fields(gateway, upstream, lines) -> None:
    client = gateway.client()
    client.chat.completions.create(
        model="gpt-5.2-codex", messages=[{"role": "user", "content": "hi"}]
    )
    with httpx.Client(base_url=gateway.url) as http:
        with http.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "gpt-5.2-codex",
                "stream": True,
                "messages": [{"role": "user", "content": "yo"}],
            },
        ) as streamed:
            body = streamed.read()
        missing = http.get("/v1/nowhere")
    records = lines.wait_for(3)
    assert len(records) == 3
    first, second, third = (r.request for r in records)  # type: ignore[attr-defined]
    for fields in (first, second, third):
        assert set(fields) == FIELDS
        assert fields["total_ms"] >= fields["ttfb_ms"] >= 0
    assert first["method"] == "POST" and first["path"] == "/v1/chat/completions"
    assert first["model"] == "gpt-5.2-codex" and first["stream"] is False
    assert first["status"] == 200 and first["upstream_status"] == 200 and first["images"] == 0
    assert second["stream"] is True and second["bytes"] == len(body)
    assert second["request_id"] == streamed.headers["x-request-id"]
    assert third["status"] == 404 and third["upstream_status"] is None and third["model"] is None
    assert third["request_id"] == missing.headers["x-request-id"]
    assert third["request_id"].startswith("req_") and third["request_id"] != first["request_id"]
    text = records[1].getMessage()
    assert text.startswith("POST /v1/chat/completions status=200 model=gpt-5.2-codex stream=true")
    assert f"request_id={second['request_id']}" in text


def test_the_upstream_request_id_is_forwarded(gateway, upstream, lines) -> None:
    upstream.enqueue(
        Reply(
            events=None,
            status=429,
            body={"error": {"message": "slow down"}},
            headers={"x-request-id": "up-123"},
        )
    )
    with httpx.Client(base_url=gateway.url) as http:
        answer = http.post(
            "/v1/chat/completions",
            json={"model": "gpt-5.2-codex", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert answer.status_code == 429
    (record,) = lines.wait_for(1)
    fields = record.request  # type: ignore[attr-defined]
    assert answer.headers["x-request-id"] == fields["request_id"] == "up-123"
    assert fields["status"] == 429 and fields["upstream_status"] == 429


def test_a_client_that_leaves_before_the_answer_is_a_499(gateway, upstream, lines) -> None:
    upstream.enqueue(Reply(events=[Pause(1.0), *text_response("late")]))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "gpt-5.2-codex", "messages": [{"role": "user", "content": "hi"}]},
            timeout=0.3,
        )
    (record,) = lines.wait_for(1)
    assert record.request["status"] == 499  # type: ignore[attr-defined]
    assert record.request["bytes"] == 0  # type: ignore[attr-defined]


def test_json_lines_parse() -> None:
    record = logging.LogRecord("codex_proxy.access", logging.INFO, __file__, 1, "x", None, None)
    record.request = {"method": "GET", "path": "/healthz", "status": 200}
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "codex_proxy.access" and line["level"] == "info"
    assert line["path"] == "/healthz" and line["status"] == 200 and line["ts"].endswith("Z")
    other = logging.LogRecord("codex_proxy", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    assert json.loads(JsonFormatter().format(other))["message"] == "a b"


def test_stored_image_names_stay_out_of_the_log(gateway, upstream, lines) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        http.get("/v1/images/files/0123456789abcdef.png")
    (record,) = lines.wait_for(1)
    assert record.request["path"] == "/v1/images/files/..."  # type: ignore[attr-defined]


def test_serve_writes_one_json_line_per_request(tmp_path: Path) -> None:
    """The command line: JSON on stderr, and uvicorn's own access line is off."""
    port = free_port()
    env = clean_env(tmp_path, CODEX_LOG_FORMAT="json")
    args = [sys.executable, "-m", "codex_proxy", "serve", "--mock", "--port", str(port)]
    with running(args, port, env, tmp_path) as url:
        with httpx.Client(base_url=url) as http:
            http.post(
                "/v1/chat/completions",
                json={"model": "gpt-5.2-codex", "messages": [{"role": "user", "content": "hi"}]},
            ).raise_for_status()
            http.get("/v1/models").raise_for_status()
        time.sleep(0.3)
    output = (tmp_path / f"gateway-{port}.log").read_text()
    parsed = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [p for p in parsed if p["logger"] == "codex_proxy.access"]
    paths = [p["path"] for p in access]
    assert paths.count("/v1/chat/completions") == 1 and paths.count("/v1/models") == 1
    chat = next(p for p in access if p["path"] == "/v1/chat/completions")
    assert chat["status"] == 200 and chat["model"] == "gpt-5.2-codex"
    assert not [line for line in output.splitlines() if '"POST /v1/chat/completions' in line]
    stray = [line for line in output.splitlines() if line.strip() and not line.startswith("{")]
    assert not [line for line in stray if "HTTP/1.1" in line], stray


def test_no_secret_or_base64_reaches_the_log(
    make_gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    """A realistic run: refresh, text, streaming, a wrong gateway token, an upstream 401 with
    its retry, an image in and images out as data URIs; then every log line (as text and as
    JSON) is searched for the tokens and for long base64 runs."""
    home = tmp_path / "codex-home"
    auth = write_auth_json(home, access_exp=time.time() + 30)  # due: refreshed at once
    gateway = make_gateway(
        codex_home=home,
        gateway_token="gw-secret-token-0123456789",
        enable_image_gen=True,
        image_options={"output_format": "png", "size": "64x64"},
    )
    collect = Collect()
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(collect)
    try:
        client = gateway.client()
        client.chat.completions.create(
            model="gpt-5.2-codex", messages=[{"role": "user", "content": "hi"}]
        )
        for _ in client.chat.completions.create(
            model="gpt-5.2-codex", stream=True, messages=[{"role": "user", "content": "stream"}]
        ):
            pass
        with httpx.Client(base_url=gateway.url) as http:
            refused = http.get("/v1/models", headers={"Authorization": "Bearer wrong-token-abc"})
            assert refused.status_code == 401
        upstream.enqueue(Reply(status=401, body={"error": {"message": "token expired"}}))
        client.chat.completions.create(
            model="gpt-5.2-codex", messages=[{"role": "user", "content": "again"}]
        )
        photo = base64.b64encode(render_image(48, 48, seed=5)).decode()
        drawn = client.chat.completions.create(
            model="gpt-5.2-codex",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Draw this as a picture"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{photo}"},
                        },
                    ],
                }
            ],
        )
        assert "data:image/png;base64," in (drawn.choices[0].message.content or "")
        collect.wait_for(5)
        time.sleep(0.1)
    finally:
        root.removeHandler(collect)
        root.setLevel(old_level)
    assert len(upstream.token_requests) >= 1, "the run should have refreshed"
    secrets = {
        auth["tokens"]["access_token"],
        auth["tokens"]["refresh_token"],
        auth["tokens"]["id_token"],
        "gw-secret-token-0123456789",
        "wrong-token-abc",
    }
    saved = json.loads((home / "auth.json").read_text())["tokens"]
    secrets |= {saved["access_token"], saved["refresh_token"], saved["id_token"]}
    text, as_json = logging.Formatter(TEXT_FORMAT), JsonFormatter()
    log = "\n".join(text.format(r) + "\n" + as_json.format(r) for r in collect.records)
    assert len(collect.access()) == 5
    for secret in secrets:
        assert secret not in log
    assert not BASE64_RUN.search(log), BASE64_RUN.search(log)
