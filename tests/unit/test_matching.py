"""The declarative matcher and templates shared by mappings, alerts and rules."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from logfactory.config import FieldMatch, Match
from logfactory.factory.matching import compile_match, compile_template, record_values, render
from logfactory.factory.model import Decoded, Position
from logfactory.record import make_record

T0 = 1_700_000_000_123_456_789


def decoded(
    message: str = "hello",
    workshop: str = "syslog",
    host: str = "node1",
    **fields: Any,
) -> Decoded:
    return Decoded(
        record=make_record("syslog", host, message, received=T0),
        position=Position("logs.raw", 0, 1),
        workshop=workshop,
        time_ns=T0,
        message=message,
        fields=fields,
    )


def match(m: Match, d: Decoded) -> dict[str, Any] | None:
    return compile_match(m).match(d)


def test_empty_match_matches_everything_with_no_captures() -> None:
    assert match(Match(), decoded()) == {}


def test_workshop_and_program_as_str_or_list() -> None:
    d = decoded(program="sshd")
    assert match(Match(workshop="syslog"), d) == {}
    assert match(Match(workshop="kv"), d) is None
    assert match(Match(workshop=["kv", "syslog"]), d) == {}
    assert match(Match(program="sshd"), d) == {}
    assert match(Match(program=["cron", "sshd"]), d) == {}
    assert match(Match(program="cron"), d) is None
    assert match(Match(program="sshd"), decoded()) is None  # no program field at all


def test_field_conditions() -> None:
    d = decoded(level="err", exit_code=1, state="FAILED")
    assert match(Match(fields={"level": "err"}), d) == {}
    assert match(Match(fields={"level": "info"}), d) is None
    assert match(Match(fields={"exit_code": "1"}), d) == {}  # compared as str(value)
    assert match(Match(fields={"state": FieldMatch(regex="FAIL")}), d) == {}
    assert match(Match(fields={"state": FieldMatch(regex="^AIL")}), d) is None
    assert match(Match(fields={"state": FieldMatch(one_of=["FAILED", "TIMEOUT"])}), d) == {}
    assert match(Match(fields={"state": FieldMatch(one_of=["COMPLETED"])}), d) is None
    assert match(Match(fields={"state": FieldMatch(equals="FAILED", regex="X")}), d) is None
    assert match(Match(fields={"missing": FieldMatch(regex=".*")}), d) is None
    assert match(Match(fields={"host": "node1"}), d) == {}  # host falls back to the record


def test_message_regex_returns_named_groups_that_took_part() -> None:
    m = Match(
        message=r"Failed password for (invalid user )?(?P<account>\S+) from (?P<addr>\S+)"
        r"(?: port (?P<port>\d+))?"
    )
    d = decoded("Failed password for invalid user bob from 10.0.0.1")
    assert match(m, d) == {"account": "bob", "addr": "10.0.0.1"}
    assert match(m, decoded("Accepted password for bob from 10.0.0.1")) is None
    assert match(Match(message="pass(word)"), d) == {}  # unnamed groups capture nothing


def test_all_conditions_must_hold() -> None:
    m = Match(workshop="syslog", program="sshd", message="Failed")
    assert match(m, decoded("Failed x", program="sshd")) == {}
    assert match(m, decoded("Failed x", program="su")) is None
    assert match(m, decoded("Failed x", workshop="kv", program="sshd")) is None
    assert match(m, decoded("Accepted", program="sshd")) is None


def test_render_exact_placeholder_keeps_the_type() -> None:
    values = {"cpus": 8, "params": {"app": "x"}, "none": None}
    assert render("{cpus}", values) == 8
    assert render("{params}", values) == {"app": "x"}
    assert render("{missing}", values) is None
    assert render("{params.app}", values) == "x"


def test_render_formats_mixed_strings_and_missing_values_as_empty() -> None:
    values = {"count": 5, "account": "root", "ratio": 0.5, "none": None}
    assert render("{count} for {account}", values) == "5 for root"
    assert render("[{missing}]", values) == "[]"
    assert render("[{none}]", values) == "[]"
    assert render("{ratio:.2f} {account!r}", values) == "0.50 'root'"
    assert render("{{literal}} {count}", values) == "{literal} 5"
    assert render("{unbalanced", values) == "{unbalanced"
    assert render("no fields", values) == "no fields"


def test_render_recurses_and_leaves_non_strings() -> None:
    template = {"user": "{user}", "n": 3, "flag": True, "list": ["{user}", "x-{n}", 1.5]}
    assert render(template, {"user": "u1", "n": 2}) == {
        "user": "u1",
        "n": 3,
        "flag": True,
        "list": ["u1", "x-2", 1.5],
    }
    assert render(None, {}) is None


def test_template_reports_the_names_it_needs() -> None:
    t = compile_template({"a": "{time}", "b": ["{params.cpus} {user}"], "c": "plain"})
    assert t.names == {"time", "params", "user"}


def test_record_values_layering() -> None:
    d = decoded("msg text", program="sshd", user="alice")
    d.pattern = "p-1"
    values = record_values(d, {"user": "captured"})
    assert values["message"] == "msg text"
    assert values["host"] == "node1"
    assert values["program"] == "sshd"
    assert values["workshop"] == "syslog"
    assert values["pattern"] == "p-1"
    assert values["user"] == "captured"  # captured groups win over fields
    assert values["time"] == "2023-11-14T22:13:20.123456Z"
    assert "time" not in record_values(d, None, with_time=False)


def test_field_host_wins_over_record_host() -> None:
    d = decoded(host="collector")
    d.fields["host"] = "origin"
    assert record_values(d)["host"] == "origin"
    assert match(Match(fields={"host": "origin"}), d) == {}


def test_match_is_config_driven() -> None:
    m = msgspec.convert(
        {"workshop": "syslog", "fields": {"level": {"one_of": ["err", "crit"]}}}, Match
    )
    assert match(m, decoded(level="crit")) == {}
    assert match(m, decoded(level="info")) is None


@pytest.mark.parametrize("value", [0, 1.5, True, ["x"], {"a": 1}])
def test_non_str_field_values_compare_as_str(value: Any) -> None:
    assert match(Match(fields={"f": str(value)}), decoded(f=value)) == {}


def test_required_literal_is_only_what_every_match_contains() -> None:
    from logfactory.factory.matching import required_literal

    assert required_literal(r"Out of memory: Killed process (?P<pid>\d+)") == (
        "Out of memory: Killed process "
    )
    assert required_literal(r"(?P<c>\S+)\[(?P<p>\d+)\]: segfault at ") == "]: segfault at "
    assert required_literal(r"foo|barbaz") is None  # alternation: nothing is mandatory
    assert required_literal(r"(?i)No space left") is None  # case-insensitive: no prefilter
    assert required_literal(r"ab\d") is None  # too short to pay off
    assert required_literal(r"x(?:abc)?y") is None
