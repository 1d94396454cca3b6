"""Usage counts in SQLite: limits per window, nothing counted on refusal, shared by processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

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


def _take_many(path: str, n: int, out: multiprocessing.Queue, quick: bool = False) -> None:
    usage = Usage(Path(path))
    granted = 0
    for _ in range(n):
        done = usage.try_take("a", REQUESTS, 1, 50, T) if quick else None
        granted += usage.take("a", REQUESTS, 1, 50, T) if done is None else done
    out.put(granted)


@pytest.mark.parametrize("quick", [False, True], ids=["take", "try_take_then_take"])
def test_two_processes_share_one_limit(tmp_path: Path, quick: bool) -> None:
    path = str(tmp_path / "u.sqlite3")
    Usage(Path(path)).close()
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    procs = [context.Process(target=_take_many, args=(path, 40, out, quick)) for _ in range(2)]
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
    # the connection the event loop uses never checkpoints (no fsync there)
    assert usage._quick.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0


def test_try_take_counts_like_take(tmp_path: Path) -> None:
    usage = Usage(tmp_path / "u.sqlite3")
    assert usage.try_take("a", REQUESTS, 1, 2, T) is None  # the first count of a minute purges
    assert usage.take("a", REQUESTS, 1, 2, T)
    assert usage.try_take("a", REQUESTS, 1, 2, T + 1) is True
    assert usage.try_take("a", REQUESTS, 1, 2, T + 2) is False
    assert usage.used("a", REQUESTS, T) == 2 and usage.total("a", REQUESTS) == 2


def test_try_take_does_not_wait_for_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "u.sqlite3"
    usage = Usage(path)
    assert usage.take("a", REQUESTS, 1, None, T)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another worker holds the write lock
    try:
        assert usage.try_take("a", REQUESTS, 1, None, T) is None
    finally:
        other.execute("ROLLBACK")
    assert usage.try_take("a", REQUESTS, 1, None, T) is True
    assert usage.used("a", REQUESTS, T) == 2
