"""Usage counts in SQLite: limits per window, nothing counted on refusal, shared by processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from codex_proxy.keys.policy import IMAGES, REQUESTS
from codex_proxy.keys.usage import Usage

T = 1_000_020.0  # the start of a minute


def test_limit_per_window(tmp_path: Path) -> None:
    usage = Usage(tmp_path / "u.sqlite3")
    assert usage.take("a", REQUESTS, 1, 2, T)
    assert usage.take("a", REQUESTS, 1, 2, T + 1)
    assert not usage.take("a", REQUESTS, 1, 2, T + 59)
    assert usage.used("a", REQUESTS, T) == 2  # the refused one is not counted
    assert usage.take("a", REQUESTS, 1, 2, T + 60)  # the next minute
    assert usage.take("b", REQUESTS, 1, 2, T)  # another key
    assert usage.total("a", REQUESTS) == 3


def test_images_count_by_amount(tmp_path: Path) -> None:
    usage = Usage(tmp_path / "u.sqlite3")
    assert usage.take("a", IMAGES, 2, 3, T)
    assert not usage.take("a", IMAGES, 2, 3, T)
    assert usage.take("a", IMAGES, 1, 3, T)
    assert usage.take("a", IMAGES, 5, None, T)  # counted after the fact, never refused
    assert usage.used("a", IMAGES, T) == 8
    usage.forget("a")
    assert usage.used("a", IMAGES, T) == 0 and usage.total("a", IMAGES) == 0


def _take_many(path: str, n: int, out: multiprocessing.Queue) -> None:
    usage = Usage(Path(path))
    out.put(sum(usage.take("a", REQUESTS, 1, 50, T) for _ in range(n)))


def test_two_processes_share_one_limit(tmp_path: Path) -> None:
    path = str(tmp_path / "u.sqlite3")
    Usage(Path(path)).close()
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    procs = [context.Process(target=_take_many, args=(path, 40, out)) for _ in range(2)]
    for proc in procs:
        proc.start()
    granted = out.get(timeout=60) + out.get(timeout=60)
    for proc in procs:
        proc.join(timeout=30)
    assert granted == 50
    assert Usage(Path(path)).used("a", REQUESTS, T) == 50


def _rows(usage: Usage) -> int:
    return int(usage._db.execute("SELECT COUNT(*) FROM usage WHERE window > 0").fetchone()[0])


def test_windows_older_than_two_days_are_purged(tmp_path: Path) -> None:
    usage = Usage(tmp_path / "u.sqlite3")
    assert usage.take("a", REQUESTS, 1, None, T)
    assert usage.take("a", IMAGES, 1, None, T)
    assert usage.take("a", REQUESTS, 1, None, T + 1)  # the same minute: nothing to purge
    assert _rows(usage) == 2
    assert usage.take("b", REQUESTS, 1, None, T + 3 * 86_400)  # a later minute purges
    assert _rows(usage) == 1
    assert usage.used("a", REQUESTS, T) == 0
    assert usage.total("a", REQUESTS) == 2  # lifetime totals stay


def test_commits_do_not_sync_every_count(tmp_path: Path) -> None:
    usage = Usage(tmp_path / "u.sqlite3")
    assert usage._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert usage._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
