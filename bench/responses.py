"""``/v1/responses`` through the gateway against its baselines, in one run; writes
``## Responses`` in ``bench/RESULTS.md``.

    .venv/bin/python -m bench.responses --quick   # development, about a minute
    .venv/bin/python -m bench.responses           # the full run

The gateway is its own process (``python -m codex_proxy serve``) on ChatGPT credentials, so it
keeps the conversation itself (the store, ``previous_response_id``), against ``bench/fake.py``,
with a fresh ``CODEX_DATA_DIR`` for each scenario:

1. time to the first ``output_text.delta`` at c=1 (10 deltas), over the load generator talking to
   the fake directly, as the chat TTFB scenario of ``bench/run.py`` measures it;
2. gateway CPU time (user + system, /proc) per relayed event on a 5,000-delta answer, for
   ``/v1/responses`` and for ``/v1/chat/completions`` on the same gateway;
3. a 50-turn ``previous_response_id`` conversation: the time a turn takes at depth 1 and at
   depth 50 (repeated requests that each chain on the stored turn, alternating), and the size
   of the SQLite file and its WAL after every turn;
4. a 20 MB (base64) image generated in turn 1 and carried through 10 later turns: the
   gateway's peak RSS per turn and the blob files under ``CODEX_DATA_DIR``.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from bench import procs
from bench.results import publish
from bench.run import FULL, QUICK, Run, fake_upstream_run, machine, pct, scenario_cpu, scenario_ttfb
from bench.soak import write_auth
from bench.store_growth import logical_size
from bench.targets import Target, all_targets
from bench.transport import median, start
from codex_proxy.store.sqlite import BLOB_FOLDER, DB_NAME

SECTION = "## Responses"
AUTH_LIFETIME = 6 * 3600.0  # no refresh during a run: bench/fake.py has no token endpoint
MB = 1024 * 1024


@dataclass(frozen=True)
class Plan:
    """Counts of one run (the run-wide ``Sizes`` carry the TTFB and CPU counts)."""

    rounds: int  # alternations of baseline and gateway in scenarios 1 and 3
    turns: int
    depth_requests: int  # per depth and round, scenario 3
    image_turns: int  # turns after the one that made the image
    image_mb: float


FULL_PLAN = Plan(rounds=3, turns=50, depth_requests=60, image_turns=10, image_mb=20.0)
QUICK_PLAN = Plan(rounds=2, turns=50, depth_requests=12, image_turns=10, image_mb=20.0)


@dataclass
class Measured:
    """Everything the report needs: samples by key, lists by turn, notes."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def keep(self, prefix: str, out: dict[str, Any]) -> None:
        for name, value in out.items():
            if value is not None:
                self.samples.setdefault(f"{prefix}.{name}", []).append(float(value))

    def median(self, key: str) -> float | None:
        return median(self.samples.get(key))


# -- the gateway and its requests --------------------------------------------------------------


@dataclass(frozen=True)
class Gateway:
    base: str
    pid: int
    data_dir: Path
    chat: Target
    responses: Target


@contextmanager
def gateway(run: Run, name: str, **env: str) -> Iterator[Gateway]:
    """One gateway process on ChatGPT credentials with its own data folder."""
    home = run.workdir / "codex-home"
    if not (home / "auth.json").exists():
        write_auth(home, AUTH_LIFETIME)
    data_dir = run.workdir / f"{name}-data"
    ours = next(t for t in all_targets() if t.key == "codex-proxy")
    ours = replace(
        ours,
        model="bench",
        extra_env={
            "CODEX_AUTH_MODE": "chatgpt",
            "CODEX_HOME": str(home),
            "CODEX_DATA_DIR": str(data_dir),
            **env,
        },
    )
    responses = replace(ours, kind="responses", path="/v1/responses", payload=turn_body(1))
    proc, base = start(ours, run, name)
    try:
        yield Gateway(base, proc.pid, data_dir, ours, responses)
    finally:
        procs.stop(proc)


def turn_body(
    n: int, previous: str | None = None, *, stream: bool = True, store: bool = True
) -> dict[str, Any]:
    """A ``/v1/responses`` body: one user message, chained on ``previous``."""
    body: dict[str, Any] = {
        "model": "bench",
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": f"question {n}: and then what?"}],
            }
        ],
        "stream": stream,
        "store": store,
    }
    if previous:
        body["previous_response_id"] = previous
    return body


def post(base: str, body: dict[str, Any]) -> dict[str, Any]:
    """One non-streaming turn; the Response object (the conversation needs its id)."""
    request = urllib.request.Request(
        base + "/v1/responses",
        data=orjson.dumps(body),
        headers={"content-type": "application/json", "authorization": "Bearer bench"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return dict(orjson.loads(response.read()))


def on_disk(data_dir: Path) -> tuple[int, int]:
    """(database file + WAL file bytes, logical database bytes: page_count x page_size)."""
    db = data_dir / DB_NAME
    files = sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())
    return files, logical_size(db)


def blob_files(data_dir: Path) -> list[Path]:
    folder = data_dir / BLOB_FOLDER
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


# -- scenarios ---------------------------------------------------------------------------------


def relay(run: Run, plan: Plan, m: Measured) -> None:
    """(1) TTFB at c=1 and (2) relay CPU per event, chat and responses on one gateway."""
    direct = next(t for t in all_targets() if t.key == "direct")
    with gateway(run, "relay") as gw:
        unstored = replace(gw.responses, payload=turn_body(1, store=False))
        for round_ in range(plan.rounds):
            print(f"-- round {round_ + 1}: TTFB", flush=True)
            for key, target, base, pid in (
                ("direct", direct, run.fake_url, None),
                ("responses", gw.responses, gw.base, gw.pid),
                ("unstored", unstored, gw.base, gw.pid),
                ("chat", gw.chat, gw.base, gw.pid),
            ):
                out: dict[str, Any] = {}
                scenario_ttfb(run, target, base, out, pid)
                m.keep(key, out)
        print("-- relay CPU", flush=True)
        for _ in range(plan.rounds):
            for key, target in (
                ("chat", gw.chat),
                ("responses", unstored),
                ("responses_stored", gw.responses),
            ):
                out = {}
                scenario_cpu(run, target, gw.base, out, gw.pid)
                m.keep(key, out)


def conversation(run: Run, plan: Plan, m: Measured) -> None:
    """(3) A ``plan.turns`` chain: disk after every turn, then time at depth 1 vs the last."""
    run.script(deltas=10)
    with gateway(run, "chain") as gw:
        print(f"-- conversation: {plan.turns} turns", flush=True)
        ids: list[str] = []
        disk: list[tuple[int, int]] = []
        new_bytes: list[int] = []
        for n in range(1, plan.turns + 1):
            body = turn_body(n, ids[-1] if ids else None, stream=False)
            answer = post(gw.base, body)
            ids.append(answer["id"])
            disk.append(on_disk(gw.data_dir))
            new_bytes.append(len(orjson.dumps(body["input"])) + len(orjson.dumps(answer)))
        m.values["disk"] = disk
        m.values["new_bytes"] = new_bytes
        depths = sorted({1, 10, 25, plan.turns} & set(range(1, plan.turns + 1)))
        m.values["depths"] = depths
        direct = next(t for t in all_targets() if t.key == "direct")
        run.load(gw.responses, gw.base, 1, 10)  # warm-up
        for round_ in range(plan.rounds):
            print(f"-- round {round_ + 1}: depths {depths}", flush=True)
            result = run.load(direct, run.fake_url, 1, plan.depth_requests)
            m.samples.setdefault("chain.direct.ttfb", []).extend(result["ttfb"])
            m.samples.setdefault("chain.direct.total", []).extend(result["total"])
            for depth in depths:
                previous = ids[depth - 2] if depth > 1 else None
                target = replace(gw.responses, payload=turn_body(depth, previous))
                result = run.load(target, gw.base, 1, plan.depth_requests)
                errors = sum(result["errors"].values())
                if errors:
                    m.notes.append(f"depth {depth}: {result['errors']}")
                m.samples.setdefault(f"chain.{depth}.ttfb", []).extend(result["ttfb"])
                m.samples.setdefault(f"chain.{depth}.total", []).extend(result["total"])
                m.values[f"upstream_bytes.{depth}"] = run.fake_stats()["last_request_bytes"]


def image(run: Run, plan: Plan, m: Measured) -> None:
    """(4) An image made in turn 1, carried through ``plan.image_turns`` later turns."""
    run.script(deltas=10)
    with gateway(run, "image", CODEX_IMAGE_HISTORY="last") as gw:
        post(gw.base, turn_body(0, stream=False, store=False))  # warm-up: imports, connections
        rss_start = procs.status_kb(gw.pid, "VmRSS")
        run.script(deltas=2, image_mb=plan.image_mb)
        print("-- image: turn 1 makes it", flush=True)
        procs.reset_peak(gw.pid)
        answer = post(gw.base, turn_body(1, stream=False))
        made = [o for o in answer["output"] if o.get("type") == "image_generation_call"]
        m.values["image_mb_received"] = len(made[0]["result"]) / MB if made else 0.0
        peaks = [procs.status_kb(gw.pid, "VmHWM")]
        rss = [procs.status_kb(gw.pid, "VmRSS")]
        upstream = [run.fake_stats()["last_request_bytes"]]
        previous = answer["id"]
        run.script(deltas=10)
        for n in range(2, plan.image_turns + 2):
            print(f"-- image: turn {n}", flush=True)
            procs.reset_peak(gw.pid)
            previous = post(gw.base, turn_body(n, previous, stream=False))["id"]
            peaks.append(procs.status_kb(gw.pid, "VmHWM"))
            rss.append(procs.status_kb(gw.pid, "VmRSS"))
            upstream.append(run.fake_stats()["last_request_bytes"])
        blobs = blob_files(gw.data_dir)
        m.values.update(
            image_rss_start=rss_start / 1024,
            image_peaks=[p / 1024 for p in peaks],
            image_rss=[r / 1024 for r in rss],
            image_upstream_mb=[u / MB for u in upstream],
            blob_count=len(blobs),
            blob_mb=sum(p.stat().st_size for p in blobs) / MB,
            image_disk=on_disk(gw.data_dir),
        )


# -- report ------------------------------------------------------------------------------------


def _ms(seconds: list[float] | None) -> float | None:
    return pct(seconds, 0.5) if seconds else None


def _f(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _met(ok: bool | None) -> str:
    return {True: "yes", False: "**no**", None: ""}[ok]


def _slope(values: list[float]) -> float:
    """Least-squares growth per step."""
    n = len(values)
    if n < 2:
        return 0.0
    xs = range(n)
    mx, my = (n - 1) / 2, statistics.fmean(values)
    return sum((x - mx) * (y - my) for x, y in zip(xs, values, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def render(m: Measured, plan: Plan) -> str:
    """The table: baseline, codex-proxy, the difference or ratio, the goal, met or not."""
    rows: list[list[str]] = []

    def row(scn: str, metric: str, base: float | None, ours: float | None, **kw: Any) -> None:
        digits = kw.get("digits", 2)
        versus = ""
        if kw.get("ratio") and base and ours is not None:
            versus = f"{ours / base:.2f}x"
        elif not kw.get("ratio") and base is not None and ours is not None:
            versus = f"{ours - base:+,.{digits}f}"
        cells = [scn, metric, _f(base, digits), _f(ours, digits), versus]
        rows.append([*cells, kw.get("goal", ""), _met(kw.get("met"))])

    d50, r50, c50 = (m.median(f"{k}.ttfb_p50") for k in ("direct", "responses", "chat"))
    d99, r99, c99 = (m.median(f"{k}.ttfb_p99") for k in ("direct", "responses", "chat"))
    added = r50 - d50 if r50 is not None and d50 is not None else None
    row(
        "1 TTFB, c=1",
        "/v1/responses p50 ms",
        d50,
        r50,
        goal="+<=1 ms",
        met=None if added is None else added <= 1.0,
    )
    row("1 TTFB, c=1", "/v1/responses p99 ms", d99, r99)
    u50, u99 = m.median("unstored.ttfb_p50"), m.median("unstored.ttfb_p99")
    row("1 TTFB, c=1", "/v1/responses store false p50 ms", d50, u50)
    row("1 TTFB, c=1", "/v1/responses store false p99 ms", d99, u99)
    row("1 TTFB, c=1", "chat p50 ms (reference)", d50, c50)
    row("1 TTFB, c=1", "chat p99 ms (reference)", d99, c99)
    chat_us = m.median("chat.cpu_us")
    resp_us = m.median("responses.cpu_us")
    stored_us = m.median("responses_stored.cpu_us")
    row(
        "2 relay CPU, 5,000 deltas",
        "µs / event, responses (store false) vs chat",
        chat_us,
        resp_us,
        ratio=True,
        digits=1,
        goal="<=0.5x chat",
        met=None if not chat_us or resp_us is None else resp_us <= 0.5 * chat_us,
    )
    row(
        "2 relay CPU, 5,000 deltas",
        "µs / event, responses (store true) vs chat",
        chat_us,
        stored_us,
        ratio=True,
        digits=1,
    )
    depths = m.values.get("depths", [])
    dt, dtot = _ms(m.samples.get("chain.direct.ttfb")), _ms(m.samples.get("chain.direct.total"))
    first = {k: _ms(m.samples.get(f"chain.1.{k}")) for k in ("ttfb", "total")}
    for depth in depths:
        for kind, base in (("ttfb", dt), ("total", dtot)):
            ours = _ms(m.samples.get(f"chain.{depth}.{kind}"))
            goal, met = "", None
            if depth == depths[-1] and depth > 1 and ours is not None and first[kind] is not None:
                goal = "<=3 ms over turn 1"
                met = ours - first[kind] <= 3.0
                goal += f" (here {ours - first[kind]:+.2f})"
            what = "first delta" if kind == "ttfb" else "response.completed"
            upstream = m.values.get(f"upstream_bytes.{depth}", 0) / 1024
            metric = f"turn {depth}: {what} p50 ms (upstream body {upstream:,.1f} KB)"
            row(f"3 {plan.turns}-turn chain", metric, base, ours, goal=goal, met=met)
    disk, new = m.values.get("disk"), m.values.get("new_bytes")
    if disk and len(disk) > 1:
        files = [d[0] for d in disk]
        logical = [d[1] for d in disk]
        n = len(disk)
        per_file = (files[-1] - files[0]) / (n - 1)
        per_logical = (logical[-1] - logical[0]) / (n - 1)
        tenth = max(1, n // 5)
        early = (logical[tenth] - logical[0]) / tenth
        late = (logical[-1] - logical[-1 - tenth]) / tenth
        rows.append(
            [
                f"3 {plan.turns}-turn chain",
                "bytes per turn: db + WAL files / logical db / the turn's JSON (input + Response)",
                "",
                f"{per_file:,.0f} / {per_logical:,.0f} / {statistics.fmean(new):,.0f}",
                "",
                "new items only",
                _met(late <= early * 1.5 + 4096),
            ]
        )
        rows.append(
            [
                f"3 {plan.turns}-turn chain",
                f"logical bytes per turn, turns 2-{tenth + 1} vs last {tenth}",
                "",
                f"{early:,.0f} vs {late:,.0f}",
                "",
                "",
                "",
            ]
        )
    peaks = m.values.get("image_peaks")
    if peaks:
        start_rss = m.values["image_rss_start"]
        later = peaks[1:]
        slope = _slope(later)
        rows.append(
            [
                f"4 {plan.image_mb:g} MB image, {plan.image_turns} later turns",
                "peak RSS MB: before / turn 1 / turns 2..last (max)",
                f"{start_rss:.0f}",
                f"{peaks[0]:.0f} / {later[0]:.0f}..{later[-1]:.0f} ({max(later):.0f})",
                "",
                "",
                "",
            ]
        )
        rows.append(
            [
                f"4 {plan.image_mb:g} MB image, {plan.image_turns} later turns",
                "peak RSS growth per turn after turn 1, MB (least squares)",
                "",
                f"{slope:+.2f}",
                "",
                "~0",
                _met(abs(slope) <= 1.0),
            ]
        )
        rss = m.values["image_rss"]
        rows.append(
            [
                f"4 {plan.image_mb:g} MB image, {plan.image_turns} later turns",
                "RSS after turn 1 / turn 2 / the last turn, MB",
                "",
                f"{rss[0]:.0f} / {rss[1]:.0f} / {rss[-1]:.0f}",
                "",
                "",
                "",
            ]
        )
        up = m.values["image_upstream_mb"]
        rows.append(
            [
                f"4 {plan.image_mb:g} MB image, {plan.image_turns} later turns",
                "upstream body MB: turn 1 / turn 2 / last turn",
                "",
                f"{up[0]:.2f} / {up[1]:.2f} / {up[-1]:.2f}",
                "",
                "",
                "",
            ]
        )
        rows.append(
            [
                f"4 {plan.image_mb:g} MB image, {plan.image_turns} later turns",
                "blob files (MB) under CODEX_DATA_DIR",
                "",
                f"{m.values['blob_count']} ({m.values['blob_mb']:.1f} MB)",
                "",
                "1",
                _met(m.values["blob_count"] == 1),
            ]
        )
    head = ["scenario", "metric", "baseline", "codex-proxy", "vs baseline", "goal", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


BASELINES = """\
Baselines: for 1 and 3 the load generator talking to the fake upstream directly (3's direct
body is the small one-message body, not the replayed history); for 2 the chat route's CPU per
delta on the same gateway in the same rounds. Medians over the rounds (1, 2) or percentiles of
all rounds' samples (3). In 3 every timed request chains on the stored turn of that depth, so
each one is a real turn at that depth (siblings, not a longer chain). The db + WAL bytes count
whole pages written to the write-ahead log at each commit (reused after each checkpoint), the
logical size is what the database holds; the WAL is checkpointed at 1,000 pages (4 MB) and
then reused, so the files stop growing there while the logical size keeps its per-turn pace.
"""


PROFILE = """\
What the profiles showed and what changed (py-spy on the gateway, quick runs on a busy machine):

- Chain (3). Turn 50 took 3.5-4.4 ms more than turn 1 (target 3 ms): `load_chain` ran two
  SELECTs per stored turn and restored blob markers by walking (copying) every turn's JSON,
  ~1.3 ms for 49 turns in-process, more in the gateway. Changed (`store/sqlite.py`): one
  recursive CTE for the chain and one `IN (...)` query for all its items (same checks: cycle,
  too deep, missing or another owner's ancestor), and `restore` only for turns whose raw JSON
  holds a marker; 1.3 -> 0.6 ms in-process, +3.5 -> +1.0-1.2 ms at turn 50 in the gateway.
- TTFB (1). With the fake upstream's answer in one read, the stream saved the turn (a SQLite
  commit on the store's thread) before writing anything, so the first delta waited for the
  commit: store true +2.4 ms vs store false +1.6 ms in the same run. Changed
  (`server/responses.py`): what precedes the terminal event is sent first, then the save, then
  the terminal event (still saved before the client sees it complete).
- Relay CPU (2). Per event: one ASGI send per frame through five middleware layers, and a
  re-encoding through generators (`dumps_parts` + `coalesce`). Changed: a batch of events is one
  send (`coalesce` before `write_all`), an ordinary event is framed with one `orjson.dumps` and
  one concatenation; 7.0 -> 4.5 µs per event (chat: 8.5-10). Then the unchanged events pass on
  with the upstream's own data bytes (`UpstreamStream.raw_batches`), framed with one
  concatenation (no generator), and the sequence-number bookkeeping lost its function call:
  4.5 -> 3.4-3.8 µs. What is left per event: SSE parsing and `orjson.loads` (shared with chat;
  the relay must read every event to rebuild `output` and to save the turn) and the relay's
  own bookkeeping.
- Image (4). Each later turn restores the 15 MB blob to base64 and sends it (history `last`),
  so a turn peaks ~60 MB over the idle gateway, the same every turn; nothing accumulates.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.responses", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, about a minute")
    parser.add_argument("--scenarios", help="comma-separated: relay,conversation,image")
    parser.add_argument("--no-write", action="store_true", help="print only, keep RESULTS.md")
    args = parser.parse_args(argv)
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    sizes = replace(FULL, ttfb_requests=300, cpu_requests=10)
    if args.quick:
        sizes = replace(QUICK, ttfb_requests=60, cpu_requests=4)
    only = set(args.scenarios.split(",")) if args.scenarios else None
    command = shlex.join([".venv/bin/python", "-m", "bench.responses", *(argv or sys.argv[1:])])
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    m = Measured()
    with fake_upstream_run(sizes) as run:
        for name, step in (("relay", relay), ("conversation", conversation), ("image", image)):
            if not only or name in only:
                t0 = time.monotonic()
                step(run, plan, m)
                print(f"   {name}: {time.monotonic() - t0:.1f} s", flush=True)
    section = "\n".join(
        [
            SECTION,
            "",
            f"Run {started} with `{command}` on {machine()}; {plan.rounds} rounds; "
            f"{sizes.ttfb_requests} sequential requests per round for TTFB, "
            f"{sizes.cpu_requests} 5,000-delta answers per round for CPU, "
            f"{plan.depth_requests} requests per depth and round in the conversation. "
            "Same shared 2-core machine caveats as above: compare the columns, not the "
            "absolute numbers.",
            "",
            render(m, plan),
            "",
            BASELINES,
            PROFILE,
            *([f"Notes: {'; '.join(m.notes)}", ""] if m.notes else []),
        ]
    )
    publish(SECTION, section, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
