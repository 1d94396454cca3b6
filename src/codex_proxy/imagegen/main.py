"""``codex-imagegen "<prompt>"``: one image file from the gateway, for agents and scripts.

stdout carries only the result (the path(s), or one JSON object with ``--json``); progress,
the summary, warnings and errors go to stderr, and every failure has its own exit code (see
``codex-imagegen --help`` and ``skills/imagegen/SKILL.md``). The token is never printed.

Start-up matters (an agent may call this many times): only the standard library is imported
here, httpx when the request is made, and nothing of the gateway itself (app, starlette,
uvicorn, orjson). ``bench/imagegen_start.py`` measures it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from codex_proxy import __version__
from codex_proxy._sniff import sniff_format
from codex_proxy.imagegen.credentials import TOKEN_ENV, Credentials, display_url, resolve
from codex_proxy.imagegen.files import (
    SUFFIX_FORMATS,
    Target,
    dimensions,
    plan_target,
    taken,
    write_image,
)
from codex_proxy.imagegen.gateway import (
    EXIT_CANT_WRITE,
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    EXIT_USAGE,
    Failure,
    Gateway,
    ImageJob,
    InputFile,
    Outcome,
    timeout_failure,
)

PROG = "codex-imagegen"
MAX_N = 4  # what the gateway serves per request; each image spends subscription quota
MAX_EDITS = 16
PROGRESS_LINE_SECONDS = 10.0
# The gateway checks sizes too (codex_proxy.images); importing that here would cost start-up.
_SIZE = re.compile(r"^(auto|[1-9][0-9]*x[1-9][0-9]*)$")

EPILOG = """\
exit codes:
  0   the image(s) were written; stdout has the path(s)
  2   the model answered without an image (its text is quoted)
  3   the -o target exists (pass --force to replace it)
  4   the gateway is unreachable (connection refused, no route, connect timeout)
  5   the gateway refused the token (HTTP 401/403)
  6   rate limited (HTTP 429); the message says when to retry
  7   any other gateway error, or no answer within --timeout
  64  bad arguments
  73  the image could not be written to disk
  130 interrupted

credentials, first found wins: --base-url/--token, env CODEX_API_BASE_URL/CODEX_API_TOKEN,
~/.config/codex-api/base_url and ~/.config/codex-api/token, then http://127.0.0.1:8000 and
the default token of a local gateway.
"""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad arguments; 2 is "no image" here, so bad arguments are 64."""

    def error(self, message: str) -> Any:
        raise Failure(EXIT_USAGE, f"bad arguments: {message} (see {PROG} --help)")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        """Unknown arguments are named by their flags only: the value after a misspelt
        ``--tokn`` is most likely a token, and must not be echoed."""
        parsed, extras = self.parse_known_args(args, namespace)
        flags = [a for a in extras if a.startswith("-")]
        if flags:
            self.error(f"unrecognized arguments: {' '.join(flags)}")
        if extras:
            self.error(f"{len(extras)} extra argument(s); quote the prompt if it has spaces")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Generate or edit an image through a codex-proxy gateway and save it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("prompt", help="what to draw (or, with --edit, what to change)")
    p.add_argument("-o", "--out", metavar="PATH", help="file (or folder/) to write")
    p.add_argument("--force", action="store_true", help="replace an existing -o file")
    p.add_argument("--size", default="auto", help="auto (default), 1024x1024, 1536x1024, WxH")
    p.add_argument("--quality", choices=("auto", "low", "medium", "high"))
    p.add_argument(
        "--format", choices=("png", "jpeg", "jpg", "webp"), help="png (default), jpeg or webp"
    )
    p.add_argument("--background", choices=("auto", "opaque", "transparent"))
    p.add_argument("--compression", type=int, metavar="0-100", help="jpeg/webp compression")
    p.add_argument("--model", help="host chat model (uses the chat route)")
    p.add_argument("--edit", action="append", default=[], metavar="IMAGE", help="edit IMAGE")
    p.add_argument("--mask", metavar="FILE", help="PNG mask for --edit: transparent = change")
    p.add_argument("-n", type=int, default=1, metavar="N", help=f"images to make, 1-{MAX_N}")
    p.add_argument("--timeout", type=float, default=180.0, metavar="SECONDS", help="default 180")
    p.add_argument("--quiet", action="store_true", help="stdout: path(s) only, no progress")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--base-url", help="gateway URL (default http://127.0.0.1:8000)")
    p.add_argument("--token", help="gateway token (prefer CODEX_API_TOKEN or the token file)")
    p.add_argument("--verbose", action="store_true", help="say where settings came from")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


# -- output ----------------------------------------------------------------------------------


class Console:
    """stdout for the result, stderr for everything else; known secrets are masked in both."""

    def __init__(self, secrets: Sequence[str | None] = ()) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def add_secret(self, secret: str) -> None:
        if len(secret) >= 4:
            self.secrets.append(secret)

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def out(self, text: str) -> None:
        sys.stdout.write(self.clean(text) + "\n")
        sys.stdout.flush()

    def err(self, text: str) -> None:
        sys.stderr.write(self.clean(text) + "\n")
        sys.stderr.flush()


class Progress:
    """Elapsed seconds on stderr: rewritten in place on a terminal, else a line every 10 s
    (a log or an agent's transcript should not fill with carriage returns)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        enabled: bool,
        label: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self.label = label
        self.clock = clock
        self.start = clock()
        self._next_line = PROGRESS_LINE_SECONDS
        self._drawn = False

    def elapsed(self) -> float:
        return self.clock() - self.start

    def tick(self) -> None:
        if not self.enabled:
            return
        elapsed = self.elapsed()
        if self.tty:
            self.stream.write(f"\r{PROG}: {self.label}... {elapsed:.0f} s")
            self._drawn = True
        elif elapsed >= self._next_line:
            self.stream.write(f"{PROG}: {self.label}... {elapsed:.0f} s\n")
            self._next_line += PROGRESS_LINE_SECONDS
        self.stream.flush()

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False


# -- the command -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console([_flag_value(argv, "--token"), os.environ.get(TOKEN_ENV)])
    try:
        return run(build_parser().parse_args(argv), console)
    except Failure as failure:
        console.err(f"{PROG}: {failure.message}")
        return failure.code
    except KeyboardInterrupt:
        console.err(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED


def run(args: argparse.Namespace, console: Console) -> int:
    """Check everything that costs no quota first, then ask, then write."""
    fmt = check_args(args)
    creds = credentials(args, console)
    target = plan_target(args.out, args.prompt, fmt)
    existing = [] if args.force else taken(target, args.n)
    if existing:
        raise Failure(
            EXIT_REFUSED,
            f"{existing[0]} already exists; not overwriting it (pass --force to replace it, "
            "or choose another -o)",
        )
    job = ImageJob(
        prompt=args.prompt,
        n=args.n,
        options=tool_options(args, fmt),
        edits=[read_input(path, "--edit") for path in args.edit],
        mask=read_input(args.mask, "--mask") if args.mask else None,
        model=args.model,
    )
    log = (lambda line: console.err(f"{PROG}: {line}")) if args.verbose else (lambda _: None)
    gateway = Gateway(creds, timeout=args.timeout, log=log)
    label = "editing" if job.edits else "generating"
    progress = Progress(
        sys.stderr, enabled=not args.quiet, label=f"{label} ({display_url(creds.base_url)})"
    )
    outcome = wait_for(lambda: gateway.generate(job), progress, args.timeout)
    gateway.close()
    written = save(outcome, target, fmt, args.force, console)
    report(written, outcome, progress.elapsed(), args, console)
    return 0


def check_args(args: argparse.Namespace) -> str:
    """What argparse cannot check alone; returns the output format (``-o x.webp`` implies
    webp when ``--format`` is not given)."""
    if not args.prompt.strip():
        raise Failure(EXIT_USAGE, "bad arguments: the prompt is empty")
    fmt = "jpeg" if args.format == "jpg" else args.format
    implied = SUFFIX_FORMATS.get(Path(args.out).suffix.lower()) if args.out else None
    if fmt and implied and fmt != implied:
        raise Failure(
            EXIT_USAGE, f"bad arguments: --format {fmt} does not match the file name {args.out}"
        )
    fmt = fmt or implied or "png"
    problems = [
        (not _SIZE.match(args.size), f"--size must be auto or WIDTHxHEIGHT, not {args.size!r}"),
        (not 1 <= args.n <= MAX_N, f"-n must be 1 to {MAX_N}"),
        (args.timeout <= 0, "--timeout must be positive"),
        (
            args.compression is not None and not 0 <= args.compression <= 100,
            "--compression must be 0 to 100",
        ),
        (
            args.background == "transparent" and fmt == "jpeg",
            "a transparent background needs --format png or webp",
        ),
        (bool(args.mask) and not args.edit, "--mask needs --edit IMAGE"),
        (len(args.edit) > MAX_EDITS, f"at most {MAX_EDITS} --edit images"),
    ]
    for failed, message in problems:
        if failed:
            raise Failure(EXIT_USAGE, f"bad arguments: {message}")
    return fmt


def credentials(args: argparse.Namespace, console: Console) -> Credentials:
    try:
        creds = resolve(
            flag_base_url=args.base_url,
            flag_token=args.token,
            environ=os.environ,
            home=Path.home(),
        )
    except ValueError as exc:
        raise Failure(EXIT_USAGE, f"bad arguments: {exc}") from None
    console.add_secret(creds.token)
    for warning in creds.warnings:
        console.err(f"{PROG}: warning: {warning}")
    if args.verbose:
        console.err(f"{PROG}: base URL from {creds.base_url_source}")
        console.err(f"{PROG}: token from {creds.token_source}")
    return creds


def tool_options(args: argparse.Namespace, fmt: str) -> dict[str, Any]:
    """The image tool fields, in the Images API's names; unset ones are left to the gateway."""
    options: dict[str, Any] = {"size": args.size, "output_format": fmt}
    for name, value in (
        ("quality", args.quality),
        ("background", args.background),
        ("output_compression", args.compression),
    ):
        if value is not None:
            options[name] = value
    return options


def read_input(path: str, flag: str) -> InputFile:
    """An image to upload, checked now: a typo should cost no quota."""
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise Failure(EXIT_USAGE, f"bad arguments: {flag} {path}: {exc.strerror}") from None
    fmt = sniff_format(data)
    if fmt is None or (flag == "--mask" and fmt != "png"):
        kinds = "a PNG" if flag == "--mask" else "a PNG, JPEG or WebP"
        raise Failure(EXIT_USAGE, f"bad arguments: {flag} {path} is not {kinds} file")
    return InputFile(Path(path).name, data, fmt)


def wait_for(call: Callable[[], Outcome], progress: Progress, timeout: float) -> Outcome:
    """Run ``call`` in a worker thread while the main thread shows progress and enforces the
    overall deadline (httpx's timeouts are per read, not per request)."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["outcome"] = call()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=work, name="imagegen-request", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            remaining = timeout - progress.elapsed()
            if remaining <= 0:
                raise timeout_failure(timeout)
            worker.join(min(1.0, remaining))
            progress.tick()
    finally:
        progress.clear()
    if "error" in box:
        raise box["error"]
    return box["outcome"]


def save(
    outcome: Outcome, target: Target, fmt: str, force: bool, console: Console
) -> list[dict[str, Any]]:
    """Write each image; returns what the report needs about each file."""
    written = []
    for index, image in enumerate(outcome.images, 1):
        try:
            path = write_image(target, index, image.data, image.fmt, force=force)
        except FileExistsError as exc:
            raise Failure(
                EXIT_REFUSED,
                f"{exc.filename or exc} appeared while the image was being made; not "
                "overwriting it (pass --force to replace it)",
            ) from None
        except OSError as exc:
            raise Failure(
                EXIT_CANT_WRITE, f"cannot write {exc.filename or target.path}: {exc.strerror}"
            ) from None
        if image.fmt != fmt and target.fixed:
            console.err(f"{PROG}: warning: the gateway sent {image.fmt}, written to {path} as is")
        size = dimensions(image.data, image.fmt)
        written.append(
            {
                "path": str(path),
                "bytes": len(image.data),
                "size": f"{size[0]}x{size[1]}" if size else None,
                "format": image.fmt,
                "revised_prompt": image.revised_prompt,
            }
        )
    return written


def report(
    written: list[dict[str, Any]],
    outcome: Outcome,
    seconds: float,
    args: argparse.Namespace,
    console: Console,
) -> None:
    """stdout: the path(s), or one JSON object; stderr: a short human summary."""
    if args.json:
        summary = {**written[0], "seconds": round(seconds, 2), "endpoint": outcome.endpoint}
        console.out(json.dumps({**summary, "images": written}, ensure_ascii=False))
    else:
        for entry in written:
            console.out(entry["path"])
    if args.quiet or args.json:
        return
    for entry in written:
        size = entry["size"] or "unknown size"
        console.err(
            f"{PROG}: wrote {entry['path']} ({size} {entry['format']}, "
            f"{_human_bytes(entry['bytes'])}) in {seconds:.1f} s"
        )
        if entry["revised_prompt"]:
            console.err(f"{PROG}: revised prompt: {entry['revised_prompt']}")


def _human_bytes(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KB"
    return f"{count / (1024 * 1024):.1f} MB"


def _flag_value(argv: Sequence[str], flag: str) -> str | None:
    """A flag's value before argparse runs, so even an argument error cannot echo it."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
