from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codex_proxy.store import SQLiteBackend


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[SQLiteBackend]:
    store = SQLiteBackend(tmp_path / "data", ttl_days=30)
    yield store
    store.close()
