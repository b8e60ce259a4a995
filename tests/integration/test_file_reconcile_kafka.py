"""The file source's read-back of logs.raw (file_reconcile.BusRawLog) on a real Kafka broker:
from saved marks to the end, every partition, nothing before the marks."""

from __future__ import annotations

import pytest
from tests.kafka_fixtures import SHARED_PARTITIONS

from logfactory.bus.base import TopicSpec
from logfactory.bus.kafka import KafkaBus
from logfactory.collect.sources.file_reconcile import BusRawLog, furthest
from logfactory.record import encode_record, make_record
from logfactory.topics import RAW

pytestmark = pytest.mark.integration


def test_reading_logs_raw_back_from_marks_on_kafka(kafka_topic: str, kafka_bootstrap: str) -> None:
    bus = KafkaBus(kafka_bootstrap, config={"log_level": 0}, partitions=SHARED_PARTITIONS)
    try:
        bus.ensure_topic(TopicSpec(RAW, SHARED_PARTITIONS))
        raw_log = BusRawLog(bus)
        producer = bus.producer()

        def send(host: str, offset: int) -> None:
            meta = {"path": f"/l/{kafka_topic}.log", "offset": offset}
            rec = make_record("app", host, f"line at {offset}", meta)
            producer.produce(RAW, encode_record(rec), host.encode())

        for n in range(5):
            send(f"before{n}", n * 100)  # before the marks: must not be read back
        producer.flush(30)
        marks = raw_log.marks()
        for n, host in enumerate(["h1", "h2", "h1", "h3", "h1"]):
            send(host, 1000 + n * 100)
        producer.flush(30)
        producer.close()

        got = list(raw_log.since(marks))
        assert sorted(r.meta["offset"] for r in got) == [1000, 1100, 1200, 1300, 1400]
        ends = furthest(got, "app", "h1")
        assert ends == {f"/l/{kafka_topic}.log": 1400 + len("line at 1400")}
        assert list(raw_log.since(raw_log.marks())) == []  # nothing past the end
    finally:
        bus.close()
