"""Stored images: written off the event loop, deleted after CODEX_IMAGE_TTL_DAYS."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path

import httpx

from codex_proxy.mock.images import render_image
from codex_proxy.server.image_files import FileSaver, ImageStore

from ..conftest import wait_for

OLD = "a" * 32 + ".png"
FRESH = "b" * 32 + ".png"


def stored(folder: Path, name: str, age_days: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(render_image(4, 4))
    stamp = time.time() - age_days * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_expired_files_are_deleted_at_start_and_stop_being_served(
    make_gateway, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    old, fresh = stored(folder, OLD, 3), stored(folder, FRESH, 0.5)
    other = stored(folder, "notes.txt", 90)  # not ours: never touched
    gw = make_gateway(image_dir=folder, image_ttl_days=1)
    assert wait_for(lambda: not old.exists())
    assert fresh.exists() and other.exists()
    assert httpx.get(f"{gw.url}/v1/images/files/{OLD}").status_code == 404
    assert httpx.get(f"{gw.url}/v1/images/files/{FRESH}").status_code == 200


def test_ttl_zero_keeps_files_forever(make_gateway, tmp_path: Path) -> None:
    folder = tmp_path / "images"
    old = stored(folder, OLD, 4000)
    gw = make_gateway(image_dir=folder, image_ttl_days=0)
    assert httpx.get(f"{gw.url}/v1/images/files/{OLD}").status_code == 200
    assert old.exists()


def test_sweep_counts_and_handles_a_missing_folder(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images", ttl_days=30)
    assert store.sweep() == 0
    stored(store.folder, OLD, 31)
    stored(store.folder, FRESH, 29)
    assert store.sweep() == 1
    assert sorted(p.name for p in store.folder.iterdir()) == [FRESH]
    assert store.sweep(now=time.time() + 2 * 86400) == 1


def test_file_saver_writes_in_a_thread_and_flush_waits(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    data = render_image(8, 8)

    async def run() -> str:
        saver = FileSaver(store, lambda name: f"http://x/v1/images/files/{name}")
        url = saver(base64.b64encode(data).decode(), "png")
        await saver.flush()
        assert saver.pending == []
        return url

    url = asyncio.run(run())
    name = url.rsplit("/", 1)[1]
    assert (store.folder / name).read_bytes() == data
