"""net-snmp's ``snmptrap`` / ``snmpinform`` (the real programs) into the agent's snmp source.

v1, v2c and v3 authPriv (SHA/AES) traps and v2c/v3 informs must each arrive on logs.raw as one
Record whose JSON line carries the right varbinds; an inform is acknowledged (the command exits
0); wrong communities and wrong v3 keys are counted ``rejected`` and produce no record.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from tests.helpers.sources import read_until

from logfactory.bus.base import TopicSpec
from logfactory.bus.local import LocalBus
from logfactory.collect.agent import RAW_TOPIC, Agent
from logfactory.collect.sources.snmp import SnmpSource
from logfactory.config import Config, NodeConfig, SnmpV3User, source_config
from logfactory.record import Record
from logfactory.stats import StatsRegistry

pytestmark = pytest.mark.integration

E = "1.3.6.1.4.1.8072.2.3"  # NET-SNMP-EXAMPLES-MIB::netSnmpExampleNotifications
SENDER_ENGINE = "0x8000000001020304"
V3 = ["-u", "logfactory", "-l", "authPriv", "-a", "SHA", "-A", "authpass123",
      "-x", "AES", "-X", "privpass123"]  # fmt: skip


async def run(*argv: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode is not None
    assert b"Cannot" not in err, err  # e.g. an unparsable OID: the test itself would be wrong
    return proc.returncode


def test_net_snmp_traps_and_informs(tmp_path: Path, local_bus: LocalBus) -> None:
    local_bus.ensure_topic(TopicSpec(RAW_TOPIC, 4))
    source = source_config(
        type="snmp", name="traps", tag="snmp", listen="127.0.0.1:0", communities=["public"],
        v3_users=[
            SnmpV3User(user="logfactory", auth_protocol="SHA", auth_key="authpass123",
                       priv_protocol="AES", priv_key="privpass123", engine_id=SENDER_ENGINE),
        ],
    )  # fmt: skip
    config = Config(node=NodeConfig(data_dir=str(tmp_path / "data")), sources=[source])
    producer = local_bus.producer()
    agent = Agent(config, producer, StatsRegistry("test"))
    got: list[Record] = []
    codes: dict[str, int] = {}

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await asyncio.wait_for(agent.wait_ready(), 10)
            src = agent.sources[0]
            assert isinstance(src, SnmpSource)
            assert src.bound is not None
            to = f"127.0.0.1:{src.bound[1]}"
            assert agent.listen_addresses == [f"snmp udp {to}"]
            trap, inform = ["snmptrap", "-m", ""], ["snmpinform", "-m", "", "-r", "1", "-t", "3"]
            codes["v1"] = await run(
                *trap, "-v", "1", "-c", "public", to, f"{E}.1", "10.9.8.7", "6", "17", "",
                f"{E}.2.1", "s", "hello v1", f"{E}.2.2", "i", "42",
            )  # fmt: skip
            codes["v2c"] = await run(
                *trap, "-v", "2c", "-c", "public", to, "4242", f"{E}.0.1",
                f"{E}.2.1", "s", "hello v2c", f"{E}.2.3", "x", "00ff", f"{E}.2.4", "a", "192.0.2.1",
                f"{E}.2.5", "o", "1.3.6.1.2.1.1", f"{E}.2.6", "c", "4000000000",
            )  # fmt: skip
            codes["v3"] = await run(
                *trap, "-v", "3", "-e", SENDER_ENGINE, *V3, to, "", f"{E}.0.1",
                f"{E}.2.1", "s", "hello v3 authPriv",
            )  # fmt: skip
            codes["inform v2c"] = await run(
                *inform, "-v", "2c", "-c", "public", to, "", f"{E}.0.2", f"{E}.2.1", "s",
                "inform v2c",
            )  # fmt: skip
            codes["inform v3"] = await run(
                *inform, "-v", "3", *V3, to, "", f"{E}.0.2", f"{E}.2.1", "s", "inform v3"
            )
            got.extend(await read_until(local_bus, 5))
            # refused: nothing arrives, each is counted
            codes["bad community"] = await run(
                *trap, "-v", "2c", "-c", "private", to, "", f"{E}.0.1", f"{E}.2.1", "s", "no"
            )
            bad_key = [a if a != "authpass123" else "wrongpass123" for a in V3]
            codes["bad key"] = await run(
                *trap, "-v", "3", "-e", SENDER_ENGINE, *bad_key, to, "", f"{E}.0.1",
                f"{E}.2.1", "s", "no",
            )  # fmt: skip
            codes["bad inform"] = await run(
                "snmpinform", "-m", "", "-r", "0", "-t", "1", "-v", "2c", "-c", "private", to, "",
                f"{E}.0.1", f"{E}.2.1", "s", "no",
            )  # fmt: skip
            deadline = time.monotonic() + 5
            while counters(agent).get("rejected", 0) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)

    try:
        asyncio.run(main())
    finally:
        producer.close()
    # an acknowledged inform is exit 0; an unanswered one is not
    assert codes == {
        "v1": 0, "v2c": 0, "v3": 0, "inform v2c": 0, "inform v3": 0,
        "bad community": 0, "bad key": 0, "bad inform": 1,
    }  # fmt: skip
    by_text = {json.loads(r.line)["varbinds"][f"{E}.2.1"]: r for r in got}
    assert set(by_text) == {"hello v1", "hello v2c", "hello v3 authPriv", "inform v2c", "inform v3"}
    assert {r.source for r in got} == {"snmp"}

    v1 = _doc(by_text["hello v1"])
    assert by_text["hello v1"].host == "10.9.8.7"  # the v1 agent-addr, not the UDP peer
    assert v1 == v1 | {
        "version": "1", "pdu": "trap", "community": "public", "trap_oid": f"{E}.1.0.17",
        "enterprise": f"{E}.1", "generic": 6, "specific": 17, "agent_addr": "10.9.8.7",
        "varbinds": {f"{E}.2.1": "hello v1", f"{E}.2.2": 42},
    }  # fmt: skip
    assert isinstance(v1["uptime"], int)

    v2 = _doc(by_text["hello v2c"])
    assert by_text["hello v2c"].host == "127.0.0.1"
    assert v2 == {
        "version": "2c", "pdu": "trap", "community": "public", "peer": v2["peer"],
        "trap_oid": f"{E}.0.1", "uptime": 4242,
        "varbinds": {f"{E}.2.1": "hello v2c", f"{E}.2.3": "0x00ff", f"{E}.2.4": "192.0.2.1",
                     f"{E}.2.5": "1.3.6.1.2.1.1", f"{E}.2.6": 4000000000},
    }  # fmt: skip
    assert v2["peer"].startswith("127.0.0.1:")
    assert by_text["hello v2c"].meta == {"peer": v2["peer"], "transport": "udp"}

    v3 = _doc(by_text["hello v3 authPriv"])
    assert (v3["version"], v3["pdu"], v3["user"], v3["trap_oid"]) == ("3", "trap", "logfactory",
                                                                      f"{E}.0.1")  # fmt: skip
    assert "community" not in v3
    for text, version in (("inform v2c", "2c"), ("inform v3", "3")):
        doc = _doc(by_text[text])
        assert (doc["version"], doc["pdu"], doc["trap_oid"]) == (version, "inform", f"{E}.0.2")

    # the bad community trap, the wrong v3 key, the unanswered inform (-r 0: sent once)
    assert counters(agent)["rejected"] == 3
    assert counters(agent)["received"] == 5


def _doc(record: Record) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(record.line)
    return doc


def counters(agent: Agent) -> dict[str, int]:
    return dict(agent.registry.snapshot()["counters"].get("source:traps", {}))
