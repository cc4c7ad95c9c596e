"""A software passkey for tests: answers WebAuthn options as a browser and authenticator would.

It holds one P-256 credential and makes the JSON a page's script posts after
``navigator.credentials.create`` (attestation ``none``) or ``.get`` (an ES256 signature over
the authenticator data and the hash of the client data), so that py_webauthn's own
verification runs on answers made here. Every field a test may want wrong can be changed
per answer: the origin, the RP ID, the challenge, user verification, the counter.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(data: bytes) -> str:
    """Return ``data`` in unpadded base64url, as WebAuthn's JSON carries bytes."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """Return the bytes of unpadded base64url ``text``."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class SoftPasskey:
    """One discoverable, user-verifying credential for the relying party ``rp_id``."""

    rp_id: str
    origin: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=_new_key, repr=False)
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    #: The counter the next answer reports; it goes up by one with each sign-in.
    sign_count: int = 0
    user_handle: bytes = b""

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _auth_data(self, rp_id: str, *, attested: bool, verified: bool) -> bytes:
        flags = 0x01 | (0x04 if verified else 0) | (0x40 if attested else 0)
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags])
        data += self.sign_count.to_bytes(4, "big")
        if attested:
            data += bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id
            data += self._cose_key()
        return data

    def _client_data(self, kind: str, challenge: bytes, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": b64url(challenge),
                "origin": self.origin if origin is None else origin,
                "crossOrigin": False,
            }
        ).encode()

    def register(
        self,
        options: str,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        verified: bool = True,
        challenge: bytes | None = None,
    ) -> str:
        """Answer registration options (JSON) as ``navigator.credentials.create`` would."""
        asked = json.loads(options)
        self.user_handle = unb64url(asked["user"]["id"])
        client = self._client_data(
            "webauthn.create", challenge or unb64url(asked["challenge"]), origin
        )
        auth_data = self._auth_data(rp_id or self.rp_id, attested=True, verified=verified)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps(
            {
                "id": b64url(self.credential_id),
                "rawId": b64url(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(client),
                    "attestationObject": b64url(attestation),
                    "transports": ["internal", "hybrid"],
                },
                "clientExtensionResults": {},
                "authenticatorAttachment": "platform",
            }
        )

    def sign_in(
        self,
        options: str,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        verified: bool = True,
        sign_count: int | None = None,
    ) -> str:
        """Answer authentication options (JSON) as ``navigator.credentials.get`` would."""
        asked = json.loads(options)
        self.sign_count = self.sign_count + 1 if sign_count is None else sign_count
        client = self._client_data("webauthn.get", unb64url(asked["challenge"]), origin)
        auth_data = self._auth_data(rp_id or self.rp_id, attested=False, verified=verified)
        signature = self.key.sign(
            auth_data + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256())
        )
        return json.dumps(
            {
                "id": b64url(self.credential_id),
                "rawId": b64url(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(client),
                    "authenticatorData": b64url(auth_data),
                    "signature": b64url(signature),
                    "userHandle": b64url(self.user_handle),
                },
                "clientExtensionResults": {},
                "authenticatorAttachment": "platform",
            }
        )
