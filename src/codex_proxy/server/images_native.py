"""The native images endpoints (protocol.md 7.3): ``POST {base}/images/generations`` and
``{base}/images/edits``, plain JSON, answered once.

Which route serves an Images API request is decided here: ``CODEX_IMAGES_ROUTE=tool`` never
uses these endpoints, ``native`` always does (and refuses what they cannot do), ``auto`` uses
them when they can serve the request and the upstream has them. An upstream without them
(404/405, an older backend) is remembered for the life of the process and logged once.
"""

from __future__ import annotations

import logging
from typing import Any

from codex_proxy.translate import errors
from codex_proxy.translate.errors import OpenAIError
from codex_proxy.translate.images_api import ImageRequest, native_body, native_unsuitable
from codex_proxy.upstream.auth import CHATGPT, Credentials
from codex_proxy.upstream.client import UpstreamClient

log = logging.getLogger("codex_proxy")

GENERATIONS_PATH = "/images/generations"
EDITS_PATH = "/images/edits"
MISSING_STATUSES = (404, 405)


class NativeUnavailable(Exception):
    """The upstream has no native images endpoint (it answered 404 or 405)."""


class NativeImages:
    """Per process: whether the upstream still looks like it has the native endpoints."""

    def __init__(self, route: str) -> None:
        self.route = route
        self.available = True

    def wanted(self, job: ImageRequest, creds: Credentials) -> bool:
        """Whether to try the native endpoint for ``job``; raises OpenAIError (400) when
        ``CODEX_IMAGES_ROUTE=native`` and the request needs the tool route."""
        if self.route == "tool":
            return False
        # The public API's /v1/images/edits takes multipart, not this JSON: edits with an API
        # key stay on the tool route.
        if job.edit and creds.mode != CHATGPT:
            return False
        reason = native_unsuitable(job)
        if self.route == "native":
            if reason is not None:
                raise errors.invalid_request(
                    f"{reason} needs the image tool route, and this gateway is configured with "
                    "CODEX_IMAGES_ROUTE=native; omit it or use CODEX_IMAGES_ROUTE=auto.",
                    reason,
                    "unsupported_parameter",
                )
            return True
        return reason is None and self.available

    def missing(self, path: str) -> None:
        """The upstream answered 404/405 on ``path``: use the tool route from now on."""
        if self.available:
            self.available = False
            log.warning(
                "the upstream has no native images endpoint (%s answered 404/405); "
                "the Images API goes through the image tool from now on",
                path,
            )


async def generate_native(
    client: UpstreamClient,
    creds: Credentials,
    job: ImageRequest,
    session_id: str,
    native: NativeImages,
) -> tuple[Any, dict[str, str]]:
    """One POST for all ``n`` images: the upstream's JSON answer and the headers to forward.
    Raises NativeUnavailable on a 404/405 in ``auto`` mode, OpenAIError on other failures."""
    path = EDITS_PATH if job.edit else GENERATIONS_PATH
    try:
        return await client.post_json(creds, path, native_body(job), session_id)
    except OpenAIError as error:
        if error.status in MISSING_STATUSES and native.route == "auto":
            native.missing(path)
            raise NativeUnavailable(path) from None
        raise
