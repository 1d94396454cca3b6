"""Server-sent events from raw bytes: a sans-IO decoder that hands out every event completed by
one network read at once.

Same interpretation as ``httpx-sse`` (the WHATWG rules: lines end at ``\\r\\n``, ``\\r`` or
``\\n``; ``event``, ``data``, ``id``, ``retry`` fields; ``:`` comments; an event is dispatched
at a blank line), but it works on bytes, so a data line is never decoded to text before
``orjson`` parses it, and a huge line (a 20 MB image) is collected piece by piece and joined
once instead of being rescanned on every read.
"""

from __future__ import annotations

Event = tuple[str, bytes | bytearray]
"""The event name (``""`` when the event had no ``event:`` field) and its data."""


class EventTooLarge(ValueError):
    """An event (its data lines together, or one line still arriving) grew past the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an event is larger than {limit} bytes")
        self.limit = limit


class SSEDecoder:
    """Feed bytes as they arrive; get the events they complete.

    ``max_bytes`` bounds what one event may hold in memory (its data lines together, or a line
    not ended yet): past it, :meth:`feed` raises :class:`EventTooLarge`. Images arrive as one
    line of tens of MB, so the limit is generous, but without one an upstream line that never
    ends would grow until memory runs out.
    """

    __slots__ = (
        "_data",
        "_data_size",
        "_event",
        "_last_id",
        "_max",
        "_pending",
        "_retry",
        "_trailing_cr",
    )

    def __init__(self, max_bytes: int | None = None) -> None:
        self._max = max_bytes
        self._data_size = 0  # bytes in self._data
        self._pending = bytearray()  # the line not ended yet: grows in place, never joined
        self._trailing_cr = False  # the last read ended in "\r": a "\n" next is the same break
        self._event = b""
        self._data: list[bytes | bytearray] = []
        self._last_id = b""
        self._retry = False

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by ``chunk``, in order."""
        if not chunk:
            return []
        if self._trailing_cr:
            self._trailing_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            if chunk[-1:] == b"\r":
                self._trailing_cr = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            self._pending += chunk
            self._check(len(self._pending))
            return []
        lines = chunk.split(b"\n")
        first = 0
        if self._pending:
            self._pending += lines[0]
            self._long_line(self._pending)
            self._pending = bytearray()
            first = 1
        rest = lines.pop()
        if rest:
            self._pending += rest
            self._check(len(self._pending))
        out: list[Event] = []
        for line in lines[first:] if first else lines:
            if line:
                self._field(line)
            elif self._event or self._data or self._last_id or self._retry:
                out.append(self._dispatch())
        return out

    def _long_line(self, line: bytearray) -> None:
        """A line that came in several reads (never empty). A data line is handed on as the
        buffer it grew in, minus its field name, so a 20 MB image is never copied here."""
        if line.startswith(b"data:"):
            del line[: 6 if line[5:6] == b" " else 5]  # cheap: bytearray drops its head in place
            self._add_data(line)
        else:
            self._field(bytes(line))

    def _dispatch(self) -> Event:
        data = self._data
        joined = data[0] if len(data) == 1 else b"\n".join(data)
        event = (self._event.decode("utf-8", "replace"), joined)
        self._event = b""
        self._data = []
        self._data_size = 0
        self._retry = False  # as the spec says, the last event id is kept
        return event

    def _field(self, line: bytes) -> None:
        if line.startswith(b"data:"):  # the hot path
            self._add_data(line[6 if line[5:6] == b" " else 5 :])
            return
        if line[:1] == b":":
            return
        name, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = value
        elif name == b"data":  # a bare "data" line: an empty data field
            self._add_data(value)
        elif name == b"id":
            if b"\0" not in value:
                self._last_id = value
        elif name == b"retry":
            try:
                int(value)
            except ValueError:
                return
            self._retry = True

    def _add_data(self, value: bytes | bytearray) -> None:
        self._data.append(value)
        self._data_size += len(value) + 1
        self._check(self._data_size)

    def _check(self, size: int) -> None:
        if self._max is not None and size > self._max:
            self._pending = bytearray()  # nothing more is read from this stream
            self._data = []
            raise EventTooLarge(self._max)
