"""Starts ChatMock (from the peers venv) against the benchmark's fake upstream.

ChatMock has no setting for its upstream: ``chatmock.config.CHATGPT_RESPONSES_URL`` is a
constant (``https://chatgpt.com/backend-api/codex/responses``) that ``chatmock.upstream`` imports
by name. This shim replaces that one module attribute before serving and changes nothing else;
it also writes a throwaway ``auth.json`` (a far-future JWT, no refresh token) and turns off
the model catalog sync and Werkzeug's per-request log line.

    bench/.venv-peers/bin/python bench/chatmock_shim.py --port 9003 --upstream http://127.0.0.1:9001
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import tempfile


def _jwt(claims: dict[str, object]) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sig"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL of the fake upstream")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="chatmock-bench-")
    token = _jwt({"exp": 4_102_444_800, "https://api.openai.com/auth": {}})
    auth = {"tokens": {"access_token": token, "id_token": token, "account_id": "acct_bench"}}
    with open(os.path.join(home, "auth.json"), "w", encoding="utf-8") as handle:
        json.dump(auth, handle)
    os.environ["CHATGPT_LOCAL_HOME"] = home
    os.environ["CHATGPT_LOCAL_MODEL_SYNC"] = "false"
    import chatmock.upstream
    from chatmock.cli import main as chatmock_main

    chatmock.upstream.CHATGPT_RESPONSES_URL = args.upstream.rstrip("/") + "/responses"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    sys.argv = ["chatmock", "serve", "--host", "127.0.0.1", "--port", str(args.port)]
    return int(chatmock_main() or 0)


if __name__ == "__main__":
    sys.exit(main())
