"""Cursor pagination of the public API's list endpoints, over a list of ids in stored order.

The listing is the ids in ``order`` (``desc`` = newest first). ``after=X`` keeps what comes
after X in that listing, ``before=Y`` what comes before Y. With ``before`` alone the page is
the ``limit`` items nearest Y (still in listing order) and ``has_more`` says more lie before
them; otherwise the page is the first ``limit`` items of the window and ``has_more`` says more
lie after them. An unknown cursor is an error, not an empty page.
"""

from __future__ import annotations

from collections.abc import Sequence

from codex_proxy.store.base import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, InvalidListParameter


def check_list_params(limit: object, order: object) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidListParameter("limit", f"limit must be between 1 and {MAX_LIST_LIMIT}")
    if order not in ("asc", "desc"):
        raise InvalidListParameter("order", "order must be 'asc' or 'desc'")


def page(
    ids: Sequence[str],
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = DEFAULT_LIST_LIMIT,
    order: str = "desc",
) -> tuple[list[int], bool]:
    """Indexes into ``ids`` (stored order) of the page, in listing order, and ``has_more``."""
    check_list_params(limit, order)
    listing = list(range(len(ids)))
    if order == "desc":
        listing.reverse()
    start, end = 0, len(listing)
    if after is not None:
        start = _find(ids, listing, after, "after") + 1
    if before is not None:
        end = _find(ids, listing, before, "before")
    window = listing[start:end] if start < end else []
    if before is not None and after is None:
        return window[-limit:], len(window) > limit
    return window[:limit], len(window) > limit


def _find(ids: Sequence[str], listing: list[int], cursor: str, param: str) -> int:
    for n, index in enumerate(listing):
        if ids[index] == cursor:
            return n
    raise InvalidListParameter(param, f"no item with id '{cursor}' in this list")
