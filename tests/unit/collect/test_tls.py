"""TLS for the socket sources: certificates, contexts, RFC 5425 syslog with a Python TLS client."""

from __future__ import annotations

import asyncio
import datetime
import os
import socket
import ssl
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from tests.helpers.bus import read_all
from tests.helpers.configs import source_as
from tests.helpers.sources import LOOPS, LoopRunner, agent_around, make_config

from logfactory.bus.local import LocalBus
from logfactory.collect.agent import RAW_TOPIC, Agent
from logfactory.collect.sources.syslog import SyslogSource
from logfactory.collect.tls import TlsConfigError, ensure_self_signed, server_context
from logfactory.config import Config, NodeConfig, SourceConfig, SyslogSourceConfig, source_config
from logfactory.config.checks import check_config
from logfactory.record import Record, decode_record
from logfactory.stats import StatsRegistry


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


# -- certificates ---------------------------------------------------------------------------
def test_self_signed_is_created_once_and_reused(tmp_path: Path) -> None:
    cert, key = ensure_self_signed(tmp_path / "tls", "node7.example")
    assert (cert.parent, cert.name, key.name) == (tmp_path / "tls", "node.crt", "node.key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    c = load(cert)
    assert c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node7.example"
    sans = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "node7.example"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    years = (c.not_valid_after_utc - c.not_valid_before_utc) / datetime.timedelta(days=365)
    assert 9.9 < years < 10.1
    before = (cert.read_bytes(), key.read_bytes())
    # a restart (any hostname) keeps what peers already trust
    assert ensure_self_signed(tmp_path / "tls", "other") == (cert, key)
    assert (cert.read_bytes(), key.read_bytes()) == before
    # the pair loads: the key matches the certificate
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)


def test_a_half_written_pair_is_replaced(tmp_path: Path) -> None:
    cert, key = ensure_self_signed(tmp_path, "h")
    old_key = key.read_bytes()
    cert.unlink()  # as if a crash came between the two renames
    cert2, key2 = ensure_self_signed(tmp_path, "h")
    assert key2.read_bytes() != old_key
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert2, key2)


def tls_source(**kw: Any) -> SyslogSourceConfig:
    base: dict[str, Any] = {"type": "syslog", "name": "sys", "tls_listen": "127.0.0.1:0"}
    base.update(kw)
    return source_as(SyslogSourceConfig, **base)


def test_server_context_without_files_uses_the_self_signed_pair(tmp_path: Path) -> None:
    ctx, cert = server_context(tls_source(), tmp_path, hostname="n1")
    assert cert == tmp_path / "tls" / "node.crt"
    assert ctx.verify_mode == ssl.CERT_NONE
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"tls_cert": "/nope/c.pem", "tls_key": "/nope/k.pem"}, "tls_cert '/nope/c.pem' is not"),
        ({"tls_cert": "/nope/c.pem"}, "tls_cert and tls_key must be given together"),
        ({"tls_verify_client": True}, "tls_verify_client needs tls_ca"),
        ({"tls_ca": "/nope/ca.pem"}, "cannot load tls_ca '/nope/ca.pem'"),
    ],
)
def test_bad_tls_settings_are_clear_errors(
    tmp_path: Path, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(TlsConfigError, match=message):
        server_context(tls_source(**kw), tmp_path)


def test_a_key_that_does_not_match_is_a_clear_error(tmp_path: Path) -> None:
    cert, _ = ensure_self_signed(tmp_path / "a")
    _, other_key = ensure_self_signed(tmp_path / "b")
    (tmp_path / "garbage.pem").write_text("not a certificate")
    for c, k in ((cert, other_key), (tmp_path / "garbage.pem", other_key)):
        with pytest.raises(TlsConfigError, match="cannot load certificate"):
            server_context(tls_source(tls_cert=str(c), tls_key=str(k)), tmp_path)


def test_config_check_reports_tls_keys(tmp_path: Path) -> None:
    cfg = Config(
        node=NodeConfig(data_dir=str(tmp_path)),
        sources=[
            source_config(type="raw", name="r", tls_key="k.pem", tls_listen="bad"),
            source_config(type="syslog", name="s", tls_verify_client=True, udp_rcvbuf=10),
            source_config(type="raw", name="nothing"),
        ],
    )
    problems = {(path[1], path[2]): text for path, text in check_config(cfg)}
    assert "given together" in problems[(0, "tls_cert")]
    assert "is not HOST:PORT" in problems[(0, "tls_listen")]
    assert "needs tls_ca" in problems[(1, "tls_ca")]
    assert "at least 1024" in problems[(1, "udp_rcvbuf")]
    assert "a raw source needs 'listen" in problems[(2, "type")]


# -- RFC 5425 through the agent --------------------------------------------------------------
Scenario = Callable[[SyslogSource], Awaitable[None]]


def run(
    tmp_path: Path,
    bus: LocalBus,
    sc: SourceConfig,
    scenario: Scenario,
    registry: StatsRegistry | None = None,
    runner: LoopRunner = asyncio.run,
) -> Agent:
    config = make_config(tmp_path, sc)

    async def around(_agent: Agent, src: SyslogSource) -> None:
        await scenario(src)

    return agent_around(
        config, bus, SyslogSource, around,
        runner=runner, registry=registry or StatsRegistry("t"), partitions=2, hostname="n1",
    )  # fmt: skip


def raw_lines(bus: LocalBus) -> list[Record]:
    return [decode_record(m.value) for m in read_all(bus, RAW_TOPIC)]


def client_context(cafile: Path, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cafile))
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx


async def send_tls(port: int, ctx: ssl.SSLContext, payload: bytes) -> None:
    _, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    for i in range(0, len(payload), 301):  # frames split across TLS records
        w.write(payload[i : i + 301])
        await w.drain()
    w.close()
    await w.wait_closed()


async def wait_rejected(registry: StatsRegistry, n: int) -> None:
    for _ in range(1000):
        if registry.snapshot()["counters"].get("source:sys", {}).get("rejected", 0) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never saw {n} rejections")


@pytest.mark.parametrize("runner", LOOPS, ids=["asyncio", "uvloop"])  # the node runs uvloop
def test_syslog_over_tls_octet_counted_and_newline_and_bad_handshakes(
    tmp_path: Path, local_bus: LocalBus, runner: LoopRunner
) -> None:
    registry = StatsRegistry("t")

    async def scenario(src: SyslogSource) -> None:
        assert src.tls_cert is not None
        port = src.bound["tls"][1]
        ctx = client_context(src.tls_cert)
        frames = [b"<13>1 2026-11-22T00:15:51Z h1 app - - - tls %d\n" % i for i in range(300)]
        await send_tls(port, ctx, b"".join(b"%d %s" % (len(f), f) for f in frames))
        lines = b"".join(b"<13>Nov 22 00:15:51 h2 app: nl %d\n" % i for i in range(300))
        await send_tls(port, ctx, lines)
        # plain text to the TLS port, and a client that does not trust us: counted, not fatal
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"<13>Nov 22 00:15:51 h3 app: not TLS\n")
        await w.drain()
        w.close()
        untrusting = ssl.create_default_context()  # system CAs only
        with pytest.raises(ssl.SSLCertVerificationError):
            await send_tls(port, untrusting, b"x\n")
        # a port probe (connect, close) is not a failed handshake
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.close()
        await wait_rejected(registry, 2)
        await send_tls(port, ctx, b"<13>Nov 22 00:15:51 h4 app: still serving\n")

    agent = run(tmp_path, local_bus, tls_source(tag="t"), scenario, registry, runner)
    got = raw_lines(local_bus)
    assert [r.line for r in got if r.host == "h1"] == [
        f"<13>1 2026-11-22T00:15:51Z h1 app - - - tls {i}" for i in range(300)
    ]
    assert [r.line for r in got if r.host == "h2"] == [
        f"<13>Nov 22 00:15:51 h2 app: nl {i}" for i in range(300)
    ]
    assert [r.host for r in got if r.host not in ("h1", "h2")] == ["h4"]
    assert {r.meta["transport"] for r in got} == {"tls"}
    counters = agent.registry.snapshot()["counters"]["source:sys"]
    assert counters["rejected"] == 2
    assert counters["received"] == 601


def test_mutual_tls_requires_a_client_certificate(tmp_path: Path, local_bus: LocalBus) -> None:
    client = ensure_self_signed(tmp_path / "client", "client1")

    async def scenario(src: SyslogSource) -> None:
        assert src.tls_cert is not None
        port = src.bound["tls"][1]
        anonymous = client_context(src.tls_cert)

        async def send_anonymously() -> None:
            r, w = await asyncio.open_connection(
                "127.0.0.1", port, ssl=anonymous, server_hostname="localhost"
            )
            w.write(b"<13>Nov 22 00:15:51 anon app: refused\n")
            await w.drain()
            await asyncio.wait_for(r.read(), 5)
            w.close()
            await w.wait_closed()

        # TLS 1.3: the server's refusal arrives after the client's handshake completed
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await send_anonymously()
        await send_tls(
            port, client_context(src.tls_cert, client), b"<13>Nov 22 00:15:51 c1 app: welcome\n"
        )

    sc = tls_source(tls_ca=str(client[0]), tls_verify_client=True)
    registry = StatsRegistry("t")
    run(tmp_path, local_bus, sc, scenario, registry)
    assert [r.line for r in raw_lines(local_bus)] == ["<13>Nov 22 00:15:51 c1 app: welcome"]
    assert registry.snapshot()["counters"]["source:sys"]["rejected"] == 1


def test_given_certificate_files_are_used(tmp_path: Path, local_bus: LocalBus) -> None:
    cert, key = ensure_self_signed(tmp_path / "mine", socket.gethostname())

    async def scenario(src: SyslogSource) -> None:
        assert src.tls_cert == cert
        await send_tls(src.bound["tls"][1], client_context(cert), b"14 <13>1 - h - -\n")

    run(tmp_path, local_bus, tls_source(tls_cert=str(cert), tls_key=str(key)), scenario)
    assert not (tmp_path / "data" / "tls").exists()
    assert [r.line for r in raw_lines(local_bus)] == ["<13>1 - h - -"]
