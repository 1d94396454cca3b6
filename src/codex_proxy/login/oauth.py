"""The OpenAI OAuth calls behind ``codex-proxy login`` and ``logout`` (``protocol.md`` 3.5-3.6).

PKCE, the authorize URL, the code exchange, the device-code flow and token revocation, each a
small function over a synchronous ``httpx.Client`` so the command stays simple and the tests can
point it at a fake issuer. Error messages name the step and the status, never a token.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from codex_proxy.upstream.auth import CLIENT_ID

SCOPE = "openid profile email offline_access"
PENDING_STATUSES = (403, 404)  # device flow: the user has not entered the code yet
DEFAULT_INTERVAL = 5.0
HTTP_TIMEOUT = 30.0


class LoginError(Exception):
    """Signing in failed; the message says why and what to do, and holds no secret."""


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str


@dataclass(frozen=True)
class DeviceCode:
    """What the user types at ``verification_url``, and what we poll with."""

    device_auth_id: str
    user_code: str
    interval: float
    verification_url: str


@dataclass(frozen=True)
class DeviceGrant:
    authorization_code: str
    code_verifier: str


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def challenge_for(verifier: str) -> str:
    """S256: base64url(SHA-256(verifier)), no padding."""
    return b64url(hashlib.sha256(verifier.encode()).digest())


def new_pkce() -> Pkce:
    verifier = b64url(secrets.token_bytes(64))
    return Pkce(verifier, challenge_for(verifier))


def new_state() -> str:
    return b64url(secrets.token_bytes(32))


def authorize_url(
    issuer: str, redirect_uri: str, pkce: Pkce, state: str, originator: str = "codex_cli_rs"
) -> str:
    """The page the browser opens; the issuer sends it back to ``redirect_uri`` with a code."""
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": redirect_uri,
        "scope": SCOPE,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "id_token_add_organizations": "true",
        "codex_cli_simplified_flow": "true",
        "state": state,
        "originator": originator,
    }
    return f"{issuer}/oauth/authorize?{urlencode(query)}"


def exchange_code(
    http: httpx.Client, issuer: str, code: str, redirect_uri: str, verifier: str
) -> dict[str, str]:
    """Trade the authorization code for ``id_token``, ``access_token`` and ``refresh_token``."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": CLIENT_ID,
        "code_verifier": verifier,
    }
    response = _post(http, f"{issuer}/oauth/token", "the code exchange", data=form)
    answer = _json(response)
    if response.status_code != 200:
        raise LoginError(
            f"The token endpoint refused the sign-in (HTTP {response.status_code}"
            f"{_error_suffix(answer)}). Run `codex-proxy login` again."
        )
    names = ("id_token", "access_token", "refresh_token")
    missing = [name for name in names if not isinstance(answer.get(name), str) or not answer[name]]
    if missing:
        raise LoginError(f"The token endpoint answered without {', '.join(missing)}.")
    return {name: answer[name] for name in names}


def request_device_code(http: httpx.Client, issuer: str) -> DeviceCode:
    response = _post(
        http,
        f"{issuer}/api/accounts/deviceauth/usercode",
        "the device code request",
        json={"client_id": CLIENT_ID},
    )
    if response.status_code == 404:
        raise LoginError(
            "Device-code sign-in is not enabled for this issuer; use the browser login."
        )
    answer = _json(response)
    if response.status_code != 200:
        raise LoginError(f"The device code request failed (HTTP {response.status_code}).")
    device_id = answer.get("device_auth_id")
    user_code = answer.get("user_code") or answer.get("usercode")
    if not isinstance(device_id, str) or not isinstance(user_code, str):
        raise LoginError("The device code answer lacks device_auth_id or user_code.")
    return DeviceCode(
        device_auth_id=device_id,
        user_code=user_code,
        interval=_interval(answer.get("interval")),
        verification_url=f"{issuer}/codex/device",
    )


def poll_device_code(
    http: httpx.Client,
    issuer: str,
    device: DeviceCode,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DeviceGrant:
    """Ask every ``interval`` seconds whether the user has entered the code (403/404: not yet)."""
    deadline = clock() + timeout
    body = {"device_auth_id": device.device_auth_id, "user_code": device.user_code}
    url = f"{issuer}/api/accounts/deviceauth/token"
    while True:
        response = _post(http, url, "polling for the device code", json=body)
        if response.status_code == 200:
            answer = _json(response)
            code, verifier = answer.get("authorization_code"), answer.get("code_verifier")
            if not isinstance(code, str) or not isinstance(verifier, str):
                raise LoginError("The device code answer lacks authorization_code/code_verifier.")
            return DeviceGrant(code, verifier)
        if response.status_code not in PENDING_STATUSES:
            raise LoginError(f"Device-code sign-in failed (HTTP {response.status_code}).")
        left = deadline - clock()
        if left <= 0:
            raise LoginError(
                f"The code was not entered within {timeout:g} s. Run `codex-proxy login --device` "
                "again (or raise --timeout)."
            )
        sleep(min(device.interval, left))


def revoke(http: httpx.Client, issuer: str, token: str, kind: str) -> str | None:
    """Best effort, as the Codex CLI does it: ``None`` when revoked, else why not."""
    body: dict[str, Any] = {"token": token, "token_type_hint": kind}
    if kind == "refresh_token":
        body["client_id"] = CLIENT_ID
    try:
        response = http.post(f"{issuer}/oauth/revoke", json=body, timeout=10.0)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}{_error_suffix(_json(response))}"


def _post(http: httpx.Client, url: str, step: str, **kwargs: Any) -> httpx.Response:
    try:
        return http.post(url, timeout=HTTP_TIMEOUT, **kwargs)
    except httpx.HTTPError as exc:
        raise LoginError(f"Could not reach {url} for {step}: {type(exc).__name__}.") from None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _error_suffix(answer: dict[str, Any]) -> str:
    """``: <error code>`` from an OAuth error body (``error`` string or ``error.code``)."""
    error = answer.get("error")
    if isinstance(error, dict):
        error = error.get("code") or error.get("type")
    return f": {error}" if isinstance(error, str) and error else ""


def _interval(value: Any) -> float:
    """The server sends the interval as a string of seconds ("5"); keep it sane."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_INTERVAL
    return min(max(seconds, 0.0), 60.0)
