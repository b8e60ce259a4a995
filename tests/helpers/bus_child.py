"""Another process on the bus under test: ``python bus_child.py COMMAND SPEC [ARGS...]``.

``SPEC`` is the JSON a contract ``BusFactory.child_spec`` returns; :func:`open_bus` turns it
into a handle on the same bus (the one place a subprocess learns which implementation it is
talking to). Commands print one line per readiness signal, which the tests wait for.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from logfactory.bus.base import Bus, Consumer, TopicSpec, partition_for_key


def open_bus(spec: str) -> Bus:
    """A handle on the bus ``spec`` describes (as written by a ``BusFactory``)."""
    opts: dict[str, Any] = json.loads(spec)
    kind = opts.pop("kind")
    if kind == "local":
        from logfactory.bus.local import LocalBus

        return LocalBus(opts.pop("directory"), **opts)
    if kind == "kafka":
        from logfactory.bus.kafka import KafkaBus

        return KafkaBus(opts.pop("bootstrap"), **opts)
    raise ValueError(f"unknown bus kind {kind!r}")


def say(*parts: object) -> None:
    print(*parts, flush=True)


def cmd_partitions(count: str, partitions: str) -> None:
    """Print where keys ``key-0 .. key-<count-1>`` land (run under another hash seed)."""
    say(
        json.dumps(
            [partition_for_key(f"key-{i}".encode(), int(partitions)) for i in range(int(count))]
        )
    )


def cmd_produce(bus: Bus, topic: str, partitions: str, name: str, count: str) -> None:
    """Wait for ``go``, then produce ``count`` keyed messages ``<name>:<seq>``."""
    bus.ensure_topic(TopicSpec(topic, int(partitions)))
    producer = bus.producer()
    say("ready")
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected go")
    for i in range(int(count)):
        producer.produce(topic, f"{name}:{i}".encode(), key=f"{name}-{i % 7}".encode())
    producer.flush()
    producer.close()
    say("done")


def _done(bus: Bus, consumer: Consumer, topic: str) -> bool:
    ends = {(topic, p): high for p, (_low, high) in bus.watermarks(topic).items()}
    position = consumer.position()
    return bool(position) and all(position.get(tp, -1) >= end for tp, end in ends.items())


def cmd_transform(bus: Bus, src: str, dst: str, group: str, batch: str, until: str) -> None:
    """Consume ``src`` in ``group`` and write one output per input to ``dst``, exactly once.

    Each batch is one transaction (outputs + input offsets). With ``until=done`` the process
    exits once it owns every partition and has committed them all; otherwise it runs until
    killed.
    """
    consumer = bus.consumer(group, [src])
    announced = False
    while True:
        messages = consumer.poll(int(batch), timeout=0.2)
        if not announced and consumer.assignment():
            say("ready")
            announced = True
        if messages:
            with bus.transaction(consumer) as tx:
                for m in messages:
                    tx.produce(dst, b"out:%d:%d:" % (m.partition, m.offset) + m.value, m.key)
                tx.commit_offsets({(m.topic, m.partition): m.offset + 1 for m in messages})
        elif until == "done" and _done(bus, consumer, src):
            consumer.close()
            say("finished")
            return


def cmd_member(bus: Bus, topic: str, group: str) -> None:
    """A group member driven by stdin: each ``step`` polls one batch, commits it, and prints
    ``{"assignment": [...], "read": [[partition, offset], ...]}``."""
    consumer = bus.consumer(group, [topic])
    say("ready")
    for line in sys.stdin:
        if line.strip() != "step":
            break
        messages = consumer.poll(50, timeout=0.5)
        consumer.commit()
        say(
            json.dumps(
                {
                    "assignment": sorted(p for _t, p in consumer.assignment()),
                    "read": [[m.partition, m.offset] for m in messages],
                }
            )
        )


def main(argv: list[str]) -> None:
    command, spec, *args = argv
    if command == "partitions":
        cmd_partitions(*args)
        return
    bus = open_bus(spec)
    try:
        if command == "produce":
            cmd_produce(bus, *args)
        elif command == "transform":
            cmd_transform(bus, *args)
        elif command == "member":
            cmd_member(bus, *args)
        else:
            raise SystemExit(f"unknown command {command!r}")
    finally:
        bus.close()


if __name__ == "__main__":
    main(sys.argv[1:])
