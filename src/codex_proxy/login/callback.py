"""The local page the browser returns to after signing in (``protocol.md`` 3.6).

A stdlib ``http.server`` on 127.0.0.1 in a background thread: ``login`` is a one-shot command,
so nothing heavier is needed. It serves ``/auth/callback`` (checks ``state``, then lets the
caller exchange the code, and only then tells the browser it worked), ``/success`` and
``/cancel?secret=...`` (stops a login left waiting, e.g. to free the port). Request lines are
never logged: their query strings hold the authorization code.

Any web page the user opens can send requests to this port, so neither a callback with a wrong
``state`` nor a ``/cancel`` without this login's secret ends the login: the first gets a 400
page, the second a 403, and the login keeps waiting for the real answer.
"""

from __future__ import annotations

import html
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from codex_proxy.login.oauth import LoginError

DEFAULT_PORTS = (1455, 1457)
NO_CODEX = "missing_codex_entitlement"
SUCCESS_PAGE_GRACE = 2.0  # let the browser fetch /success before the server goes away


@dataclass(frozen=True)
class Outcome:
    """How the sign-in ended: ``message`` is for the terminal (a summary, or what went wrong)."""

    ok: bool
    message: str


class CallbackServer:
    """Waits for one ``/auth/callback``; ``complete(code)`` finishes the login and returns the
    summary to print, or raises :class:`LoginError`."""

    def __init__(
        self, state: str, complete: Callable[[str], str], ports: Sequence[int] = DEFAULT_PORTS
    ) -> None:
        self._state = state
        self._complete = complete
        self.cancel_secret = secrets.token_urlsafe(24)  # only the owning command knows it
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._success_served = threading.Event()
        self.outcome: Outcome | None = None
        self._httpd = _bind(ports)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="login-callback", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def redirect_uri(self) -> str:
        return f"http://localhost:{self.port}/auth/callback"

    @property
    def cancel_url(self) -> str:
        return f"http://localhost:{self.port}/cancel?secret={self.cancel_secret}"

    def __enter__(self) -> CallbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.outcome is not None and self.outcome.ok:
            self._success_served.wait(SUCCESS_PAGE_GRACE)
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def wait(self, timeout: float) -> Outcome | None:
        """The outcome, or ``None`` when nothing came back within ``timeout`` seconds."""
        self._done.wait(timeout)
        return self.outcome

    # -- called from the request threads ----------------------------------------------------

    def on_callback(self, params: dict[str, str]) -> tuple[int, str]:
        """Answer ``/auth/callback``: (status, page), status 302 meaning "go to /success"."""
        with self._lock:
            if self.outcome is not None:
                return 400, _page("Already finished", "This sign-in has already finished.")
            if not secrets.compare_digest(params.get("state", "").encode(), self._state.encode()):
                # Not this login's answer (any page can send one): refuse it, keep waiting.
                message = (
                    "The sign-in answer did not match this login (state mismatch). Use the "
                    "URL the waiting `codex-proxy login` printed last."
                )
                return 400, _page("Sign-in failed", message)
            if "error" in params:
                return self._fail(_error_message(params["error"], params.get("error_description")))
            code = params.get("code")
            if not code:
                return self._fail("The sign-in answer carried no authorization code.")
            try:
                summary = self._complete(code)
            except LoginError as exc:
                return self._fail(str(exc), status=500)
            self._finish(Outcome(True, summary))
            return 302, ""

    def on_success(self) -> str:
        return _page("Signed in", "codex-proxy is signed in. You can close this tab.")

    def on_cancel(self, params: dict[str, str]) -> tuple[int, str]:
        """Only the command that owns this login (it printed the secret) may cancel it."""
        presented = params.get("secret", "").encode()
        if not secrets.compare_digest(presented, self.cancel_secret.encode()):
            return 403, _page("Refused", "This login can be cancelled only with its secret.")
        with self._lock:
            if self.outcome is None:
                self._finish(Outcome(False, "The login was cancelled (/cancel)."))
        return 200, _page("Cancelled", "This codex-proxy login was cancelled.")

    def _fail(self, message: str, status: int = 400) -> tuple[int, str]:
        self._finish(Outcome(False, message))
        return status, _page("Sign-in failed", message)

    def _finish(self, outcome: Outcome) -> None:
        self.outcome = outcome  # later callbacks see it at once; waiters wake in settle()

    def settle(self, path: str) -> None:
        """Called once a response is on the wire: only then may the waiting command go on and
        shut the server down, or the browser would get a dropped connection instead of a page."""
        if path == "/success":
            self._success_served.set()
        if self.outcome is not None:
            self._done.set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: CallbackServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        owner = self.server.owner
        if url.path == "/auth/callback":
            status, page = owner.on_callback(params)
            if status == 302:
                self._send(302, "", location="/success")
            else:
                self._send(status, page)
        elif url.path == "/success":
            self._send(200, owner.on_success())
        elif url.path == "/cancel":
            self._send(*owner.on_cancel(params))
        else:
            self._send(404, _page("Not found", "Nothing here."))
        owner.settle(url.path)

    def _send(self, status: int, page: str, location: str | None = None) -> None:
        body = page.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: a request line would print the authorization code."""


def _bind(ports: Sequence[int]) -> _Server:
    for port in ports:
        try:
            return _Server(("127.0.0.1", port), _Handler)
        except OSError:
            continue
    listed = " and ".join(str(p) for p in ports)
    raise LoginError(
        f"Port {listed} {'is' if len(ports) == 1 else 'are'} in use (another login still "
        "waiting?). Stop it with Ctrl-C or the cancel command it printed, or pass --port N."
    )


def _error_message(error: str, description: str | None) -> str:
    if NO_CODEX in (description or "") or NO_CODEX in error:
        return (
            "This ChatGPT account's plan does not include Codex (missing_codex_entitlement). "
            "Sign in with an account whose plan includes Codex, or use an OpenAI API key "
            "(OPENAI_API_KEY with CODEX_AUTH_MODE=api_key)."
        )
    detail = f": {description}" if description else ""
    return f"The sign-in was refused ({error}{detail})."


def _page(title: str, text: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body style='font-family:sans-serif;margin:3em'><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p></body></html>"
    )
