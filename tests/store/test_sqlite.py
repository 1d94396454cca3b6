"""The SQLite backend on a real database file in tmp_path."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import codex_proxy
from codex_proxy.store import (
    ChainError,
    ResponseExists,
    SQLiteBackend,
    StoredResponseNotFound,
    StoreError,
)
from codex_proxy.store.sqlite import DB_NAME, PRUNE_BATCH, SCHEMA_VERSION

from .helpers import NOW, assistant, image_call, png, response, user, user_image


def without_id(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "id"}


def save_chain(backend: SQLiteBackend, ids: list[str], owner: str | None = None) -> None:
    previous = None
    for n, rid in enumerate(ids):
        backend.save(response(rid, previous, created_at=NOW + n), [user(f"q{n}")], owner=owner)
        previous = rid


def test_three_turn_chain_loads_oldest_first_with_items(backend: SQLiteBackend) -> None:
    backend.save(response("resp_1"), [user("one", id="msg_u1")])
    backend.save(response("resp_2", "resp_1"), [user("two", id="msg_u2")])
    backend.save(response("resp_3", "resp_2"), [user("three", id="msg_u3")])

    turns = backend.load_chain("resp_3")

    assert [t.id for t in turns] == ["resp_1", "resp_2", "resp_3"]
    assert [t.previous_response_id for t in turns] == [None, "resp_1", "resp_2"]
    assert [t.input_items for t in turns] == [
        [user("one", id="msg_u1")],
        [user("two", id="msg_u2")],
        [user("three", id="msg_u3")],
    ]
    assert turns[2].output_items == [assistant("answer resp_3", "msg_resp_3")]
    assert "output" not in turns[2].response
    assert turns[2].response["usage"]["total_tokens"] == 2
    assert turns[0].model == "gpt-5.2-codex"
    assert turns[0].created_at == NOW


def test_branching_two_children_of_one_parent(backend: SQLiteBackend) -> None:
    backend.save(response("resp_root"), [user("root")])
    backend.save(response("resp_a", "resp_root"), [user("left")])
    backend.save(response("resp_b", "resp_root"), [user("right")])

    left = backend.load_chain("resp_a")
    right = backend.load_chain("resp_b")

    assert [t.id for t in left] == ["resp_root", "resp_a"]
    assert [t.id for t in right] == ["resp_root", "resp_b"]
    assert right[1].input_items[0]["content"][0]["text"] == "right"


def test_items_without_id_get_one_and_keep_given_ones(backend: SQLiteBackend) -> None:
    easy = {"role": "user", "content": "hi"}
    backend.save(response("resp_1"), [easy, user("x", id="msg_given")])
    inputs = backend.load_chain("resp_1")[0].input_items
    assert inputs[0]["id"].startswith("msg_") and len(inputs[0]["id"]) == 52
    assert inputs[0]["content"] == "hi"
    assert inputs[1]["id"] == "msg_given"
    assert "id" not in easy  # the caller's dict is not changed


def test_cycle_is_reported_not_looped(backend: SQLiteBackend) -> None:
    # Saves do not require the parent to exist yet, so a loop can be built through the API.
    backend.save(response("resp_a", "resp_b"), [user("a")])
    backend.save(response("resp_b", "resp_a"), [user("b")])
    with pytest.raises(ChainError) as caught:
        backend.load_chain("resp_a")
    assert caught.value.reason == "cycle"
    assert caught.value.id == "resp_a"


def test_self_loop_is_a_cycle(backend: SQLiteBackend) -> None:
    backend.save(response("resp_self", "resp_self"), [user("me")])
    with pytest.raises(ChainError, match="loops back"):
        backend.load_chain("resp_self")


def test_depth_limit(backend: SQLiteBackend) -> None:
    ids = [f"resp_{n}" for n in range(6)]
    save_chain(backend, ids)
    assert [t.id for t in backend.load_chain("resp_5", max_depth=6)] == ids
    with pytest.raises(ChainError) as caught:
        backend.load_chain("resp_5", max_depth=5)
    assert (caught.value.reason, caught.value.max_depth) == ("too_deep", 5)


def test_chain_longer_than_one_batch_of_item_lookups(backend: SQLiteBackend) -> None:
    ids = [f"resp_{n}" for n in range(PRUNE_BATCH + 20)]
    save_chain(backend, ids)
    turns = backend.load_chain(ids[-1])
    assert [t.id for t in turns] == ids
    assert [t.input_items[0]["content"][0]["text"] for t in turns] == [
        f"q{n}" for n in range(len(ids))
    ]
    assert all(len(t.output_items) == 1 for t in turns)


def test_unknown_ids_raise_not_found(backend: SQLiteBackend) -> None:
    backend.save(response("resp_1"), [user("q")])
    for call, kind in (
        (lambda: backend.load_chain("resp_nope"), "response"),
        (lambda: backend.get_response("resp_nope"), "response"),
        (lambda: backend.get_item("msg_nope"), "item"),
        (lambda: backend.delete("resp_nope"), "response"),
        (lambda: backend.list_input_items("resp_nope"), "response"),
    ):
        with pytest.raises(StoredResponseNotFound) as caught:
            call()
        assert caught.value.kind == kind
        assert caught.value.id.endswith("_nope")


def test_missing_ancestor_names_the_ancestor(backend: SQLiteBackend) -> None:
    backend.save(response("resp_child", "resp_never_saved"), [user("q")])
    with pytest.raises(StoredResponseNotFound) as caught:
        backend.load_chain("resp_child")
    assert (caught.value.kind, caught.value.id) == ("response", "resp_never_saved")


def test_get_response_restores_output_in_place(backend: SQLiteBackend) -> None:
    saved = response("resp_1")
    backend.save(saved, [user("q")])
    got = backend.get_response("resp_1")
    assert got == saved
    assert list(got) == list(saved)  # "output" keeps its place among the keys


def test_get_item_by_id_input_and_output(backend: SQLiteBackend) -> None:
    picture = png(2000)
    backend.save(
        response("resp_1", output=[image_call("ig_1", picture), assistant("done", "msg_out")]),
        [user("draw", id="msg_in")],
    )
    assert backend.get_item("ig_1") == image_call("ig_1", picture)
    assert backend.get_item("msg_out") == assistant("done", "msg_out")
    assert backend.get_item("msg_in") == user("draw", id="msg_in")
    lazy = backend.get_item("ig_1", with_bytes=False)
    assert lazy["result"]["$blob"].startswith("sha256:")
    assert lazy["result"]["media_type"] == "image/png"
    assert lazy["result"]["size"] == len(picture)
    assert backend.restore_blobs(lazy) == image_call("ig_1", picture)


def test_duplicate_save_is_refused_and_changes_nothing(backend: SQLiteBackend) -> None:
    backend.save(response("resp_1"), [user("first")])
    with pytest.raises(ResponseExists):
        backend.save(response("resp_1"), [user("second"), user("third")])
    turn = backend.load_chain("resp_1")[0]
    assert [i["content"][0]["text"] for i in turn.input_items] == ["first"]


def test_delete_removes_response_and_items_children_then_fail(backend: SQLiteBackend) -> None:
    save_chain(backend, ["resp_1", "resp_2", "resp_3"])
    backend.save(response("resp_other"), [user("kept", id="msg_kept")])
    backend.delete("resp_2")

    with pytest.raises(StoredResponseNotFound):
        backend.get_response("resp_2")
    with pytest.raises(StoredResponseNotFound):
        backend.get_item("msg_resp_2")
    with pytest.raises(StoredResponseNotFound) as caught:
        backend.load_chain("resp_3")
    assert caught.value.id == "resp_2"
    assert [t.id for t in backend.load_chain("resp_1")] == ["resp_1"]
    assert backend.get_item("msg_kept")["id"] == "msg_kept"
    with sqlite3.connect(backend.path) as db:
        assert (
            db.execute("SELECT count(*) FROM items WHERE response_id = 'resp_2'").fetchone()[0] == 0
        )


def test_owner_isolation(backend: SQLiteBackend) -> None:
    save_chain(backend, ["resp_a1", "resp_a2"], owner="alice")
    backend.save(response("resp_n"), [user("nobody's", id="msg_n")])

    assert [t.id for t in backend.load_chain("resp_a2", owner="alice")] == ["resp_a1", "resp_a2"]
    for owner in ("bob", None):
        for call in (
            lambda o=owner: backend.load_chain("resp_a2", owner=o),
            lambda o=owner: backend.get_response("resp_a1", owner=o),
            lambda o=owner: backend.get_item("msg_resp_a1", owner=o),
            lambda o=owner: backend.list_input_items("resp_a1", owner=o),
            lambda o=owner: backend.delete("resp_a1", owner=o),
        ):
            with pytest.raises(StoredResponseNotFound):
                call()
    with pytest.raises(StoredResponseNotFound):
        backend.get_item("msg_n", owner="alice")
    assert backend.get_item("msg_n")["id"] == "msg_n"
    # A chain may not borrow another owner's ancestor either.
    backend.save(response("resp_b", "resp_a2"), [user("q")], owner="bob")
    with pytest.raises(StoredResponseNotFound) as caught:
        backend.load_chain("resp_b", owner="bob")
    assert caught.value.id == "resp_a2"
    backend.delete("resp_a1", owner="alice")
    with pytest.raises(StoredResponseNotFound):
        backend.get_response("resp_a1", owner="alice")


def test_modes_folder_0700_files_0600(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "data"
    backend = SQLiteBackend(data)
    backend.save(response("resp_1", output=[image_call("ig_1", png(500))]), [user("q")])
    try:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
        blob_files = [p for p in (data / "blobs").rglob("*") if p.is_file()]
        assert len(blob_files) == 1
        assert stat.S_IMODE(blob_files[0].stat().st_mode) == 0o600
        for folder in [data / "blobs", *[p for p in (data / "blobs").rglob("*") if p.is_dir()]]:
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    finally:
        backend.close()


def test_loose_database_file_is_tightened(tmp_path: Path) -> None:
    tmp_path.joinpath("data").mkdir()
    db = tmp_path / "data" / DB_NAME
    db.touch()
    db.chmod(0o644)
    backend = SQLiteBackend(tmp_path / "data")
    backend.save(response("resp_1"), [user("q")])
    backend.close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_schema_version_and_newer_database_refused(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path)
    backend.save(response("resp_1"), [user("q")])
    backend.close()
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this gateway"):
        SQLiteBackend(tmp_path).get_item("msg_resp_1")


def test_reopen_keeps_data(tmp_path: Path) -> None:
    first = SQLiteBackend(tmp_path)
    save_chain(first, ["resp_1", "resp_2"])
    first.close()
    second = SQLiteBackend(tmp_path)
    assert [t.id for t in second.load_chain("resp_2")] == ["resp_1", "resp_2"]
    second.close()


def test_prune_by_ttl_removes_old_rows_and_orphan_blobs(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path, ttl_days=30)
    day = 86400
    old_only, shared, young_only = png(3000, 1), png(70_000, 2), png(70_000, 3)
    backend.save(
        response("resp_old", created_at=NOW - 40 * day, output=[image_call("ig_old", old_only)]),
        [user_image("edit", shared)],
    )
    backend.save(
        response("resp_young", "resp_old", created_at=NOW - 1 * day),
        [user_image("again", shared), user_image("other", young_only)],
    )
    backend.save(response("resp_new", "resp_young", created_at=NOW), [user("q")])
    blob_files = lambda: sorted(p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file())  # noqa: E731
    assert len(blob_files()) == 3

    # Young files are spared by the grace period even when unreferenced.
    assert backend.prune(NOW, blob_grace_seconds=3600).blobs == 0
    with pytest.raises(StoredResponseNotFound):
        backend.get_response("resp_old")

    report = backend.prune(NOW, blob_grace_seconds=0)
    assert report.responses == 0  # already gone in the first prune
    assert report.blobs == 1
    assert len(blob_files()) == 2
    assert backend.get_response("resp_young")["id"] == "resp_young"
    with pytest.raises(StoredResponseNotFound):  # its parent is gone
        backend.load_chain("resp_young")
    inputs = backend.list_input_items("resp_young", order="asc")["data"]
    assert [without_id(i) for i in inputs] == [
        user_image("again", shared),
        user_image("other", young_only),
    ]
    backend.close()


def test_prune_counts_and_ttl_zero_keeps_forever(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path, ttl_days=1)
    for n in range(3):
        backend.save(response(f"resp_{n}", created_at=NOW - 10 * 86400), [user("q")])
    backend.save(response("resp_keep", created_at=NOW), [user("q")])
    assert backend.prune(NOW).responses == 3
    assert backend.get_response("resp_keep")["id"] == "resp_keep"
    backend.close()

    forever = SQLiteBackend(tmp_path, ttl_days=0)
    forever.save(response("resp_ancient", created_at=1.0), [user("q")])
    assert forever.prune(NOW).responses == 0
    assert forever.get_response("resp_ancient")["id"] == "resp_ancient"
    forever.close()


def test_deleted_response_blob_goes_at_next_prune(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path, ttl_days=0)
    backend.save(response("resp_1", output=[image_call("ig_1", png(1000))]), [user("q")])
    backend.delete("resp_1")
    assert len([p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]) == 1
    assert backend.prune(NOW, blob_grace_seconds=0).blobs == 1
    assert not [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    backend.close()


def test_blob_taken_by_a_prune_before_the_save_commits_is_rewritten(tmp_path: Path) -> None:
    """A prune in another process may remove an orphan file between a save's put() and its
    transaction; the save checks under the write lock and writes it again."""
    backend = SQLiteBackend(tmp_path)
    picture = png(1000)
    original_put = backend.blobs.put
    calls: list[str] = []

    def put_then_lose(digest: str, data: bytes) -> None:
        original_put(digest, data)
        calls.append(digest)
        if len(calls) == 1:
            backend.blobs.path(digest).unlink()  # the concurrent prune

    backend.blobs.put = put_then_lose  # type: ignore[method-assign]
    backend.save(response("resp_1", output=[image_call("ig_1", picture)]), [user("q")])
    assert len(calls) == 2
    assert backend.get_item("ig_1") == image_call("ig_1", picture)
    backend.close()


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from codex_proxy.store import SQLiteBackend
    data, name, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    (data.parent / f"ready-{name}").touch()
    while not go.exists():
        time.sleep(0.005)
    store = SQLiteBackend(data)   # both processes create the database at the same moment
    previous = None
    for n in range(count):
        rid = f"resp_{name}_{n}"
        store.save(
            {"id": rid, "created_at": time.time(), "model": "m", "previous_response_id": previous,
             "output": [{"id": f"msg_{rid}", "type": "message", "role": "assistant",
                         "content": [{"type": "output_text", "text": "a" * 2000}]}]},
            [{"type": "message", "role": "user", "content": "q" * 2000}],
        )
        store.load_chain(rid, max_depth=count + 1)
        if n % 20 == 0:
            store.prune(None, blob_grace_seconds=3600)  # a worker's periodic prune
        previous = rid
    store.close()
    """
)


def test_two_processes_write_one_database_concurrently(tmp_path: Path) -> None:
    data = tmp_path / "data"
    go = tmp_path / "go"
    count = 150
    src = str(Path(codex_proxy.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(data), name, str(count), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"ready-{n}").exists() for n in ("a", "b")):
        assert time.monotonic() < deadline, "writers did not start"
        time.sleep(0.01)
    go.touch()
    results = [p.communicate(timeout=60) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()
        assert b"locked" not in err
    backend = SQLiteBackend(data, ttl_days=0)
    for name in ("a", "b"):
        chain = backend.load_chain(f"resp_{name}_{count - 1}", max_depth=count)
        assert [t.id for t in chain] == [f"resp_{name}_{n}" for n in range(count)]
    backend.close()
