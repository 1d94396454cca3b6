"""Per-key counts in a small SQLite file under ``CODEX_DATA_DIR``, shared by every worker.

Each count is one short ``BEGIN IMMEDIATE`` transaction (the write lock first, so two workers
cannot both read "one left" and both take it). Calls block: the gateway runs them in a thread,
except ``try_take``, which never waits (not for the lock, not for an fsync: no checkpoint runs
in it) and so may run on the event loop: a write to the WAL file's page cache, tens of
microseconds, cheaper than the hop to a thread that would run it.

The journal is WAL with ``synchronous=NORMAL``: a commit is a write to the WAL file without an
fsync (one per checkpoint instead), which took a count from ~200 us to ~20 us. A count survives
the process crashing; only a power cut can lose the last counts, which is fine for rate limits.
Expired windows are purged at most once a minute per process, not on every count.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from codex_proxy.keys.policy import DAY, REQUESTS, window_start

FILE_NAME = "keys-usage.sqlite3"
TOTAL = "total"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    key TEXT NOT NULL, kind TEXT NOT NULL, window INTEGER NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (key, kind, window)
)
"""


def usage_path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


class Usage:
    """Counters by key, kind and window; per process one connection that may wait for the
    write lock (used under a lock, from any thread) and one that never waits (``try_take``)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = _connect(path, timeout=10)
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._quick = _connect(path, timeout=0)
        # No checkpoint (two fsyncs) on the event loop: the waiting connection's commits (a
        # purge at least once a minute) checkpoint the WAL instead.
        self._quick.execute("PRAGMA wal_autocheckpoint=0")
        self._quick_lock = threading.Lock()
        self._purged = -1  # the minute of the last purge of expired windows

    def close(self) -> None:
        self._db.close()
        self._quick.close()

    def take(self, key: str, kind: str, amount: int, allowed: int | None, now: float) -> bool:
        """Count ``amount`` of ``kind`` for ``key`` in the current window unless that would go
        over ``allowed``; False then (and nothing is counted). A lifetime total is kept too.
        Waits (up to 10 s) while another worker holds the write lock."""
        with self._lock:
            return self._take(self._db, key, kind, amount, allowed, now)

    def try_take(
        self, key: str, kind: str, amount: int, allowed: int | None, now: float
    ) -> bool | None:
        """:meth:`take` when it can run at once, None when it would wait: another worker (or
        thread) holds the write lock, or a purge of expired windows is due. A caller on an
        event loop runs this inline (tens of microseconds) and :meth:`take` in a thread only
        on None, which saves a thread hop per request. It never checkpoints the WAL, so it
        never waits for a disk: no lock wait, no fsync."""
        if window_start(REQUESTS, now) != self._purged:
            return None
        if not self._quick_lock.acquire(blocking=False):
            return None
        try:
            return self._take(self._quick, key, kind, amount, allowed, now)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return None
            raise
        finally:
            self._quick_lock.release()

    def _take(
        self,
        db: sqlite3.Connection,
        key: str,
        kind: str,
        amount: int,
        allowed: int | None,
        now: float,
    ) -> bool:
        window = window_start(kind, now)
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT count FROM usage WHERE key=? AND kind=? AND window=?",
                (key, kind, window),
            ).fetchone()
            used = row[0] if row else 0
            if allowed is not None and used + amount > allowed:
                db.execute("ROLLBACK")
                return False
            for kind_, window_ in ((kind, window), (f"{kind}.{TOTAL}", 0)):
                db.execute(
                    "INSERT INTO usage VALUES (?, ?, ?, ?) ON CONFLICT (key, kind, window) "
                    "DO UPDATE SET count = count + excluded.count",
                    (key, kind_, window_, amount),
                )
            minute = window_start(REQUESTS, now)
            if minute != self._purged:
                db.execute(
                    "DELETE FROM usage WHERE window > 0 AND window < ?", (int(now) - 2 * DAY,)
                )
            db.execute("COMMIT")
            self._purged = minute
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return True

    def used(self, key: str, kind: str, now: float) -> int:
        """The count of ``kind`` in the window holding ``now``."""
        return self._count(key, kind, window_start(kind, now))

    def total(self, key: str, kind: str) -> int:
        return self._count(key, f"{kind}.{TOTAL}", 0)

    def _count(self, key: str, kind: str, window: int) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT count FROM usage WHERE key=? AND kind=? AND window=?", (key, kind, window)
            ).fetchone()
        return row[0] if row else 0

    def forget(self, key: str) -> None:
        """Drop a revoked key's counts (a new key of the same name starts afresh)."""
        with self._lock:
            self._db.execute("DELETE FROM usage WHERE key=?", (key,))


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, no fsync per commit."""
    db = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db
