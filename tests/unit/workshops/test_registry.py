"""The workshop registry (issue 14, item 5): every format the configuration accepts has its
workshop, and every workshop is built the same way.

Why: the config package lists the formats as plain data (it imports nothing of the factory), so
nothing but this test notices a format added there without a workshop (the worker would fail on
the first configuration naming it) or a workshop nobody can configure.
"""

from __future__ import annotations

import inspect
from typing import cast

import pytest

from logfactory.config import WORKSHOP_FORMATS, parse_config
from logfactory.factory.filter import mined_workshops
from logfactory.factory.workshops import FREE_TEXT_FORMATS, WORKSHOPS, build_workshops
from logfactory.record import make_record

# one realistic line per format, and a field its decoding must yield
SAMPLES: dict[str, tuple[str, str, object]] = {
    "syslog": ("<38>Nov 21 22:38:28 login01 sshd[412]: Accepted key for usr1", "program", "sshd"),
    "kv": ("2026-11-21 22:38:28|usr1|QUERY_RESOURCE", "user", "usr1"),
    "slurm": (
        "[2026-11-21T22:38:28.123] sched: Allocate JobId=1234 NodeList=cn01",
        "job_id",
        "1234",
    ),
    "json": ('{"time": "2026-11-21T22:38:28Z", "message": "up", "node": "cn01"}', "node", "cn01"),
}
OPTIONS = {"kv": "fields: [time, user, op], time_field: time"}


def test_the_registry_and_the_config_name_the_same_formats() -> None:
    assert set(WORKSHOPS) == set(WORKSHOP_FORMATS)
    assert set(SAMPLES) == set(WORKSHOPS)  # so the next test covers every workshop
    assert set(WORKSHOPS) > FREE_TEXT_FORMATS


def test_free_text_formats_are_mined_unless_a_workshop_says_otherwise() -> None:
    formats = "\n".join(f"  {f}: {{format: {f}, {OPTIONS.get(f, 'mine: null')}}}" for f in SAMPLES)
    config = parse_config(f"workshops:\n{formats}\n  quiet: {{format: syslog, mine: false}}\n")
    assert mined_workshops(config) == FREE_TEXT_FORMATS


@pytest.mark.parametrize("fmt", sorted(WORKSHOP_FORMATS))
def test_every_format_builds_its_workshop_which_decodes_its_lines(fmt: str) -> None:
    cls = WORKSHOPS[fmt]
    assert list(inspect.signature(cls).parameters) == ["name", "ws", "tz"]
    options = f", {OPTIONS[fmt]}" if fmt in OPTIONS else ""
    config = parse_config(f"workshops:\n  w: {{format: {fmt}{options}}}\n")
    workshop = build_workshops(config)["w"]
    assert type(workshop) is cast(object, cls)
    assert workshop.name == "w"
    line, field, value = SAMPLES[fmt]
    parts = workshop.decode(make_record("t", "h", line))
    assert parts.fields[field] == value


def test_delegation_is_wired_to_the_built_workshops() -> None:
    config = parse_config(
        "workshops:\n"
        "  syslog: {format: syslog, delegate: {slurmctld: slurm}}\n"
        "  slurm: {format: slurm}\n"
    )
    syslog = build_workshops(config)["syslog"]
    line = "<30>Nov 21 22:38:28 mgmt01 slurmctld[9]: sched: Allocate JobId=77 NodeList=cn02"
    parts = syslog.decode(make_record("syslog", "mgmt01", line))
    assert parts.fields["job_id"] == "77"
    assert parts.fields["program"] == "slurmctld"
