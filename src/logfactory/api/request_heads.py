"""Bounds on a request's head (its request line and headers): how large, and how slow.

The API runs on uvicorn's h11 protocol, chosen here rather than left to uvicorn's ``auto``
(which takes httptools when it is installed): httptools has no bound on a head at all, and
h11's own bound (``max_incomplete_event_size``) counts only what is still unparsed, so a large
head that arrives in one read passes it, and it answers 400 with a warning logged per request.
Measured on the reference machine (keep-alive, one request at a time): httptools saves about
60 µs of the 280 µs a small JSON answer takes and about 100 µs of the 1.2 ms of a 20-message
topic tail; and h11 is what the node ran anyway, since httptools is not one of its
dependencies. So the node pins h11 and bounds heads itself, for every request alike:

* **size**: bytes received while a head is awaited (h11's ``their_state`` IDLE) are counted up
  to the blank line that ends the head; past ``max_header_bytes`` the request gets
  ``431 Request Header Fields Too Large`` and the connection is closed (counted as
  ``limited_header_bytes``). h11 is given the same bound, so what it buffers stays bounded
  even where this count cannot see (the start of a pipelined request that came in the same
  read as the end of the one before: it then answers 400 itself);
* **time**: a head must arrive whole within ``head_timeout`` (the listener's
  ``connection_idle_timeout``) of its first byte, else ``408 Request Timeout`` and the
  connection is closed (counted as ``connections_timed_out``). The idle timeout alone does not
  do it: it counts silence, and a head trickled a byte at a time is never silent.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["BoundedH11", "HeadBounds", "bounded_h11", "head_refusal"]

log = logging.getLogger(__name__)

_BLANK_LINE = re.compile(rb"\n\r?\n")  # the end of a head, as h11 finds it


def head_refusal(status: int, reason: str, error: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, in the API's error shape."""
    body = b'{"error": "' + error.encode() + b'"}'
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body


@dataclass(frozen=True)
class HeadBounds:
    """One listener's bounds: ``max_bytes`` per head, ``timeout`` seconds for one to arrive
    (0: none); ``count(counter)`` hears ``limited_header_bytes`` and ``connections_timed_out``."""

    max_bytes: int
    timeout: float
    count: Callable[[str], None] | None = None

    def too_large(self) -> bytes:
        error = f"the request line and headers are larger than {self.max_bytes} bytes"
        return head_refusal(431, "Request Header Fields Too Large", error)

    def too_slow(self) -> bytes:
        error = f"the request headers did not arrive within {self.timeout:g} s"
        return head_refusal(408, "Request Timeout", error)

    def tally(self, counter: str) -> None:
        if self.count is not None:
            self.count(counter)


class BoundedH11(H11Protocol):
    """uvicorn's h11 protocol under :attr:`bounds` (a subclass per listener sets them)."""

    bounds: ClassVar[HeadBounds]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head = 0  # bytes of the head awaited so far
        self._tail = b""  # its last two bytes: a blank line may span two reads
        self._head_timer: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and not self._within_bound(data):
            self.bounds.tally("limited_header_bytes")
            self._refuse(self.bounds.too_large())
            return
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE or not self._head:
            self._cancel_head_timer()
        elif self._head_timer is None and self.bounds.timeout > 0:
            self._head_timer = self.loop.call_later(self.bounds.timeout, self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _within_bound(self, data: bytes) -> bool:
        """Count ``data`` into the head awaited; False when the head is too large."""
        window = self._tail + data
        end = _BLANK_LINE.search(window)
        if end is not None:  # the head ends in this read: count up to its blank line
            size = self._head + end.end() - len(self._tail)
            self._head, self._tail = 0, b""
        else:
            size = self._head + len(data)
            self._head, self._tail = size, window[-2:]
        return size <= self.bounds.max_bytes

    def _head_late(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.bounds.tally("connections_timed_out")
            self._refuse(self.bounds.too_slow())

    def _refuse(self, response: bytes) -> None:
        self._cancel_head_timer()
        log.debug("refused a request head from %s: %r", self.client, response[:40])
        self.transport.write(response)
        self.transport.close()  # connection_lost tells the rest of uvicorn

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None


def bounded_h11(
    max_header_bytes: int, head_timeout: float, count: Callable[[str], None] | None = None
) -> type[BoundedH11]:
    """:class:`BoundedH11` under these bounds (see :class:`HeadBounds`): what
    ``uvicorn.Config(http=...)`` takes, or what a wrapper of it builds."""
    bounds = HeadBounds(max_header_bytes, head_timeout, count)
    return type("BoundedH11", (BoundedH11,), {"bounds": bounds})
