"""Runs every scenario against the direct baseline, codex-proxy and the peers; prints a Markdown
table and writes it under ``## Benchmarks`` in ``bench/RESULTS.md``.

    .venv/bin/python -m bench --quick            # development: small counts, under a minute
    .venv/bin/python -m bench                    # the full run
    .venv/bin/python -m bench --install-peers    # create bench/.venv-peers with LiteLLM, ChatMock
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import procs
from bench.results import publish
from bench.targets import ROOT, Target, all_targets, imagegen_script, install_peers

SECTION = "## Benchmarks"
MB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    """Counts and durations of one run."""

    ttfb_requests: int
    throughput_seconds: float
    cpu_requests: int
    image_requests: int
    image_mb: float
    held_streams: int
    hold_seconds: float
    cold_starts: int


FULL = Sizes(600, 15.0, 20, 5, 20.0, 500, 30.0, 3)
QUICK = Sizes(60, 2.0, 2, 1, 20.0, 50, 2.0, 1)


@dataclass
class Row:
    """One measured quantity across the targets."""

    scenario: str
    metric: str
    values: dict[str, float | None]
    lower_is_better: bool = True
    vs_direct: str = "diff"  # "diff" (added) or "ratio" or "" (no comparison)
    goal: str = ""
    met: Callable[[dict[str, float | None]], bool | None] | None = None
    digits: int = 2


@dataclass
class Run:
    """State shared by the scenarios: the fake upstream, the work folder, the rows so far."""

    sizes: Sizes
    workdir: Path
    fake_url: str = ""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def script(self, **script: Any) -> None:
        """Set what the fake upstream answers from now on."""
        request = urllib.request.Request(
            self.fake_url + "/_bench/script", data=orjson.dumps(script), method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()

    def fake_stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.fake_url + "/_bench/stats", timeout=10) as response:
            return dict(orjson.loads(response.read()))

    def load_argv(
        self, target: Target, base: str, concurrency: int, count: int, duration: float = 0.0
    ) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bench.load",
            "--url",
            base + target.path,
            "--body",
            target.body(),
            "--kind",
            target.kind,
            "--concurrency",
            str(concurrency),
            "--count",
            str(count),
            "--duration",
            str(duration),
            "--timeout",
            str(max(60.0, self.sizes.hold_seconds + 60)),
            "--token",
            target.token,
        ]

    def load(
        self, target: Target, base: str, concurrency: int, count: int, duration: float = 0.0
    ) -> dict[str, Any]:
        """Run one load generator process to the end; its JSON results."""
        argv = self.load_argv(target, base, concurrency, count, duration)
        limit = 60 + duration + count * 2 + self.sizes.hold_seconds
        done = subprocess.run(argv, capture_output=True, timeout=limit, cwd=ROOT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed: {done.stderr.decode()[-2000:]}")
        return dict(orjson.loads(done.stdout))


# -- scenarios ---------------------------------------------------------------------------------


def pct(samples: Sequence[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of samples in seconds, in milliseconds."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


Out = dict[str, Any]


def scenario_ttfb(run: Run, target: Target, base: str, out: Out, pid: int | None) -> None:
    """(1) Time to first content byte at concurrency 1."""
    run.script(deltas=10)
    run.load(target, base, 1, 20)
    result = run.load(target, base, 1, run.sizes.ttfb_requests)
    out["ttfb_p50"] = pct(result["ttfb"], 0.5)
    out["ttfb_p99"] = pct(result["ttfb"], 0.99)
    out["ttfb_errors"] = float(sum(result["errors"].values()))


def scenario_throughput(run: Run, target: Target, base: str, out: Out, pid: int | None) -> None:
    """(2) Completed streaming requests per second at concurrency 64, 50 deltas each."""
    run.script(deltas=50)
    run.load(target, base, 64, 10_000, duration=1.0)
    result = run.load(target, base, 64, 1_000_000, duration=run.sizes.throughput_seconds)
    done = len(result["total"])
    out["rps"] = done / result["elapsed"] if result["elapsed"] else None
    out["rps_p50"] = pct(result["total"], 0.5)
    out["rps_errors"] = float(sum(result["errors"].values()))


def scenario_cpu(run: Run, target: Target, base: str, out: Out, pid: int | None) -> None:
    """(3) Gateway CPU seconds per 10,000 relayed deltas on a 5,000-delta answer."""
    if pid is None:
        return
    run.script(deltas=5000)
    run.load(target, base, 1, 1)
    before = procs.cpu_seconds(pid)
    result = run.load(target, base, 2, run.sizes.cpu_requests)
    used = procs.cpu_seconds(pid) - before
    deltas = 5000 * len(result["total"])
    out["cpu_10k"] = used / deltas * 10_000 if deltas else None
    out["cpu_us"] = used / deltas * 1e6 if deltas else None


def scenario_image(run: Run, target: Target, base: str, out: Out, pid: int | None) -> None:
    """(4) One image of ``image_mb`` MB of base64: time to the complete message, peak RSS."""
    run.script(deltas=2, image_mb=run.sizes.image_mb)
    warm = run.load(target, base, 1, 1)
    if warm["errors"]:
        out["image_errors"] = 1.0
        raise RuntimeError(f"the first image request failed: {warm['errors']}; not repeated")
    if pid is not None:
        rss_before = procs.status_kb(pid, "VmRSS")
        procs.reset_peak(pid)
    result = run.load(target, base, 1, run.sizes.image_requests)
    out["image_ms"] = pct(result["total"], 0.5)
    out["image_errors"] = float(sum(result["errors"].values()))
    out["image_bytes"] = statistics.median(result["body_bytes"]) / MB if result["total"] else None
    if pid is not None:
        out["image_rss"] = (procs.status_kb(pid, "VmHWM") - rss_before) / 1024


def scenario_hold(run: Run, target: Target, base: str, out: Out, pid: int | None) -> None:
    """(5) ``held_streams`` streams open at once for ``hold_seconds``: errors and peak RSS."""
    sizes = run.sizes
    run.script(deltas=7, hold_s=sizes.hold_seconds)
    if pid is not None:
        procs.reset_peak(pid)
    n = sizes.held_streams
    argv = run.load_argv(target, base, n, n)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    most = 0
    deadline = time.monotonic() + sizes.hold_seconds + 120
    while proc.poll() is None and time.monotonic() < deadline:
        most = max(most, int(run.fake_stats()["open_streams"]))
        time.sleep(0.5)
    stdout, _ = proc.communicate(timeout=60)
    result = orjson.loads(stdout) if proc.returncode == 0 else {"errors": {"load": n}, "total": []}
    out["hold_errors"] = float(n - len(result["total"]))
    out["hold_open"] = float(most)
    if pid is not None:
        out["hold_rss"] = procs.status_kb(pid, "VmHWM") / 1024


SCENARIOS: dict[str, Callable[[Run, Target, str, Out, int | None], None]] = {
    "ttfb": scenario_ttfb,
    "throughput": scenario_throughput,
    "cpu": scenario_cpu,
    "image": scenario_image,
    "hold": scenario_hold,
}


def cold_start(run: Run, target: Target) -> float | None:
    """(6) Seconds from process start to the first 200 from its health route (median)."""
    took = []
    for i in range(run.sizes.cold_starts):
        log = run.workdir / f"{target.key}-cold-{i}.log"
        proc, _, seconds = target.start(run.fake_url, run.workdir, log)
        procs.stop(proc)
        took.append(seconds)
    return statistics.median(took) if took else None


def imagegen_start(run: Run, target: Target) -> tuple[float | None, str]:
    """(6b) ``codex-imagegen`` start to its first request reaching the upstream (through the
    gateway, so one gateway hop is included)."""
    script = imagegen_script()
    if script is None:
        return None, "skipped: no `codex-imagegen` console script in this environment yet"
    run.script(deltas=2, image_mb=0.1)
    proc, base, _ = target.start(run.fake_url, run.workdir, run.workdir / "imagegen-gw.log")
    try:
        seen = run.fake_stats()["last_request_at"]
        env = {**os.environ, "OPENAI_BASE_URL": base + "/v1", "CODEX_PROXY_URL": base}
        env["OPENAI_API_KEY"] = "bench"
        started = time.time()
        client = subprocess.Popen(
            [script, "--base-url", base, "--quiet", "-o", str(run.workdir / "fox.png"), "a fox"],
            env=env,
            cwd=run.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                at = run.fake_stats()["last_request_at"]
                if at > seen:
                    return at - started, ""
                time.sleep(0.01)
            return None, "codex-imagegen sent no request within 30 s"
        finally:
            procs.stop(client)
    finally:
        procs.stop(proc)


@contextlib.contextmanager
def fake_upstream_run(sizes: Any) -> Iterator[Run]:
    """A benchmark run in a temporary folder, with the fake upstream running (its process
    stopped on the way out); ``run.fake_url`` is where it listens."""
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
            yield run
        finally:
            procs.stop(fake)


def measure(run: Run, targets: list[Target], only: set[str] | None) -> dict[str, dict[str, Any]]:
    """Every scenario against every available target; values by target key."""
    results: dict[str, dict[str, Any]] = {}
    for target in targets:
        if not target.available:
            print(f"-- {target.title}: skipped ({target.note})", flush=True)
            continue
        out: dict[str, Any] = {}
        results[target.key] = out
        proc = None
        if target.key == "direct":
            base, pid = run.fake_url, None
        else:
            log = run.workdir / f"{target.key}.log"
            try:
                proc, base, _ = target.start(run.fake_url, run.workdir, log)
            except RuntimeError as exc:
                tail = log.read_text(errors="replace")[-300:] if log.exists() else ""
                run.notes.append(f"{target.title}: did not start: {exc}; log: {tail!r}")
                continue
            pid = proc.pid
        try:
            for name, step in SCENARIOS.items():
                if only and name not in only:
                    continue
                print(f"-- {target.title}: {name}", flush=True)
                t0 = time.monotonic()
                try:
                    step(run, target, base, out, pid)
                except Exception as exc:  # a peer failing a scenario is a result, not a crash
                    run.notes.append(f"{target.title}, {name}: failed: {exc}")
                    print(f"   failed: {exc}", flush=True)
                print(f"   {time.monotonic() - t0:.1f} s", flush=True)
        finally:
            if proc is not None:
                procs.stop(proc)
        if target.key != "direct" and (not only or "start" in only):
            print(f"-- {target.title}: cold start", flush=True)
            try:
                out["cold"] = cold_start(run, target)
            except Exception as exc:
                run.notes.append(f"{target.title}, cold start: failed: {exc}")
        if target.key == "codex-proxy" and (not only or "start" in only):
            out["imagegen"], note = imagegen_start(run, target)
            if note:
                run.notes.append(f"codex-imagegen: {note}")
    return results


# -- report ------------------------------------------------------------------------------------


def added_under(limit: float) -> Callable[[dict[str, float | None]], bool | None]:
    """Goal check: codex-proxy adds less than ``limit`` to the direct baseline."""

    def check(v: dict[str, float | None]) -> bool | None:
        ours, direct = v.get("codex-proxy"), v.get("direct")
        return None if ours is None or direct is None else ours - direct < limit

    return check


def ours_under(limit: float) -> Callable[[dict[str, float | None]], bool | None]:
    """Goal check: codex-proxy's own value is below ``limit``."""

    def check(v: dict[str, float | None]) -> bool | None:
        ours = v.get("codex-proxy")
        return None if ours is None else ours < limit

    return check


def build_rows(results: dict[str, dict[str, Any]], sizes: Sizes) -> list[Row]:
    """The table rows, with goals and whether codex-proxy met them."""

    def col(key: str) -> dict[str, float | None]:
        return {t: results[t].get(key) for t in results}

    def beats(peers: dict[str, float]) -> Callable[[dict[str, float | None]], bool | None]:
        def check(v: dict[str, float | None]) -> bool | None:
            ours = v.get("codex-proxy")
            found = [(ours / v[p]) >= k for p, k in peers.items() if v.get(p) and ours]
            return all(found) if found else None

        return check

    image = f"{sizes.image_mb:g} MB image"
    n = sizes.held_streams
    return [
        Row("1 TTFB, c=1", "p50 ms", col("ttfb_p50"), goal="+<1 ms", met=added_under(1.0)),
        Row("1 TTFB, c=1", "p99 ms", col("ttfb_p99"), goal="+<5 ms", met=added_under(5.0)),
        Row("1 TTFB, c=1", "errors", col("ttfb_errors"), vs_direct="", digits=0),
        Row(
            "2 throughput, c=64, 50 deltas",
            "req/s",
            col("rps"),
            lower_is_better=False,
            vs_direct="ratio",
            goal=">=3x LiteLLM, >=2x ChatMock",
            met=beats({"litellm": 3.0, "chatmock": 2.0}),
            digits=0,
        ),
        Row("2 throughput, c=64, 50 deltas", "p50 ms per request", col("rps_p50"), digits=1),
        Row("2 throughput, c=64, 50 deltas", "errors", col("rps_errors"), vs_direct="", digits=0),
        Row(
            "3 relay CPU, 5,000 deltas",
            "CPU s / 10k deltas",
            col("cpu_10k"),
            vs_direct="",
            digits=3,
        ),
        Row(
            "3 relay CPU, 5,000 deltas",
            "µs / delta",
            col("cpu_us"),
            vs_direct="",
            goal="<20 µs",
            met=ours_under(20.0),
            digits=1,
        ),
        Row(
            f"4 {image}",
            "complete message ms",
            col("image_ms"),
            goal="+<150 ms",
            met=added_under(150.0),
            digits=0,
        ),
        Row(f"4 {image}", "MB received", col("image_bytes"), vs_direct="", digits=1),
        Row(f"4 {image}", "errors", col("image_errors"), vs_direct="", digits=0),
        Row(
            f"4 {image}",
            "peak RSS growth MB",
            col("image_rss"),
            vs_direct="",
            goal=f"<{3 * sizes.image_mb:g} MB (3x)",
            met=ours_under(3 * sizes.image_mb),
            digits=0,
        ),
        Row(
            f"5 {n} streams held {sizes.hold_seconds:g} s",
            "failed streams",
            col("hold_errors"),
            vs_direct="",
            goal="0",
            met=ours_under(0.5),
            digits=0,
        ),
        Row(
            f"5 {n} streams held {sizes.hold_seconds:g} s",
            "most open upstream",
            col("hold_open"),
            vs_direct="",
            lower_is_better=False,
            digits=0,
        ),
        Row(
            f"5 {n} streams held {sizes.hold_seconds:g} s",
            "peak RSS MB",
            col("hold_rss"),
            vs_direct="",
            digits=0,
        ),
        Row("6 start", "cold start to /healthz s", col("cold"), vs_direct="", digits=2),
        Row("6 start", "codex-imagegen to 1st request s", col("imagegen"), vs_direct="", digits=2),
    ]


def fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def render(rows: list[Row], targets: list[Target], results: dict[str, dict[str, Any]]) -> str:
    """The Markdown table: values, codex-proxy against (a) and against each peer, the goal."""
    shown = [t for t in targets if t.key in results]
    peers = [t for t in shown if t.key not in ("direct", "codex-proxy")]
    head = ["scenario", "metric", *(t.title for t in shown), "(b) vs (a)"]
    head += [f"(b) vs {t.title.split(' (')[0]}" for t in peers] + ["goal", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if all(v is None for v in row.values.values()):
            continue
        ours = row.values.get("codex-proxy")
        cells = [row.scenario, row.metric]
        cells += [fmt(row.values.get(t.key), row.digits) for t in shown]
        direct = row.values.get("direct")
        if row.vs_direct == "diff" and ours is not None and direct is not None:
            cells.append(f"{ours - direct:+,.{max(row.digits, 2)}f}")
        elif row.vs_direct == "ratio" and ours is not None and direct:
            cells.append(f"{ours / direct:.2f}x")
        else:
            cells.append("")
        for peer in peers:
            theirs = row.values.get(peer.key)
            cells.append(_versus(ours, theirs, row.lower_is_better))
        met = row.met(row.values) if row.met else None
        cells += [row.goal, {True: "yes", False: "**no**", None: ""}[met]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _versus(ours: float | None, theirs: float | None, lower_is_better: bool) -> str:
    """How many times better codex-proxy is than a peer (``0.5x`` = half as good)."""
    if ours is None or theirs is None:
        return ""
    if lower_is_better:
        return f"{theirs / ours:.1f}x" if ours > 0 else ""
    return f"{ours / theirs:.1f}x" if theirs > 0 else ""


def machine() -> str:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average at start {load}"
    )


def report(
    rows: list[Row],
    targets: list[Target],
    results: dict[str, dict[str, Any]],
    run: Run,
    command: str,
    started: str,
) -> str:
    notes = [f"- {t.title}: {t.note}" for t in targets if t.note]
    notes += [f"- {note}" for note in run.notes]
    return "\n".join(
        [
            SECTION,
            "",
            f"Run {started} with `{command}` on {machine()}. A shared 2-core machine: other "
            "engineers' test suites ran at the same time, and the gateway, the fake upstream and "
            "the load generator (separate processes, loopback only) share those 2 cores, so "
            "absolute numbers are pessimistic and noisy; the ratios are measured in the same run.",
            "",
            render(rows, targets, results),
            "",
            "(a) is the load generator talking Responses to the fake upstream directly, the floor. "
            "`(b) vs (a)` is the difference for latencies and the ratio for throughput; "
            "`(b) vs peer` is how many times better codex-proxy is (above 1 = better).",
            "",
            PROFILE,
            "Notes:",
            "",
            *notes,
            "",
        ]
    )


PROFILE = """\
What the profiles showed and what changed (py-spy on the gateway; tracemalloc for the image):

- First round. One ASGI send and one socket write per upstream event, and httpx-sse decoding
  every line to text, were the relay's own cost; httpcore's connection pool was the biggest
  single item (about 40% of the CPU at 64 streams: it walks every connection, with a socket
  check per idle one, whenever a request starts or ends). Changed: `upstream/sse.py` parses SSE
  from raw bytes (same reading as httpx-sse, proven by a property test); the relay writes every
  event one network read brought in one send. Throughput at c=64 went 59 -> 253 req/s.
- Second round, TTFB and throughput. At c=1 about half of the gateway's CPU per request was
  still httpx's transport (httpcore's pool and h11, ~0.3 ms a request measured alone) and
  uvicorn's pure-Python h11 server. Changed: `httptools` and `uvloop` are dependencies now
  (uvicorn picks them up), and `upstream/wire.py` is a small HTTP/1.1 transport under httpx:
  an asyncio protocol per connection, an idle list per origin, chunked bodies read with byte
  searches, httpx's own exceptions (a property test feeds it bodies cut into arbitrary reads).
  The next profile showed httpx's client layer (its cookie jar alone ~8%, request building,
  redirect and auth plumbing) and anyio task groups and cancel scopes (the disconnect watch, the
  keep-alive ticker) as the largest items; the event-stream POST now goes straight to the wire
  transport, and both relay helpers are plain asyncio. httpx stays the client for everything
  else, and with a proxy configured its own transports carry everything. Quick runs: added
  TTFB p50 +1.4 -> +0.8 ms, c=64 throughput 500 -> 970 req/s.
- Second round, the 20 MB image. It existed about five times at once (the line collected in
  64 KB pieces and their join, orjson's copy of its input plus a value pool reserved in
  proportion to it, over 200 MB of address space, the parsed string, the markdown, the chunk
  JSON and its SSE framing). Changed: a line that spans reads grows in one bytearray and is
  handed on without its field name; `json_parts.loads_large` cuts the image out of the raw
  bytes, parses the small rest, and decodes the image straight to a string (20 ms instead of
  orjson's ~100 ms); the chunk carrying it is encoded and sent in 1 MB slices as they are made
  (`json_parts.dumps_parts`, same bytes as `orjson.dumps`, property-tested).
- Left: what remains per request is spread thin (Starlette routing and middleware, the
  translation, the disconnect watcher and keep-alive ticker tasks, each about 1-3%). The image
  still costs three unavoidable copies (line, string, markdown) plus page faults on fresh
  20 MB buffers.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, under a minute")
    parser.add_argument("--install-peers", action="store_true", help="create bench/.venv-peers")
    parser.add_argument("--targets", help="comma-separated: direct,codex-proxy,litellm,chatmock")
    parser.add_argument("--scenarios", help="comma-separated: ttfb,throughput,cpu,image,hold,start")
    parser.add_argument("--no-write", action="store_true", help="print only, keep RESULTS.md")
    args = parser.parse_args(argv)
    if args.install_peers:
        install_peers()
    sizes = QUICK if args.quick else FULL
    targets = all_targets()
    if args.targets:
        wanted = set(args.targets.split(","))
        targets = [t for t in targets if t.key in wanted]
    only = set(args.scenarios.split(",")) if args.scenarios else None
    command = shlex.join([".venv/bin/python", "-m", "bench", *(argv or sys.argv[1:])])
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    with fake_upstream_run(sizes) as run:
        results = measure(run, targets, only)
    section = report(build_rows(results, sizes), targets, results, run, command, started)
    publish(SECTION, section, write=not args.no_write)
    return 0
