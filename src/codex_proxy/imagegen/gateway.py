"""``codex-imagegen``'s conversation with the gateway: the Images API, the chat fallback, and
every failure turned into one line and a distinct exit code.

The gateway's ``/v1/images/generations`` and ``/v1/images/edits`` are the main path. A gateway
that does not serve them (an older codex-proxy, another OpenAI-compatible gateway: 404 or 405)
still gets a chance through ``/v1/chat/completions`` with the ``image_generation`` tool forced,
which is also the only way to choose the host chat model (``--model``).

httpx is imported when the first request is made, not with this module, so ``--help`` and
argument errors stay instant.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from codex_proxy._sniff import sniff_format
from codex_proxy.imagegen.credentials import Credentials, display_url

if TYPE_CHECKING:
    import httpx

# Exit codes: each failure an agent could act on differently gets its own.
EXIT_NO_IMAGE = 2
EXIT_REFUSED = 3
EXIT_UNREACHABLE = 4
EXIT_AUTH = 5
EXIT_RATE_LIMITED = 6
EXIT_GATEWAY = 7
EXIT_USAGE = 64
EXIT_CANT_WRITE = 73
EXIT_INTERRUPTED = 130

TEXT_LIMIT = 500
CONNECT_TIMEOUT = 10.0
START_HINT = (
    "start it with `codex-proxy serve`, or restart its service "
    "(`launchctl kickstart -k gui/$(id -u)/com.codex-api.gateway` on macOS, "
    "`systemctl --user restart codex-proxy` on Linux)"
)
TOKEN_HINT = (
    "pass the gateway's CODEX_GATEWAY_TOKEN with --token, CODEX_API_TOKEN or "
    "~/.config/codex-api/token"
)
NO_IMAGE_PREFIX = "the model answered without an image"
IMAGE_TOOL = "image_generation"

_DATA_URI = re.compile(r"data:image/(?:png|jpe?g|webp);base64,([A-Za-z0-9+/=]+)")
_IMAGE_LINK = re.compile(r"!\[[^\]]*\]\((https?://[^)\s]+)\)")
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


class Failure(Exception):
    """A failure the user sees as one line on stderr and ``code`` as the exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _NotServed(Exception):
    """The gateway has no Images API (404/405): try the chat route instead."""


@dataclass(frozen=True)
class InputFile:
    """An image (or mask) to send, read before any request so a typo costs no quota."""

    name: str
    data: bytes
    fmt: str


@dataclass(frozen=True)
class ImageJob:
    """What to ask for: the prompt, how many, the tool options, the images to edit."""

    prompt: str
    n: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)  # size, quality, output_format...
    edits: Sequence[InputFile] = ()
    mask: InputFile | None = None
    model: str | None = None  # the host chat model; only the chat route can honour it


@dataclass(frozen=True)
class Image:
    """One generated image as the gateway delivered it."""

    data: bytes
    fmt: str
    revised_prompt: str | None


@dataclass(frozen=True)
class Outcome:
    """The images of one run and the route that made them (``--json`` reports it)."""

    images: list[Image]
    endpoint: str  # the path that answered


class Gateway:
    """One gateway, one httpx client (connections reused across the ``n`` images)."""

    def __init__(
        self, creds: Credentials, *, timeout: float, log: Callable[[str], None] = lambda _: None
    ) -> None:
        self.creds = creds
        self.timeout = timeout
        self.log = log
        self.display = display_url(creds.base_url)
        self._clients: dict[bool, httpx.Client] = {}  # by "verifies TLS"

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    # -- the two routes ----------------------------------------------------------------------

    def generate(self, job: ImageJob) -> Outcome:
        """The Images API, or the chat route when it is missing or ``--model`` is set."""
        if job.model is None:
            try:
                return self._images_api(job)
            except _NotServed as exc:
                self.log(f"{exc}: falling back to /v1/chat/completions with the image tool")
        else:
            self.log("--model chooses the host chat model: using /v1/chat/completions")
        return self._chat(job)

    def _images_api(self, job: ImageJob) -> Outcome:
        fields = {"prompt": job.prompt, "n": job.n, "response_format": "b64_json", **job.options}
        if job.edits:
            path = "/v1/images/edits"
            name = "image" if len(job.edits) == 1 else "image[]"
            files = [(name, (f.name, f.data, _MIME[f.fmt])) for f in job.edits]
            if job.mask is not None:
                files.append(("mask", (job.mask.name, job.mask.data, "image/png")))
            form = {k: str(v) for k, v in fields.items()}
            response = self._send("POST", path, allow_missing=True, data=form, files=files)
        else:
            path = "/v1/images/generations"
            response = self._send("POST", path, allow_missing=True, json=fields)
        if response.status_code in (404, 405):
            raise _NotServed(f"{path} answered HTTP {response.status_code}")
        payload = self._json(response)
        entries = payload.get("data") if isinstance(payload, dict) else None
        images = [self._entry_image(e) for e in entries or [] if isinstance(e, dict)]
        if not images:
            raise Failure(EXIT_NO_IMAGE, "model did not return an image: the answer had no data")
        return Outcome(images, path)

    def _chat(self, job: ImageJob) -> Outcome:
        """``n`` chat calls, at the same time, each forced to call the image tool."""
        body = chat_body(job)
        if job.n == 1:
            return Outcome([self._chat_image(body)], "/v1/chat/completions")
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=job.n) as pool:
            images = list(pool.map(lambda _: self._chat_image(body), range(job.n)))
        return Outcome(images, "/v1/chat/completions")

    def _chat_image(self, body: Mapping[str, Any]) -> Image:
        response = self._send("POST", "/v1/chat/completions", json=body)
        payload = self._json(response)
        try:
            message = payload["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise Failure(EXIT_GATEWAY, "the gateway's chat answer has no message") from None
        content = message.get("content") if isinstance(message.get("content"), str) else ""
        revised = _revised_prompt(message)
        found = _DATA_URI.search(content)
        if found:
            return _decoded(found.group(1), revised)
        for entry in message.get("images") or []:
            url = (entry.get("image_url") or {}).get("url", "") if isinstance(entry, dict) else ""
            if isinstance(url, str) and (found := _DATA_URI.match(url)):
                return _decoded(found.group(1), revised)
        link = _IMAGE_LINK.search(content)
        if link:
            return _checked(self._download(link.group(1)), revised)
        text = content.strip() or str(message.get("refusal") or "").strip() or "(no text either)"
        raise Failure(EXIT_NO_IMAGE, f"model did not return an image: {text[:TEXT_LIMIT]}")

    def _entry_image(self, entry: Mapping[str, Any]) -> Image:
        revised = entry.get("revised_prompt")
        revised = revised if isinstance(revised, str) else None
        if isinstance(entry.get("b64_json"), str):
            return _decoded(entry["b64_json"], revised)
        if isinstance(entry.get("url"), str):
            return _checked(self._download(entry["url"]), revised)
        raise Failure(
            EXIT_GATEWAY, "the gateway's answer has an image with neither b64_json nor url"
        )

    def _download(self, url: str) -> bytes:
        """An image the gateway linked instead of inlining; our token goes only to the gateway."""
        response = self._send("GET", url)
        return response.content

    # -- HTTP and its failures ---------------------------------------------------------------

    def client_for(self, url: str) -> httpx.Client:
        """A client that checks certificates for any URL that may use TLS (an https URL, or
        any URL when a proxy is configured); the one for plain http skips loading the CA
        bundle (~45 ms of start-up) and never follows a redirect to https."""
        secure = not url.lower().startswith("http://") or _proxy_configured()
        if secure not in self._clients:
            self._clients[secure] = _make_client(secure, self.timeout)
        return self._clients[secure]

    def _send(
        self, method: str, path_or_url: str, *, allow_missing: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """One request; any failure becomes a :class:`Failure`, except a 404/405 when
        ``allow_missing`` (the route is absent: the caller falls back)."""
        import httpx

        absolute = path_or_url.startswith(("http://", "https://"))
        url = path_or_url if absolute else self.creds.base_url + path_or_url
        headers = {"Authorization": f"Bearer {self.creds.token}"}
        if absolute and not _same_origin(url, self.creds.base_url):
            headers = {}
        self.log(f"{method} {display_url(url)}")
        try:
            response = self.client_for(url).request(method, url, headers=headers, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise Failure(
                EXIT_UNREACHABLE,
                f"failed to reach gateway at {self.display}: {_reason(exc)}; {START_HINT}",
            ) from None
        except httpx.TimeoutException:
            raise timeout_failure(self.timeout) from None
        except httpx.HTTPError as exc:
            raise Failure(
                EXIT_GATEWAY,
                f"the connection to the gateway at {self.display} broke: {_reason(exc)}",
            ) from None
        self.log(f"HTTP {response.status_code} in {response.elapsed.total_seconds():.1f} s")
        if response.is_success or (allow_missing and response.status_code in (404, 405)):
            return response
        raise self._http_failure(response)

    def _http_failure(self, response: httpx.Response) -> Failure:
        status = response.status_code
        err = _error_fields(response)
        message = err.get("message") or f"HTTP {status} without an error message"
        if status in (401, 403):
            source = self.creds.token_source
            if "gateway token" in message.lower():
                text = f"wrong or missing gateway token (HTTP {status}: {message}); "
                text += f"the token came from {source}; {TOKEN_HINT}"
            else:
                text = f"authentication failed (HTTP {status}): {message} (token from {source})"
            return Failure(EXIT_AUTH, text)
        if status == 429:
            return Failure(
                EXIT_RATE_LIMITED, f"rate limited (HTTP 429): {message}{_retry(response)}"
            )
        if message.lower().startswith(NO_IMAGE_PREFIX) or err.get("code") == "no_image_generated":
            text = message.split(":", 1)[1].strip() if ":" in message else message
            return Failure(EXIT_NO_IMAGE, f"model did not return an image: {text[:TEXT_LIMIT]}")
        return Failure(EXIT_GATEWAY, f"the gateway answered HTTP {status}: {message}")

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Failure(
                EXIT_GATEWAY,
                f"the gateway answered HTTP {response.status_code} with something that is not "
                f"JSON ({response.headers.get('content-type', 'no content type')})",
            ) from None


# -- pure helpers ----------------------------------------------------------------------------


def chat_body(job: ImageJob) -> dict[str, Any]:
    """A chat request that can only be answered with an image: the tool declared with the
    options and forced, the prompt saying so, the images to edit attached."""
    tool: dict[str, Any] = {"type": IMAGE_TOOL, **job.options}
    if job.edits:
        tool["action"] = "edit"
        verb = "Edit the attached image" + ("s" if len(job.edits) > 1 else "")
    else:
        verb = "Generate an image"
    if job.mask is not None:
        tool["input_image_mask"] = {"image_url": data_uri(job.mask)}
    text = f"{verb} with the image_generation tool; do not answer with text only.\n\n{job.prompt}"
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    content += [{"type": "image_url", "image_url": {"url": data_uri(f)}} for f in job.edits]
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": content}],
        "tools": [tool],
        "tool_choice": {"type": IMAGE_TOOL},
        "stream": False,
    }
    if job.model:
        body["model"] = job.model
    return body


def data_uri(image: InputFile) -> str:
    return f"data:{_MIME[image.fmt]};base64,{base64.b64encode(image.data).decode('ascii')}"


def timeout_failure(seconds: float) -> Failure:
    """Exit 7, not 4: the gateway was reached; it (or the model) is just slow."""
    return Failure(
        EXIT_GATEWAY,
        f"timed out: no image from the gateway within {seconds:g} s; the image may still be "
        "generating (and spending quota); retry once with a larger --timeout",
    )


def _make_client(secure: bool, timeout: float) -> httpx.Client:
    """``secure``: verify certificates. Only for plain http URLs with no proxy may it be
    False (there are no certificates then); redirects are never followed, so such a client
    never reaches an https URL."""
    import httpx

    limits = httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout))
    return httpx.Client(timeout=limits, verify=secure, follow_redirects=False)


def _proxy_configured() -> bool:
    return any(k.lower() in ("https_proxy", "http_proxy", "all_proxy") for k in os.environ)


def _same_origin(url: str, base_url: str) -> bool:
    def origin(u: str) -> str:
        scheme, _, rest = u.partition("://")
        return f"{scheme.lower()}://{rest.split('/', 1)[0].lower()}"

    return origin(url) == origin(base_url)


def _decoded(b64: str, revised: str | None) -> Image:
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise Failure(EXIT_GATEWAY, "the gateway sent an image that is not valid base64") from None
    return _checked(data, revised)


def _checked(data: bytes, revised: str | None) -> Image:
    fmt = sniff_format(data)
    if fmt is None:
        raise Failure(EXIT_GATEWAY, "the gateway sent something that is not a PNG, JPEG or WebP")
    return Image(data, fmt, revised)


def _revised_prompt(message: Mapping[str, Any]) -> str | None:
    """codex-proxy's non-standard ``message.image_metadata`` carries the revised prompt."""
    for meta in message.get("image_metadata") or []:
        if isinstance(meta, dict) and isinstance(meta.get("revised_prompt"), str):
            return meta["revised_prompt"]
    return None


def _error_fields(response: httpx.Response) -> dict[str, Any]:
    """``{"error": {...}}`` (OpenAI), ``{"detail": ...}`` (FastAPI) or the text itself."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = " ".join(response.text.split())[:TEXT_LIMIT]
        return {"message": text} if text else {}
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        return {k: v for k, v in err.items() if isinstance(v, str)}
    if isinstance(err, str):
        return {"message": err}
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return {"message": body["detail"]}
    return {}


def _retry(response: httpx.Response) -> str:
    """`` Retry after N s (at HH:MM:SS).`` from a seconds ``retry-after``, else nothing."""
    value = response.headers.get("retry-after", "").strip()
    if not value.isdigit():
        return f" Retry after {value}." if value else ""
    seconds = int(value)
    at = time.strftime("%H:%M:%S", time.localtime(time.time() + seconds))
    return f" Retry after {seconds} s (at {at} local time)."


def _reason(exc: BaseException) -> str:
    """The OS's words for a socket failure ("Connection refused"), not a wrapped repr."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    return str(exc) or exc.__class__.__name__
