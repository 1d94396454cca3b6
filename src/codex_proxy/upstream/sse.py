"""Server-sent events from raw bytes: a sans-IO decoder that hands out every event completed by
one network read at once.

Same interpretation as ``httpx-sse`` (the WHATWG rules: lines end at ``\\r\\n``, ``\\r`` or
``\\n``; ``event``, ``data``, ``id``, ``retry`` fields; ``:`` comments; an event is dispatched
at a blank line), but it works on bytes, so a data line is never decoded to text before
``orjson`` parses it, and a huge line (a 20 MB image) is collected piece by piece and joined
once instead of being rescanned on every read.
"""

from __future__ import annotations

from typing import Any

from codex_proxy.upstream.sse_cut import UNDECIDED, BadValue, LargeValueCut

Event = tuple[str, bytes | bytearray]
"""The event name (``""`` when the event had no ``event:`` field) and its data."""


class Cut:
    """A piece of a data line handed out before the line ended (only by a decoder given a
    :class:`LargeValueCut`). The first piece of a line has ``head`` (the members before the
    value, parsed) and the event name; the others carry ``data``, the value's base64. The
    event itself still follows once its line and its blank line arrive, with the value
    empty."""

    __slots__ = ("data", "head", "name")

    def __init__(self, name: str, head: dict[str, Any] | None, data: bytes) -> None:
        self.name = name
        self.head = head
        self.data = data


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
        "_carry",
        "_cut",
        "_cut_size",
        "_cutting",
        "_data",
        "_data_size",
        "_declined",
        "_event",
        "_last_id",
        "_max",
        "_pending",
        "_retry",
        "_trailing_cr",
    )

    def __init__(self, max_bytes: int | None = None, cut: LargeValueCut | None = None) -> None:
        self._max = max_bytes
        self._cut = cut  # which lines to pass on while they arrive (the image stream only)
        self._cutting = False  # a cut value is arriving
        self._cut_size = 0  # bytes of this event's value passed on so far
        self._carry = b""  # a cut piece ended in a backslash
        self._declined = False  # the cut looked at the line still arriving and left it
        self._data_size = 0  # bytes in self._data
        self._pending = bytearray()  # the line not ended yet: grows in place, never joined
        self._trailing_cr = False  # the last read ended in "\r": a "\n" next is the same break
        self._event = b""
        self._data: list[bytes | bytearray] = []
        self._last_id = b""
        self._retry = False

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by ``chunk``, in order (with a cut: and its :class:`Cut`
        pieces, in the order they came)."""
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
        return self._lines(chunk)

    def _lines(self, chunk: bytes) -> list[Any]:
        out: list[Any] = []
        if self._cutting:
            chunk = self._cut_value(chunk, out)
            if not chunk:
                return out
        if b"\n" not in chunk:
            self._pending += chunk
            self._check(len(self._pending) + self._cut_size)
            if self._cut is not None:
                self._try_cut(out)
            return out
        lines = chunk.split(b"\n")
        first = 0
        if self._pending:
            self._pending += lines[0]
            self._long_line(self._pending)
            self._pending = bytearray()
            self._declined = False
            first = 1
        rest = lines.pop()
        if rest:
            self._pending += rest
            self._check(len(self._pending) + self._cut_size)
        for line in lines[first:] if first else lines:
            if line:
                self._field(line)
            elif self._event or self._data or self._last_id or self._retry:
                out.append(self._dispatch())
        if rest and self._cut is not None:
            self._try_cut(out)
        return out

    def _try_cut(self, out: list[Any]) -> None:
        """Start passing on the value of the line still arriving, when the cut takes it: the
        line keeps its head (up to the value's opening quote), the value goes out in
        :class:`Cut` pieces. Only the first data line of an event is cut."""
        cut = self._cut
        line = self._pending
        if self._declined or self._data or len(line) < cut.threshold:  # type: ignore[union-attr]
            return
        if not line.startswith(b"data:"):
            self._declined = True
            return
        skip = 6 if line[5:6] == b" " else 5
        head = bytes(memoryview(line)[skip : skip + cut.window])  # type: ignore[union-attr]
        found = cut.start(head)  # type: ignore[union-attr]
        if found == UNDECIDED:
            return
        if not isinstance(found, tuple):
            self._declined = True
            return
        end = skip + found[0]
        value = bytes(memoryview(line)[end:])  # one copy (a bytearray slice is one more)
        del line[end:]
        self._cutting = True
        out.append(Cut(self._event.decode("utf-8", "replace"), found[1], b""))
        rest = self._cut_value(value, out)
        if rest:
            out += self._lines(rest)

    def _cut_value(self, chunk: bytes, out: list[Any]) -> bytes:
        """The value's bytes in ``chunk`` out as a :class:`Cut`; what follows its closing
        quote (b"" while it goes on) is returned for the usual reading, and the line then
        holds an empty value where the cut one was."""
        end = chunk.find(b'"')
        piece = chunk if end < 0 else chunk[:end]
        self._cut_size += len(piece)
        self._check(len(self._pending) + self._cut_size)
        data, self._carry = self._cut.piece(piece, self._carry)  # type: ignore[union-attr]
        if data:
            out.append(Cut("", None, data))
        if end < 0:
            return b""
        if self._carry:
            raise BadValue("the image ends in an escape")
        self._cutting = False
        self._data_size = self._cut_size  # the event's size counts the value passed on
        return chunk[end:]

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
        self._cut_size = 0
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
            self._cutting = False
            raise EventTooLarge(self._max)
