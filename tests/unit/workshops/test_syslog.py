"""Syslog workshop: RFC 3164 / 5424 in the forms real peers send, times, delegation, leniency."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from logfactory.config import parse_config
from logfactory.factory.model import DecodedParts, DecodeError
from logfactory.factory.workshops import Workshop, build_workshops
from logfactory.record import Record, make_record

CONFIG = """
node: {timezone: Europe/Berlin}
workshops:
  syslog:
    format: syslog
    delegate: {slurmctld: slurm, scemw: sce, jsonapp: json}
  utc_syslog: {format: syslog, timezone: UTC}
  slurm: {format: slurm}
  sce: {format: kv, fields: [time, host, user, addr, op, params], time_field: time}
  json: {format: json}
"""
BERLIN = ZoneInfo("Europe/Berlin")
WORKSHOPS = build_workshops(parse_config(CONFIG))


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


RECEIVED = ns(datetime(2026, 11, 21, 22, 38, 30, tzinfo=BERLIN))


def decode(line: str | bytes, workshop: str = "syslog", received: int = RECEIVED) -> DecodedParts:
    ws: Workshop = WORKSHOPS[workshop]
    return ws.decode(make_record("syslog", "collector01", line, received=received))


def test_rfc3164_with_pri_names_facility_and_level() -> None:
    parts = decode("<38>Nov 21 22:38:28 login01 sshd[4242]: Accepted password for usr1 from "
                   "159.226.3.7 port 52314 ssh2")  # fmt: skip
    assert parts.workshop == "syslog"
    assert parts.message == "Accepted password for usr1 from 159.226.3.7 port 52314 ssh2"
    assert parts.fields == {
        "host": "login01", "program": "sshd", "pid": 4242, "facility": "auth", "level": "info",
    }  # fmt: skip
    assert parts.time_ns == ns(datetime(2026, 11, 21, 22, 38, 28, tzinfo=BERLIN))


def test_tailed_file_line_has_no_pri_and_program_with_parentheses() -> None:
    parts = decode("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; "
                   "logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4 ")  # fmt: skip
    assert parts.fields == {"host": "combo", "program": "sshd(pam_unix)", "pid": 19939}
    assert parts.message.startswith("authentication failure; logname=")
    assert parts.time_ns == ns(datetime(2026, 6, 14, 15, 16, 1, tzinfo=BERLIN))


def test_single_digit_day_is_space_padded() -> None:
    parts = decode("<86>Nov  2 03:04:05 login01 CRON[77]: pam_unix(cron:session): session opened")
    assert parts.fields["program"] == "CRON"
    assert parts.fields["facility"] == "authpriv"
    assert parts.time_ns == ns(datetime(2026, 11, 2, 3, 4, 5, tzinfo=BERLIN))


def test_line_without_hostname_takes_the_collecting_host() -> None:
    parts = decode("<13>Nov 21 22:38:28 su: (to root) usr1 on pts/0")
    assert parts.fields == {
        "host": "collector01", "program": "su", "facility": "user", "level": "notice",
    }  # fmt: skip
    assert parts.message == "(to root) usr1 on pts/0"


def test_rsyslog_forward_format_rfc3339_inside_3164_framing() -> None:
    parts = decode("<14>2026-11-21T22:38:28.123456+01:00 login01 relayed: relayed from udp")
    assert parts.fields["host"] == "login01"
    assert parts.fields["program"] == "relayed"
    assert parts.message == "relayed from udp"
    assert parts.time_ns == ns(datetime(2026, 11, 21, 21, 38, 28, 123456, tzinfo=UTC))


def test_rfc5424_with_structured_data_escapes_and_bom() -> None:
    line = (
        '<165>1 2026-11-21T22:38:28.003Z mymachine.example.com evntslog 1234 ID47 '
        '[exampleSDID@32473 iut="3" eventSource="Application" msg="a \\"quoted\\" \\] end"]'
        '[timeQuality tzKnown="1" isSynced="0"] \ufeffAn application event log entry'
    )  # fmt: skip
    parts = decode(line)
    assert parts.message == "An application event log entry"
    assert parts.time_ns == ns(datetime(2026, 11, 21, 22, 38, 28, 3000, tzinfo=UTC))
    assert parts.fields == {
        "host": "mymachine.example.com",
        "program": "evntslog",
        "pid": 1234,
        "facility": "local4",
        "level": "notice",
        "msgid": "ID47",
        "sd": {
            "exampleSDID@32473": {
                "iut": "3", "eventSource": "Application", "msg": 'a "quoted" ] end',
            },
            "timeQuality": {"tzKnown": "1", "isSynced": "0"},
        },
    }  # fmt: skip


def test_rfc5424_nil_values() -> None:
    parts = decode("<11>1 - - - - - -")
    assert parts.time_ns == RECEIVED
    assert parts.message == ""
    assert parts.fields == {"host": "collector01", "facility": "user", "level": "err"}


def test_rfc5424_as_logger_sends_it() -> None:
    parts = decode(
        "<13>1 2026-11-21T22:38:28.512734+01:00 login01 direct - - "
        '[timeQuality tzKnown="1" isSynced="1" syncAccuracy="64000"] direct rfc5424 tcp'
    )
    assert parts.message == "direct rfc5424 tcp"
    assert parts.fields["sd"]["timeQuality"]["syncAccuracy"] == "64000"
    assert "pid" not in parts.fields
    assert "msgid" not in parts.fields


def test_kernel_uptime_moves_to_a_field() -> None:
    parts = decode("<4>Nov 21 22:38:28 cn01 kernel: [ 8812.402159] Out of memory: Killed process "
                   "31337 (python3) total-vm:8388608kB")  # fmt: skip
    assert parts.fields["uptime"] == pytest.approx(8812.402159)
    assert parts.message.startswith("Out of memory: Killed process 31337")
    assert parts.fields["level"] == "warning"
    assert parts.fields["facility"] == "kern"


def test_year_rollover_december_line_received_in_january() -> None:
    received = ns(datetime(2027, 1, 1, 0, 0, 5, tzinfo=BERLIN))
    parts = decode("<13>Dec 31 23:59:58 login01 app: late", received=received)
    assert parts.time_ns == ns(datetime(2026, 12, 31, 23, 59, 58, tzinfo=BERLIN))


def test_year_rollover_january_line_received_in_december() -> None:
    received = ns(datetime(2026, 12, 31, 23, 59, 59, tzinfo=BERLIN))  # our clock is behind
    parts = decode("<13>Jan  1 00:00:02 login01 app: early", received=received)
    assert parts.time_ns == ns(datetime(2027, 1, 1, 0, 0, 2, tzinfo=BERLIN))


def test_workshop_timezone_overrides_the_node_zone() -> None:
    parts = decode("<13>Nov 21 22:38:28 login01 app: x", workshop="utc_syslog")
    assert parts.time_ns == ns(datetime(2026, 11, 21, 22, 38, 28, tzinfo=UTC))


def test_summer_time_is_applied_for_summer_dates() -> None:
    received = ns(datetime(2026, 7, 1, 12, 0, 1, tzinfo=UTC))
    parts = decode("<13>Jul  1 14:00:00 login01 app: x", received=received)
    assert parts.time_ns == ns(datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC))  # CEST = UTC+2


def test_impossible_date_falls_back_to_receive_time() -> None:
    parts = decode("<13>Feb 30 10:00:00 login01 app: x")
    assert parts.time_ns == RECEIVED
    assert parts.fields["program"] == "app"


def test_delegation_to_slurm_keeps_syslog_fields_and_time() -> None:
    parts = decode("<30>Nov 21 22:38:28 head01 slurmctld[2201]: _job_complete: JobId=1234 "
                   "WEXITSTATUS 0")  # fmt: skip
    assert parts.workshop == "slurm"
    assert parts.time_ns == ns(datetime(2026, 11, 21, 22, 38, 28, tzinfo=BERLIN))
    assert parts.message == "_job_complete: JobId=1234 WEXITSTATUS 0"
    assert parts.fields["host"] == "head01"
    assert parts.fields["program"] == "slurmctld"
    assert parts.fields["event"] == "completed"
    assert parts.fields["exit_code"] == 0


def test_delegation_to_kv_and_json() -> None:
    kv = decode("<14>Nov 21 22:38:28 login01 scemw: 2026-11-21 22:38:27|login01|usr1|"
                "159.226.3.7|QUERY_RESOURCE|cpus=8 app=app4")  # fmt: skip
    assert kv.workshop == "sce"
    assert kv.fields["params"] == {"cpus": 8, "app": "app4"}
    assert kv.time_ns == ns(datetime(2026, 11, 21, 22, 38, 27, tzinfo=BERLIN))
    js = decode('<14>Nov 21 22:38:28 login01 jsonapp[9]: {"message": "saved", "user": "usr1"}')
    assert js.workshop == "json"
    assert js.message == "saved"
    assert js.fields["user"] == "usr1"
    assert js.fields["pid"] == 9


def test_delegated_decode_errors_propagate() -> None:
    with pytest.raises(DecodeError, match="expected 6 columns"):
        decode("<14>Nov 21 22:38:28 login01 scemw: only|three|columns")


def test_lenient_for_text_without_header() -> None:
    parts = decode("kernel panic on node cn07, rebooting")
    assert parts.message == "kernel panic on node cn07, rebooting"
    assert parts.fields == {"host": "collector01"}
    assert parts.time_ns == RECEIVED


def test_pri_without_timestamp() -> None:
    parts = decode("<134>myprog: started")
    assert parts.fields == {
        "host": "collector01", "program": "myprog", "facility": "local0", "level": "info",
    }  # fmt: skip
    assert parts.message == "started"


def test_message_after_host_without_tag() -> None:
    parts = decode("Nov 21 22:38:28 login01 last message repeated 3 times")
    assert parts.fields == {"host": "login01"}
    assert parts.message == "last message repeated 3 times"


@pytest.mark.parametrize("line", ["", "   ", "\x00\x01\x02\x7f", "\x1b[31mred\x1b[0m"])
def test_empty_lines_and_binary_garbage_are_errors(line: str) -> None:
    with pytest.raises(DecodeError):
        decode(line)


def test_invalid_utf8_is_decoded_with_replacement_characters() -> None:
    parts = decode(b"<13>Nov 21 22:38:28 h sshd: Failed password for \xff")
    assert parts.message == "Failed password for \ufffd"
    assert parts.fields["program"] == "sshd"


def test_merged_trace_loses_repeated_headers() -> None:
    line = "\n".join([
        "<11>Nov 21 22:38:28 app01 java[311]: ERROR request failed",
        "<11>Nov 21 22:38:28 app01 java[311]: java.lang.IllegalStateException: boom",
        "<11>Nov 21 22:38:28 app01 java[311]: \tat com.example.App.run(App.java:42)",
    ])  # fmt: skip
    parts = WORKSHOPS["syslog"].decode(
        Record(source="syslog", host="c", received=RECEIVED, line=line, meta={"lines": 3})
    )
    assert parts.message == (
        "ERROR request failed\njava.lang.IllegalStateException: boom\n"
        "\tat com.example.App.run(App.java:42)"
    )
    assert parts.fields["program"] == "java"


def test_merged_record_starting_with_blank_lines_decodes() -> None:
    record = Record(
        source="app", host="c", received=RECEIVED, line="\n  \nTraceback (most recent call "
        "last):\n  File \"x.py\", line 1, in <module>\nKeyError: 'a'", meta={"lines": 5}
    )  # fmt: skip
    parts = WORKSHOPS["syslog"].decode(record)
    assert parts.message.startswith("Traceback (most recent call last):\n  File")
    assert parts.message.endswith("KeyError: 'a'")


# -- the fast path's caches and tables must not change a result ----------------------------------
def test_cached_time_follows_the_receive_year() -> None:
    line = "<13>Dec 31 23:59:58 login01 app: late"
    in_2026 = ns(datetime(2026, 11, 21, 12, 0, tzinfo=BERLIN))
    in_2027 = ns(datetime(2027, 12, 1, 12, 0, tzinfo=BERLIN))
    assert decode(line, received=in_2026).time_ns == ns(
        datetime(2026, 12, 31, 23, 59, 58, tzinfo=BERLIN)
    )
    assert decode(line, received=in_2027).time_ns == ns(
        datetime(2027, 12, 31, 23, 59, 58, tzinfo=BERLIN)
    )
    assert decode(line, received=in_2026).time_ns == ns(
        datetime(2026, 12, 31, 23, 59, 58, tzinfo=BERLIN)
    )


def test_lines_of_one_second_keep_their_own_fractions() -> None:
    base = ns(datetime(2026, 11, 21, 22, 38, 28, tzinfo=BERLIN))
    times = [
        decode(f"<13>Nov 21 22:38:28{frac} login01 app: x").time_ns
        for frac in ("", ".5", ".25", "", ".000000001")
    ]
    assert times == [base, base + 500_000_000, base + 250_000_000, base, base + 1]


def test_impossible_date_stays_the_receive_time_when_cached() -> None:
    other = RECEIVED + 1_000_000_000
    assert decode("<13>Feb 30 10:00:00.5 h app: x").time_ns == RECEIVED
    assert decode("<13>Feb 30 10:00:00.5 h app: x", received=other).time_ns == other


@pytest.mark.parametrize(
    ("pri", "facility", "level"),
    [("0", "kern", "emerg"), ("00", "kern", "emerg"), ("000", "kern", "emerg"),
     ("013", "user", "notice"), ("191", "local7", "debug")],
)  # fmt: skip
def test_every_spelling_of_a_pri_names_facility_and_level(
    pri: str, facility: str, level: str
) -> None:
    parts = decode(f"<{pri}>Nov 21 22:38:28 login01 app[7]: x")
    assert parts.fields == {
        "host": "login01", "program": "app", "pid": 7, "facility": facility, "level": level,
    }  # fmt: skip
    assert parts.message == "x"


def test_pri_above_191_is_no_pri() -> None:
    parts = decode("<192>Nov 21 22:38:28 login01 app: x")
    assert "facility" not in parts.fields
    assert parts.message == "<192>Nov 21 22:38:28 login01 app: x"
    assert parts.time_ns == RECEIVED


def test_pid_is_an_int_only_when_it_is_ascii_digits_every_time() -> None:
    for _ in range(2):  # the second round is answered from the cache
        assert decode("<13>Nov 21 22:38:28 h app[42]: x").fields["pid"] == 42
        assert decode("<13>Nov 21 22:38:28 h app[4x]: x").fields["pid"] == "4x"
        assert decode("<13>Nov 21 22:38:28 h app[\u0664\u0662]: x").fields["pid"] == "\u0664\u0662"
