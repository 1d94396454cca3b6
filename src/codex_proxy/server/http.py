"""Small HTTP helpers shared by the routes: JSON in, JSON and OpenAI-shaped errors out."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from codex_proxy.translate import errors
from codex_proxy.translate.errors import OpenAIError


class JSONResponse(Response):
    """JSON through orjson, like everything else on the hot path."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: OpenAIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def read_json(request: Request) -> Any:
    """The request body as JSON; a 400 ``invalid_json`` naming the parser's complaint if not."""
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise errors.invalid_request(
            f"Request body is not valid JSON: {exc}", None, "invalid_json"
        ) from None
