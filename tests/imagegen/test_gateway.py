"""The image client's conversation with a gateway: TLS is verified wherever TLS is used."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from codex_proxy.imagegen.credentials import Credentials
from codex_proxy.imagegen.gateway import Failure, Gateway

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


class TLSImageServer:
    """An https server on localhost whose certificate comes from a throwaway CA."""

    def __init__(self, authority: trustme.CA) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", str(len(PNG)))
                self.end_headers()
                self.wfile.write(PNG)

            def log_message(self, *args: Any) -> None:
                pass

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("localhost").configure_cert(context)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://localhost:{self.server.server_address[1]}/image.png"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(authority: trustme.CA) -> Iterator[TLSImageServer]:
    server = TLSImageServer(authority)
    yield server
    server.close()


def gateway(base_url: str) -> Gateway:
    creds = Credentials(base_url, "tok", "test", "test")
    return Gateway(creds, timeout=10)


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:9", "https://127.0.0.1:9"])
def test_untrusted_https_image_is_refused_even_with_an_http_gateway(
    tls_server: TLSImageServer, base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    client = gateway(base_url)
    try:
        with pytest.raises(Failure) as info:
            client._download(tls_server.url)
    finally:
        client.close()
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


def test_trusted_https_image_downloads(
    tls_server: TLSImageServer,
    authority: trustme.CA,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trusted = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(trusted))
    monkeypatch.setenv("SSL_CERT_FILE", str(trusted))
    client = gateway("http://127.0.0.1:9")
    try:
        assert client._download(tls_server.url) == PNG
    finally:
        client.close()
