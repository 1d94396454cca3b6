"""The async facade: same answers as the backend, and the event loop keeps running."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from codex_proxy.config import load_settings
from codex_proxy.store import (
    ResponseStore,
    SQLiteBackend,
    StoredResponseNotFound,
    ThreadedStore,
    open_store,
)

from .helpers import NOW, image_call, png, response, user


def settings(tmp_path: Path, **env: str) -> Any:
    return load_settings(environ={"CODEX_DATA_DIR": str(tmp_path / "data"), **env})


def test_open_store_off_is_none(tmp_path: Path) -> None:
    assert open_store(settings(tmp_path, CODEX_RESPONSES_STORE="off")) is None
    assert not (tmp_path / "data").exists()


def test_open_store_round_trip(tmp_path: Path) -> None:
    store = open_store(settings(tmp_path, CODEX_RESPONSES_TTL_DAYS="7"))
    assert isinstance(store, ThreadedStore) and isinstance(store, ResponseStore)
    assert store.backend.ttl_days == 7
    assert not (tmp_path / "data").exists()  # nothing on disk until the first call

    async def run() -> None:
        picture = png(5000)
        await store.save(response("resp_1", output=[image_call("ig_1", picture)]), [user("a")])
        await store.save(response("resp_2", "resp_1"), [user("b", id="msg_b")], owner=None)
        turns = await store.load_chain("resp_2")
        assert [t.id for t in turns] == ["resp_1", "resp_2"]
        assert turns[0].output_items == [image_call("ig_1", picture)]
        lazy = await store.get_item("ig_1", with_bytes=False)
        assert await store.restore_blobs(lazy) == image_call("ig_1", picture)
        assert (await store.get_response("resp_2"))["previous_response_id"] == "resp_1"
        listed = await store.list_input_items("resp_2")
        assert [i["id"] for i in listed["data"]] == ["msg_b"]
        await store.delete("resp_1")
        with pytest.raises(StoredResponseNotFound) as caught:
            await store.load_chain("resp_2")
        assert caught.value.id == "resp_1"
        report = await store.prune(NOW + 30 * 86400)
        assert report.responses == 1  # resp_2, older than 7 days at that time
        await store.close()

    asyncio.run(run())


def test_a_save_does_not_block_the_loop(tmp_path: Path) -> None:
    """The save's blocking part waits until a ticker task on the loop has ticked: if the save ran
    on the loop, the ticker could never tick and the save would time out."""
    backend = SQLiteBackend(tmp_path)
    ticked = threading.Event()
    real_save = backend.save
    in_thread: list[bool] = []

    def save(*args: Any, **kwargs: Any) -> None:
        in_thread.append(threading.current_thread() is not threading.main_thread())
        if not ticked.wait(timeout=20):
            raise AssertionError("the event loop was blocked during the save")
        real_save(*args, **kwargs)

    backend.save = save  # type: ignore[method-assign]
    store = ThreadedStore(backend)
    big = [user("x" * 1000) for _ in range(500)]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            if ticks >= 5:
                ticked.set()
            await asyncio.sleep(0)

    async def run() -> None:
        task = asyncio.create_task(ticker())
        await store.save(response("resp_big", output=[image_call("ig", png(2_000_000))]), big)
        task.cancel()
        assert len((await store.load_chain("resp_big"))[0].input_items) == 500
        await store.close()

    asyncio.run(run())
    assert in_thread == [True]
    assert ticks >= 5
