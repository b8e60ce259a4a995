"""RELP framing (librelp's ``doc/relp.md``) as a pure state machine: bytes in, frames out.

A frame is ``TXNR SP COMMAND SP DATALEN [SP DATA] LF``: TXNR 1-9 digits, COMMAND 1-32 letters,
DATALEN 1-9 digits, DATA exactly DATALEN bytes (and no SP before the LF when DATALEN is 0).
Kept free of I/O, like :mod:`.framing`, so that every edge is unit-testable.

What a server must refuse, as librelp's own server does, because the stream can no longer be
trusted to find the next frame: a TXNR that is not the next one of the session (1, 2, ...,
999,999,999, then 1 again; 0 is a hint, which is not counted), a header that is not of that
shape, a byte other than LF after DATALEN bytes of data (the count lied), and a DATALEN above
the limit (``max_frame_bytes`` for ``syslog``, :data:`OTHER_MAX` for the small commands), which
is refused from the header alone, before any of the data is buffered. The decoder then keeps
the :class:`RelpError` in ``error`` and reads nothing more; the frames before the break are still
returned, and the connection ends once they are answered (the spec's error handling: close, no
repair).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from logfactory.errors import RelpError

__all__ = [
    "OTHER_MAX",
    "SERVERCLOSE",
    "Frame",
    "RelpDecoder",
    "RelpError",
    "open_answer",
    "parse_offers",
    "rsp",
]

MAX_TXNR = 999_999_999
OTHER_MAX = 65_536  # open offers, close, unknown commands: small by nature
SERVERCLOSE = b"0 serverclose 0\n"  # the hint a server sends before it closes a session

_HEADER = re.compile(rb"(\d{1,9}) ([A-Za-z]{1,32}) (\d{1,9})([ \n])")
# what a header cut short by the end of a read may still become
_PARTIAL = re.compile(rb"\d{0,9}(?: [A-Za-z]{0,32}(?: \d{0,9})?)?")
_HEADER_MAX = 9 + 1 + 32 + 1 + 9 + 1


class Frame(NamedTuple):
    txnr: int
    command: str
    data: bytes


class RelpDecoder:
    """Splits one connection's byte stream into :class:`Frame` s, checking TXNR order.

    Memory is bounded by the largest allowed frame plus one read: a frame's data is waited for
    only once its header has said how much is coming and that this is allowed."""

    __slots__ = ("_buf", "error", "expect", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.expect = 1  # the TXNR the next command must carry
        self.error: RelpError | None = None  # set once the stream broke; nothing is read after
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data``; after a break (``error``), only those before it."""
        if self.error is not None:
            return []
        buf = self._buf
        buf += data
        out: list[Frame] = []
        pos = 0
        try:
            while pos < len(buf):
                m = _HEADER.match(buf, pos)
                if m is None:
                    self._check_partial(buf, pos)
                    break
                command = m.group(2).decode("ascii")
                length = int(m.group(3))
                limit = self.max_frame_bytes if command == "syslog" else OTHER_MAX
                if length > limit:
                    raise RelpError(
                        f"DATALEN {length} of a {command!r} frame exceeds the limit of {limit}"
                    )
                sep = m.group(4)
                if (length == 0) != (sep == b"\n"):
                    raise RelpError("DATALEN 0 must be followed by LF, any other by SP and data")
                start = m.end()
                end = start + length
                if length == 0:
                    body = b""
                    end = start - 1  # the LF was the separator
                elif len(buf) <= end:
                    break  # the data (or its trailer) is still on its way
                else:
                    if buf[end] != 0x0A:
                        raise RelpError(
                            f"no LF after the {length} bytes of data of TXNR {m.group(1).decode()}"
                            " (DATALEN does not match the data)"
                        )
                    body = bytes(buf[start:end])
                out.append(Frame(self._txnr(int(m.group(1))), command, body))
                pos = end + 1
        except RelpError as exc:
            self.error = exc
            buf.clear()
            return out
        del buf[:pos]
        return out

    def _txnr(self, txnr: int) -> int:
        if txnr == 0:
            return 0  # a hint: not part of the numbering
        if txnr != self.expect:
            raise RelpError(f"TXNR {txnr} where {self.expect} was due")
        self.expect = 1 if txnr == MAX_TXNR else txnr + 1
        return txnr

    @staticmethod
    def _check_partial(buf: bytearray, pos: int) -> None:
        """Raise unless the bytes from ``pos`` on may still become a header."""
        rest = bytes(buf[pos : pos + _HEADER_MAX + 1])
        if len(rest) <= _HEADER_MAX and _PARTIAL.fullmatch(rest):
            return
        shown = rest[:40].decode("ascii", "backslashreplace")
        raise RelpError(f"not a RELP header (TXNR SP COMMAND SP DATALEN): {shown!r}")

    def pending(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buf)


def rsp(txnr: int, text: bytes) -> bytes:
    """The ``rsp`` frame answering command ``txnr`` with ``text`` (``200 OK``, ``500 ...``)."""
    if not text:
        return b"%d rsp 0\n" % txnr
    return b"%d rsp %d %s\n" % (txnr, len(text), text)


def parse_offers(data: bytes) -> dict[str, list[str]]:
    """``name=value,value`` lines of an ``open`` command -> {name: values}."""
    out: dict[str, list[str]] = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        if not line:
            continue
        name, _, values = line.partition("=")
        out[name.strip()] = [v for v in values.split(",") if v]
    return out


def open_answer(data: bytes, software: str) -> tuple[bytes, bool]:
    """The data of the ``rsp`` to an ``open`` with offers ``data``, and whether the session may
    go on. Like librelp's server: a ``relp_version`` offer is required (we speak version 0, the
    one rsyslog uses), and the client must offer the ``syslog`` command, the only one served."""
    offers = parse_offers(data)
    version = offers.get("relp_version")
    if not version or not version[0].isdigit():
        return b"500 the open offers no relp_version", False
    if "syslog" not in offers.get("commands", []):
        return b"500 required command not supported by client", False
    text = f"200 OK\nrelp_version=0\nrelp_software={software}\ncommands=syslog"
    return text.encode(), True
