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

from logfactory.factory.model import DecodedParts, DecodeError
from logfactory.factory.workshops.base import Workshop, check_raw
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
# the common case in one match: [<PRI>]Mmm dd hh:mm:ss host prog[pid]: msg
_FAST3164 = re.compile(
    rf"(?:<([0-9]{{1,3}})>)?({_MON}) +([0-9]{{1,2}}) ([0-9]{{2}}):([0-9]{{2}}):([0-9]{{2}})"
    r"(?:\.([0-9]{1,9}))? +([^\s:\[\]]+) ([^\s\[\]:]+)(?:\[([^\]\s]*)\])?:(?: |(?=\s)|\Z)",
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

    def __init__(self, name: str, tz: tzinfo) -> None:
        self.name = name
        self._tz = tz
        self._delegates: dict[str, Workshop] = {}

    def set_delegates(self, delegates: dict[str, Workshop]) -> None:
        """Programs whose messages another workshop decodes (``delegate:`` in the config)."""
        self._delegates = dict(delegates)

    def decode(self, record: Record) -> DecodedParts:
        check_raw(record)
        line = record.line
        if line.endswith(("\n", "\r")):
            line = line.rstrip("\r\n")
        first, nl, tail = line.partition("\n")
        while nl and not first.strip():  # a merged record may start with blank lines
            first, nl, tail = tail.partition("\n")
        time_ns, message, fields = self._parse_line(first, record.host, record.received)
        program = fields.get("program")
        if program == "kernel":
            message = self._strip_uptime(message, fields)
        if nl:
            message = self._join_tail(message, tail, program == "kernel")
        if self._delegates and program is not None:
            target = self._delegates.get(program)
            if target is not None:
                return target.decode_message(message, fields, time_ns)
        return DecodedParts(self.name, time_ns, message, fields)

    def decode_message(
        self, message: str, fields: dict[str, Any], default_time_ns: int
    ) -> DecodedParts:
        out = dict(fields)
        if out.get("program") == "kernel":
            message = self._strip_uptime(message, out)
        return DecodedParts(self.name, default_time_ns, message, out)

    # -- parsing ---------------------------------------------------------------------------
    def _parse_line(self, line: str, host: str, received: int) -> tuple[int, str, dict[str, Any]]:
        fast = _FAST3164.match(line)
        if fast is not None:
            pri_text, mon, day, hh, mm, ss, frac, hostname, program, pid = fast.groups()
            if pri_text is None or len(pri_text) < 3 or int(pri_text) <= 191:
                time_ns = resolve_yearless(
                    self._tz, received, MONTHS[mon], NUMBERS[day], NUMBERS[hh], NUMBERS[mm],
                    NUMBERS[ss], int(frac.ljust(9, "0")) if frac else 0,
                )  # fmt: skip
                fields: dict[str, Any] = {"host": hostname, "program": program}
                if pid:
                    fields["pid"] = int(pid) if pid.isdigit() and pid.isascii() else pid
                if pri_text is not None:
                    pri = int(pri_text)
                    fields["facility"] = FACILITIES[pri >> 3]
                    fields["level"] = SEVERITIES[pri & 7]
                return received if time_ns is None else time_ns, line[fast.end() :], fields
        return self._parse_general(line, host, received)

    def _parse_general(
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
