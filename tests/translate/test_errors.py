"""Upstream failures mapped to OpenAI errors."""

from __future__ import annotations

import orjson
import pytest

from codex_proxy.translate import errors
from codex_proxy.translate.errors import OpenAIError


def upstream(status: int, body: object, headers: dict[str, str] | None = None) -> OpenAIError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return errors.from_upstream_response(status, raw, headers or {})


def test_body_has_all_four_keys() -> None:
    assert errors.invalid_request("bad", "messages").body() == {
        "error": {
            "message": "bad",
            "type": "invalid_request_error",
            "param": "messages",
            "code": None,
        }
    }


def test_fastapi_detail_400() -> None:
    error = upstream(400, {"detail": "Store must be set to false"})
    assert (error.status, error.type, error.message) == (
        400,
        "invalid_request_error",
        "Store must be set to false",
    )


def test_instructions_not_valid_names_the_knob() -> None:
    error = upstream(400, {"detail": "Instructions are not valid"})
    assert "CODEX_INSTRUCTIONS" in error.message


def test_unsupported_parameter_names_the_way_out() -> None:
    error = upstream(400, {"detail": "Unsupported parameter: temperature"})
    assert error.message.startswith("Unsupported parameter: temperature")
    assert "CODEX_AUTH_MODE=api_key" in error.message


def test_401_has_login_hint_and_keeps_code() -> None:
    error = upstream(
        401,
        {
            "error": {
                "message": "Provided authentication token is expired.",
                "code": "token_expired",
            }
        },
    )
    assert (error.status, error.type, error.code) == (401, "authentication_error", "token_expired")
    assert "codex-proxy login" in error.message


def test_usage_limit_reached() -> None:
    error = upstream(
        429,
        {
            "error": {
                "type": "usage_limit_reached",
                "message": "The usage limit has been reached",
                "plan_type": "plus",
                "resets_at": 1777936568,
                "resets_in_seconds": 13872,
            }
        },
    )
    assert error.status == 429
    assert error.code == "usage_limit_reached"
    assert error.headers == {"x-should-retry": "false", "retry-after": "13872"}
    assert error.message == (
        "The usage limit has been reached (plan: plus). "
        "It resets at 2026-05-04 23:16:08 UTC (in 3 h 51 min)."
    )


def test_usage_not_included_is_403() -> None:
    error = upstream(403, {"error": {"type": "usage_not_included", "message": "Not included"}})
    assert (error.status, error.code) == (403, "usage_not_included")


def test_plain_429_forwards_retry_after() -> None:
    error = upstream(429, {"error": {"message": "slow down"}}, {"retry-after": "12"})
    assert (error.status, error.code, error.headers) == (
        429,
        "rate_limit_exceeded",
        {"retry-after": "12"},
    )


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_502(status: int) -> None:
    error = upstream(status, b"<html>bad gateway</html>")
    assert error.status == 502
    assert "bad gateway" in error.message


def test_empty_body() -> None:
    error = upstream(418, b"")
    assert (error.status, error.message) == (418, "Upstream answered HTTP 418.")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("rate_limit_exceeded", 429),
        ("context_length_exceeded", 400),
        ("invalid_prompt", 400),
        ("server_is_overloaded", 503),
        ("server_error", 502),
        ("something_new", 502),
    ],
)
def test_failed_event_status_by_code(code: str, status: int) -> None:
    event = {"type": "response.failed", "response": {"error": {"code": code, "message": "m"}}}
    error = errors.from_stream_event(event)
    assert (error.status, error.code, error.message) == (status, code, "m")


def test_error_event_both_shapes() -> None:
    nested = {
        "type": "error",
        "error": {
            "type": "insufficient_quota",
            "code": "credit_balance_exhausted",
            "message": "no credit",
        },
    }
    flat = {"type": "error", "code": "ERR_X", "message": "flat message", "param": None}
    assert errors.from_stream_event(nested).message == "no credit"
    assert errors.from_stream_event(nested).code == "credit_balance_exhausted"
    assert errors.from_stream_event(flat).message == "flat message"
    assert errors.from_stream_event({"type": "error"}).message == "The upstream response failed."


@pytest.mark.parametrize("response", [None, [1], "x", {"error": "text"}])
def test_failed_event_with_odd_response_shapes(response: object) -> None:
    error = errors.from_stream_event({"type": "response.failed", "response": response})
    assert (error.status, error.message) == (502, "The upstream response failed.")


# -- the late-2026 backend: refused models, old clients, Cloudflare (protocol.md 7.5, 7.6) --

REFUSED = b'{"detail":"The \'gpt-5.3-codex\' model is not supported when using Codex with a ChatGPT account."}'  # noqa: E501
TOO_OLD = (
    b'{"detail":"The \'gpt-6-astra\' model requires a newer version of Codex. Please upgrade '
    b'to the latest app or CLI and try again."}'
)


def test_refused_model_lists_the_offered_ones() -> None:
    context = errors.UpstreamContext("0.171.0", "built-in", ("gpt-6-astra", "gpt-5.5"))
    assert errors.refused_model(REFUSED) == "gpt-5.3-codex"
    error = errors.from_upstream_response(400, REFUSED, {}, context)
    assert (error.status, error.code, error.param) == (400, "model_not_found", "model")
    assert "'gpt-5.3-codex'" in error.message
    assert "gpt-6-astra, gpt-5.5" in error.message
    assert "not supported when using Codex" not in error.message  # ours, not the raw text
    unknown = errors.from_upstream_response(400, REFUSED, {})
    assert unknown.code == "model_not_found" and "codex-proxy models" in unknown.message


@pytest.mark.parametrize(
    ("source", "fix"),
    [
        ("CODEX_CLIENT_VERSION", "Raise CODEX_CLIENT_VERSION"),
        ("version.json", "Update the Codex CLI"),
        ("codex --version", "Update the Codex CLI"),
        ("built-in", "Set CODEX_CLIENT_VERSION"),
    ],
)
def test_old_client_version_says_what_was_sent_and_the_fix(source: str, fix: str) -> None:
    context = errors.UpstreamContext("0.135.0", source)
    error = errors.from_upstream_response(400, TOO_OLD, {}, context)
    assert (error.status, error.code) == (400, "client_version_too_old")
    assert f"version 0.135.0 (from {source})" in error.message
    assert "'gpt-6-astra'" in error.message and fix in error.message
    assert errors.refused_model(TOO_OLD) is None


CHALLENGE = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"


@pytest.mark.parametrize(
    ("status", "body", "headers", "shape"),
    [
        (403, CHALLENGE, {"cf-mitigated": "challenge", "content-type": "text/html"}, "challenge"),
        (503, CHALLENGE, {"cf-mitigated": "challenge"}, "challenge"),
        (403, b"error code: 1010", {"content-type": "text/plain"}, "1010"),
        (403, b"<html><body>Forbidden</body></html>", {}, "HTML page"),
        (403, b"<p>no</p>", {"content-type": "text/html; charset=utf-8"}, "HTML page"),
    ],
)
def test_cloudflare_refusals_are_not_auth_failures(
    status: int, body: bytes, headers: dict[str, str], shape: str
) -> None:
    error = errors.from_upstream_response(status, body, headers)
    assert (error.status, error.type, error.code) == (502, "server_error", "upstream_blocked")
    assert error.headers == {"x-should-retry": "false"}
    assert "Cloudflare" in error.message and shape in error.message
    assert "CODEX_USER_AGENT" in error.message and "HTTPS_PROXY" in error.message
    assert errors.LOGIN_HINT not in error.message


def test_a_json_403_is_still_a_permission_error() -> None:
    body = b'{"error": {"message": "no access", "code": "forbidden"}}'
    error = errors.from_upstream_response(403, body, {"content-type": "application/json"})
    assert error.status == 403 and error.code == "forbidden"
