"""How the response store grows along one conversation, and what a long chain costs to load.

    .venv/bin/python -m bench.store_growth [--turns 50] [--runs 20]

Saves a ``--turns`` chain in a temporary folder, each turn shaped like a Codex answer: a user
message, a reasoning item with 2 KB of encrypted_content, an assistant message; every tenth turn
also returns a generated image (~1 MB PNG) that the next turn sends back as an ``input_image``.
Prints the logical database size (page_count x page_size) added per turn, the blob folder size,
and ``load_chain`` time (median of ``--runs``) at turn 1 vs the last turn, with bytes restored
and without. The ratio to watch is time(last) / (turns x time(1)): near 1 means loading grows
linearly with the chain (one indexed lookup per turn), well above 1 means something quadratic.
Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from codex_proxy.store import SQLiteBackend
from codex_proxy.store.sqlite import DB_NAME


def picture(n: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + os.urandom(1_000_000) + n.to_bytes(4, "big")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def turn(n: int, image_back: bytes | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    content: list[dict[str, Any]] = [{"type": "input_text", "text": f"question {n} " * 40}]
    if image_back is not None:
        content.append(
            {"type": "input_image", "image_url": "data:image/png;base64," + b64(image_back)}
        )
    inputs = [{"type": "message", "role": "user", "content": content}]
    output: list[dict[str, Any]] = [
        {
            "id": f"rs_{n}",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "thinking " * 20}],
            "encrypted_content": b64(os.urandom(1500)),
        },
        {
            "id": f"msg_{n}",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": f"answer {n} " * 100, "annotations": []}],
        },
    ]
    response = {
        "id": f"resp_{n}",
        "object": "response",
        "created_at": time.time(),
        "status": "completed",
        "model": "gpt-5.2-codex",
        "previous_response_id": f"resp_{n - 1}" if n > 1 else None,
        "output": output,
        "tools": [{"type": "image_generation", "output_format": "png"}],
        "usage": {"input_tokens": 100 * n, "output_tokens": 300, "total_tokens": 100 * n + 300},
    }
    return response, inputs


def logical_size(path: Path) -> int:
    with sqlite3.connect(path) as db:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        return pages * db.execute("PRAGMA page_size").fetchone()[0]


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load_time(store: SQLiteBackend, response_id: str, runs: int, with_bytes: bool) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        store.load_chain(response_id, with_bytes=with_bytes)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        store = SQLiteBackend(data, ttl_days=0)
        sizes, save_times = [], []
        pending_image: bytes | None = None
        for n in range(1, args.turns + 1):
            response, inputs = turn(n, pending_image)
            pending_image = None
            if n % 10 == 0:
                pending_image = picture(n)
                response["output"].append(
                    {
                        "id": f"ig_{n}",
                        "type": "image_generation_call",
                        "status": "completed",
                        "result": b64(pending_image),
                        "output_format": "png",
                    }
                )
            start = time.perf_counter()
            store.save(response, inputs)
            save_times.append(time.perf_counter() - start)
            sizes.append(logical_size(data / DB_NAME))
            if n == 1:
                first = {wb: load_time(store, "resp_1", args.runs, wb) for wb in (True, False)}
        last_id = f"resp_{args.turns}"
        last = {wb: load_time(store, last_id, args.runs, wb) for wb in (True, False)}
        growth = [b - a for a, b in itertools.pairwise(sizes)]
        print(f"turns: {args.turns}, runs per timing: {args.runs}")
        print(
            f"database: {sizes[-1]:,} bytes, {sizes[-1] / args.turns:,.0f} bytes per turn "
            f"(median growth {statistics.median(growth):,.0f}, max {max(growth):,})"
        )
        print(
            f"blob files: {folder_size(data / 'blobs'):,} bytes "
            f"in {sum(1 for p in (data / 'blobs').rglob('*') if p.is_file())} files "
            f"({args.turns // 10} images, each sent back once)"
        )
        print(
            f"save: median {statistics.median(save_times) * 1e3:.2f} ms, "
            f"max {max(save_times) * 1e3:.2f} ms (the max includes a 1 MB image)"
        )
        for with_bytes in (False, True):
            t1, tn = first[with_bytes], last[with_bytes]
            label = "with bytes   " if with_bytes else "without bytes"
            print(
                f"load_chain {label}: turn 1 {t1 * 1e3:.3f} ms, turn {args.turns} "
                f"{tn * 1e3:.3f} ms, ratio {tn / t1:.1f}x, per turn "
                f"{tn / (args.turns * t1):.2f}x of turn 1"
            )
        store.close()


if __name__ == "__main__":
    main()
