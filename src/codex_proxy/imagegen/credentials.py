"""Where ``codex-imagegen`` finds the gateway URL and token, and says where it found them.

Order, first non-empty wins for each value separately: ``--base-url`` / ``--token`` flags, the
``CODEX_API_BASE_URL`` / ``CODEX_API_TOKEN`` environment variables, the one-line files
``~/.config/codex-api/base_url`` and ``~/.config/codex-api/token``, then the defaults a local
gateway answers to. Only the *source* of a value is ever reported; the token itself never
leaves this module except in the ``Authorization`` header.

Standard library only: the client must start fast.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

BASE_URL_ENV = "CODEX_API_BASE_URL"
TOKEN_ENV = "CODEX_API_TOKEN"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TOKEN = "devtoken"  # what a local gateway without CODEX_GATEWAY_TOKEN accepts anyway
CONFIG_DIR = Path(".config") / "codex-api"


@dataclass(frozen=True)
class Credentials:
    """The resolved values and a human description of where each came from."""

    base_url: str
    token: str = field(repr=False)  # never in a repr, a log line or a traceback
    base_url_source: str
    token_source: str
    warnings: tuple[str, ...] = ()


def config_dir(home: Path) -> Path:
    """``~/.config/codex-api``: the documented place, on every platform."""
    return home / CONFIG_DIR


def resolve(
    *,
    flag_base_url: str | None,
    flag_token: str | None,
    environ: Mapping[str, str],
    home: Path,
) -> Credentials:
    """Pick each value from the first source that has one (see the module docstring)."""
    warnings: list[str] = []
    folder = config_dir(home)
    base_url, base_source = _first(
        ("--base-url", flag_base_url),
        (f"env {BASE_URL_ENV}", environ.get(BASE_URL_ENV)),
        (f"file {folder / 'base_url'}", _read_line(folder / "base_url", warnings, secret=False)),
        ("the built-in default", DEFAULT_BASE_URL),
    )
    token, token_source = _first(
        ("--token", flag_token),
        (f"env {TOKEN_ENV}", environ.get(TOKEN_ENV)),
        (f"file {folder / 'token'}", _read_line(folder / "token", warnings, secret=True)),
        ("the built-in default token", DEFAULT_TOKEN),
    )
    return Credentials(
        base_url=normalize_base_url(base_url, base_source),
        token=token,
        base_url_source=base_source,
        token_source=token_source,
        warnings=tuple(warnings),
    )


def normalize_base_url(url: str, source: str) -> str:
    """The gateway root without a trailing ``/`` or ``/v1``, so both the SDK-style
    ``http://host:8000/v1`` and ``http://host:8000`` work. Raises ValueError naming the
    source (not the value, which may hold a password) when it is not an http(s) URL."""
    url = url.strip().rstrip("/")
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
        raise ValueError(f"the base URL from {source} must start with http:// or https://")
    return url.removesuffix("/v1")


def display_url(url: str) -> str:
    """``url`` fit for messages: a ``user:password@`` part is replaced by ``***@``."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    if "@" in host:
        host = "***@" + host.rsplit("@", 1)[1]
    return f"{scheme}{sep}{host}{slash}{path}"


def _first(*candidates: tuple[str, str | None]) -> tuple[str, str]:
    """The first candidate with a non-blank value, as ``(value, source)``."""
    for source, value in candidates:
        if value is not None and value.strip():
            return value.strip(), source
    raise AssertionError("the last candidate is a default and never blank")  # pragma: no cover


def _read_line(path: Path, warnings: list[str], *, secret: bool) -> str | None:
    """The first line of ``path``, or None when it is missing or unreadable. A ``secret``
    file that others can read earns a warning (with the fix), as ssh does for keys."""
    try:
        with path.open(encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            line = handle.readline()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        warnings.append(f"cannot read {path}: {exc.__class__.__name__}; ignoring it")
        return None
    if secret and mode & (stat.S_IRGRP | stat.S_IROTH):
        warnings.append(
            f"{path} is readable by other users (mode {stat.S_IMODE(mode):04o}); "
            f"fix it with: chmod 600 {path}"
        )
    return line.strip()
