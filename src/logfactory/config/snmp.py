"""The SNMPv3 (USM) users of an snmp source, and the protocol and engine-id spellings."""

from __future__ import annotations

from logfactory.config.base import Section

__all__ = [
    "SNMP_AUTH_PROTOCOLS",
    "SNMP_PRIV_PROTOCOLS",
    "SnmpV3User",
    "snmp_engine_id",
    "snmp_protocol",
]

SNMP_AUTH_PROTOCOLS = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512", "NONE")
SNMP_PRIV_PROTOCOLS = ("DES", "3DES", "AES", "AES192", "AES256", "AES192C", "AES256C", "NONE")
_SNMP_ALIASES = {"SHA1": "SHA", "AES128": "AES"}


def snmp_protocol(value: str) -> str:
    """``SHA-256``, ``sha256`` -> ``SHA256``: net-snmp's spellings and ours name one protocol."""
    name = value.upper().replace("-", "").replace("_", "")
    return _SNMP_ALIASES.get(name, name)


def snmp_engine_id(value: str) -> bytes:
    """Hex (``0x`` optional, ``:`` allowed) -> the 5..32 octets RFC 3411 allows; else ValueError."""
    text = value.strip().replace(":", "")
    text = text[2:] if text[:2].lower() == "0x" else text
    try:
        octets = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"engine_id {value!r} is not hex, e.g. 0x8000000001020304") from None
    if not 5 <= len(octets) <= 32:
        raise ValueError(f"engine_id {value!r} has {len(octets)} octets; SNMP wants 5 to 32")
    return octets


class SnmpV3User(Section, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An SNMPv3 (USM) user whose traps and informs an snmp source accepts.

    ``auth_protocol`` defaults to SHA when ``auth_key`` is given, ``priv_protocol`` to AES when
    ``priv_key`` is. ``engine_id`` is the *sender's* engine id: v3 traps are authenticated with
    keys localized to it, so without it the user is accepted for informs only (which use ours).
    AES192/AES256 are the key extension net-snmp uses; AES192C/AES256C the one Cisco uses.

    Attributes:
        user: the USM user name, 1 to 32 characters
        auth_protocol: MD5, SHA, SHA224, SHA256, SHA384, SHA512 or NONE (SHA when a key is given)
        auth_key: the authentication passphrase, at least 8 characters
        priv_protocol: DES, 3DES, AES, AES192, AES256, AES192C, AES256C or NONE (AES when a key
            is given)
        priv_key: the privacy passphrase, at least 8 characters; needs auth_key
        engine_id: the sender's engine id (hex); without it the user is accepted for informs only
    """

    user: str
    auth_protocol: str | None = None
    auth_key: str | None = None
    priv_protocol: str | None = None
    priv_key: str | None = None
    engine_id: str | None = None

    def __post_init__(self) -> None:
        # msgspec turns a ValueError here into a config error at this user's line
        if not 1 <= len(self.user) <= 32:
            raise ValueError("user must be 1 to 32 characters")
        for kind, names, protocol, key in (
            ("auth", SNMP_AUTH_PROTOCOLS, self.auth_protocol, self.auth_key),
            ("priv", SNMP_PRIV_PROTOCOLS, self.priv_protocol, self.priv_key),
        ):
            name = snmp_protocol(protocol) if protocol is not None else None
            if name is not None and name not in names:
                raise ValueError(
                    f"{kind}_protocol {protocol!r} is unknown; use one of {', '.join(names)}"
                )
            if key is None and name not in (None, "NONE"):
                raise ValueError(f"{kind}_protocol {protocol} needs {kind}_key")
            if key is not None and name == "NONE":
                raise ValueError(f"{kind}_key is set but {kind}_protocol is none")
            if key is not None and len(key) < 8:
                raise ValueError(f"{kind}_key must be at least 8 characters (RFC 3414)")
        if self.priv_key is not None and self.auth_key is None:
            raise ValueError("priv_key needs auth_key: SNMPv3 has no privacy without auth")
        if self.engine_id is not None:
            snmp_engine_id(self.engine_id)

    @property
    def auth(self) -> str:
        """The auth protocol's canonical name (``NONE`` without a key)."""
        if self.auth_key is None:
            return "NONE"
        return snmp_protocol(self.auth_protocol or "SHA")

    @property
    def priv(self) -> str:
        """The privacy protocol's canonical name (``NONE`` without a key)."""
        if self.priv_key is None:
            return "NONE"
        return snmp_protocol(self.priv_protocol or "AES")
