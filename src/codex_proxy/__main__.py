"""``python -m codex_proxy serve ...``."""

import sys

from codex_proxy.cli.main import main

sys.exit(main())
