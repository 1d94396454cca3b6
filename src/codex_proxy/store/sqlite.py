"""The embedded store: one SQLite file (WAL) plus blob files, blocking calls only.

:class:`SQLiteBackend` is thread-safe (one connection per thread) and safe for several gateway
worker processes on one file: WAL lets readers run beside the one writer, every write is one
short ``BEGIN IMMEDIATE`` transaction (so it queues on the busy timeout instead of failing
half-way), and blob files are written before the transaction, never inside it. The event loop
reaches it only through :class:`codex_proxy.store.threaded.ThreadedStore`.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from codex_proxy.store.base import (
    DEFAULT_LIST_LIMIT,
    MAX_CHAIN_DEPTH,
    ChainError,
    PruneReport,
    ResponseExists,
    StoredResponseNotFound,
    StoredTurn,
    StoreError,
)
from codex_proxy.store.blobs import MARKER, BlobStore, check_no_markers, externalize, restore
from codex_proxy.store.items import with_id
from codex_proxy.store.pages import check_list_params, page

DB_NAME = "responses.sqlite3"
BLOB_FOLDER = "blobs"
BUSY_TIMEOUT_SECONDS = 30.0
BLOB_GRACE_SECONDS = 3600.0
PRUNE_BATCH = 500
INPUT, OUTPUT = 0, 1


def _schema_v1(conn: sqlite3.Connection) -> None:
    # No foreign keys on purpose: a child outlives its deleted parent (walking it reports the
    # parent as not found), and deletes stay explicit.
    conn.execute(
        """CREATE TABLE responses (
            id TEXT PRIMARY KEY,
            previous_response_id TEXT,
            owner TEXT,
            model TEXT NOT NULL,
            created_at REAL NOT NULL,
            body BLOB NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX responses_by_created_at ON responses (created_at)")
    conn.execute(
        """CREATE TABLE items (
            response_id TEXT NOT NULL,
            kind INTEGER NOT NULL,
            position INTEGER NOT NULL,
            item_id TEXT NOT NULL,
            body BLOB NOT NULL,
            UNIQUE (response_id, kind, position)
        )"""
    )
    conn.execute("CREATE INDEX items_by_item_id ON items (item_id)")
    conn.execute(
        """CREATE TABLE blob_refs (
            sha256 TEXT NOT NULL,
            response_id TEXT NOT NULL,
            PRIMARY KEY (sha256, response_id)
        ) WITHOUT ROWID"""
    )
    conn.execute("CREATE INDEX blob_refs_by_response ON blob_refs (response_id)")


# user_version N is reached by running MIGRATIONS[N] on a database at N - 1, in one transaction.
# A later schema change appends a function here; never edit a released one.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _schema_v1}
SCHEMA_VERSION = max(MIGRATIONS)


class SQLiteBackend:
    """Blocking store operations; see :class:`codex_proxy.store.base.ResponseStore` for the
    meaning of each (same names and arguments, minus ``async``)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        ttl_days: int = 30,
        busy_timeout: float = BUSY_TIMEOUT_SECONDS,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self.blobs = BlobStore(self.data_dir / BLOB_FOLDER)
        self.ttl_days = ttl_days
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._ready = False
        self._connections: list[sqlite3.Connection] = []

    # -- connections and transactions -------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                if not self._ready:
                    self._prepare()
                    self._ready = True
                conn = self._connect()
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path),
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL: durable across a crash of the app
        return conn

    def _prepare(self) -> None:
        """Folder 0700, file 0600 (before SQLite creates it, so -wal/-shm inherit 0600), WAL,
        schema migrations. Several processes may run this at once."""
        try:
            self.data_dir.mkdir(parents=True, mode=0o700)
            os.chmod(self.data_dir, 0o700)
        except FileExistsError:
            pass
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            _tighten(path)
        conn = self._connect()
        try:
            _use_wal(conn)
            _migrate(conn)
        finally:
            conn.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One snapshot for several SELECTs (a chain walk sees no half-deleted chain)."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            self._local = threading.local()

    # -- writes ------------------------------------------------------------------------------

    def save(
        self,
        response: Mapping[str, Any],
        input_items: Sequence[Mapping[str, Any]],
        *,
        owner: str | None = None,
    ) -> None:
        response_id = response.get("id")
        if not isinstance(response_id, str) or not response_id:
            raise ValueError("response needs a string id")
        created_at = response.get("created_at")
        if isinstance(created_at, bool) or not isinstance(created_at, (int, float)):
            raise ValueError("response needs a numeric created_at")
        previous = response.get("previous_response_id") or None
        model = str(response.get("model") or "")
        outputs = list(response.get("output") or [])
        check_no_markers([list(input_items), outputs])

        found: dict[str, bytes] = {}
        rows: list[tuple[str, int, int, str, bytes]] = []
        for kind, items in ((INPUT, input_items), (OUTPUT, outputs)):
            for position, item in enumerate(items):
                item = with_id(item)
                body = orjson.dumps(externalize(item, found))
                rows.append((response_id, kind, position, item["id"], body))
        head = externalize({**response, "output": []}, found)

        self._conn()  # creates the data folder (0700) before the first blob file
        for digest, data in found.items():
            self.blobs.put(digest, data)
        with self._write() as conn:
            # A prune in another process may have taken a blob between put() and BEGIN; under
            # the write lock nothing can remove it any more, so check once and rewrite.
            for digest, data in found.items():
                if not self.blobs.exists(digest):
                    self.blobs.put(digest, data)
            try:
                conn.execute(
                    "INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                    (response_id, previous, owner, model, float(created_at), orjson.dumps(head)),
                )
            except sqlite3.IntegrityError:
                raise ResponseExists(response_id) from None
            conn.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?)", rows)
            conn.executemany(
                "INSERT OR IGNORE INTO blob_refs VALUES (?, ?)",
                [(digest, response_id) for digest in found],
            )

    def delete(self, response_id: str, *, owner: str | None = None) -> None:
        with self._write() as conn:
            gone = conn.execute(
                "DELETE FROM responses WHERE id = ? AND owner IS ?", (response_id, owner)
            ).rowcount
            if not gone:
                raise StoredResponseNotFound("response", response_id)
            _delete_children(conn, [response_id])

    def prune(
        self, now: float | None = None, *, blob_grace_seconds: float = BLOB_GRACE_SECONDS
    ) -> PruneReport:
        """Responses created before ``now - ttl_days`` (none when ttl_days is 0), then blob
        files no row references whose mtime is more than ``blob_grace_seconds`` before the
        real clock (a save writes its blobs just before its transaction). Small batches: other
        writers wait only briefly."""
        clock = time.time()
        now = clock if now is None else now
        responses = 0
        if self.ttl_days > 0:
            cutoff = now - self.ttl_days * 86400
            while True:
                with self._write() as conn:
                    ids = [
                        row[0]
                        for row in conn.execute(
                            "SELECT id FROM responses WHERE created_at < ? LIMIT ?",
                            (cutoff, PRUNE_BATCH),
                        )
                    ]
                    if ids:
                        marks = ",".join("?" * len(ids))
                        conn.execute(f"DELETE FROM responses WHERE id IN ({marks})", ids)
                        _delete_children(conn, ids)
                responses += len(ids)
                if len(ids) < PRUNE_BATCH:
                    break
        return PruneReport(responses=responses, blobs=self._sweep(clock - blob_grace_seconds))

    def _sweep(self, cutoff: float) -> int:
        old = [digest for digest, mtime in self.blobs.files() if mtime <= cutoff]
        removed = 0
        for start in range(0, len(old), PRUNE_BATCH):
            chunk = old[start : start + PRUNE_BATCH]
            marks = ",".join("?" * len(chunk))
            with self._write() as conn:
                live = {
                    row[0]
                    for row in conn.execute(
                        f"SELECT DISTINCT sha256 FROM blob_refs WHERE sha256 IN ({marks})", chunk
                    )
                }
                for digest in chunk:
                    if digest not in live and self.blobs.remove_if_older(digest, cutoff):
                        removed += 1
        return removed

    # -- reads -------------------------------------------------------------------------------

    def load_chain(
        self,
        response_id: str,
        *,
        owner: str | None = None,
        with_bytes: bool = True,
        max_depth: int = MAX_CHAIN_DEPTH,
    ) -> list[StoredTurn]:
        # Two statements whatever the depth (a walk of one SELECT pair per turn cost ~15 us a
        # turn), and blob markers restored only in turns whose JSON holds one: every turn of a
        # long chain is loaded again on every request.
        with self._read() as conn:
            rows = conn.execute(_CHAIN, (response_id, owner, owner, max_depth)).fetchall()
            turns = _chain_turns(rows, response_id, owner, max_depth)
            items = _chain_items(conn, [t.id for t in turns])
        read = self._reader() if with_bytes else None
        out = []
        for turn in reversed(turns):
            raw_inputs, raw_outputs = items.get(turn.id, ([], []))
            restoring = read is not None and (
                turn.has_blob or any(_BLOB_KEY in b for b in (*raw_inputs, *raw_outputs))
            )
            response = orjson.loads(turn.body)
            response.pop("output", None)
            inputs = [orjson.loads(b) for b in raw_inputs]
            outputs = [orjson.loads(b) for b in raw_outputs]
            if restoring:
                response, inputs, outputs = restore([response, inputs, outputs], read)
            out.append(
                StoredTurn(
                    id=turn.id,
                    previous_response_id=turn.previous,
                    owner=owner,
                    model=turn.model,
                    created_at=turn.created_at,
                    response=response,
                    input_items=inputs,
                    output_items=outputs,
                )
            )
        return out

    def get_response(
        self, response_id: str, *, owner: str | None = None, with_bytes: bool = True
    ) -> dict[str, Any]:
        with self._read() as conn:
            row = conn.execute(
                "SELECT body FROM responses WHERE id = ? AND owner IS ?", (response_id, owner)
            ).fetchone()
            if row is None:
                raise StoredResponseNotFound("response", response_id)
            _, outputs = _items(conn, response_id, kinds=(OUTPUT,))
        body = orjson.loads(row[0])
        body["output"] = outputs
        return restore(body, self._reader()) if with_bytes else body

    def get_item(
        self, item_id: str, *, owner: str | None = None, with_bytes: bool = True
    ) -> dict[str, Any]:
        with self._read() as conn:
            row = conn.execute(
                "SELECT i.body FROM items i JOIN responses r ON r.id = i.response_id"
                " WHERE i.item_id = ? AND r.owner IS ?"
                " ORDER BY r.created_at DESC, i.kind DESC LIMIT 1",
                (item_id, owner),
            ).fetchone()
        if row is None:
            raise StoredResponseNotFound("item", item_id)
        item = orjson.loads(row[0])
        return restore(item, self._reader()) if with_bytes else item

    def list_input_items(
        self,
        response_id: str,
        *,
        owner: str | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
        order: str = "desc",
        with_bytes: bool = True,
    ) -> dict[str, Any]:
        check_list_params(limit, order)
        with self._read() as conn:
            if not conn.execute(
                "SELECT 1 FROM responses WHERE id = ? AND owner IS ?", (response_id, owner)
            ).fetchone():
                raise StoredResponseNotFound("response", response_id)
            index = conn.execute(
                "SELECT position, item_id FROM items WHERE response_id = ? AND kind = ?"
                " ORDER BY position",
                (response_id, INPUT),
            ).fetchall()
            chosen, has_more = page(
                [row[1] for row in index], after=after, before=before, limit=limit, order=order
            )
            positions = [index[n][0] for n in chosen]
            bodies: dict[int, bytes] = {}
            if positions:
                marks = ",".join("?" * len(positions))
                bodies = dict(
                    conn.execute(
                        "SELECT position, body FROM items WHERE response_id = ? AND kind = ?"
                        f" AND position IN ({marks})",
                        (response_id, INPUT, *positions),
                    ).fetchall()
                )
        data = [orjson.loads(bodies[p]) for p in positions]
        if with_bytes:
            data = restore(data, self._reader())
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        }

    def restore_blobs(self, value: Any) -> Any:
        return restore(value, self._reader())

    def _reader(self) -> Callable[[str], str]:
        """Blob base64 by digest, each file read once per call (one image, many turns)."""
        cache: dict[str, str] = {}

        def read(digest: str) -> str:
            if digest not in cache:
                cache[digest] = base64.b64encode(self.blobs.read(digest)).decode("ascii")
            return cache[digest]

        return read


_BLOB_KEY = orjson.dumps(MARKER)  # b'"$blob"': a body without it holds no marker
_CHAIN = """
    WITH RECURSIVE chain(id, depth) AS (
        SELECT id, 0 FROM responses WHERE id = ?1 AND owner IS ?2
        UNION ALL
        SELECT r.previous_response_id, c.depth + 1 FROM chain c
        JOIN responses r ON r.id = c.id AND r.owner IS ?3
        WHERE r.previous_response_id IS NOT NULL AND c.depth < ?4
    )
    SELECT c.id, r.previous_response_id, r.model, r.created_at, r.body
    FROM chain c LEFT JOIN responses r ON r.id = c.id AND r.owner IS ?2
    ORDER BY c.depth
"""
"""``id`` and its ancestors, newest first, at most ``max_depth`` + 1 rows (a cycle repeats ids);
an ancestor that is missing (or another owner's) comes back as a row of NULLs after its id."""


@dataclass(frozen=True)
class _ChainRow:
    id: str
    previous: str | None
    model: str
    created_at: float
    body: bytes
    has_blob: bool


def _chain_turns(
    rows: list[tuple[Any, ...]], response_id: str, owner: str | None, max_depth: int
) -> list[_ChainRow]:
    """The rows of :data:`_CHAIN` checked the way a walk one turn at a time would: a repeated
    id is a cycle, more than ``max_depth`` turns is too deep, a row without a body is missing."""
    turns: list[_ChainRow] = []
    seen: set[str] = set()
    for rid, previous, model, created_at, body in rows:
        if rid in seen:
            raise ChainError("cycle", response_id, max_depth)
        if len(turns) >= max_depth:
            raise ChainError("too_deep", response_id, max_depth)
        if body is None:
            raise StoredResponseNotFound("response", rid)
        seen.add(rid)
        turns.append(_ChainRow(rid, previous, model, created_at, body, _BLOB_KEY in body))
    if not turns:
        raise StoredResponseNotFound("response", response_id)
    return turns


def _chain_items(
    conn: sqlite3.Connection, ids: list[str]
) -> dict[str, tuple[list[bytes], list[bytes]]]:
    """Raw input and output item bodies of the responses ``ids``, in order, by response id."""
    found: dict[str, tuple[list[bytes], list[bytes]]] = {}
    for start in range(0, len(ids), PRUNE_BATCH):
        chunk = ids[start : start + PRUNE_BATCH]
        marks = ",".join("?" * len(chunk))
        for rid, kind, body in conn.execute(
            f"SELECT response_id, kind, body FROM items WHERE response_id IN ({marks})"
            " ORDER BY response_id, kind, position",
            chunk,
        ):
            found.setdefault(rid, ([], []))[kind].append(body)
    return found


def _items(
    conn: sqlite3.Connection, response_id: str, kinds: tuple[int, ...] = (INPUT, OUTPUT)
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    found: tuple[list[dict[str, Any]], list[dict[str, Any]]] = ([], [])
    marks = ",".join("?" * len(kinds))
    for kind, body in conn.execute(
        f"SELECT kind, body FROM items WHERE response_id = ? AND kind IN ({marks})"
        " ORDER BY kind, position",
        (response_id, *kinds),
    ):
        found[kind].append(orjson.loads(body))
    return found


def _delete_children(conn: sqlite3.Connection, ids: list[str]) -> None:
    marks = ",".join("?" * len(ids))
    conn.execute(f"DELETE FROM items WHERE response_id IN ({marks})", ids)
    conn.execute(f"DELETE FROM blob_refs WHERE response_id IN ({marks})", ids)


def _tighten(path: Path) -> None:
    """0600 for a database file someone else created looser (it holds conversations)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            os.chmod(path, 0o600)


def _use_wal(conn: sqlite3.Connection) -> None:
    """Switching to WAL needs a moment alone with the file; another process starting at the same
    instant can make it fail at once instead of waiting, so retry briefly."""
    for attempt in range(100):
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(0.02 * (1 + attempt % 5))
            continue
        if str(mode).lower() != "wal":
            raise StoreError(f"the response database cannot use WAL (journal mode {mode})")
        return
    raise StoreError("the response database stayed locked while switching it to WAL")


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the response database has schema {version}, newer than this gateway's "
                f"{SCHEMA_VERSION}: upgrade codex-proxy or point CODEX_DATA_DIR elsewhere"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[target](conn)
        if version != SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
