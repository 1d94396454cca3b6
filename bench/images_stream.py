"""A streamed image through ``/v1/images/generations`` (``stream: true, partial_images: 3``):
three partial images and the final one, each ``image_mb`` MB of base64 (partials are full-size
previews), against the load generator reading the same upstream stream directly. Writes
``## Streamed partial images`` in ``bench/RESULTS.md``.

    .venv/bin/python -m bench.images_stream            # under a minute
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
from bench.results import publish
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
from bench.targets import IMAGES_STREAM, Target, all_targets
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


Samples = dict[str, dict[str, Any]]


def new_samples() -> Samples:
    return {
        key: {"ttfb": [], "total": [], "body_bytes": [], "errors": 0, "rss": []}
        for key in ("direct", "codex-proxy")
    }


def measure(run: Run, rounds: int, pooled: Samples) -> None:
    """``rounds`` rounds, each the direct baseline then the gateway (started once, warmed up
    once), so drift in the shared machine's load hits both; samples added to ``pooled``."""
    run.script(deltas=2, image_mb=run.sizes.image_mb, partials=PARTIALS)
    direct, ours = targets()
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


def added_p50(samples: Samples) -> float:
    return (pct(samples["codex-proxy"]["ttfb"], 0.5) or 0.0) - (
        pct(samples["direct"]["ttfb"], 0.5) or 0.0
    )


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
- Time to the first partial: cut-through. The gateway does not wait for a partial image's
  whole SSE line: the image stream's decoder (`upstream/sse.py` with the `LargeValueCut` of
  `upstream/sse_cut.py`, asked for by `server/images_stream.py` only; chat and Responses read
  as before) hands out the line's parsed head once 4 KB of the line arrived, then each
  network read's base64 as it comes, checked (only `A-Za-z0-9+/=` and `\\/`), and the
  gateway writes the public event's head (`{"type":"image_generation.partial_image",
  "b64_json":"`), the base64 pieces, then the tail (index, size, quality, background,
  output_format, created_at) once the upstream line is complete. Store-and-forward before
  it: +34..+57 ms p50; the first cut-through version: +9..+16 ms.
- What took it from there to the table, each measured with gateways side by side on one
  fake (48-64 samples each, interleaved, so the machine's drift hits all of them):
  - One read at a time (`upstream/wire_conn.py`): the connection stops reading its socket
    once 64 KB of body waits unread and reads again when all of it was taken (before: at
    1 MB, and again at 256 KB); the kernel's socket buffer holds the rest. +3.4 ms p50 with
    the old limits, +1.4..+2.0 with 64, 128 or 200 KB.
  - The image stream reads the next piece while the last one is written, at most 1 MB ahead
    (`read_ahead` in `server/images_stream.py`; a whole event still waits until everything
    before it was written): +2.3/+2.4 ms against +2.8/+5.2 without, and the whole stream
    5-17 ms faster.
  - The cut starts once 4 KB (or 16 KB) of the line arrived, not 64 KB: the first byte out
    2.1-2.8 ms after the baseline's instead of 3.3-3.5 ms (a lean client, 13 requests each).
  - Reads go straight into one buffer of the pool (`asyncio.BufferedProtocol`), not into
    a new bytes object each: gateway CPU per streamed request (80 MB) 139-146 ms
    before, 128-132 ms after.
- The instrument, fixed for both columns: the fake upstream sends a large reply with
  `sendfile` (one `write` of the 80 MB reply copied it into the transport's buffer on every
  request, about 60 ms of CPU on the cores the gateway and the client share: the direct
  baseline fell from 108 to 44-51 ms). The load generator finds the end of an event and error
  events with a substring search over every piece (a regex scanned only pieces up to 256 KB,
  and only the edges of larger ones, so 256 KB chunks cost the client more per byte than one
  80 MB chunk), and parses chunked framing from whole reads (reading each chunk's size line
  and data from asyncio's `StreamReader` left part of a read in its buffer; appending to it
  then took 22-39 ms per request against 4-9 ms, on the gateway's stream only).
- The base64 check (`bytes.translate`, about 6 ms of CPU per 20 MB; nothing faster in the
  standard library) does not move the first partial: switched off, +4.4/+3.3 ms p50 against
  +2.9/+3.2 with it, in the same runs.
- Where the rest goes: the gateway's first byte leaves about 2 ms after the baseline's (the
  extra hop, the upstream request, parsing the first read); after that it keeps pace with the
  client. The spread is the machine's: with 3 busy processes on 2 cores, the same code gives
  per-session p50s from -2.3 to +6.6 ms (4 of 20 sessions over the goal in four runs), so the
  table pools 5 sessions, each with a new fake and gateway; pooled over 5 sessions, four runs
  gave +2.35, +2.31, +1.03 and +2.68 ms before the table's.
- Memory: a whole event is read only after everything before it was written, and the batch
  that held it is emptied then; no loop variable outlives its batch (before: the keep-alive
  pump read ahead while a slow client took the first partial, 62-121 MB). Growth is largest
  in the first round after the warm-up; glibc's dynamic mmap threshold keeps freed 20 MB
  blocks in the heap for later rounds. Reading the final image holds its bytes and its string
  at once (40 MB, in `upstream/`). The table shows the worst round.
- The fake upstream writes the whole reply at once; partial images are as big as the final
  one (full-size previews), the worst case for memory.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.images_stream", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts")
    parser.add_argument("--requests", type=int, default=0, help="requests per target and round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument(
        "--sessions", type=int, default=5, help="new fake and gateway each time (default 5)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only, keep RESULTS.md")
    args = parser.parse_args(argv)
    sizes = replace(QUICK, image_requests=3) if args.quick else replace(FULL, image_requests=10)
    if args.requests:
        sizes = replace(sizes, image_requests=args.requests)
    command = shlex.join([".venv/bin/python", "-m", "bench.images_stream", *(argv or sys.argv[1:])])
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    pooled, per_session, notes = new_samples(), [], []
    for session in range(args.sessions):
        print(f"-- session {session + 1}: a new fake upstream and gateway", flush=True)
        samples = new_samples()
        with fake_upstream_run(sizes) as run:
            measure(run, args.rounds, samples)
            notes += [note for note in run.notes if note not in notes]
        per_session.append(added_p50(samples))
        for key, into in pooled.items():
            for field in ("ttfb", "total", "body_bytes", "rss"):
                into[field] += samples[key][field]
            into["errors"] += samples[key]["errors"]
    results = {key: summary(samples) for key, samples in pooled.items()}
    shown = targets()
    section = "\n".join(
        [
            SECTION,
            "",
            f"Run {started} with `{command}` on {machine()}; {args.sessions} sessions (each "
            f"a new fake upstream and gateway) of {args.rounds} rounds alternating the direct "
            f"baseline and the gateway, {sizes.image_requests} streamed images each per round, "
            "one at a time, after one warm-up; samples pooled, the RSS growth the largest of "
            "the rounds; first partial p50 added per session: "
            + ", ".join(f"{value:+.2f} ms" for value in per_session)
            + ". Body: "
            f"`{IMAGES_STREAM}`. Same shared 2-core machine caveats as above.",
            "",
            render_table(build_rows(results, sizes), shown, results),
            "",
            "(a) reads the fake upstream's Responses stream (first partial = the whole "
            "`response.image_generation_call.partial_image` event); (b) is codex-proxy's "
            "`/v1/images/generations` (the whole `image_generation.partial_image` event).",
            "",
            NOTES,
            *(f"- {note}" for note in notes),
        ]
    )
    publish(SECTION, section, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
