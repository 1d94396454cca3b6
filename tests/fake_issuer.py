"""A fake OpenAI OAuth issuer on a loopback port, shaped like ``protocol.md`` 3.5-3.6.

``GET /oauth/authorize`` plays the sign-in page: it remembers the PKCE challenge and redirects
the browser to ``redirect_uri`` with a code (or an ``access_denied`` error). ``POST
/oauth/token`` only trades a code for tokens when the ``code_verifier`` hashes to that
challenge. The device-code endpoints answer "pending" a chosen number of times. Every request
is recorded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from codex_proxy.mock.tokens import CLIENT_ID, access_token, id_token

ACCOUNT = "acct-login-42"
EMAIL = "login@example.com"
PLAN = "pro"
REFRESH_TOKEN = "rt-login-secret-77"
USER_CODE = "ABCD-1234"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeIssuer:
    deny: str | None = None  # error_description for an access_denied redirect
    pending_polls: int = 1
    revoke_status: int = 200
    requests: list[Recorded] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    _codes: dict[str, tuple[str, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FakeIssuer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.tokens = {
            "id_token": id_token(ACCOUNT, EMAIL, PLAN),
            "access_token": access_token(3600, 7),
            "refresh_token": REFRESH_TOKEN,
        }
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # -- endpoints ------------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        for name, value in (
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("code_challenge_method", "S256"),
        ):
            if query.get(name) != value:
                return 400, {}, {"error": "invalid_request", "field": name}
        redirect, state = query["redirect_uri"], query.get("state", "")
        if self.deny:
            answer = {"error": "access_denied", "error_description": self.deny, "state": state}
        else:
            answer = {"code": self._issue(query["code_challenge"], redirect), "state": state}
        return 302, {"Location": f"{redirect}?{urlencode(answer)}"}, None

    def token(self, form: dict[str, Any]) -> tuple[int, Any]:
        if form.get("grant_type") != "authorization_code" or form.get("client_id") != CLIENT_ID:
            return 400, {"error": "invalid_request"}
        with self._lock:
            issued = self._codes.pop(str(form.get("code")), None)
        if issued is None:
            return 400, {"error": "invalid_grant"}
        challenge, redirect = issued
        verifier = str(form.get("code_verifier", ""))
        if _challenge(verifier) != challenge or form.get("redirect_uri") != redirect:
            return 400, {"error": "invalid_grant"}
        return 200, {**self.tokens, "token_type": "Bearer", "expires_in": 3600}

    def usercode(self, body: dict[str, Any]) -> tuple[int, Any]:
        if body.get("client_id") != CLIENT_ID:
            return 400, {"error": "invalid_request"}
        return 200, {"device_auth_id": "dev-1", "usercode": USER_CODE, "interval": "0"}

    def device_token(self, body: dict[str, Any]) -> tuple[int, Any]:
        if body != {"device_auth_id": "dev-1", "user_code": USER_CODE}:
            return 400, {"error": "invalid_request"}
        with self._lock:
            if self.pending_polls > 0:
                self.pending_polls -= 1
                return 403, {"error": "authorization_pending"}
        verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        code = self._issue(_challenge(verifier), f"{self.url}/deviceauth/callback")
        return 200, {
            "authorization_code": code,
            "code_challenge": _challenge(verifier),
            "code_verifier": verifier,
        }

    def _issue(self, challenge: str, redirect: str) -> str:
        code = f"code-{secrets.token_hex(8)}"
        with self._lock:
            self._codes[code] = (challenge, redirect)
        return code


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def _handler(issuer: FakeIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            issuer.requests.append(Recorded("GET", url.path, query, {}))
            if url.path == "/oauth/authorize":
                status, headers, body = issuer.authorize(query)
                self._send(status, body, headers)
            else:
                self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                body = json.loads(raw or "{}")
            else:
                body = {k: v[0] for k, v in parse_qs(raw).items()}
            issuer.requests.append(Recorded("POST", url.path, {}, body))
            routes = {
                "/oauth/token": issuer.token,
                "/api/accounts/deviceauth/usercode": issuer.usercode,
                "/api/accounts/deviceauth/token": issuer.device_token,
                "/oauth/revoke": lambda _body: (issuer.revoke_status, {}),
            }
            route = routes.get(url.path)
            status, answer = route(body) if route else (404, {"error": "not_found"})
            self._send(status, answer)

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
