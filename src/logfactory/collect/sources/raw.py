"""The raw line source: newline-delimited lines over TCP, UDP and (optionally) TLS.

Raw means raw: a line is never read as syslog. ``Record.host`` is the peer's IP address and
``meta`` keeps ``peer`` (``IP:PORT``) and ``transport`` (``tcp``, ``udp`` or ``tls``). Streams
are framed by LF (or NUL) from the first byte, a CR before the LF is dropped and empty lines are
skipped; a UDP datagram may carry several lines. A line longer than ``max_frame_bytes`` is a
counted rejection, skipped without being buffered.

Everything else (listeners, TLS, backpressure, UDP drop counting, stop semantics) is the syslog
listener's, which this class specialises through its hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from logfactory.collect.sources.framing import FrameDecoder
from logfactory.collect.sources.syslog import SyslogSource
from logfactory.record import make_record

__all__ = ["RawSource"]

_MAX_DATAGRAM = 65536  # larger than any UDP payload: a full buffer cannot happen


class RawSource(SyslogSource):
    """Listens on ``listen`` for ``protocols`` and on ``tls_listen``; one Record per line."""

    kind: ClassVar[str] = "raw"

    def new_decoder(self, on_reject: Callable[[str], None]) -> FrameDecoder:
        return FrameDecoder(self.max_frame_bytes, on_reject, detect=False)

    def udp_bufsize(self) -> int:
        # a datagram holds lines, each bounded on its own: read all of it
        return _MAX_DATAGRAM

    def on_datagrams(self, grams: list[tuple[bytes, Any]], bufsize: int) -> None:
        limit = self.max_frame_bytes
        for data, addr in grams:
            ip = str(addr[0])
            peer = f"{ip}:{addr[1]}"
            if b"\0" in data:
                data = data.replace(b"\0", b"\n")
            for line in data.split(b"\n") if b"\n" in data else (data,):
                if line[-1:] == b"\r":
                    line = line[:-1]
                if not line:
                    continue
                if len(line) > limit:
                    self.reject(f"line of {len(line)} bytes exceeds max_frame_bytes={limit}", peer)
                    continue
                self.push(line, ip, {"peer": peer, "transport": "udp"})

    def push(self, frame: bytes, peer_ip: str, meta: dict[str, Any]) -> None:
        self._queue.append(make_record(self.tag, peer_ip, frame, meta, self._clock()))
        self._wake.set()
