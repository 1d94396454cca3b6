"""A streamed image through ``/v1/images/generations`` (``stream: true, partial_images: 3``):
three partial images and the final one, each ``image_mb`` MB of base64 (partials are full-size
previews), against the load generator reading the same upstream stream directly. Writes
``## Streamed partial images`` in ``bench/RESULTS.md``.

    .venv/bin/python -m bench.images_stream            # about a minute
    .venv/bin/python -m bench.images_stream --quick    # development

Measured, over rounds that alternate the baseline and the gateway: the time to the whole
first partial image event (when a client could show the preview; the direct baseline reads the
upstream's ``partial_image`` event), the time to the end of the stream, and the gateway's peak
RSS growth (VmHWM after a reset, minus VmRSS before).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from bench import procs
from bench.results import RESULTS, write_section
from bench.run import (
    FULL,
    MB,
    QUICK,
    Row,
    Run,
    Sizes,
    added_under,
    fake_upstream_run,
    machine,
    ours_under,
    pct,
)
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


def scenario(run: Run, target: Target, base: str, pid: int | None) -> dict[str, Any]:
    """``image_requests`` streamed images one after another; the raw samples, and the peak RSS
    growth of the gateway over them."""
    if pid is not None:
        rss_before = procs.status_kb(pid, "VmRSS")
        procs.reset_peak(pid)
    result = run.load(target, base, 1, run.sizes.image_requests)
    if pid is not None:
        result["rss"] = (procs.status_kb(pid, "VmHWM") - rss_before) / 1024
    return result


def measure(run: Run, rounds: int) -> dict[str, dict[str, Any]]:
    """``rounds`` rounds, each the direct baseline then the gateway (started once, warmed up
    once), so drift in the shared machine's load hits both; samples pooled across rounds."""
    run.script(deltas=2, image_mb=run.sizes.image_mb, partials=PARTIALS)
    direct, ours = targets()
    pooled: dict[str, dict[str, Any]] = {
        t.key: {"ttfb": [], "total": [], "body_bytes": [], "errors": 0, "rss": []}
        for t in (direct, ours)
    }
    proc, base = start(ours, run)
    try:
        for target, url in ((direct, run.fake_url), (ours, base)):
            warm = run.load(target, url, 1, 1)
            if warm["errors"]:
                raise RuntimeError(f"{target.title}: the first streamed image failed: {warm}")
        for round_ in range(rounds):
            for target, url, pid in ((direct, run.fake_url, None), (ours, base, proc.pid)):
                print(f"-- round {round_ + 1}: {target.title}", flush=True)
                result = scenario(run, target, url, pid)
                into = pooled[target.key]
                for key in ("ttfb", "total", "body_bytes"):
                    into[key] += result[key]
                into["errors"] += sum(result["errors"].values())
                if "rss" in result:
                    into["rss"].append(result["rss"])
    finally:
        procs.stop(proc)
    return {key: summary(samples) for key, samples in pooled.items()}


def summary(samples: dict[str, Any]) -> dict[str, Any]:
    return {
        "first_p50": pct(samples["ttfb"], 0.5),
        "first_p90": pct(samples["ttfb"], 0.9),
        "total_p50": pct(samples["total"], 0.5),
        "errors": float(samples["errors"]),
        "mb": statistics.median(samples["body_bytes"]) / MB if samples["body_bytes"] else None,
        "rss": max(samples["rss"]) if samples["rss"] else None,
    }


def build_rows(results: dict[str, dict[str, Any]], sizes: Sizes) -> list[Row]:
    def col(key: str) -> dict[str, float | None]:
        return {t: results[t].get(key) for t in results}

    name = f"{PARTIALS} partials + final, {sizes.image_mb:g} MB each"
    return [
        Row(name, "1st partial p50 ms", col("first_p50"), goal="+<5 ms", met=added_under(5.0)),
        Row(name, "1st partial p90 ms", col("first_p90")),
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
- Time to the first partial: cut-through. The gateway no longer waits for a partial image's
  whole SSE line: the image stream's decoder (`upstream/sse.py` with the `LargeValueCut` of
  `upstream/sse_cut.py`, asked for by `server/images_stream.py` only; chat and Responses read
  as before) hands out the line's parsed head as soon as the value starts, then each network
  read's base64 as it comes, checked (only `A-Za-z0-9+/=` and `\\/`), and the gateway writes
  the public event's head (`{"type":"image_generation.partial_image","b64_json":"`), the
  base64 pieces, then the tail (index, size, quality, background, output_format, created_at)
  once the upstream line is complete. Before it (store-and-forward), on this machine in the
  same hour: +34..+39 ms p50 (full and quick runs), +57 ms in the 10:14 run at load 4; with
  it: +9..+16 ms p50 over quick and full runs, the table's run included. The remaining gap
  is mostly the base64 check: `bytes.translate` over every byte, about 6 ms of CPU per 20 MB
  on a machine where the fake, the gateway and the client share 2 cores (one run with the
  check switched off: +1.4 ms p50, +16.5 ms p90). No faster check in the standard library
  was found (a regex, `binascii.a2b_base64(strict_mode=True)`, replace-then-`isalnum` are
  3-7x slower). The whole stream is faster too (+25..+35 ms over the baseline, from
  +87..+96 ms): the final image is still read whole (it is the `result` of the done item,
  in a nested object).
- Memory: improved by a fix; the goal is met in some runs, not all. Before the fix, the keep-alive
  pump (`relay._with_ticks`) read and parsed the next partials while a slow client still took
  the first, and the pump's and the consumer's loop variables held the last batch: peak RSS
  growth 62-121 MB over a few quick runs (up to 6x the image). Now `server/images_stream.py`
  reads the next upstream batch only after the last one was written and empties it
  (`one_at_a_time`), and no loop variable outlives its batch. Growth per round since then:
  43-84 MB in the first round after the warm-up, 19-25 MB in every later one (glibc's dynamic
  mmap threshold keeps freed 20 MB blocks in the heap, so later rounds reuse them). With
  `MALLOC_MMAP_THRESHOLD_=1048576` (every large block mapped and unmapped, so VmHWM is the live
  peak) it is 61 MB each round with 3 partials and 40-42 MB with 0 or 1: parsing an image line
  holds its bytes and its string at once (40 MB, in `upstream/`), and with 3 partials one
  more 20 MB string overlaps somewhere not yet found. The table shows the worst round.
  The cost of the fix is the overlap of reading the next image with writing this one: the
  whole 80 MB stream takes about 100 ms longer than before (quick runs: +37..+163 ms over the
  baseline before, +116..+300 ms after; noisy).
- The fake upstream writes the whole reply at once; partial images are as big as the final
  one (full-size previews), the worst case for memory.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.images_stream", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts")
    parser.add_argument("--requests", type=int, default=0, help="requests per target and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--no-write", action="store_true", help="print only, keep RESULTS.md")
    args = parser.parse_args(argv)
    sizes = replace(QUICK, image_requests=3) if args.quick else replace(FULL, image_requests=10)
    if args.requests:
        sizes = replace(sizes, image_requests=args.requests)
    command = shlex.join([".venv/bin/python", "-m", "bench.images_stream", *(argv or sys.argv[1:])])
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    with fake_upstream_run(sizes) as run:
        results = measure(run, args.rounds)
    shown = targets()
    section = "\n".join(
        [
            SECTION,
            "",
            f"Run {started} with `{command}` on {machine()}; {args.rounds} rounds alternating "
            f"the direct baseline and the gateway, {sizes.image_requests} streamed images "
            "each per round, one at a time, after one warm-up; samples pooled, the RSS growth "
            "the largest of the rounds. Body: "
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
