"""Organisation ids and key ids (fingerprints).

An organisation id is ``namespace:code`` in ASCII, for example ``urn:106123`` (a school by
its GIAS URN), ``la:356`` (a local authority by its LA code) or ``ods:X26ABC`` (an NHS team
by its ODS code). A key id is the SHA-256 of a domain label, the algorithm name and the raw
public key, so a key id can never be confused between algorithms or with any other hash in
the system.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, Literal, NewType

OrgId = NewType("OrgId", str)
KeyId = NewType("KeyId", bytes)

#: Longest organisation id accepted anywhere (bytes). The envelope encodes ids with a
#: one-byte length, and 64 leaves room for every UK identifier scheme we know of.
MAX_ORG_ID_LEN: Final = 64

_ORG_ID_RE: Final = re.compile(r"[a-z][a-z0-9-]{0,15}:[A-Za-z0-9][A-Za-z0-9._-]{0,46}")

KEY_ID_LABEL: Final = b"exchange/v1/key-id\x00"
KEY_ID_LEN: Final = 32

Algorithm = Literal["ed25519", "x25519"]


def parse_org_id(value: str, *, field: str = "organisation id") -> OrgId:
    """Return ``value`` as an :class:`OrgId`, or raise ``ValueError`` naming ``field``."""
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string")
    if len(value) > MAX_ORG_ID_LEN or _ORG_ID_RE.fullmatch(value) is None:
        raise ValueError(
            f"{field} must look like 'namespace:code' (lower-case namespace, then letters, "
            f"digits, '.', '_' or '-'; at most {MAX_ORG_ID_LEN} characters)"
        )
    return OrgId(value)


def key_id(algorithm: Algorithm, public_key: bytes) -> KeyId:
    """Return the key id (fingerprint) of a raw public key."""
    return KeyId(
        hashlib.sha256(KEY_ID_LABEL + algorithm.encode("ascii") + b"\x00" + public_key).digest()
    )


def key_id_text(value: bytes) -> str:
    """Return the printable form of a key id: lower-case hex of all 32 bytes."""
    return value.hex()


def parse_key_id_text(value: str, *, field: str = "key id") -> KeyId:
    """Parse the printable form of a key id, or raise ``ValueError`` naming ``field``."""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{field} must be {KEY_ID_LEN * 2} hexadecimal characters") from None
    if len(raw) != KEY_ID_LEN:
        raise ValueError(f"{field} must be {KEY_ID_LEN * 2} hexadecimal characters")
    return KeyId(raw)
