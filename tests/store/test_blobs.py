"""Image bytes go to content-addressed files once, never into the database."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from codex_proxy.store import SQLiteBackend, StoredResponseNotFound, is_blob_ref
from codex_proxy.store.blobs import INLINE_LIMIT, BlobStore, externalize, restore
from codex_proxy.store.sqlite import DB_NAME

from .helpers import b64, image_call, png, response, user, user_image


def blob_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "blobs").rglob("*") if p.is_file())


def database_bytes(root: Path) -> bytes:
    return b"".join(
        (root / name).read_bytes() for name in (DB_NAME, f"{DB_NAME}-wal") if (root / name).exists()
    )


def test_image_in_two_turns_is_one_file_and_never_in_the_database(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path)
    picture = png(300_000)
    generated = image_call("ig_1", picture)
    backend.save(response("resp_1", output=[generated]), [user("draw a fox")])
    # Turn 2 edits it: the route resolved {"type": "image_generation_call", "id": "ig_1"} and the
    # client also sent the picture back as a data URL.
    backend.save(
        response("resp_2", "resp_1", output=[image_call("ig_2", png(1000, 9))]),
        [user_image("make it blue", picture), generated],
    )

    files = blob_files(tmp_path)
    assert len(files) == 2  # the fox once, the small result of turn 2 once
    assert picture in [f.read_bytes() for f in files]
    stored = database_bytes(tmp_path)
    encoded = b64(picture).encode()
    for start in (0, 5000, len(encoded) // 2, len(encoded) - 200):
        assert encoded[start : start + 100] not in stored
    assert picture[1000:1100] not in stored
    assert b"sha256:" in stored

    turns = backend.load_chain("resp_2")
    assert turns[0].output_items == [generated]
    assert turns[1].input_items[0]["content"][1]["image_url"] == (
        "data:image/png;base64," + b64(picture)
    )
    assert turns[1].input_items[1] == generated
    backend.close()


def test_writing_an_existing_blob_is_a_no_op(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    data = png(5000)
    blobs.put("ab" * 32, data)
    path = blobs.path("ab" * 32)
    os.utime(path, (1_000_000, 1_000_000))
    before = path.stat().st_ino
    blobs.put("ab" * 32, b"something else")
    assert path.read_bytes() == data
    assert path.stat().st_ino == before
    assert path.stat().st_mtime > 1_000_000  # refreshed, which protects it from a prune
    assert [p.name for p in path.parent.iterdir()] == ["ab" * 32]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_small_and_non_data_urls_stay_inline(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path)
    small = "data:image/png;base64," + b64(png(1000))
    assert len(small) < INLINE_LIMIT
    remote = "https://example.com/" + "x" * INLINE_LIMIT
    not_base64 = "data:image/png;base64," + "!" * INLINE_LIMIT
    item = {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_image", "image_url": small},
            {"type": "input_image", "image_url": remote},
            {"type": "input_image", "image_url": not_base64},
        ],
    }
    backend.save(response("resp_1"), [item])
    assert blob_files(tmp_path) == []
    lazy = backend.get_item(backend.load_chain("resp_1")[0].input_items[0]["id"], with_bytes=False)
    assert [part["image_url"] for part in lazy["content"]] == [small, remote, not_base64]
    backend.close()


def test_large_file_data_and_tool_output_images_are_blobs(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path)
    pdf = b"%PDF-1.7\n" + os.urandom(80_000)
    shot = png(90_000, 4)
    items: list[dict[str, Any]] = [
        {
            "type": "message",
            "role": "user",
            "content": [
                {
                    "type": "input_file",
                    "filename": "a.pdf",
                    "file_data": "data:application/pdf;base64," + b64(pdf),
                }
            ],
        },
        {
            "type": "function_call_output",
            "call_id": "call_1",
            "output": [{"type": "input_image", "image_url": "data:image/png;base64," + b64(shot)}],
        },
    ]
    backend.save(response("resp_1"), items)
    assert len(blob_files(tmp_path)) == 2
    lazy = backend.load_chain("resp_1", with_bytes=False)[0].input_items
    file_marker = lazy[0]["content"][0]["file_data"]
    image_marker = lazy[1]["output"][0]["image_url"]
    assert is_blob_ref(file_marker) and is_blob_ref(image_marker)
    assert file_marker["media_type"] == "application/pdf"
    assert file_marker["size"] == len(pdf)
    assert image_marker["media_type"] == "image/png"
    full = backend.load_chain("resp_1")[0].input_items
    assert [{k: v for k, v in i.items() if k != "id"} for i in full] == items
    assert backend.restore_blobs(lazy) == full
    backend.close()


def test_markers_from_a_client_are_refused(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path)
    forged = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_image", "image_url": {"$blob": "sha256:" + "0" * 64}}],
    }
    with pytest.raises(ValueError, match="must be a string"):
        backend.save(response("resp_1"), [forged])
    backend.close()


def test_missing_blob_file_is_not_found_of_kind_blob(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path)
    backend.save(response("resp_1", output=[image_call("ig_1", png(100))]), [user("q")])
    for path in blob_files(tmp_path):
        path.unlink()
    assert is_blob_ref(backend.get_item("ig_1", with_bytes=False)["result"])
    with pytest.raises(StoredResponseNotFound) as caught:
        backend.get_item("ig_1")
    assert caught.value.kind == "blob"
    backend.close()


def test_externalize_and_restore_round_trip_without_touching_the_input() -> None:
    picture = png(200)
    item = image_call("ig_1", picture)
    found: dict[str, bytes] = {}
    out = externalize(item, found)
    assert item["result"] == b64(picture)  # unchanged
    assert list(found.values()) == [picture]
    marker = out["result"]
    assert marker["prefix"] == "" and marker["media_type"] == "image/png"
    back = restore(out, lambda digest: base64.b64encode(found[digest]).decode())
    assert back == item
