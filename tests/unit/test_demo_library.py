"""The demo's pattern library holds only templates a person would want to review: the free text
of syslog, never one template per user of the key/value, job and JSON workshops (issue 12:
169 of the demo's 260 "new" templates were ``...|login01|usr14|<*>|QUERY_JOB|job=<*>`` and the
like). Five minutes of the demo feed go through a real factory worker with examples/demo.yaml."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from tests.helpers.worker import bus_of, read_topic, run_worker

from logfactory.collect.sources.demo import DemoGenerator
from logfactory.config import Config, load_config
from logfactory.factory.filter import mined_workshops
from logfactory.factory.patterns.topic import load_library
from logfactory.record import Record
from logfactory.schemas import validate
from logfactory.topics import event_types

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"
SEC = 1_000_000_000
START = 1_795_306_200 * SEC


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Config:
    data = tmp_path_factory.mktemp("demo")
    config = load_config(DEMO)
    config = msgspec.structs.replace(
        config, node=msgspec.structs.replace(config.node, data_dir=str(data))
    )
    feed = DemoGenerator(7, 8, START).timed()
    records = []
    for t, tag, host, line in feed:
        if t >= START + 300 * SEC:
            break
        records.append(Record(source=tag, host=host, received=t, line=line))
    run_worker(config, records)
    return config


def test_demo_mines_only_its_free_text_workshop(demo: Config) -> None:
    assert mined_workshops(demo) == {"syslog"}
    bus = bus_of(demo)
    try:
        entries = load_library(bus).entries()  # as `logfactory patterns list` reads it
    finally:
        bus.close()
    assert len(entries) > 20  # sshd, kernel, cron, ... and the feed's never-seen messages
    assert {e.workshop for e in entries} == {"syslog"}
    # nothing structured slipped in through the syslog workshop either (slurmctld is delegated)
    assert not [e.template for e in entries if "|" in e.template or e.template.startswith("{")]
    announced = read_topic(demo, "events.NEW_PATTERN")
    assert announced
    assert {e["body"]["workshop"] for e in announced} == {"syslog"}


def test_events_of_unmined_workshops_carry_no_pattern_and_stay_valid(demo: Config) -> None:
    seen = set()
    for event_type in event_types(demo):
        for envelope in read_topic(demo, f"events.{event_type}"):
            assert validate(envelope, demo) == [], envelope
            header = envelope["header"]
            assert header["severity"]
            assert header["schema"] == 1
            if event_type in ("USER_OP", "ADMIN_OP", "JOB_STATUS", "APP_STATUS", "CLUSTER_STATUS"):
                assert "pattern" not in header, envelope
            seen.add(event_type)
    assert {"USER_OP", "JOB_STATUS", "CLUSTER_STATUS", "SSH_LOGIN", "NEW_PATTERN"} <= seen
    parsed = read_topic(demo, "logs.parsed")
    assert {p["workshop"] for p in parsed if "pattern" in p} == {"syslog"}
    assert {p["workshop"] for p in parsed if "pattern" not in p} == {
        "sce", "apps", "cluster", "slurm"
    }  # fmt: skip
