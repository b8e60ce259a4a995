"""Syslog-over-TCP framing (RFC 6587) as a pure state machine: bytes in, frames out.

Kept free of I/O so that every edge (a count split across reads, a frame larger than allowed, a
sender that lies about its count) is unit-testable, and so that a TCP connection's cost is one
``feed`` per read instead of one call per line.

Framing is detected once per connection from its first byte:

* a digit: **octet counting** (``LEN SP MSG``). Bytes between frames that are LF, CR, NUL or SP
  are skipped (some senders put a newline after a counted frame). One trailing LF (and a CR
  before it) inside the counted frame is stripped: rsyslog's count includes its newline. A frame
  that starts with a non-digit (typically ``<`` of a syslog header) means the sender is not
  counting after all: the connection switches to newline framing for good and nothing is lost.
  A *bad count* (digits followed by something other than SP, a zero count, or more digits than
  ``max_frame_bytes`` could ever need plus two) cannot be trusted to find the next frame: it is
  rejected, the bytes up to the next LF or NUL are discarded, and detection starts again there.
* anything else: **non-transparent framing**: frames end at LF or NUL; a CR before the LF is
  stripped and empty frames are ignored.

A frame longer than ``max_frame_bytes`` is rejected (counted, reported to ``on_reject``) and
never buffered. A newline-framed one is discarded up to the next delimiter. An octet count above
the limit *breaks* the stream (``broken`` is set, the connection's owner closes it): skipping the
count would pass up to ~1 GB (nine digits) of whatever follows unseen, every frame in it lost
without a count, and a sender that lies about its count is not one whose next frame can be
trusted. Memory per connection is therefore bounded by ``max_frame_bytes`` plus one read.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["FrameDecoder"]

_DETECT, _OCTET, _LINE = 0, 1, 2
_GAP = b"\n\r\0 "
_DIGITS = frozenset(b"0123456789")


class FrameDecoder:
    """Splits one TCP connection's byte stream into syslog frames.

    ``feed(data)`` returns the complete frames found so far (bytes, delimiters and the octet
    count removed). ``close()`` returns what is left when the peer closes: ``(frame, truncated)``
    or ``None``. ``rejected`` counts rejected frames; ``on_reject(reason)`` hears about each.
    ``detect=False`` skips detection and frames by newline from the first byte (raw lines, where a
    line that happens to start with ``12 <`` is not a count). ``broken`` is the reason the stream
    cannot be framed any further (an octet count above the limit): the owner must close the
    connection; ``feed`` then returns nothing more.
    """

    __slots__ = (
        "_buf",
        "_count_digits",
        "_discard_line",
        "_need",
        "_state",
        "broken",
        "max_frame_bytes",
        "mode",
        "on_reject",
        "rejected",
    )

    def __init__(
        self,
        max_frame_bytes: int = 1_048_576,
        on_reject: Callable[[str], None] | None = None,
        *,
        detect: bool = True,
    ) -> None:
        if max_frame_bytes < 1:
            raise ValueError("max_frame_bytes must be at least 1")
        self.max_frame_bytes = max_frame_bytes
        self.on_reject = on_reject
        self.rejected = 0
        self.broken: str | None = None
        self.mode: str | None = None if detect else "newline"  # "octet" or "newline"
        self._state = _DETECT if detect else _LINE
        self._buf = b""
        self._need = -1  # octet mode: length of the frame being read, -1 while reading the count
        self._discard_line = False  # discard up to the next LF/NUL
        self._count_digits = len(str(max_frame_bytes)) + 2

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        if self.on_reject is not None:
            self.on_reject(reason)

    # -- the state machine -----------------------------------------------------------------
    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        if not data or self.broken is not None:
            return out
        if self._state == _LINE:
            self._feed_lines(data, out)
            return out
        if self._state == _DETECT:
            data = (self._buf + data).lstrip(_GAP)
            self._buf = b""
            if not data:
                return out
            # octet counting is ``LEN SP <PRI>...``; a raw line may start with digits too
            # (``2026-11-22 ...``, epoch stamps), so look past them before deciding
            # (a valid count has fewer digits than ``cap``: more means a raw line)
            cap = self._count_digits - 1
            run = 0
            limit = min(len(data), cap)
            while run < limit and data[run] in _DIGITS:
                run += 1
            if run and run + 2 > len(data) and run < cap:
                self._buf = data  # not enough bytes yet for the ones that decide
                return out
            if run and data[run : run + 2] == b" <":
                self._state = _OCTET
                self.mode = "octet"
            else:
                self._state = _LINE
                self.mode = "newline"
                self._feed_lines(data, out)
                return out
        self._feed_octets(data, out)
        return out

    def _feed_lines(self, data: bytes, out: list[bytes]) -> None:
        if b"\0" in data:
            data = data.replace(b"\0", b"\n")
        if self._discard_line:
            cut = data.find(b"\n")
            if cut < 0:
                return
            self._discard_line = False
            data = data[cut + 1 :]
        buf = self._buf + data if self._buf else data
        parts = buf.split(b"\n")
        rest = parts.pop()
        limit = self.max_frame_bytes
        for part in parts:
            if part and part[-1] == 13:  # CR before LF
                part = part[:-1]
            if not part:
                continue
            if len(part) > limit:
                self._reject(f"frame of {len(part)} bytes exceeds max_frame_bytes={limit}")
                continue
            out.append(part)
        # a CR at the end of the read may be the one of a CRLF: it does not count yet
        if len(rest) > limit and not (len(rest) == limit + 1 and rest[-1] == 13):
            self._reject(f"frame longer than max_frame_bytes={limit}; skipped to its end")
            self._discard_line = True
            rest = b""
        self._buf = rest

    def _feed_octets(self, data: bytes, out: list[bytes]) -> None:
        buf = self._buf + data if self._buf else data
        self._buf = b""
        pos = 0
        end = len(buf)
        limit = self.max_frame_bytes
        while pos < end:
            if self._discard_line:
                cut = _find_delim(buf, pos)
                if cut < 0:
                    return
                self._discard_line = False
                pos = cut + 1
                continue
            if self._need < 0:
                while pos < end and buf[pos] in _GAP:
                    pos += 1
                if pos >= end:
                    return
                if buf[pos] not in _DIGITS:
                    # not a count at all: the sender frames by newline; keep every byte
                    self._state = _LINE
                    self.mode = "newline"
                    self._feed_lines(buf[pos:], out)
                    return
                sp = buf.find(b" ", pos, pos + self._count_digits + 1)
                if sp < 0:
                    if end - pos <= self._count_digits and buf[pos:end].isdigit():
                        self._buf = buf[pos:]  # the count continues in the next read
                        return
                    self._bad_count(buf[pos : pos + 16])
                    continue
                digits = buf[pos:sp]
                if not digits.isdigit() or int(digits) == 0:
                    self._bad_count(buf[pos : sp + 1])
                    continue
                length = int(digits)
                pos = sp + 1
                if length > limit:
                    self.broken = (
                        f"octet count {length} exceeds max_frame_bytes={limit}; connection closed"
                    )
                    self._reject(self.broken)
                    self._buf = b""
                    return
                self._need = length
            need = self._need
            if end - pos < need:
                self._buf = buf[pos:]
                return
            frame = buf[pos : pos + need]
            pos += need
            self._need = -1
            if frame[-1:] == b"\n":
                frame = frame[:-2] if frame[-2:] == b"\r\n" else frame[:-1]
            if frame:
                out.append(frame)

    def _bad_count(self, sample: bytes) -> None:
        self._reject(f"bad octet count {sample!r}; skipping to the next newline")
        self._discard_line = True

    def close(self) -> tuple[bytes, bool] | None:
        """What the peer left unfinished. An octet-counted frame cut short comes back with
        ``truncated=True``; an unterminated newline-framed last line is complete as far as anyone
        can tell (many senders omit the final LF), so it comes back with ``truncated=False``."""
        buf, self._buf = self._buf, b""
        if self._discard_line or self.broken is not None:
            return None
        if self._state == _DETECT:  # a few digits (and one byte) that never got decided
            buf = buf.split(b"\n", 1)[0].split(b"\0", 1)[0]
            if len(buf) > self.max_frame_bytes:
                self._reject(f"frame of {len(buf)} bytes exceeds max_frame_bytes")
                return None
        elif self._state == _OCTET:
            if self._need < 0 or not buf:
                return None  # at most part of a count: there is no message
            return buf, True
        if buf.endswith(b"\r"):
            buf = buf[:-1]
        return (buf, False) if buf else None


def _find_delim(buf: bytes, start: int) -> int:
    """Index of the first LF or NUL at or after ``start``, or -1."""
    lf = buf.find(b"\n", start)
    nul = buf.find(b"\0", start, lf if lf >= 0 else len(buf))
    return nul if nul >= 0 else lf
