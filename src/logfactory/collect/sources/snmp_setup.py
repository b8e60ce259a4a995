"""The pysnmp side of the snmp source: the engine, its identity, its users, and OID names.

Kept apart from :mod:`.snmp` so that the source reads as "datagram in, Record out" while the
protocol set-up, which only runs at start, lives here.

Engine identity: informs are sent to *our* engine id, and an SNMPv3 sender refuses a receiver
whose ``snmpEngineBoots`` went backwards (RFC 3414 3.2 step 7b: a non-authoritative engine never
moves its notion of our clock back), so the id and the boot counter are persisted together in
``<data_dir>/snmp/<source>.json`` and the counter grows by one at every start. pysnmp's own
persistence (under the system temp dir, only for a configured id) is bypassed on purpose.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pysnmp.entity import config as snmp_config  # type: ignore[import-untyped]
from pysnmp.entity import engine as snmp_engine
from pysnmp.proto import rfc1902  # type: ignore[import-untyped]

from logfactory.config import SnmpV3User, snmp_engine_id

__all__ = [
    "AUTH_PROTOCOLS",
    "BAD_COUNTERS",
    "PRIV_PROTOCOLS",
    "BadCounters",
    "OidNames",
    "add_communities",
    "add_users",
    "load_identity",
    "new_engine",
]

# canonical names (config.SNMP_*_PROTOCOLS) -> pysnmp service ids
AUTH_PROTOCOLS: dict[str, tuple[int, ...]] = {
    "MD5": snmp_config.USM_AUTH_HMAC96_MD5,
    "SHA": snmp_config.USM_AUTH_HMAC96_SHA,
    "SHA224": snmp_config.USM_AUTH_HMAC128_SHA224,
    "SHA256": snmp_config.USM_AUTH_HMAC192_SHA256,
    "SHA384": snmp_config.USM_AUTH_HMAC256_SHA384,
    "SHA512": snmp_config.USM_AUTH_HMAC384_SHA512,
    "NONE": snmp_config.USM_AUTH_NONE,
}
PRIV_PROTOCOLS: dict[str, tuple[int, ...]] = {
    "DES": snmp_config.USM_PRIV_CBC56_DES,
    "3DES": snmp_config.USM_PRIV_CBC168_3DES,
    "AES": snmp_config.USM_PRIV_CFB128_AES,
    # net-snmp's -x AES-192/AES-256 extend the key as draft-blumenthal does (checked with
    # snmptrap 5.9: SHA + AES-256 decrypts with this one only); the "C" ones are Cisco's
    "AES192": snmp_config.USM_PRIV_CFB192_AES_BLUMENTHAL,
    "AES256": snmp_config.USM_PRIV_CFB256_AES_BLUMENTHAL,
    "AES192C": snmp_config.USM_PRIV_CFB192_AES,
    "AES256C": snmp_config.USM_PRIV_CFB256_AES,
    "NONE": snmp_config.USM_PRIV_NONE,
}

# Counters pysnmp raises when it throws a message away. Not in the list: usmStatsUnknownEngineIDs
# and usmStatsNotInTimeWindows, which every v3 inform's engine discovery raises by design.
BAD_COUNTERS: tuple[tuple[str, str], ...] = (
    ("__SNMPv2-MIB", "snmpInASNParseErrs"),
    ("__SNMPv2-MIB", "snmpInBadVersions"),
    ("__SNMPv2-MIB", "snmpInBadCommunityNames"),
    ("__SNMPv2-MIB", "snmpInBadCommunityUses"),
    ("__SNMP-MPD-MIB", "snmpUnknownSecurityModels"),
    ("__SNMP-MPD-MIB", "snmpInvalidMsgs"),
    ("__SNMP-MPD-MIB", "snmpUnknownPDUHandlers"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnsupportedSecLevels"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"),
    ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors"),
)

_MAX_BOOTS = 2_147_483_646  # RFC 3414: at 2^31-1 the engine must be re-keyed
# RFC 3411 format 5 (administratively assigned octets) under pysnmp's enterprise number 20408
_ENGINE_ID_PREFIX = bytes.fromhex("80004fb805")


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name) or "snmp"


def load_identity(data_dir: Path, source: str, configured: str | None) -> tuple[bytes, int]:
    """Our engine id and this start's ``snmpEngineBoots``, persisted before they are used.

    Without ``configured`` the id made at the first start is kept. A changed configured id
    starts its boot counter afresh (boots are per engine id)."""
    path = data_dir / "snmp" / f"{_safe(source)}.json"
    stored: dict[str, Any] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
            bytes.fromhex(stored["engine_id"])
            int(stored["boots"])
        except (ValueError, KeyError, TypeError):
            raise ValueError(
                f"{path} is damaged; remove it to make a new engine id (v3 senders of informs "
                "must then be told the new one)"
            ) from None
    if configured is not None:
        engine_id = snmp_engine_id(configured)
    elif stored:
        engine_id = bytes.fromhex(stored["engine_id"])
    else:
        engine_id = _ENGINE_ID_PREFIX + secrets.token_bytes(8)
    boots = int(stored["boots"]) if stored.get("engine_id") == engine_id.hex() else 0
    boots = boots + 1 if boots < _MAX_BOOTS else _MAX_BOOTS
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        json.dump({"engine_id": engine_id.hex(), "boots": boots}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return engine_id, boots


def new_engine(engine_id: bytes, boots: int) -> Any:
    """An SnmpEngine with our identity set the way pysnmp's constructor sets a custom one."""
    eng = snmp_engine.SnmpEngine()
    builder = eng.get_mib_builder()
    (mib_id,) = builder.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineID")
    mib_id.syntax = mib_id.syntax.clone(engine_id)
    eng.snmpEngineID = mib_id.syntax
    (mib_boots,) = builder.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineBoots")
    mib_boots.syntax = mib_boots.syntax.clone(boots)
    return eng


def add_communities(eng: Any, communities: Sequence[str]) -> None:
    """Accept v1/v2c messages with these communities; the security name *is* the community,
    so the receiving callback can report which one was used."""
    for i, community in enumerate(dict.fromkeys(communities)):
        snmp_config.add_v1_system(eng, f"lf-{i}", community, securityName=community)


def add_users(eng: Any, users: Sequence[SnmpV3User]) -> None:
    """Each user once per sender engine id (traps) and once for our own id (informs; the first
    entry of a user name decides its inform keys)."""
    for_informs: set[str] = set()
    for u in users:
        auth, priv = AUTH_PROTOCOLS[u.auth], PRIV_PROTOCOLS[u.priv]
        if u.engine_id is not None:
            sender = rfc1902.OctetString(snmp_engine_id(u.engine_id))
            snmp_config.add_v3_user(
                eng, u.user, auth, u.auth_key, priv, u.priv_key, securityEngineId=sender
            )
        if u.user not in for_informs:
            for_informs.add(u.user)
            snmp_config.add_v3_user(eng, u.user, auth, u.auth_key, priv, u.priv_key)


class BadCounters:
    """pysnmp's drop counters of one engine, read cheaply before and after each datagram."""

    def __init__(self, eng: Any) -> None:
        builder = eng.get_mib_builder()
        self._scalars = [builder.import_symbols(m, n)[0] for m, n in BAD_COUNTERS]

    def snapshot(self) -> tuple[int, ...]:
        return tuple(int(s.syntax) for s in self._scalars)

    @staticmethod
    def reason(before: tuple[int, ...], after: tuple[int, ...]) -> str:
        """The counter names that moved, e.g. ``usmStatsWrongDigests`` (wrong auth key)."""
        moved = [
            BAD_COUNTERS[i][1] for i, (a, b) in enumerate(zip(after, before, strict=True)) if a != b
        ]
        return ", ".join(moved) or "dropped by the SNMP engine"


class OidNames:
    """``MODULE::symbol.suffix`` for numeric OIDs, from pysnmp's MIBs plus compiled ``dirs``.

    A separate MIB builder from the engine's, so user MIBs cannot disturb the engine's own
    instrumentation. Nodes found only in an SMI module (``enterprises``, ``mib-2``) are not
    names worth reporting. Results are cached; the cache is bounded."""

    CACHE_MAX = 65_536

    def __init__(self, dirs: Sequence[str]) -> None:
        from pysnmp.smi import builder, view  # type: ignore[import-untyped]

        for d in dirs:
            if not Path(d).is_dir():
                raise ValueError(f"mibs: {d!r} is not a directory")
        mib_builder = builder.MibBuilder()
        mib_builder.add_mib_sources(*(builder.DirMibSource(d) for d in dirs))
        try:
            mib_builder.load_modules()
        except Exception as exc:
            raise ValueError(
                f"mibs: could not load the MIB modules in {list(dirs)}: {exc}"
            ) from exc
        self._view = view.MibViewController(mib_builder)
        self._cache: dict[str, str | None] = {}

    def name(self, oid: str) -> str | None:
        try:
            return self._cache[oid]
        except KeyError:
            pass
        found: str | None = None
        try:
            module, symbol, suffix = self._view.get_node_location(
                tuple(int(x) for x in oid.split("."))
            )
            if not str(module).endswith("-SMI"):
                found = f"{module}::{symbol}" + "".join(f".{x}" for x in suffix)
        except Exception:  # no MIB knows it (or an OID pysnmp cannot walk): no name
            found = None
        if len(self._cache) >= self.CACHE_MAX:
            self._cache.clear()
        self._cache[oid] = found
        return found
