"""How long ``codex-imagegen`` takes from process start to its first request, against baselines
measured in the same run.

    .venv/bin/python -m bench.imagegen_start [--runs 15]

A stub gateway in this process answers ``POST /v1/images/generations`` at once with a tiny PNG
and records when each request arrives; the clock starts just before each process is spawned,
so both ends of every measurement are read in this process. Baselines:

- ``python -c pass``: the interpreter alone, the floor of any Python client;
- ``bare httpx``: a one-line script that imports httpx and posts the same request, the least a
  Python httpx client can cost;
- ``curl``, when installed, for scale;
- ``import codex_proxy.server.app``: what the client would pay if it imported the gateway (it
  must not).

The ratio to print and watch is codex-imagegen / bare httpx: close to 1 means the client adds
little on top of its one dependency. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# A 1x1 PNG: the answer must be a real image for the client to write it.
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
ANSWER = json.dumps(
    {"created": 0, "data": [{"b64_json": base64.b64encode(PIXEL).decode()}]}
).encode()
SCRIPT = Path(sys.executable).parent / "codex-imagegen"


class StubGateway:
    """Answers every POST with ``ANSWER`` and notes the arrival time of the latest request."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.arrival = 0.0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                owner.arrival = time.perf_counter()
                owner.arrived.set()
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(ANSWER)))
                self.end_headers()
                self.wfile.write(ANSWER)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def measure(argv: list[str], stub: StubGateway | None, cwd: Path) -> tuple[float, float]:
    """(seconds to the first request, or to exit when nothing is sent; seconds to exit)."""
    if stub is not None:
        stub.arrived.clear()
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True)
    end = time.perf_counter()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    if stub is None:
        return end - start, end - start
    if not stub.arrived.is_set():
        raise SystemExit(f"{argv} exited without sending a request")
    return stub.arrival - start, end - start


def commands(url: str, out: Path) -> dict[str, list[str] | None]:
    body = json.dumps({"prompt": "a dot", "response_format": "b64_json"})
    post = f"{url}/v1/images/generations"
    bare = f"import httpx; httpx.post({post!r}, content={body!r}, timeout=10).raise_for_status()"
    curl = shutil.which("curl")
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "bare httpx": [sys.executable, "-c", bare],
        "curl": [curl, "-sf", "-o", "/dev/null", "-d", body, post] if curl else None,
        "import codex_proxy.server.app": [sys.executable, "-c", "import codex_proxy.server.app"],
        "codex-imagegen": [
            str(SCRIPT), "a dot", "--base-url", url, "-o", str(out), "--force", "--quiet",
        ],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command (median shown)")
    args = parser.parse_args(argv)
    if not SCRIPT.exists():
        raise SystemExit(f"{SCRIPT} is missing: pip install -e . first")
    stub = StubGateway()
    medians: dict[str, tuple[float, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for name, argv_ in commands(stub.url, folder / "dot.png").items():
                if argv_ is None:
                    print(f"{name:<24} skipped (not installed)")
                    continue
                sends = name not in ("python -c pass", "import codex_proxy.server.app")
                measure(argv_, stub if sends else None, folder)  # warm the file cache
                runs = [measure(argv_, stub if sends else None, folder) for _ in range(args.runs)]
                medians[name] = (_median(runs, lambda r: r[0]), _median(runs, lambda r: r[1]))
    finally:
        stub.close()
    report(medians)
    return 0


def report(medians: dict[str, tuple[float, float]]) -> None:
    print(f"\n{'command':<24} {'to request':>11} {'to exit':>9}   (median, ms)")
    for name, (first, total) in medians.items():
        print(f"{name:<24} {first * 1000:>11.1f} {total * 1000:>9.1f}")
    mine, bare = medians["codex-imagegen"][0], medians["bare httpx"][0]
    floor = medians["python -c pass"][0]
    print(f"\ncodex-imagegen / bare httpx, start to first request: {mine / bare:.2f}x")
    print(f"codex-imagegen over the bare interpreter: +{(mine - floor) * 1000:.0f} ms")
    app = medians["import codex_proxy.server.app"][0]
    print(f"(importing the gateway app alone would take {app * 1000:.0f} ms)")


def _median(runs: list[tuple[float, float]], key: Callable[[tuple[float, float]], float]) -> float:
    return statistics.median(key(r) for r in runs)


if __name__ == "__main__":
    sys.exit(main())
