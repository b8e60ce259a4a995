"""A group's committed offsets are read while every broker in turn stops and comes back.

While a group's coordinator moves, a broker answers an offset fetch with NOT_COORDINATOR.
librdkafka's admin ListConsumerGroupOffsets then crashes the process (librdkafka#5040: SIGSEGV
in a librdkafka thread, which ended a CI run with no stack at all); ``KafkaBus.committed`` reads
through a consumer of the group instead. The reading runs in a child process, so a crash is a
failed assertion here and not the end of the test run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from tests.helpers.waiting import wait_for
from tests.kafka_broker import KafkaCluster, quiet

from logfactory.bus.base import TopicSpec
from logfactory.bus.kafka import KafkaBus

# three broker restarts, each allowed its full start-up wait
pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

GROUPS = [f"g{n}" for n in range(4)]
PARTITIONS = 3

READER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from logfactory.bus.base import BusError
    from logfactory.bus.kafka import KafkaBus

    bootstrap, topic, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    expected = json.loads(sys.argv[4])
    bus = KafkaBus(bootstrap, config={"log_level": 0})
    answers = wrong = errors = 0
    while not stop.exists():
        for group, offsets in expected.items():
            try:
                got = bus.committed(group, topic)
            except BusError:
                errors += 1  # the coordinator is moving: asked again next round
                continue
            answers += 1
            if got != {int(p): o for p, o in offsets.items()}:
                wrong += 1
                print("wrong:", group, got, file=sys.stderr)
            print(json.dumps({"answers": answers}), flush=True)
    bus.close()
    print(json.dumps({"answers": answers, "wrong": wrong, "errors": errors}), flush=True)
    """
)


def test_offsets_read_through_every_broker_restart_without_a_crash(
    tmp_path: Path, kafka_cluster: KafkaCluster, kafka_topic: str
) -> None:
    bus = KafkaBus(kafka_cluster.bootstrap, replication_factor=3, config={"log_level": 0})
    expected: dict[str, dict[int, int]] = {}
    try:
        bus.ensure_topic(TopicSpec(kafka_topic, PARTITIONS))
        for n, group in enumerate(GROUPS):
            offsets = {p: 10 * n + p + 1 for p in range(PARTITIONS)}
            conf = {"bootstrap.servers": kafka_cluster.bootstrap, "group.id": group}
            committer = Consumer(quiet({**conf, "enable.auto.commit": False}))
            try:
                committer.commit(
                    offsets=[TopicPartition(kafka_topic, p, o) for p, o in offsets.items()],
                    asynchronous=False,
                )
            finally:
                committer.close()
            expected[group] = offsets
        assert {g: bus.committed(g, kafka_topic) for g in GROUPS} == expected
    finally:
        bus.close()

    stop = tmp_path / "stop"
    progress, errors = tmp_path / "progress", tmp_path / "reader.err"
    with progress.open("w") as out, errors.open("w") as err:
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, kafka_cluster.bootstrap, kafka_topic, str(stop),
             json.dumps(expected)],
            stdout=out, stderr=err,
        )  # fmt: skip

    def last() -> dict[str, int]:
        """The reader's latest complete line (it may be writing the next one)."""
        lines = progress.read_text().split("\n")[:-1]
        return json.loads(lines[-1]) if lines else {"answers": 0}

    def answered() -> int:
        if reader.poll() is not None and not stop.exists():
            raise AssertionError(f"the reader died ({reader.returncode}):\n{errors.read_text()}")
        return last()["answers"]

    def more_answers(what: str) -> None:
        before = answered()
        wait_for(lambda: answered() > before, timeout=60, what=what)

    try:
        more_answers("the first answers")
        for node in range(kafka_cluster.size):
            kafka_cluster.stop(node)
            try:
                more_answers(f"answers while node {node} is down")
            finally:
                kafka_cluster.start(node)
            more_answers(f"answers once node {node} is back")
    finally:
        stop.touch()
        try:
            reader.wait(timeout=60)
        except subprocess.TimeoutExpired:
            reader.kill()
            reader.wait()
    stderr = errors.read_text()
    assert reader.returncode == 0, f"the reader died ({reader.returncode}):\n{stderr[-3000:]}"
    final = last()
    assert final["wrong"] == 0, stderr[-3000:]
    assert final["answers"] > 0


def test_a_pending_transactional_commit_is_seen_once_it_is_committed(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    group = f"{kafka_topic}-g"
    bus = KafkaBus(kafka_bootstrap, config={"log_level": 0})
    committer = Consumer(quiet({"bootstrap.servers": kafka_bootstrap, "group.id": group,
                                "enable.auto.commit": False}))  # fmt: skip
    producer = Producer(quiet({"bootstrap.servers": kafka_bootstrap,
                               "transactional.id": f"{kafka_topic}-txn"}))  # fmt: skip
    try:
        bus.ensure_topic(TopicSpec(kafka_topic, 1))
        committer.commit(offsets=[TopicPartition(kafka_topic, 0, 3)], asynchronous=False)
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce(kafka_topic, b"x")
        producer.send_offsets_to_transaction(
            [TopicPartition(kafka_topic, 0, 7)], committer.consumer_group_metadata(), 30
        )
        producer.flush(30)
        # pending: librdkafka's stable read would wait for it; the last committed is the answer
        assert bus.committed(group, kafka_topic) == {0: 3}
        assert bus.committed(group, kafka_topic) == {0: 3}  # the warm reader too
        producer.commit_transaction(30)
        wait_for(lambda: bus.committed(group, kafka_topic) == {0: 7}, what="the committed 7")
        assert bus.committed(group, kafka_topic) == {0: 7}
    finally:
        committer.close()
        bus.close()
