"""The response store's interface, the shapes it returns and the errors it raises.

The ChatGPT backend keeps no state over HTTP (protocol.md §7.1), so the gateway keeps every
completed ``/v1/responses`` turn itself: ``previous_response_id``, ``item_reference`` and
``{"type": "image_generation_call", "id": ...}`` are resolved from here. The route codes against
:class:`ResponseStore` only; SQLite is the embedded default and a shared backend can come later.

Owner: every call takes ``owner`` (the client key's name, or None on a gateway without client
keys). Rows match on equality, NULL included: a response saved with owner ``"a"`` is "not found"
for owner ``"b"`` and for owner None, and unowned rows are invisible to every named key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

MAX_CHAIN_DEPTH = 1000
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100

Order = Literal["asc", "desc"]


class StoreError(Exception):
    """Base of everything the store raises on purpose."""


class StoredResponseNotFound(StoreError, LookupError):
    """An unknown (or another owner's, or deleted, or pruned) id. ``kind`` is ``"response"``,
    ``"item"`` or ``"blob"`` (image bytes of a stored item are gone from disk); ``id`` is the
    id that was missing, which for :meth:`ResponseStore.load_chain` may be an ancestor's."""

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"{kind} with id '{id}' not found")
        self.kind = kind
        self.id = id


class ChainError(StoreError):
    """A ``previous_response_id`` chain that cannot be replayed: ``reason`` is ``"cycle"`` or
    ``"too_deep"`` (more than ``max_depth`` responses). The route answers 400."""

    def __init__(self, reason: str, id: str, max_depth: int) -> None:
        what = "loops back on itself" if reason == "cycle" else f"is longer than {max_depth}"
        super().__init__(f"the chain of previous responses from '{id}' {what}")
        self.reason = reason
        self.id = id
        self.max_depth = max_depth


class ResponseExists(StoreError):
    """:meth:`ResponseStore.save` of an id that is already stored (ids are never reused)."""

    def __init__(self, id: str) -> None:
        super().__init__(f"response '{id}' is already stored")
        self.id = id


class InvalidListParameter(StoreError, ValueError):
    """A bad ``limit`` / ``order`` / cursor for :meth:`ResponseStore.list_input_items`; ``param``
    names the query parameter, for the OpenAI error's ``param`` (400 invalid_request_error)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class StoredTurn:
    """One stored response as the translation needs it to rebuild upstream input."""

    id: str
    previous_response_id: str | None
    owner: str | None
    model: str
    created_at: float
    response: dict[str, Any]
    """The Response object as saved, without ``output`` (that is ``output_items``)."""
    input_items: list[dict[str, Any]]
    output_items: list[dict[str, Any]]


@dataclass(frozen=True)
class PruneReport:
    responses: int
    blobs: int


@runtime_checkable
class ResponseStore(Protocol):
    """Durable response storage. Every method runs its blocking work off the event loop.

    ``with_bytes``: True gives items exactly as saved (base64 restored); False leaves large
    binary fields as blob markers (see :mod:`codex_proxy.store.blobs`) that
    :meth:`restore_blobs` fills in later, for callers that send only some images upstream.
    """

    async def save(
        self,
        response: Mapping[str, Any],
        input_items: Sequence[Mapping[str, Any]],
        *,
        owner: str | None = None,
    ) -> None:
        """Store a finished turn. ``response`` is the final Response object; its ``id``,
        ``model``, ``created_at``, ``previous_response_id`` (optional) and ``output`` (the
        output items) are read from it. ``input_items`` are this turn's input after resolving
        references. Items without an ``id`` get one. Raises :class:`ResponseExists`."""
        ...

    async def load_chain(
        self,
        response_id: str,
        *,
        owner: str | None = None,
        with_bytes: bool = True,
        max_depth: int = MAX_CHAIN_DEPTH,
    ) -> list[StoredTurn]:
        """``response_id`` and its ancestors, oldest first. Raises
        :class:`StoredResponseNotFound` (that id or a deleted ancestor) or :class:`ChainError`."""
        ...

    async def get_response(
        self, response_id: str, *, owner: str | None = None, with_bytes: bool = True
    ) -> dict[str, Any]:
        """The stored Response object with its ``output``, for ``GET /v1/responses/{id}``."""
        ...

    async def get_item(
        self, item_id: str, *, owner: str | None = None, with_bytes: bool = True
    ) -> dict[str, Any]:
        """One stored input or output item by its ``id``, for ``item_reference`` and
        ``image_generation_call`` by id. The newest response holding it wins."""
        ...

    async def delete(self, response_id: str, *, owner: str | None = None) -> None:
        """Remove one response and its items; its children stay, and walking them later raises
        :class:`StoredResponseNotFound` for this id. Blob files go at the next prune."""
        ...

    async def list_input_items(
        self,
        response_id: str,
        *,
        owner: str | None = None,
        after: str | None = None,
        before: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
        order: Order = "desc",
        with_bytes: bool = True,
    ) -> dict[str, Any]:
        """``{"object": "list", "data", "first_id", "last_id", "has_more"}`` for
        ``GET /v1/responses/{id}/input_items``; see :func:`codex_proxy.store.pages.page`."""
        ...

    async def restore_blobs(self, value: Any) -> Any:
        """``value`` (an item, a list of items, any JSON) with blob markers replaced by their
        base64 again. Raises :class:`StoredResponseNotFound` of kind ``"blob"``."""
        ...

    async def prune(self, now: float | None = None) -> PruneReport:
        """Delete responses older than the TTL and blob files nothing references."""
        ...

    async def close(self) -> None: ...
