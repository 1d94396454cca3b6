"""A streamed image through ``/v1/images/generations`` (``stream: true, partial_images: 3``):
three partial images and the final one, each ``image_mb`` MB of base64 (partials are full-size
previews), against the load generator reading the same upstream stream directly. Writes
``## Streamed partial images`` in ``bench/RESULTS.md``.

    .venv/bin/python -m bench.images_stream            # about a minute
    .venv/bin/python -m bench.images_stream --quick    # development

Measured: the time to the whole first partial image event (when a client could show the
preview; the direct baseline reads the upstream's ``partial_image`` event), the time to the end
of the stream, and the gateway's peak RSS growth (VmHWM after a reset, minus VmRSS before).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import procs
from bench.results import RESULTS, write_section
from bench.run import FULL, MB, QUICK, Row, Run, Sizes, added_under, machine, ours_under, pct
from bench.run import render as render_table
from bench.targets import IMAGES_STREAM, ROOT, Target, all_targets
from bench.transport import start

SECTION = "## Streamed partial images"
PARTIALS = IMAGES_STREAM["partial_images"]


def targets() -> list[Target]:
    """The direct baseline reading the upstream's image events, and codex-proxy's Images API."""
    direct, ours = (t for t in all_targets() if t.key in ("direct", "codex-proxy"))
    return [
        replace(direct, kind="responses_images"),
        replace(
            ours,
            kind="images",
            path="/v1/images/generations",
            extra_env={"CODEX_UPSTREAM_TRANSPORT": "wire"},
        ),
    ]


def scenario(run: Run, target: Target, base: str, out: dict[str, Any], pid: int | None) -> None:
    """``image_requests`` streamed images one after another, after one warm-up request."""
    warm = run.load(target, base, 1, 1)
    if warm["errors"]:
        raise RuntimeError(f"the first streamed image failed: {warm['errors']}; not repeated")
    if pid is not None:
        rss_before = procs.status_kb(pid, "VmRSS")
        procs.reset_peak(pid)
    result = run.load(target, base, 1, run.sizes.image_requests)
    out["first_p50"] = pct(result["ttfb"], 0.5)
    out["first_max"] = pct(result["ttfb"], 1.0)
    out["total_p50"] = pct(result["total"], 0.5)
    out["errors"] = float(sum(result["errors"].values()))
    out["mb"] = statistics.median(result["body_bytes"]) / MB if result["total"] else None
    if pid is not None:
        out["rss"] = (procs.status_kb(pid, "VmHWM") - rss_before) / 1024


def measure(run: Run) -> dict[str, dict[str, Any]]:
    run.script(deltas=2, image_mb=run.sizes.image_mb, partials=PARTIALS)
    results: dict[str, dict[str, Any]] = {}
    for target in targets():
        print(f"-- {target.title}", flush=True)
        out: dict[str, Any] = {}
        results[target.key] = out
        if target.key == "direct":
            scenario(run, target, run.fake_url, out, None)
            continue
        proc, base = start(target, run)
        try:
            scenario(run, target, base, out, proc.pid)
        except Exception as exc:
            run.notes.append(f"{target.title}: failed: {exc}")
        finally:
            procs.stop(proc)
    return results


def build_rows(results: dict[str, dict[str, Any]], sizes: Sizes) -> list[Row]:
    def col(key: str) -> dict[str, float | None]:
        return {t: results[t].get(key) for t in results}

    name = f"{PARTIALS} partials + final, {sizes.image_mb:g} MB each"
    return [
        Row(name, "1st partial p50 ms", col("first_p50"), goal="+<5 ms", met=added_under(5.0)),
        Row(name, "1st partial max ms", col("first_max")),
        Row(name, "whole stream p50 ms", col("total_p50"), digits=0),
        Row(name, "MB received", col("mb"), vs_direct="", digits=1),
        Row(name, "errors", col("errors"), vs_direct="", digits=0),
        Row(
            name,
            "peak RSS growth MB",
            col("rss"),
            vs_direct="",
            goal=f"<={3 * sizes.image_mb:g} MB (3x)",
            met=ours_under(3 * sizes.image_mb + 1e-9),
            digits=0,
        ),
    ]


NOTES = """\
- The fake upstream writes the whole reply at once, so the direct baseline's first partial
  is only the time to read 20 MB off loopback; the gateway's number adds reading it, parsing
  the event, and re-encoding and writing the public event.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.images_stream", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts")
    parser.add_argument("--requests", type=int, default=0, help="measured requests per target")
    parser.add_argument("--no-write", action="store_true", help="print only, keep RESULTS.md")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else replace(FULL, image_requests=15)
    if args.requests:
        sizes = replace(sizes, image_requests=args.requests)
    command = shlex.join([".venv/bin/python", "-m", "bench.images_stream", *(argv or sys.argv[1:])])
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    with tempfile.TemporaryDirectory(prefix="codex-bench-") as tmp:
        run = Run(sizes, Path(tmp))
        port = procs.free_port()
        fake = procs.spawn(
            [sys.executable, "-m", "bench.fake", "--port", str(port)],
            {},
            run.workdir / "fake.log",
            ROOT,
        )
        run.fake_url = f"http://127.0.0.1:{port}"
        try:
            procs.wait_healthy(run.fake_url + "/healthz", fake, 30)
            results = measure(run)
        finally:
            procs.stop(fake)
    shown = targets()
    section = "\n".join(
        [
            SECTION,
            "",
            f"Run {started} with `{command}` on {machine()}; {sizes.image_requests} streamed "
            f"images per target, one at a time, after one warm-up. Body: "
            f"`{IMAGES_STREAM}`. Same shared 2-core machine caveats as above.",
            "",
            render_table(build_rows(results, sizes), shown, results),
            "",
            "(a) reads the fake upstream's Responses stream (first partial = the whole "
            "`response.image_generation_call.partial_image` event); (b) is codex-proxy's "
            "`/v1/images/generations` (the whole `image_generation.partial_image` event).",
            "",
            NOTES,
            *(f"- {note}" for note in run.notes),
        ]
    )
    print()
    print(section)
    if not args.no_write:
        write_section(SECTION, section)
        print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
