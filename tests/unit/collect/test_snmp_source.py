"""The snmp source: its config, its engine identity, and traps sent by pysnmp over loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pyasn1.type import univ  # type: ignore[import-untyped]
from pysnmp.hlapi.v3arch.asyncio import (  # type: ignore[import-untyped]
    CommunityData,
    ContextData,
    Counter64,
    Gauge32,
    Integer32,
    IpAddress,
    NotificationType,
    ObjectIdentity,
    ObjectType,
    OctetString,
    SnmpEngine,
    TimeTicks,
    UdpTransportTarget,
    send_notification,
)
from tests.helpers.clients import api_client
from tests.helpers.configs import source_as, source_of
from tests.helpers.sources import agent_around, make_config, may_force_buffers, read_until

from logfactory.access import Role
from logfactory.access.store import AccessStore
from logfactory.api import NodeContext
from logfactory.bus.local import LocalBus
from logfactory.collect.agent import Agent
from logfactory.collect.sources.snmp import SnmpSource, snmp_value
from logfactory.collect.sources.snmp_setup import (
    AUTH_PROTOCOLS,
    PRIV_PROTOCOLS,
    load_identity,
)
from logfactory.config import (
    SNMP_AUTH_PROTOCOLS,
    SNMP_PRIV_PROTOCOLS,
    Config,
    ConfigError,
    SnmpSourceConfig,
    SourceConfig,
    parse_config,
    source_config,
)
from logfactory.record import Record

E = "1.3.6.1.4.1.99999"  # LF-TEST-MIB below
COLD_START = "1.3.6.1.6.3.1.1.5.1"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
OTHER = "1.3.6.1.4.1.99998.1.0"  # under enterprises, in no MIB

# A compiled (pysnmp) MIB module, as pysmi's mibdump would write one, for the ``mibs`` option.
TEST_MIB = """
(MibScalar, NotificationType, ObjectIdentity) = mibBuilder.import_symbols(
    "SNMPv2-SMI", "MibScalar", "NotificationType", "ObjectIdentity")
(OctetString,) = mibBuilder.import_symbols("ASN1", "OctetString")
lfTest = ObjectIdentity((1, 3, 6, 1, 4, 1, 99999))
lfMessage = MibScalar((1, 3, 6, 1, 4, 1, 99999, 2, 1), OctetString())
lfEvent = NotificationType((1, 3, 6, 1, 4, 1, 99999, 0, 1))
mibBuilder.export_symbols("LF-TEST-MIB", lfTest=lfTest, lfMessage=lfMessage, lfEvent=lfEvent)
"""


# -- config ------------------------------------------------------------------------------------
def snmp_yaml(user: str, **source: str) -> str:
    extra = "".join(f"\n    {k}: {v}" for k, v in source.items())
    return f"""
sources:
  - type: snmp
    listen: 127.0.0.1:1162{extra}
    v3_users:
      - {user}
"""


def test_protocol_tables_match_the_config_names() -> None:
    assert set(AUTH_PROTOCOLS) == set(SNMP_AUTH_PROTOCOLS)
    assert set(PRIV_PROTOCOLS) == set(SNMP_PRIV_PROTOCOLS)


def test_v3_user_defaults_and_spellings() -> None:
    text = snmp_yaml("{user: a, auth_key: authpass123, priv_key: privpass123}")
    user = source_of(parse_config(text), SnmpSourceConfig).v3_users[0]
    assert (user.auth, user.priv) == ("SHA", "AES")
    text = snmp_yaml(
        "{user: b, auth_protocol: sha-256, auth_key: authpass123, "
        "priv_protocol: AES-256, priv_key: privpass123, engine_id: '80:00:00:00:01:02:03:04'}"
    )
    user = source_of(parse_config(text), SnmpSourceConfig).v3_users[0]
    assert (user.auth, user.priv) == ("SHA256", "AES256")
    user = source_of(parse_config(snmp_yaml("{user: c}")), SnmpSourceConfig).v3_users[0]
    assert (user.auth, user.priv) == ("NONE", "NONE")  # noAuthNoPriv


@pytest.mark.parametrize(
    ("user", "message"),
    [
        (
            "{user: u, auth_protocol: SHA1024, auth_key: authpass123}",
            "auth_protocol 'SHA1024' is unknown; use one of MD5, SHA, SHA224, SHA256",
        ),
        (
            "{user: u, auth_key: authpass123, priv_protocol: AES512, priv_key: privpass123}",
            "priv_protocol 'AES512' is unknown; use one of DES, 3DES, AES, AES192",
        ),
        ("{user: u, auth_protocol: MD5}", "auth_protocol MD5 needs auth_key"),
        (
            "{user: u, auth_key: authpass123, priv_protocol: DES}",
            "priv_protocol DES needs priv_key",
        ),
        ("{user: u, auth_key: short}", "auth_key must be at least 8 characters"),
        ("{user: u, priv_key: privpass123}", "priv_key needs auth_key"),
        ("{user: u, auth_protocol: none, auth_key: authpass123}", "auth_key is set but"),
        ("{user: u, auth_key: authpass123, engine_id: 0xzz}", "engine_id '0xzz' is not hex"),
        ("{user: u, auth_key: authpass123, engine_id: '0x0102'}", "has 2 octets; SNMP wants 5"),
        ("{auth_key: authpass123}", "missing required field `user`"),
        ("{user: u, password: authpass123}", "unknown key 'password'"),
    ],
)
def test_bad_v3_users_are_clear_errors_at_their_line(user: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(snmp_yaml(user), "traps.yaml")
    assert message in str(err.value)
    # at the user's line, with its path
    assert str(err.value).startswith("traps.yaml:6: sources[0].v3_users[0]"), str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources:\n  - type: snmp\n    communities: [public]\n", "needs 'listen: HOST:PORT'"),
        ("sources:\n  - type: snmp\n    listen: :1162\n", "accepts nothing"),
        (
            "sources:\n  - type: snmp\n    listen: :1162\n    communities: [public]\n"
            "    engine_id: '0x01'\n",
            "engine_id '0x01' has 1 octets",
        ),
        (
            "sources:\n  - type: snmp\n    listen: :1162\n    v3_users:\n"
            "      - {user: u, auth_key: authpass123, engine_id: '0x8000000001'}\n"
            "      - {user: u, auth_key: otherpass123, engine_id: '80:00:00:00:01'}\n",
            "user 'u' is listed twice for the same engine_id",
        ),
        (
            "sources:\n  - type: snmp\n    listen: :1162\n    communities: [public]\n"
            "    udp_rcvbuf: 100\n",
            "udp_rcvbuf: must be at least 1024 bytes",
        ),
    ],
)
def test_snmp_source_checks(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text)


def test_engine_identity_is_made_once_and_boots_grow(tmp_path: Path) -> None:
    first, boots1 = load_identity(tmp_path, "traps", None)
    again, boots2 = load_identity(tmp_path, "traps", None)
    assert (again, boots1, boots2) == (first, 1, 2)
    assert 5 <= len(first) <= 32
    assert first[0] & 0x80
    assert load_identity(tmp_path, "other", None)[0] != first  # one engine per source
    assert load_identity(tmp_path, "traps", "0x8000000001020304") == (
        bytes.fromhex("8000000001020304"), 1,  # a new id: its boots start afresh
    )  # fmt: skip
    (tmp_path / "snmp" / "traps.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"traps\.json is damaged"):
        load_identity(tmp_path, "traps", None)


def test_snmp_values() -> None:
    assert snmp_value(Integer32(-5)) == -5
    assert snmp_value(Counter64(2**40)) == 2**40
    assert snmp_value(TimeTicks(12)) == 12
    assert snmp_value(IpAddress("10.0.0.1")) == "10.0.0.1"
    assert snmp_value(OctetString("héllo".encode())) == "héllo"
    assert snmp_value(OctetString(b"\x00\xffab")) == "0x00ff6162"
    assert snmp_value(OctetString(b"a\x01")) == "0x6101"  # control characters: hex
    assert snmp_value(OctetString("tab\tand\nnewline")) == "tab\tand\nnewline"
    assert snmp_value(univ.ObjectIdentifier("1.3.6.1.2")) == "1.3.6.1.2"
    assert snmp_value(univ.Null("")) == ""


# -- over loopback -----------------------------------------------------------------------------
Scenario = Callable[[Agent, SnmpSource, tuple[str, int]], Awaitable[None]]


def run_agent(tmp_path: Path, bus: LocalBus, source: SourceConfig, scenario: Scenario) -> Agent:
    async def around(agent: Agent, src: SnmpSource) -> None:
        assert src.bound is not None
        await scenario(agent, src, src.bound)

    return agent_around(make_config(tmp_path, source), bus, SnmpSource, around)


async def until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def send_trap(
    address: tuple[str, int],
    community: str,
    trap_oid: str,
    *var_binds: Any,
    kind: str = "trap",
    timeout: float = 2.0,
) -> None:
    """One v2c notification from a pysnmp engine of its own (a separate agent)."""
    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(address, timeout=timeout, retries=0)
        notification = NotificationType(ObjectIdentity(trap_oid)).add_varbinds(
            *(ObjectType(ObjectIdentity(oid), value) for oid, value in var_binds)
        )
        error, *_ = await send_notification(
            engine, CommunityData(community, mpModel=1), target, ContextData(), kind,
            notification,
        )  # fmt: skip
        assert error is None, error
    finally:
        engine.close_dispatcher()


def counters(agent: Agent) -> dict[str, int]:
    return dict(agent.registry.snapshot()["counters"].get("source:traps", {}))


def snmp_source(**kw: Any) -> SourceConfig:
    base: dict[str, Any] = {
        "type": "snmp", "name": "traps", "listen": "127.0.0.1:0", "communities": ["public"],
    }  # fmt: skip
    return source_config(**(base | kw))


def test_pysnmp_trap_becomes_one_json_record(tmp_path: Path, local_bus: LocalBus) -> None:
    got: list[Record] = []

    async def scenario(agent: Agent, src: SnmpSource, address: tuple[str, int]) -> None:
        assert agent.listen_addresses == [f"snmp udp 127.0.0.1:{address[1]}"]
        await send_trap(
            address, "public", f"{E}.0.1",
            (f"{E}.2.1", OctetString("disk full")), (f"{E}.2.2", Gauge32(93)),
            (f"{E}.2.3", IpAddress("192.0.2.7")), (SYS_NAME, OctetString("node7")),
            (OTHER, Integer32(-1)),
        )  # fmt: skip
        await send_trap(address, "public", COLD_START, kind="inform")  # acknowledged: no error
        got.extend(await read_until(local_bus, 2))

    mibs = tmp_path / "mibs"
    mibs.mkdir()
    (mibs / "LF-TEST-MIB.py").write_text(TEST_MIB)
    agent = run_agent(tmp_path, local_bus, snmp_source(tag="net", mibs=[str(mibs)]), scenario)
    docs = {json.loads(r.line)["trap_oid"]: (r, json.loads(r.line)) for r in got}
    record, doc = docs[f"{E}.0.1"]
    assert (record.source, record.host) == ("net", "127.0.0.1")
    assert record.meta == {"peer": doc["peer"], "transport": "udp"}
    assert record.line == json.dumps(doc, separators=(",", ":"), ensure_ascii=False)  # compact
    assert isinstance(doc.pop("uptime"), int)
    assert doc == {
        "version": "2c", "pdu": "trap", "community": "public", "peer": doc["peer"],
        "trap_oid": f"{E}.0.1",
        "varbinds": {f"{E}.2.1": "disk full", f"{E}.2.2": 93, f"{E}.2.3": "192.0.2.7",
                     SYS_NAME: "node7", OTHER: -1},
        "names": {f"{E}.0.1": "LF-TEST-MIB::lfEvent", f"{E}.2.1": "LF-TEST-MIB::lfMessage",
                  # not defined: named after the nearest node a MIB defines (as net-snmp does)
                  f"{E}.2.2": "LF-TEST-MIB::lfTest.2.2", f"{E}.2.3": "LF-TEST-MIB::lfTest.2.3",
                  SYS_NAME: "SNMPv2-MIB::sysName.0"},  # OTHER: in no MIB, no name
    }  # fmt: skip
    _, inform = docs[COLD_START]
    assert (inform["pdu"], inform["varbinds"]) == ("inform", {})
    assert inform["names"] == {COLD_START: "SNMPv2-MIB::coldStart"}
    assert counters(agent).get("rejected", 0) == 0


def test_garbage_and_wrong_communities_are_rejected(
    tmp_path: Path, local_bus: LocalBus, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(5)
    garbage = [b"", b"garbage\x00\xff", b"\x30\x03\x02\x01\x09", b"\x30\x82\xff\xff"]
    garbage += [rng.randbytes(rng.randrange(1, 300)) for _ in range(100)]
    got: list[Record] = []

    async def scenario(agent: Agent, src: SnmpSource, address: tuple[str, int]) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for data in garbage:
                sock.sendto(data, address)
        finally:
            sock.close()
        await until(lambda: counters(agent).get("rejected") == len(garbage), "rejections")
        with pytest.raises(AssertionError, match="RequestTimedOut"):
            await send_trap(address, "private", COLD_START, kind="inform", timeout=0.5)
        await until(lambda: counters(agent)["rejected"] == len(garbage) + 1, "bad community")
        await send_trap(address, "public", COLD_START)  # the source still works
        got.extend(await read_until(local_bus, 1))

    agent = run_agent(tmp_path, local_bus, snmp_source(), scenario)
    assert [json.loads(r.line)["trap_oid"] for r in got] == [COLD_START]
    assert "names" not in json.loads(got[0].line)  # no mibs configured
    assert counters(agent)["rejected"] == len(garbage) + 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "rejected a datagram from 127.0.0.1:" in warnings[0]


def test_port_in_use_fails_the_agent(tmp_path: Path, local_bus: LocalBus) -> None:
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    try:
        source = snmp_source(listen=f"127.0.0.1:{busy.getsockname()[1]}")
        with pytest.raises(OSError, match="in use"):
            run_agent(tmp_path, local_bus, source, lambda *_: asyncio.sleep(0))
    finally:
        busy.close()


# -- bursts and kernel drops -------------------------------------------------------------------
async def trap_bytes(community: str, trap_oid: str) -> bytes:
    """One v2c trap exactly as pysnmp sends it, caught by a plain socket."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        await send_trap(rx.getsockname(), community, trap_oid, (SYS_NAME, OctetString("burst")))
        return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(rx, 65536), 10)
    finally:
        rx.close()


def send_burst(trap: bytes, address: tuple[str, int], n: int) -> None:
    """``n`` copies at once, from the event loop's own thread: the source reads none of them
    until this returns, so all of them must wait in (or be dropped by) the kernel's buffer."""
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(n):
            tx.sendto(trap, address)
    finally:
        tx.close()


def received_or_dropped(agent: Agent) -> int:
    c = counters(agent)
    return c.get("received", 0) + c.get("dropped", 0)


def test_a_burst_of_traps_waits_in_the_large_receive_buffer(
    tmp_path: Path, local_bus: LocalBus
) -> None:
    """3,000 traps at once: the kernel's default buffer held about 257 of them, and the rest
    vanished without a count. Now the socket has udp_rcvbuf (32 MiB), and whatever the kernel
    still drops is counted: received + dropped == sent, exactly."""
    sent = 3000
    want = source_as(SnmpSourceConfig, type="snmp").udp_rcvbuf
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    rcvbuf = 0

    async def scenario(agent: Agent, src: SnmpSource, address: tuple[str, int]) -> None:
        nonlocal rcvbuf
        assert src._drops is not None
        rcvbuf = src._drops.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
        assert rcvbuf == (want if may_force_buffers() else min(want, rmem_max))
        send_burst(await trap_bytes("public", COLD_START), address, sent)
        await until(lambda: received_or_dropped(agent) >= sent, "every trap counted", 60)

    agent = run_agent(tmp_path, local_bus, snmp_source(), scenario)
    c = counters(agent)
    assert c.get("received", 0) + c.get("dropped", 0) == sent
    if rcvbuf >= sent * 4096:  # far more than a small datagram takes in the kernel
        assert c["received"] == sent
        assert "dropped" not in c
    assert c.get("rejected", 0) == 0


def test_traps_the_kernel_drops_are_counted_and_shown(
    tmp_path: Path, local_bus: LocalBus, caplog: pytest.LogCaptureFixture
) -> None:
    """A receive buffer of 1 KiB (the kernel makes it its least, a few datagrams): most of a
    burst of 300 is dropped by the kernel, and stats, /metrics and health all say how many."""
    sent = 300
    views: dict[str, Any] = {}

    def api_views(agent: Agent) -> None:
        producer = local_bus.producer()
        ctx = NodeContext(
            config=Config(), bus=local_bus, producer=producer, registry=agent.registry,
            stats_dir=tmp_path / "stats", started=time.time(),
            access=AccessStore.in_dir(tmp_path / "access"),
        )  # fmt: skip
        try:
            with api_client(ctx, role=Role.VIEWER) as client:
                health = client.get("/api/v1/health")
                views["health"] = (health.status_code, health.json())
                views["sources"] = client.get("/api/v1/stats").json()["sources"]
                views["metrics"] = {
                    (s.name, tuple(sorted(s.labels.items()))): s.value
                    for family in text_string_to_metric_families(client.get("/metrics").text)
                    for s in family.samples
                }
        finally:
            producer.close()

    async def scenario(agent: Agent, src: SnmpSource, address: tuple[str, int]) -> None:
        send_burst(await trap_bytes("public", COLD_START), address, sent)
        await until(lambda: received_or_dropped(agent) >= sent, "every trap counted", 30)
        await asyncio.to_thread(api_views, agent)

    with caplog.at_level(logging.WARNING):
        agent = run_agent(tmp_path, local_bus, snmp_source(udp_rcvbuf=1024), scenario)
    dropped = counters(agent)["dropped"]
    assert 0 < dropped < sent
    assert counters(agent)["received"] + dropped == sent
    status, body = views["health"]
    assert status == 200
    assert body["status"] == "ok"
    (warning,) = body["warnings"]
    assert warning.startswith(
        f"test: snmp source 'traps': the kernel dropped {dropped:,} UDP datagrams in the last "
        "minute (receive buffer of "
    )
    assert views["sources"]["traps"]["dropped"] == dropped
    key = ("logfactory_source_records_total", (("outcome", "dropped"), ("source", "traps")))
    assert views["metrics"][key] == dropped
    logged = [r.getMessage() for r in caplog.records if "UDP datagrams" in r.getMessage()]
    assert len(logged) == 1
    assert "snmp source 'traps': the kernel dropped" in logged[0]
    assert "warning:source:traps:dropped" not in agent.registry.problems()  # gone with it
