"""Small HTTP answer helpers shared by the routes."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from .translate.errors import OpenAIError


class JSONResponse(Response):
    """JSON through orjson, like everything else on the hot path."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(error: OpenAIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)
