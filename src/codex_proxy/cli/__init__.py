"""The ``codex-proxy`` command line (``main.py`` builds the parser); what its commands share."""

from __future__ import annotations

import sys
from typing import Any

from codex_proxy.config import ConfigError, Settings, load_settings

EXIT_FAILED = 1
EXIT_CONFIG = 2  # the settings or the arguments are wrong: nothing was tried


def settings_or_report(env_file: str | None, **overrides: Any) -> Settings | None:
    """The settings as ``serve`` reads them, or None after saying on stderr what is wrong."""
    try:
        return load_settings(env_file, **overrides)
    except ConfigError as exc:
        print(f"codex-proxy: {exc}", file=sys.stderr, flush=True)
        return None
