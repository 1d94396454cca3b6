"""OpenAI-shaped errors, and the mapping from every upstream failure to one.

Pure: callers hand in status codes, bodies and events; nothing here does I/O. The shells decide
how to deliver an :class:`OpenAIError`: a JSON response before the first byte, or one SSE
``data: {"error": ...}`` event once a stream has started.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

LOGIN_HINT = "Run `codex-proxy login` (or `codex login`) to sign in again."
# For someone who never signed in: both ways forward, the real one and the account-free one.
SIGN_IN_HINT = (
    "Sign in with `codex-proxy login` (an existing `codex login` works too), "
    "or try the gateway without an account: `codex-proxy serve --mock`."
)

# The backend's answers for a model this account may not use and for an old ``version`` header
# (protocol.md 7.5), e.g. "The 'gpt-5.3-codex' model is not supported when using Codex with a
# ChatGPT account." and "The 'gpt-5.5' model requires a newer version of Codex. Please ...".
_REFUSED_MODEL = re.compile(r"The '([^']{1,200})' model is not supported when using Codex")
_TOO_OLD = re.compile(r"(?:The '([^']{1,200})' model )?requires a newer version of Codex")
_HTML_START = ("<!doctype html", "<html")

# Upstream failure codes (response.failed / error events) and the HTTP status they deserve.
_STATUS_BY_CODE = {
    "rate_limit_exceeded": 429,
    "usage_limit_reached": 429,
    "slow_down": 429,
    "insufficient_quota": 429,
    "context_length_exceeded": 400,
    "invalid_prompt": 400,
    "invalid_request_error": 400,
    "cyber_policy": 400,
    "content_policy_violation": 400,
    "image_content_policy_violation": 400,
    "usage_not_included": 403,
    "server_is_overloaded": 503,
}


@dataclass
class OpenAIError(Exception):
    """An error as the OpenAI API would send it: HTTP status, body fields and extra headers."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        """The ``{"error": {...}}`` object, with all four keys present as SDKs expect."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True)
class UpstreamContext:
    """What the shells know that turns a backend refusal into advice: the client version sent
    and where it came from, and the models the catalog offers (None: not known)."""

    client_version: str | None = None
    version_source: str | None = None
    models: Sequence[str] | None = None


def refused_model(body: bytes) -> str | None:
    """The model named by a "not supported when using Codex with a ChatGPT account" answer,
    so the shell fetches the catalog only for those."""
    match = _REFUSED_MODEL.search(body[:2000].decode("utf-8", "replace"))
    return match.group(1) if match else None


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    """A 400 for something wrong in the client's request."""
    return OpenAIError(400, message, "invalid_request_error", param, code)


def too_many_images(count: int, limit: int) -> OpenAIError:
    """A 400 for a request that would send more input images than ``CODEX_MAX_IMAGES``."""
    return invalid_request(
        f"Too many images: {count} in this request; this gateway accepts at most {limit} "
        "(CODEX_MAX_IMAGES).",
        "messages",
        "too_many_images",
    )


def unauthorized(message: str, code: str = "invalid_api_key") -> OpenAIError:
    """A 401 for a client that did not present the gateway token."""
    return OpenAIError(401, message, "authentication_error", None, code)


def not_found(message: str, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(404, message, "invalid_request_error", param, code)


def shutting_down() -> OpenAIError:
    """The gateway is stopping and this request outlived the grace period."""
    return OpenAIError(
        503,
        "The gateway is shutting down; this request was ended. Retry it in a moment.",
        "server_error",
        None,
        "server_shutting_down",
    )


def connection_failed(reason: str) -> OpenAIError:
    """The upstream could not be reached at all."""
    return OpenAIError(
        502, f"Upstream connection failed: {reason}", "server_error", None, "upstream_unreachable"
    )


def upstream_timeout(seconds: float) -> OpenAIError:
    """The upstream stayed silent for longer than the idle timeout."""
    return OpenAIError(
        504,
        f"Upstream sent nothing for {seconds:g} s (CODEX_UPSTREAM_IDLE_TIMEOUT).",
        "server_error",
        None,
        "upstream_timeout",
    )


def stream_truncated() -> OpenAIError:
    """The upstream stream closed before a terminal event: the answer is incomplete."""
    return OpenAIError(
        502,
        "Upstream stream ended before response.completed; the answer is incomplete.",
        "server_error",
        None,
        "upstream_stream_truncated",
    )


def stream_failed(kind: str, detail: str) -> OpenAIError:
    """Reading the upstream answer failed in a way no other error names (a body that does not
    decode, a bug): ``kind`` is the exception's class name, ``detail`` its text."""
    text = f"{kind}: {detail[:200]}" if detail else kind
    return OpenAIError(
        502,
        f"Reading the upstream answer failed ({text}); the answer is incomplete.",
        "server_error",
        None,
        "upstream_stream_failed",
    )


def event_too_large(limit_mb: float) -> OpenAIError:
    """The upstream sent an event over ``CODEX_MAX_EVENT_MB``; it was not read to its end."""
    return OpenAIError(
        502,
        f"Upstream sent an event larger than this gateway accepts ({limit_mb:g} MB, "
        "CODEX_MAX_EVENT_MB); the answer is incomplete.",
        "server_error",
        None,
        "upstream_event_too_large",
    )


def error_body_too_large(status: int, limit: int) -> OpenAIError:
    """An upstream error answer whose body is over ``limit`` bytes: not read, not forwarded."""
    return OpenAIError(
        502,
        f"Upstream answered HTTP {status} with an error body over {limit // (1024 * 1024)} MB; "
        "it was not read.",
        "server_error",
        None,
        "upstream_error_too_large",
    )


def malformed_event(detail: str) -> OpenAIError:
    """The upstream sent an SSE data line that is not a JSON object."""
    return OpenAIError(
        502,
        f"Upstream sent a malformed event: {detail}",
        "server_error",
        None,
        "upstream_malformed_event",
    )


def from_upstream_response(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    context: UpstreamContext | None = None,
) -> OpenAIError:
    """Map a non-2xx upstream HTTP answer (before any event) to the error our client gets."""
    blocked = cloudflare_block(status, body, headers)
    if blocked is not None:
        return blocked
    parsed = _parse_json(body)
    detail, err = _error_fields(parsed)
    message = detail or _plain_text(body) or f"Upstream answered HTTP {status}."
    code = _str_or_none(err.get("code")) if err else None
    etype = _str_or_none(err.get("type")) if err else None
    param = _str_or_none(err.get("param")) if err else None
    extra: dict[str, str] = {}

    if status == 429:
        retry_after = headers.get("retry-after")
        if etype == "usage_limit_reached" or code == "usage_limit_reached":
            return _usage_limit(err or {}, message)
        if retry_after:
            extra["retry-after"] = retry_after
        return OpenAIError(
            429, message, etype or "requests", param, code or "rate_limit_exceeded", extra
        )
    if status in (401, 403):
        if etype == "usage_not_included" or code == "usage_not_included":
            return OpenAIError(
                403,
                f"{message} Your ChatGPT plan does not include Codex.",
                "permission_error",
                None,
                "usage_not_included",
            )
        kind = "authentication_error" if status == 401 else "permission_error"
        return OpenAIError(
            status,
            f"Upstream rejected the credentials ({message}). {LOGIN_HINT}",
            kind,
            None,
            code or ("invalid_api_key" if status == 401 else "permission_denied"),
        )
    if status >= 500:
        return OpenAIError(
            502,
            f"Upstream error (HTTP {status}): {message}",
            "server_error",
            None,
            code or "upstream_error",
        )
    if status == 400 and detail:
        refusal = _backend_refusal(detail, context or UpstreamContext())
        if refusal is not None:
            return refusal
        message = _with_knob_hint(message)
    return OpenAIError(
        status if 400 <= status < 500 else 502,
        message,
        etype if etype and etype.endswith("_error") else "invalid_request_error",
        param,
        code,
    )


def cloudflare_block(status: int, body: bytes, headers: Mapping[str, str]) -> OpenAIError | None:
    """Cloudflare's edge refusing the connection (protocol.md 7.6): a challenge
    (``cf-mitigated: challenge``), ``error code: 1010`` (a refused client signature) or an HTML
    page on a 403. Not a login problem: a 502 that asks the SDKs not to retry."""
    head = body[:4096].decode("utf-8", "replace").strip().lower()
    content_type = (headers.get("content-type") or "").lower()
    if (headers.get("cf-mitigated") or "").strip().lower() == "challenge":
        shape = "a challenge page (cf-mitigated: challenge)"
    elif "error code: 1010" in head:
        shape = "error code 1010, the client's signature was refused"
    elif status == 403 and ("text/html" in content_type or head.startswith(_HTML_START)):
        shape = "an HTML page instead of an API answer"
    else:
        return None
    return OpenAIError(
        502,
        f"Cloudflare in front of the upstream refused the connection (HTTP {status}, {shape}). "
        "This is not a login problem, and retrying at once will not help. The gateway never "
        "forwards a client's User-Agent; try setting CODEX_USER_AGENT (e.g. to the one your "
        "Codex CLI sends), route the gateway through a proxy with HTTPS_PROXY, or try again "
        "later from another network.",
        "server_error",
        None,
        "upstream_blocked",
        {"x-should-retry": "false"},
    )


def model_not_offered(model: str, offered: Sequence[str] | None) -> OpenAIError:
    """A model the backend refuses for this account; the message lists what it offers."""
    if offered:
        choices = f"Models this account is offered: {', '.join(offered)}."
    else:
        choices = "The catalog of offered models could not be read (`codex-proxy models`)."
    return OpenAIError(
        400,
        f"The model '{model}' is not available with this ChatGPT account. {choices} Send one "
        'of them, or "default" (or no model) for the default, which CODEX_MODEL sets.',
        "invalid_request_error",
        "model",
        "model_not_found",
    )


def client_too_old(model: str | None, context: UpstreamContext) -> OpenAIError:
    """The backend wants a newer Codex than the ``version`` header claims: say which version
    was sent, where it came from and which setting fixes it."""
    sent = context.client_version or "unknown"
    source = context.version_source or "unknown"
    for_model = f" for the model '{model}'" if model else ""
    if source == "CODEX_CLIENT_VERSION":
        fix = "Raise CODEX_CLIENT_VERSION to a current Codex release, or unset it"
    elif source in ("version.json", "codex --version"):
        fix = (
            "Update the Codex CLI (`npm install -g @openai/codex@latest`) and restart the "
            "gateway, or set CODEX_CLIENT_VERSION to a current Codex release"
        )
    else:
        fix = "Set CODEX_CLIENT_VERSION to a current Codex release, or install the Codex CLI"
    return OpenAIError(
        400,
        f"The upstream requires a newer version of Codex{for_model}: the gateway sent version "
        f"{sent} (from {source}). {fix} (`npm view @openai/codex version` prints the newest).",
        "invalid_request_error",
        None,
        "client_version_too_old",
    )


def _backend_refusal(detail: str, context: UpstreamContext) -> OpenAIError | None:
    """The backend's own 400s for the model and the version, rewritten as advice."""
    match = _REFUSED_MODEL.search(detail)
    if match:
        return model_not_offered(match.group(1), context.models)
    match = _TOO_OLD.search(detail)
    if match:
        return client_too_old(match.group(1), context)
    return None


def from_stream_event(event: Mapping[str, Any]) -> OpenAIError:
    """Map a ``response.failed`` or ``error`` event (either shape) to an error."""
    if event.get("type") == "response.failed":
        response = event.get("response")
        err = response.get("error") if isinstance(response, Mapping) else None
    else:
        nested = event.get("error")
        err = nested if isinstance(nested, Mapping) else event
    if not isinstance(err, Mapping):
        err = {}
    message = _str_or_none(err.get("message")) or "The upstream response failed."
    code = _str_or_none(err.get("code")) or _str_or_none(err.get("type"))
    etype = _str_or_none(err.get("type"))
    param = _str_or_none(err.get("param"))
    if code == "usage_limit_reached" or etype == "usage_limit_reached":
        return _usage_limit(err, message)
    status = _STATUS_BY_CODE.get(code or "", 502)
    if status == 429:
        error_type = "requests"
    elif status == 400:
        error_type = "invalid_request_error"
    elif status == 403:
        error_type = "permission_error"
    else:
        error_type = "server_error"
    return OpenAIError(status, message, error_type, param, code or "upstream_failed")


def _usage_limit(err: Mapping[str, Any], message: str) -> OpenAIError:
    """The subscription's usage window is used up: say when it resets and stop SDK retries."""
    headers = {"x-should-retry": "false"}
    resets_in = err.get("resets_in_seconds")
    resets_at = err.get("resets_at")
    if isinstance(resets_in, (int, float)) and resets_in > 0:
        headers["retry-after"] = str(int(resets_in))
    when = ""
    if isinstance(resets_at, (int, float)) and resets_at > 0:
        when = " It resets at " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(resets_at))
        if isinstance(resets_in, (int, float)) and resets_in > 0:
            when += f" (in {_human_seconds(int(resets_in))})"
        when += "."
    plan = err.get("plan_type")
    plan_text = f" (plan: {plan})" if isinstance(plan, str) and plan else ""
    return OpenAIError(
        429,
        f"{message.rstrip('.')}{plan_text}.{when}",
        "usage_limit_reached",
        None,
        "usage_limit_reached",
        headers,
    )


def _with_knob_hint(message: str) -> str:
    """Point at the setting that fixes the backend's known 400 answers."""
    lowered = message.lower()
    if "instructions are not valid" in lowered or "instructions are required" in lowered:
        return f"{message} (the ChatGPT backend checks `instructions`; change CODEX_INSTRUCTIONS)"
    if lowered.startswith("unsupported parameter"):
        return (
            f"{message} (the ChatGPT backend rejects this parameter; remove it from the request, "
            "or use CODEX_AUTH_MODE=api_key with an OPENAI_API_KEY)"
        )
    return message


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _error_fields(parsed: Any) -> tuple[str | None, Mapping[str, Any] | None]:
    """(message, error object) from an OpenAI ``{"error":...}`` or FastAPI ``{"detail":...}``."""
    if not isinstance(parsed, Mapping):
        return None, None
    err = parsed.get("error")
    if isinstance(err, Mapping):
        return _str_or_none(err.get("message")), err
    if isinstance(err, str):
        return err, {"code": _str_or_none(parsed.get("code"))}
    detail = parsed.get("detail")
    if isinstance(detail, str):
        return detail, None
    if isinstance(detail, Mapping):
        return _str_or_none(detail.get("message")) or _str_or_none(detail.get("detail")), detail
    if detail is not None:
        return orjson.dumps(detail).decode(), None
    message = parsed.get("message")
    return (message if isinstance(message, str) else None), parsed


def _plain_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text[:500]


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _human_seconds(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes} min"
    return f"{max(minutes, 1)} min"
