"""Which SSE data lines to pass on before they end, and the checks on what is passed on.

A streamed partial image is one ``data:`` line of tens of MB. Waiting for all of it before
the gateway writes anything makes the image cross loopback twice in a row; instead the
decoder (:class:`~codex_proxy.upstream.sse.SSEDecoder`, given a :class:`LargeValueCut`) hands
out the line's head and then the base64 value in pieces as they arrive. Only an event whose
head (everything before the value) is a complete, known JSON prefix is cut; anything else is
read whole, as before.
"""

from __future__ import annotations

import orjson

BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
"""What a base64 value may hold (its ``/`` may come JSON-escaped as ``\\/``)."""
UNDECIDED = -1
NEVER = -2


class BadValue(ValueError):
    """A cut value holds something that is not base64 (or JSON's ``\\/``)."""


class LargeValueCut:
    """Cut the string value of ``field`` out of data lines of the event ``types``.

    :meth:`start` decides on a line still arriving; :meth:`piece` checks each piece of the
    value as it comes. A line is cut only when the value's head is a JSON object prefix whose
    members so far parse, whose ``type`` is one of ``types`` and which has no ``field`` yet,
    so the part that is known before the value is exactly what the line says.
    """

    __slots__ = ("field", "head_limit", "threshold", "types", "window")

    def __init__(
        self,
        types: frozenset[str],
        field: str,
        *,
        threshold: int = 4 * 1024,
        head_limit: int = 64 * 1024,
    ) -> None:
        self.types = types
        self.field = b'"' + field.encode() + b'":"'
        # a line still arriving with less than this is left alone until more of it comes: a
        # small event split between two reads is not examined; an image starts out at once
        # (at 64 KB, waiting for a second read put the first byte out about 1 ms later)
        self.threshold = threshold
        self.head_limit = head_limit  # no value seen this far in: read the line whole
        self.window = head_limit + len(self.field) + 1  # what start() needs to see at most

    def start(self, payload: bytes | bytearray | memoryview) -> tuple[int, dict] | int:
        """For the data so far of a line (without ``data:``): where the value begins and the
        parsed head, or :data:`UNDECIDED` (read more), or :data:`NEVER` (read it whole)."""
        window = bytes(payload[: self.window])
        at = window.find(self.field)
        if at < 0 or at > self.head_limit:
            return UNDECIDED if len(payload) <= self.head_limit else NEVER
        begin = at + len(self.field)
        if begin >= len(payload):
            return UNDECIDED  # the value's first byte is not here yet
        if window[begin : begin + 1] == b'"':
            return NEVER  # an empty value: nothing to stream
        head = window[:at].rstrip()
        if not head.endswith(b","):
            return NEVER  # the field first, or not a member of the top object
        try:
            parsed = orjson.loads(head[:-1] + b"}")
        except orjson.JSONDecodeError:
            return NEVER  # inside a nested value, or not JSON at all
        kind = parsed.get("type") if isinstance(parsed, dict) else None
        if not isinstance(kind, str) or kind not in self.types:
            return NEVER
        if self.field[1:-3].decode() in parsed:
            return NEVER  # a second copy would win over the first: read it whole
        return begin, parsed

    @staticmethod
    def piece(data: bytes, carry: bytes) -> tuple[bytes, bytes]:
        """One piece of the value (``carry``: a ``\\`` the last piece ended in): its base64
        with ``\\/`` unescaped, and the new carry. Raises :class:`BadValue` on anything
        else."""
        if carry:
            data = carry + data
        left = data.translate(None, BASE64)  # one pass over plain base64, the usual case
        if not left:
            return data, b""
        if left.strip(b"\\"):
            raise BadValue("the image is not base64")
        carry = b""
        if data.endswith(b"\\") and not data.endswith(b"\\\\"):
            data, carry = data[:-1], b"\\"
        data = data.replace(b"\\/", b"/")
        if data.translate(None, BASE64):
            raise BadValue("the image is not base64")
        return data, carry
