"""``python -m codex_proxy serve ...``."""

import sys

from .cli import main

sys.exit(main())
