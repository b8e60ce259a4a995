"""Syslog workshop: RFC 3164 (with or without PRI, hostname or RFC 3339 time) and RFC 5424.

Forms recognised, all common in the field:

* ``<PRI>Mmm dd hh:mm:ss host prog[pid]: msg`` (RFC 3164), PRI absent in tailed /var/log files,
  hostname absent in what local programs send to /dev/log;
* ``<PRI>2026-11-21T22:38:28.123456+01:00 host prog: msg`` (rsyslog's forward format);
* ``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD...] MSG`` (RFC 5424, structured data, BOM).

Leniency (a deliberate choice: real-world syslog is messy and losing a line is worse than
decoding it loosely): a line without a recognisable header still decodes, with the whole line as
the message. Only empty lines, and header-less lines containing control characters (binary
garbage on a syslog port), raise :class:`DecodeError`. A timestamp that names no real date
(``Feb 30``) falls back to the receive time.

Multi-line records merged by the sort stage (a stack trace sent line by line through syslog)
arrive as lines joined by ``\\n``; the header of every following line is removed from the
message, so the message reads like the original trace.
"""

from __future__ import annotations

import re
from datetime import tzinfo
from typing import Any

from logfactory.config import WorkshopConfig
from logfactory.factory.model import DecodedParts, DecodeError
from logfactory.factory.workshops.base import Workshop, record_text
from logfactory.factory.workshops.timeparse import MONTHS, NUMBERS, parse_iso, resolve_yearless
from logfactory.record import Record

__all__ = ["FACILITIES", "SEVERITIES", "SyslogWorkshop"]

FACILITIES: tuple[str, ...] = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "audit", "alert", "clock",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITIES: tuple[str, ...] = (
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
)  # fmt: skip

_A = re.ASCII
_PRI = re.compile(r"<([0-9]{1,3})>")
_MON = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_TS3164 = re.compile(
    rf"({_MON}) +([0-9]{{1,2}}) ([0-9]{{2}}):([0-9]{{2}}):([0-9]{{2}})"
    r"(?:\.([0-9]{1,9}))?(?: +|$)",
    _A,
)
_TS_ISO = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})?)(?: +|$)",
    _A,
)
# the common case in one match: [<PRI>]Mmm dd hh:mm:ss host prog[pid]: msg; the time without
# its fraction is one group, the key of the per-workshop time cache. The possessive quantifiers
# only stand where the next element needs a character the quantified one cannot take (they
# change no match, they only spare the engine backtracking it cannot profit from).
_FAST3164 = re.compile(
    rf"(?:<([0-9]{{1,3}})>)?((?:{_MON}) ++[0-9]{{1,2}}+ [0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}})"
    r"(?:\.([0-9]{1,9}+))?+ ++([^\s:\[\]]++) ([^\s\[\]:]++)(?:\[([^\]\s]*+)\])?+:"
    r"(?: |(?=\s)|\Z)",
    _A,
)
_RFC5424 = re.compile(r"1 (\S+) (\S+) (\S+) (\S+) (\S+)", _A)
_TAG = re.compile(r"([^\s\[\]:]+)(?:\[([^\]\s]*)\])?:(?: |(?=\s)|\Z)", _A)
# the header repeated on every line of a trace that was sent line by line
_CONT_HEADER = re.compile(
    rf"(?:<[0-9]{{1,3}}>)?(?:(?:{_MON}) +[0-9]{{1,2}} [0-9:]{{8}}(?:\.[0-9]+)?"
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}T\S+) +(?:\S+ +)?[^\s\[\]:]+(?:\[[^\]\s]*\])?: ?",
    _A,
)
_UPTIME = re.compile(r"\[ *([0-9]+\.[0-9]+)\] ?", _A)
_SD_ID = re.compile(r'\[([^\s=\]"]+)', _A)
_SD_PARAM = re.compile(r' +([^\s=\]"]+)="((?:[^"\\]|\\.)*)"', re.S | _A)
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# PRI text -> (facility, level) for every PRI the fast path accepts (<= 191, any zero padding)
_PRI_NAMES: dict[str, tuple[str, str]] = {
    text: (FACILITIES[pri >> 3], SEVERITIES[pri & 7])
    for pri in range(192)
    for text in {str(pri), f"{pri:02d}", f"{pri:03d}"}
}
_HOUR_NS = 3600 * 1_000_000_000
_CACHE_SIZE = 4096
_new_parts = tuple.__new__  # DecodedParts without its Python-level __new__ (hot path)


def _parse_sd(line: str, i: int) -> tuple[dict[str, dict[str, str]], int] | None:
    """RFC 5424 structured data from ``line[i] == '['``: SD-ID -> params, and the end index."""
    sd: dict[str, dict[str, str]] = {}
    n = len(line)
    while i < n and line[i] == "[":
        m = _SD_ID.match(line, i)
        if m is None:
            return None
        params = sd.setdefault(m.group(1), {})
        i = m.end()
        while True:
            if line.startswith("]", i):
                i += 1
                break
            p = _SD_PARAM.match(line, i)
            if p is None:
                return None
            value = p.group(2)
            if "\\" in value:
                value = _SD_UNESCAPE.sub(r"\1", value)
            params[p.group(1)] = value
            i = p.end()
    return sd, i


class SyslogWorkshop:
    """Decodes syslog lines; see the module docstring for the forms and the leniency rules.

    Fields: ``host``, ``program``, ``pid`` (int when numeric), ``facility`` and ``level``
    (names, only when the line has a PRI), ``msgid`` and ``sd`` (RFC 5424, when present),
    ``uptime`` (float, kernel lines ``[  123.456789] ...``).
    """

    def __init__(self, name: str, ws: WorkshopConfig, tz: tzinfo) -> None:
        # ``ws``: the registry's signature; delegation is wired by set_delegates
        self.name = name
        self._tz = tz
        self._delegates: dict[str, Workshop] = {}
        # "Mmm dd hh:mm:ss" -> UTC ns (or None: no real date) for receive hour _times_hour: the
        # year-less resolution depends only on the text and the receive hour, and the lines of
        # one second share their text
        self._times: dict[str, int | None] = {}
        self._times_hour = -1
        self._pids: dict[str, int | str] = {}

    def set_delegates(self, delegates: dict[str, Workshop]) -> None:
        """Programs whose messages another workshop decodes (``delegate:`` in the config)."""
        self._delegates = dict(delegates)

    # hot path (every syslog record; the factory's hottest code): kept inline, one call
    def decode(self, record: Record) -> DecodedParts:  # noqa: C901
        line = record_text(record)
        first, nl, tail = line.partition("\n")
        while nl and not first.strip():  # a merged record may start with blank lines
            first, nl, tail = tail.partition("\n")
        fields: dict[str, Any]
        # the common RFC 3164 header, inline (this is the hottest code of the factory)
        fast = _FAST3164.match(first)
        if fast is not None:
            pri_text, stamp, frac, hostname, program, pid = fast.groups()
            names = _PRI_NAMES.get(pri_text) if pri_text is not None else None
            if pri_text is not None and names is None:  # > 191 is no PRI: the general parser
                fast = None
        if fast is None:
            time_ns, message, fields = self._parse_general(first, record.host, record.received)
            program = fields.get("program")
        else:
            received = record.received
            hour = received // _HOUR_NS
            if hour != self._times_hour:
                self._times = {}
                self._times_hour = hour
            resolved = self._times.get(stamp, -1)
            if resolved == -1:
                resolved = self._resolve_stamp(stamp, received)
            if resolved is None:
                time_ns = received
            elif frac:  # the cached time is whole seconds: adding < 1 s stays within the bounds
                time_ns = resolved + int(frac.ljust(9, "0"))
            else:
                time_ns = resolved
            fields = {"host": hostname, "program": program}
            if pid:
                value = self._pids.get(pid)
                if value is None:
                    if len(self._pids) >= _CACHE_SIZE:
                        self._pids = {}
                    value = self._pids[pid] = int(pid) if pid.isdigit() and pid.isascii() else pid
                fields["pid"] = value
            if names is not None:
                fields["facility"], fields["level"] = names
            message = first[fast.end() :]
        if program == "kernel":
            message = self._strip_uptime(message, fields)
        if nl:
            message = self._join_tail(message, tail, program == "kernel")
        if self._delegates and program is not None:
            target = self._delegates.get(program)
            if target is not None:
                return target.decode_message(message, fields, time_ns)
        parts: DecodedParts = _new_parts(DecodedParts, (self.name, time_ns, message, fields))
        return parts

    def decode_message(
        self, message: str, fields: dict[str, Any], default_time_ns: int
    ) -> DecodedParts:
        out = dict(fields)
        if out.get("program") == "kernel":
            message = self._strip_uptime(message, out)
        return DecodedParts(self.name, default_time_ns, message, out)

    # -- parsing ---------------------------------------------------------------------------
    def _resolve_stamp(self, stamp: str, received: int) -> int | None:
        """``Mmm dd hh:mm:ss`` (as :data:`_FAST3164` matched it) -> UTC ns, or None; cached
        for the receive hour of ``received`` (the caller has reset the cache for that hour)."""
        mon, day, clock = stamp.split()
        resolved = resolve_yearless(
            self._tz, received, MONTHS[mon], NUMBERS[day], NUMBERS[clock[0:2]],
            NUMBERS[clock[3:5]], NUMBERS[clock[6:8]],
        )  # fmt: skip
        if len(self._times) >= _CACHE_SIZE:
            self._times = {}
        self._times[stamp] = resolved
        return resolved

    # hot path (each syslog record the inline RFC 3164 header in decode does not match)
    def _parse_general(  # noqa: C901
        self, line: str, host: str, received: int
    ) -> tuple[int, str, dict[str, Any]]:
        pos = 0
        pri = -1
        if line.startswith("<"):
            m = _PRI.match(line)
            if m is not None and int(m.group(1)) <= 191:
                pri = int(m.group(1))
                pos = m.end()
                if line.startswith("1 ", pos):
                    parsed = self._parse_5424(line, pos, pri, host, received)
                    if parsed is not None:
                        return parsed
        time_ns = received
        has_time = True
        ts = _TS3164.match(line, pos)
        if ts is not None:
            mon, day, hh, mm, ss, frac = ts.groups()
            resolved = resolve_yearless(
                self._tz, received, MONTHS[mon], NUMBERS[day], NUMBERS[hh], NUMBERS[mm],
                NUMBERS[ss], int(frac.ljust(9, "0")) if frac else 0,
            )  # fmt: skip
            if resolved is not None:
                time_ns = resolved
            pos = ts.end()
        else:
            ts = _TS_ISO.match(line, pos)
            if ts is not None:
                iso_ns = parse_iso(ts.group(1), self._tz)
                if iso_ns is not None:
                    time_ns = iso_ns
                pos = ts.end()
            else:
                has_time = False
                if pri < 0:
                    if not line.strip():
                        raise DecodeError("empty line")
                    if _CONTROL.search(line) is not None:
                        raise DecodeError(f"not a syslog line: {line[:60]!r}")
        fields: dict[str, Any] = {"host": host}
        tag = _TAG.match(line, pos)
        if tag is None and has_time:
            space = line.find(" ", pos)
            if space < 0:
                if pos < len(line):
                    fields["host"] = line[pos:]
                pos = len(line)
            else:
                fields["host"] = line[pos:space]
                pos = space + 1
                tag = _TAG.match(line, pos)
        if tag is not None:
            program, pid = tag.groups()
            fields["program"] = program
            if pid:
                fields["pid"] = int(pid) if pid.isdigit() and pid.isascii() else pid
            pos = tag.end()
        if pri >= 0:
            fields["facility"] = FACILITIES[pri >> 3]
            fields["level"] = SEVERITIES[pri & 7]
        return time_ns, line[pos:], fields

    def _parse_5424(
        self, line: str, pos: int, pri: int, host: str, received: int
    ) -> tuple[int, str, dict[str, Any]] | None:
        m = _RFC5424.match(line, pos)
        if m is None:
            return None
        ts, hostname, app, procid, msgid = m.groups()
        time_ns = received
        if ts[:4].isdigit():
            parsed = parse_iso(ts, self._tz)
            if parsed is not None:
                time_ns = parsed
        elif ts != "-":
            return None  # "<13>1 word ..." is a 3164 message that starts with "1"
        fields: dict[str, Any] = {"host": host if hostname == "-" else hostname}
        if app != "-":
            fields["program"] = app
        if procid != "-":
            fields["pid"] = int(procid) if procid.isdigit() and procid.isascii() else procid
        fields["facility"] = FACILITIES[pri >> 3]
        fields["level"] = SEVERITIES[pri & 7]
        if msgid != "-":
            fields["msgid"] = msgid
        i = m.end()
        if line.startswith(" -", i):
            i += 2
        elif line.startswith(" [", i):
            sd = _parse_sd(line, i + 1)
            if sd is not None:
                fields["sd"], i = sd
        if line.startswith(" ", i):
            i += 1
        message = line[i:]
        if message.startswith("\ufeff"):
            message = message[1:]
        return time_ns, message, fields

    @staticmethod
    def _strip_uptime(message: str, fields: dict[str, Any]) -> str:
        if message.startswith("["):
            m = _UPTIME.match(message)
            if m is not None:
                fields["uptime"] = float(m.group(1))
                return message[m.end() :]
        return message

    @staticmethod
    def _join_tail(message: str, tail: str, kernel: bool) -> str:
        parts = [message]
        for line in tail.split("\n"):
            m = _CONT_HEADER.match(line)
            if m is not None:
                line = line[m.end() :]
            if kernel and line.startswith("["):
                u = _UPTIME.match(line)
                if u is not None:
                    line = line[u.end() :]
            parts.append(line)
        return "\n".join(parts)
