"""Cursor pagination of input items, checked against exact ids."""

from __future__ import annotations

import pytest

from codex_proxy.store import InvalidListParameter, SQLiteBackend
from codex_proxy.store.pages import page

from .helpers import response, user

IDS = ["a", "b", "c", "d", "e"]  # stored (oldest first) order


@pytest.mark.parametrize(
    ("kwargs", "expected", "has_more"),
    [
        ({}, ["e", "d", "c", "b", "a"], False),
        ({"limit": 2}, ["e", "d"], True),
        ({"limit": 2, "after": "d"}, ["c", "b"], True),
        ({"limit": 2, "after": "b"}, ["a"], False),
        ({"limit": 5}, ["e", "d", "c", "b", "a"], False),
        ({"limit": 4}, ["e", "d", "c", "b"], True),
        ({"order": "asc", "limit": 2}, ["a", "b"], True),
        ({"order": "asc", "limit": 2, "after": "b"}, ["c", "d"], True),
        ({"order": "asc", "limit": 2, "after": "d"}, ["e"], False),
        ({"order": "asc", "after": "e"}, [], False),
        ({"limit": 2, "before": "b"}, ["d", "c"], True),
        ({"limit": 3, "before": "b"}, ["e", "d", "c"], False),
        ({"order": "asc", "limit": 2, "before": "d"}, ["b", "c"], True),
        ({"order": "asc", "before": "a"}, [], False),
        ({"order": "asc", "after": "a", "before": "e"}, ["b", "c", "d"], False),
        ({"order": "asc", "after": "a", "before": "e", "limit": 2}, ["b", "c"], True),
        ({"after": "b", "before": "d"}, [], False),
        ({"after": "d", "before": "b"}, ["c"], False),
    ],
)
def test_page(kwargs: dict[str, object], expected: list[str], has_more: bool) -> None:
    indexes, more = page(IDS, **kwargs)  # type: ignore[arg-type]
    assert [IDS[i] for i in indexes] == expected
    assert more is has_more


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": True}, "limit"),
        ({"limit": "5"}, "limit"),
        ({"order": "up"}, "order"),
        ({"after": "zz"}, "after"),
        ({"before": "zz"}, "before"),
    ],
)
def test_bad_parameters(kwargs: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidListParameter) as caught:
        page(IDS, **kwargs)  # type: ignore[arg-type]
    assert caught.value.param == param


def test_list_input_items_walks_all_pages(backend: SQLiteBackend) -> None:
    ids = [f"msg_{n:02d}" for n in range(45)]
    backend.save(response("resp_1"), [user(f"q{n}", id=i) for n, i in enumerate(ids)])

    first = backend.list_input_items("resp_1")
    assert first["object"] == "list"
    assert [i["id"] for i in first["data"]] == ids[::-1][:20]
    assert (first["first_id"], first["last_id"], first["has_more"]) == ("msg_44", "msg_25", True)

    seen, after = [], None
    while True:
        got = backend.list_input_items(
            "resp_1", order="asc", limit=100 if after else 7, after=after
        )
        seen += [i["id"] for i in got["data"]]
        if not got["has_more"]:
            break
        after = got["last_id"]
    assert seen == ids

    back = backend.list_input_items("resp_1", order="asc", before="msg_10", limit=3)
    assert [i["id"] for i in back["data"]] == ["msg_07", "msg_08", "msg_09"]
    assert back["has_more"] is True
    assert back["data"][0]["content"][0]["text"] == "q7"

    empty = backend.list_input_items("resp_1", after="msg_00")
    assert empty == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    with pytest.raises(InvalidListParameter):
        backend.list_input_items("resp_1", limit=0)
    with pytest.raises(InvalidListParameter):
        backend.list_input_items("resp_1", after="msg_resp_1")  # an output item is no cursor
