"""Tests of exchange.peerauth, with the shared fixed keys, directory and request they use.

Everything is deterministic: keys come from fixed seeds, the clock is ``NOW``, and nonces are
fixed bytes where a test needs to know them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from exchange.keys.directory import Directory, KeyGeneration, Organisation
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import EncryptionKey, SigningKey
from exchange.peerauth import MemoryReplayCache, VerifiedPeer, sign_request, verify_request

T0 = 1_700_000_000
YEAR = 365 * 24 * 3600
NOW = T0 + 30 * 24 * 3600
LA = OrgId("la:356")
SCHOOL = OrgId("urn:106123")
UNLISTED = OrgId("ods:X26ABC")

#: RFC 9421 Appendix B.1.4, "test-key-ed25519" (the PKCS#8 form's last 32 bytes are the seed).
RFC_KEY_PKCS8 = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF"
RFC_KEY = SigningKey(base64.b64decode(RFC_KEY_PKCS8)[16:])

LA_KEY = SigningKey(bytes(range(1, 33)))
LA_NEXT_KEY = SigningKey(bytes(range(2, 34)))
LA_REVOKED_KEY = SigningKey(bytes(range(3, 35)))
LA_EXPIRED_KEY = SigningKey(bytes(range(4, 36)))
SCHOOL_KEY = SigningKey(bytes(range(5, 37)))
UNLISTED_KEY = SigningKey(bytes(range(6, 38)))


def _gen(key: SigningKey, start: int, end: int, revoked_at: int | None = None) -> KeyGeneration:
    return KeyGeneration(
        key.public,
        EncryptionKey(key.secret_bytes_for_storage()).public,
        not_before=start,
        not_after=end,
        revoked_at=revoked_at,
    )


DIRECTORY = Directory(
    3,
    T0,
    "directory.example/england",
    {
        LA: Organisation(
            LA,
            "Example Council",
            "la",
            (
                _gen(LA_KEY, T0, T0 + 2 * YEAR),
                _gen(LA_NEXT_KEY, T0, T0 + 2 * YEAR),
                _gen(LA_REVOKED_KEY, T0, T0 + 2 * YEAR, revoked_at=T0 + 1),
                _gen(LA_EXPIRED_KEY, T0 - 2 * YEAR, T0),
            ),
        ),
        SCHOOL: Organisation(
            SCHOOL, "Example Primary School", "school", (_gen(SCHOOL_KEY, T0, T0 + YEAR),)
        ),
    },
)

URL = "https://node.example.org/v1/inbound/envelopes?from=la%3A356&n=2"
BODY = b'{"envelope": "sealed bytes would go here"}'
CONTENT_TYPE = {"Content-Type": "application/json"}
NONCE = bytes(range(100, 124))


def sign(
    *,
    method: str = "POST",
    url: str = URL,
    headers: Mapping[str, str] = CONTENT_TYPE,
    body: bytes = BODY,
    key: SigningKey = LA_KEY,
    org: OrgId = LA,
    now: int = NOW,
    nonce: bytes | None = NONCE,
) -> dict[str, str]:
    """Return the request's full headers: ``headers`` plus the three signing headers."""
    added = sign_request(
        method=method,
        url=url,
        headers=headers,
        body=body,
        key=key,
        key_org=org,
        now=now,
        nonce=nonce,
    )
    return {**headers, **added}


def verify(
    headers: Mapping[str, str],
    *,
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    now: int = NOW,
    replay: MemoryReplayCache | None = None,
    **options: Any,
) -> VerifiedPeer:
    """Verify a request with the fixed directory and a fresh replay cache unless given one."""
    return verify_request(
        method=method,
        url=url,
        headers=headers,
        body=body,
        directory=DIRECTORY,
        now=now,
        replay=replay if replay is not None else MemoryReplayCache(600),
        **options,
    )
