"""Soak test: mixed traffic at a fixed rate against a real gateway process, for minutes.

Starts the fake upstream (``codex_proxy.mock``, scripted per request by a ``#soak:`` marker in
the user text) and a gateway (``python -m codex_proxy serve``) as their own processes on
loopback, then sends an open-loop mix (text, streams, tool calls, images, client cancels,
scripted upstream failures, bad requests, large bodies) at ``--rate`` requests per second. Every
``--interval`` seconds it prints requests, outcomes, latency percentiles, and the gateway's RSS,
open file descriptors and CPU. Access tokens live two minutes, so refreshes happen under load.

Pass: no unexpected outcome, and RSS growth under 10% from the end of warm-up to the end.

    .venv/bin/python -m bench.soak --minutes 10 --rate 20          # writes bench/RESULTS.md
    .venv/bin/python -m bench.soak --minutes 1 --interval 10 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shlex
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import procs
from bench.results import publish

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Soak"
MODEL = "gpt-5.2-codex"
TOKEN_LIFETIME = 120.0  # seconds; with a 60 s refresh skew: a refresh every minute
WARMUP_INTERVALS = 2
MARKER = re.compile(rb"#soak:([a-z0-9]+)")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}

# -- the fake upstream process ----------------------------------------------------------------


def soak_reply(request: Any) -> Any:
    """The fake's answer: a ``#soak:KIND`` marker picks a scripted one, else the default."""
    from codex_proxy.mock.events import ResponseScript, text_response
    from codex_proxy.mock.server import Drop, Pause, RawData, Reply, default_reply

    match = MARKER.search(request.raw)
    kind = match.group(1).decode() if match else ""
    s = ResponseScript()
    if kind == "slow":  # a long answer the client walks away from
        events: list[Any] = []
        for event in text_response([f"word{i} " for i in range(40)]):
            events += [event, Pause(0.05)] if "delta" in event["type"] else [event]
        return Reply(events=events)
    if kind == "e429":
        resets = int(time.time()) + 3600
        body = {"error": {"type": "usage_limit_reached", "message": "Limit", "resets_at": resets}}
        return Reply(status=429, body=body)
    if kind == "e500":
        return Reply(status=500, body=b"upstream overloaded")
    if kind in ("drop", "malformed"):
        s.start()
        s.message(["partial"])
        tail = Drop() if kind == "drop" else RawData(b"data: {oops\n\n")
        return Reply(events=[*s.events[:5], tail])
    if kind == "failed":
        s.start()
        s.failed("server_is_overloaded", "Overloaded")
        return Reply(events=s.events)
    if kind == "big":  # a short answer: the default would echo 200 KB as 34,000 deltas
        return Reply(events=text_response(["Read ", "it ", "all."]))
    return default_reply(request)


def run_fake(port: int, stats_path: Path) -> None:
    """Serve the fake until SIGTERM; every few seconds write counters and forget the records
    (the fake keeps every request it saw, which would grow for the whole run)."""
    from codex_proxy.mock.server import FakeUpstream, _is_token_post

    fake = FakeUpstream(port=port, default=soak_reply).start()
    fake.tokens.lifetime = TOKEN_LIFETIME
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    totals: Counter[str] = Counter()
    while not stop.wait(2.0):
        with fake._lock:
            seen, fake._requests[:] = list(fake._requests), []
        totals["requests"] += len(seen)
        totals["refreshes"] += sum(1 for r in seen if _is_token_post(r))
        snapshot = {**totals, "open_streams": fake.open_streams, "disconnects": fake.disconnects}
        stats_path.write_text(json.dumps(snapshot))
    fake.stop()


# -- traffic ----------------------------------------------------------------------------------


@dataclass
class Plan:
    """One request: what to send and what the client must see."""

    scenario: str
    body: dict[str, Any]
    expect: int  # HTTP status
    code: str | None = None  # the error code, when an error is expected
    cancel: bool = False  # leave after the first content


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


UPSTREAM_FAILURES = [  # marker, stream, status, code (a streamed failure after content: 200)
    ("e429", False, 429, "usage_limit_reached"),
    ("e500", True, 502, "upstream_error"),
    ("drop", True, 200, "upstream_stream_truncated"),
    ("drop", False, 502, "upstream_stream_truncated"),
    ("malformed", True, 200, "upstream_malformed_event"),
    ("failed", False, 503, "server_is_overloaded"),
]


def plan(rng: random.Random, n: int) -> Plan:
    """The traffic mix (weights in percent)."""
    kind = rng.choices(
        ["text", "stream", "tool", "image", "cancel", "upstream_error", "bad_request", "large"],
        weights=[25, 20, 12, 8, 10, 15, 5, 5],
    )[0]
    base: dict[str, Any] = {"model": MODEL}
    if kind == "text":
        return Plan(kind, {**base, "messages": user(f"Hello number {n}")}, 200)
    if kind == "stream":
        return Plan(kind, {**base, "messages": user(f"Stream {n}"), "stream": True}, 200)
    if kind == "tool":
        body = {**base, "messages": user('/tool get_weather {"city": "Paris"}'), "tools": [WEATHER]}
        return Plan(kind, {**body, "stream": rng.random() < 0.5}, 200)
    if kind == "image":
        tool = {"type": "image_generation", "size": "256x256"}
        return Plan(kind, {**base, "messages": user(f"Draw fox {n}"), "tools": [tool]}, 200)
    if kind == "cancel":
        body = {**base, "messages": user(f"#soak:slow {n}"), "stream": True}
        return Plan(kind, body, 200, cancel=True)
    if kind == "upstream_error":
        marker, stream, status, code = UPSTREAM_FAILURES[n % len(UPSTREAM_FAILURES)]
        body = {**base, "messages": user(f"#soak:{marker} {n}"), "stream": stream}
        return Plan(kind, body, status, code)
    if kind == "bad_request":
        return Plan(kind, {**base, "messages": "not a list"}, 400, "invalid_type")
    text = f"#soak:big {n} " + "lorem ipsum " * 17_000  # about 200 KB
    return Plan(kind, {**base, "messages": user(text)}, 200)


@dataclass
class Result:
    scenario: str
    outcome: str  # "ok", "cancelled", "expected:<code>", or "unexpected:<what>"
    seconds: float
    finished: float


async def send(client: httpx.AsyncClient, url: str, p: Plan) -> tuple[str, float]:
    """Run one plan; returns the outcome and its latency."""
    started = time.perf_counter()
    try:
        async with client.stream("POST", url, json=p.body) as response:
            if p.cancel:
                async for text in response.aiter_text():
                    if '"content":"word' in text:
                        return "cancelled", time.perf_counter() - started
                return "unexpected:cancel-saw-no-content", time.perf_counter() - started
            raw = await response.aread()
    except httpx.HTTPError as exc:
        return f"unexpected:{p.scenario}:{type(exc).__name__}", time.perf_counter() - started
    seconds = time.perf_counter() - started
    return judge(p, response.status_code, response.headers.get("content-type", ""), raw), seconds


def judge(p: Plan, status: int, content_type: str, raw: bytes) -> str:
    """Compare what came back with what the plan expects."""
    if status != p.expect:
        return f"unexpected:{p.scenario}:HTTP {status}"
    if content_type.startswith("text/event-stream"):
        events = [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]
        error = next((json.loads(e)["error"] for e in events if e.startswith(b'{"error"')), None)
        if p.code is not None:
            ok = error is not None and error.get("code") == p.code
            return f"expected:{p.code}" if ok else f"unexpected:{p.scenario}:stream {error}"
        if error is not None or not events or events[-1] != b"[DONE]":
            return f"unexpected:{p.scenario}:broken stream"
        if p.scenario == "tool" and b'"tool_calls"' not in raw:
            return "unexpected:tool:no tool call"
        return "ok"
    body = json.loads(raw)
    if p.code is not None:
        code = body.get("error", {}).get("code")
        return f"expected:{code}" if code == p.code else f"unexpected:{p.scenario}:{code}"
    message = body["choices"][0]["message"]
    if p.scenario == "tool" and not message.get("tool_calls"):
        return "unexpected:tool:no tool call"
    if p.scenario == "image" and "data:image/png;base64," not in (message.get("content") or ""):
        return "unexpected:image:no image"
    return "ok"


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Interval:
    """One reporting interval."""

    index: int
    seconds: float
    outcomes: Counter[str]
    p50_ms: float | None
    p99_ms: float | None
    rss_mb: float
    fds: int
    cpu_pct: float
    in_flight: int
    refreshes: int

    @property
    def requests(self) -> int:
        return sum(self.outcomes.values())

    @property
    def unexpected(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k.startswith("unexpected"))

    @property
    def expected_errors(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k.startswith("expected"))


def percentile(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def fd_count(pid: int) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/fd"))
    return -1


def fake_stats(path: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text())
    return {}


@dataclass
class Soak:
    """The load loop and its bookkeeping."""

    url: str
    gateway_pid: int
    stats_path: Path
    rate: float
    seconds: float
    interval: float
    seed: int
    results: list[Result] = field(default_factory=list)
    intervals: list[Interval] = field(default_factory=list)
    in_flight: int = 0
    totals: Counter[str] = field(default_factory=Counter)

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=64)
        timeout = httpx.Timeout(120, connect=10)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
            reporter = asyncio.create_task(self.report_every())
            rng = random.Random(self.seed)
            start = time.perf_counter()
            tasks: set[asyncio.Task[None]] = set()
            n = 0
            while time.perf_counter() - start < self.seconds:
                due = start + n / self.rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                task = asyncio.create_task(self.one(client, plan(rng, n)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            if tasks:
                await asyncio.wait(tasks, timeout=150)
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            self.close_interval()  # the tail after the last full interval

    async def one(self, client: httpx.AsyncClient, p: Plan) -> None:
        self.in_flight += 1
        try:
            outcome, seconds = await send(client, self.url, p)
        finally:
            self.in_flight -= 1
        self.results.append(Result(p.scenario, outcome, seconds, time.perf_counter()))

    async def report_every(self) -> None:
        self.cpu_mark = (procs.cpu_seconds(self.gateway_pid), time.perf_counter())
        self.refresh_mark = 0
        while True:
            await asyncio.sleep(self.interval)
            self.close_interval()

    def close_interval(self) -> None:
        window, self.results = self.results, []
        if not window and self.intervals:
            return
        cpu, at = procs.cpu_seconds(self.gateway_pid), time.perf_counter()
        cpu_pct = 100 * (cpu - self.cpu_mark[0]) / max(at - self.cpu_mark[1], 1e-9)
        self.cpu_mark = (cpu, at)
        refreshes = int(fake_stats(self.stats_path).get("refreshes", 0))
        latencies = [r.seconds for r in window if r.outcome == "ok"]
        outcomes = Counter(r.outcome for r in window)
        self.totals.update(outcomes)
        item = Interval(
            index=len(self.intervals) + 1,
            seconds=self.interval,
            outcomes=outcomes,
            p50_ms=percentile(latencies, 0.50),
            p99_ms=percentile(latencies, 0.99),
            rss_mb=procs.status_kb(self.gateway_pid, "VmRSS") / 1024,
            fds=fd_count(self.gateway_pid),
            cpu_pct=cpu_pct,
            in_flight=self.in_flight,
            refreshes=refreshes - self.refresh_mark,
        )
        self.refresh_mark = refreshes
        self.intervals.append(item)
        print(line(item), flush=True)
        for kind, count in sorted(outcomes.items()):
            if kind.startswith("unexpected"):
                print(f"    {count} x {kind}", flush=True)


def line(i: Interval) -> str:
    p50 = f"{i.p50_ms:.0f}" if i.p50_ms is not None else "-"
    p99 = f"{i.p99_ms:.0f}" if i.p99_ms is not None else "-"
    return (
        f"[{i.index:>3}] requests {i.requests:>5}  ok {i.outcomes['ok']:>5}  "
        f"cancelled {i.outcomes['cancelled']:>4}  expected errors {i.expected_errors:>4}  "
        f"unexpected {i.unexpected:>3}  p50 {p50:>5} ms  p99 {p99:>5} ms  "
        f"RSS {i.rss_mb:6.1f} MB  fds {i.fds:>4}  CPU {i.cpu_pct:5.1f}%  "
        f"in flight {i.in_flight:>3}  refreshes {i.refreshes}"
    )


# -- the report -------------------------------------------------------------------------------


def verdict(intervals: list[Interval]) -> tuple[bool, float, float, float]:
    """(passed, RSS after warm-up, RSS at the end, growth in percent)."""
    full = [i for i in intervals if i.requests]
    warm = full[min(WARMUP_INTERVALS, len(full)) - 1] if full else None
    end = full[-1] if full else None
    if warm is None or end is None:
        return False, 0.0, 0.0, 0.0
    growth = 100 * (end.rss_mb - warm.rss_mb) / warm.rss_mb
    unexpected = sum(i.unexpected for i in intervals)
    return unexpected == 0 and growth < 10, warm.rss_mb, end.rss_mb, growth


def report(soak: Soak, command: str, started: str, after: dict[str, Any]) -> str:
    passed, warm, end, growth = verdict(soak.intervals)
    rows = [
        "| min | requests | ok | cancelled | expected errors | unexpected | p50 ms | p99 ms "
        "| RSS MB | fds | CPU % | refreshes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i in soak.intervals:
        p50 = f"{i.p50_ms:.0f}" if i.p50_ms is not None else "-"
        p99 = f"{i.p99_ms:.0f}" if i.p99_ms is not None else "-"
        rows.append(
            f"| {i.index} | {i.requests} | {i.outcomes['ok']} | {i.outcomes['cancelled']} | "
            f"{i.expected_errors} | {i.unexpected} | {p50} | {p99} | {i.rss_mb:.1f} | {i.fds} | "
            f"{i.cpu_pct:.0f} | {i.refreshes} |"
        )
    totals = soak.totals
    expected = ", ".join(
        f"{k.split(':', 1)[1]} {n}" for k, n in sorted(totals.items()) if k.startswith("expected")
    )
    unexpected = ", ".join(
        f"{k.split(':', 1)[1]} {n}" for k, n in sorted(totals.items()) if k.startswith("unexp")
    )
    ok_p = [i.p50_ms for i in soak.intervals if i.p50_ms is not None]
    return "\n".join(
        [
            SECTION,
            "",
            f"Run {started} with `{command}` on {machine()}. Mixed traffic at a fixed rate "
            "(25% text, 20% streamed text, 12% tool calls, 8% 256x256 images, 10% clients that "
            "hang up mid-stream, 15% scripted upstream failures: usage-limit 429, 500, dropped "
            "and malformed streams, response.failed; 5% bad requests, 5% 200 KB bodies), access "
            "tokens living two minutes so they refresh under load. The gateway is its own "
            "process (`python -m codex_proxy serve`, one worker), RSS is its VmRSS; latency is "
            "to the end of each successful answer.",
            "",
            *rows,
            "",
            f"- Requests: {sum(totals.values())}; ok {totals['ok']}, cancelled by the client "
            f"{totals['cancelled']}; expected errors by kind: {expected or 'none'}.",
            f"- Unexpected outcomes: {unexpected or 'none'}.",
            f"- RSS after warm-up (interval {WARMUP_INTERVALS}) {warm:.1f} MB, at the end "
            f"{end:.1f} MB: growth {growth:+.1f}% (limit 10%). Median of the per-interval p50s "
            f"{statistics.median(ok_p) if ok_p else 0:.0f} ms.",
            f"- After the load stopped: fake upstream open streams {after.get('open_streams')}, "
            f"gateway fds {after.get('fds')} (before the load: {after.get('fds_before')}).",
            f"- Verdict: **{'pass' if passed else 'FAIL'}**.",
            "",
        ]
    )


def machine() -> str:
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, Python {sys.version.split()[0]}; load average at start {load}"


# -- main -------------------------------------------------------------------------------------


def write_auth(home: Path, lifetime: float = TOKEN_LIFETIME) -> None:
    """ChatGPT sign-in files whose access token lives ``lifetime`` seconds."""
    from codex_proxy.mock.tokens import access_token, id_token

    home.mkdir(parents=True, exist_ok=True)
    auth = {
        "tokens": {
            "id_token": id_token(),
            "access_token": access_token(lifetime),
            "refresh_token": "rt-soak",
            "account_id": "acct-mock-123",
        },
        "last_refresh": "2026-11-01T00:00:00Z",
    }
    (home / "auth.json").write_text(json.dumps(auth))
    (home / "auth.json").chmod(0o600)


def wait_until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds per report line")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print only, keep RESULTS.md")
    parser.add_argument("--fake", type=int, help=argparse.SUPPRESS)  # internal: serve the fake
    parser.add_argument("--fake-stats", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fake:
        run_fake(args.fake, Path(args.fake_stats))
        return 0
    command = shlex.join([".venv/bin/python", "-m", "bench.soak", *(argv or sys.argv[1:])])
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    with tempfile.TemporaryDirectory(prefix="codex-soak-") as tmp:
        work = Path(tmp)
        stats_path = work / "fake-stats.json"
        fake_port, gateway_port = procs.free_port(), procs.free_port()
        fake_url = f"http://127.0.0.1:{fake_port}"
        fake_argv = [sys.executable, "-m", "bench.soak", "--fake", str(fake_port)]
        fake = procs.spawn(
            [*fake_argv, "--fake-stats", str(stats_path)],
            {},
            work / "fake.log",
            ROOT,
        )
        gateway = None
        try:
            procs.wait_healthy(f"{fake_url}/_mock/state", fake, 30)
            write_auth(work / "codex-home")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEX_", "OPENAI_"))}
            env.update(
                CODEX_HOME=str(work / "codex-home"),
                CODEX_AUTH_MODE="chatgpt",
                CODEX_UPSTREAM_BASE_URL=fake_url,
                CODEX_REFRESH_TOKEN_URL_OVERRIDE=f"{fake_url}/oauth/token",
                CODEX_REFRESH_SKEW_SECONDS="60",
                CODEX_IMAGE_DIR=str(work / "images"),
                CODEX_LOG_LEVEL="info",
            )
            argv_ = [sys.executable, "-m", "codex_proxy", "serve", "--port", str(gateway_port)]
            gateway = procs.spawn(argv_, env, work / "gateway.log", work)
            base = f"http://127.0.0.1:{gateway_port}"
            procs.wait_healthy(f"{base}/healthz", gateway, 30)
            fds_before = fd_count(gateway.pid)
            print(f"soak: {args.minutes:g} min at {args.rate:g} req/s; gateway pid {gateway.pid}")
            soak = Soak(
                url=f"{base}/v1/chat/completions",
                gateway_pid=gateway.pid,
                stats_path=stats_path,
                rate=args.rate,
                seconds=args.minutes * 60,
                interval=args.interval,
                seed=args.seed,
            )
            asyncio.run(soak.run())
            wait_until(lambda: fake_stats(stats_path).get("open_streams") == 0, 10)
            after = {
                "open_streams": fake_stats(stats_path).get("open_streams"),
                "fds": fd_count(gateway.pid),
                "fds_before": fds_before,
            }
        finally:
            if gateway is not None:
                procs.stop(gateway)
            procs.stop(fake)
        log = (work / "gateway.log").read_text(errors="replace")
        tracebacks = log.count("Traceback (most recent call last)")
    section = report(soak, command, started, after)
    if tracebacks:
        section = section.rstrip("\n") + f"\n- Tracebacks in the gateway log: {tracebacks}.\n"
    publish(SECTION, section, write=not args.no_write)
    passed = verdict(soak.intervals)[0] and not tracebacks
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
