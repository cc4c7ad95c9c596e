"""Shared helpers of the receipt tests: the vectors, their keys and a real directory.

The directory is a real ``exchange.keys.directory.Directory`` built from a vector's ``directory``
list, so the tests exercise the same lookups (and ``KeyLookupError`` reasons) a node uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from exchange.keys.directory import Directory, KeyGeneration, Organisation, OrgKind
from exchange.keys.ids import KeyId, OrgId
from exchange.keys.keypairs import EncryptionPublicKey, SigningKey, SigningPublicKey
from exchange.receipts import ReceiptStatus, serialize_signed, sign_receipt
from exchange.receipts.receipt import Receipt

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "receipts"
POSITIVE = sorted((VECTORS / "positive").glob("*.json"))
NEGATIVE = sorted((VECTORS / "negative").glob("*.json"))

_KINDS: dict[str, OrgKind] = {"urn": "school", "la": "la", "ods": "nhs"}


def load(path: Path) -> dict[str, Any]:
    """Return one vector file as JSON."""
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def directory_from(vector: dict[str, Any]) -> Directory:
    """Build the directory a vector describes, each revoked key revoked from its start."""
    generations: dict[str, list[KeyGeneration]] = {}
    for d in vector["directory"]:
        generations.setdefault(d["org"], []).append(
            KeyGeneration(
                SigningPublicKey.from_bytes(bytes.fromhex(d["signing_public"])),
                EncryptionPublicKey.from_bytes(bytes.fromhex(d["encryption_public"])),
                d["not_before"],
                d["not_after"],
                d["not_before"] if d["revoked"] else None,
            )
        )
    orgs = {
        OrgId(org): Organisation(OrgId(org), org, _KINDS[org.split(":")[0]], tuple(gens))
        for org, gens in generations.items()
    }
    return Directory(1, vector["now"] - 3600, "test-authority", orgs)


def signing_keys(vector: dict[str, Any]) -> dict[tuple[str, str], SigningKey]:
    """Return every key generation's signing key, by (org, generation)."""
    return {
        (k["org"], k["generation"]): SigningKey(bytes.fromhex(k["ed25519_seed"]))
        for k in vector["keys"]
    }


def verify_kwargs(vector: dict[str, Any]) -> dict[str, Any]:
    """Return the keyword arguments of verify_receipt that a vector declares."""
    env = vector["envelope"]
    return {
        "expected_digest": bytes.fromhex(env["expected_digest"]),
        "expected_envelope_id": bytes.fromhex(env["expected_envelope_id"]),
        "sender": OrgId(env["sender"]),
        "recipients": [OrgId(r) for r in env["recipients"]],
        "directory": directory_from(vector),
        "now": vector["now"],
    }


def receipt_from(fields: dict[str, Any]) -> Receipt:
    """Build a Receipt from a positive vector's ``receipt`` object."""
    return Receipt(
        status=ReceiptStatus(fields["status"]),
        envelope_digest=bytes.fromhex(fields["envelope_digest"]),
        envelope_id=bytes.fromhex(fields["envelope_id"]),
        sender=OrgId(fields["sender"]),
        receipter=OrgId(fields["receipter"]),
        receipter_key=KeyId(bytes.fromhex(fields["receipter_key"])),
        time=fields["time"],
        disposition=fields["disposition"],
        transport_ref=fields["transport_ref"],
    )


@dataclass(frozen=True)
class Fixture:
    """A positive vector's receipt, its signed bytes, the key and what verifies it."""

    vector: dict[str, Any]
    receipt: Receipt
    key: SigningKey
    signed: bytes
    kwargs: dict[str, Any]

    def make(self, **changes: Any) -> bytes:
        """Return a receipt like this one with ``changes``, signed by the same key."""
        fields = {name: getattr(self.receipt, name) for name in Receipt.__dataclass_fields__}
        return serialize_signed(sign_receipt(Receipt(**{**fields, **changes}), self.key))


def fixture_for(name: str) -> Fixture:
    """Return the positive vector ``name`` as a :class:`Fixture`."""
    vector = load(VECTORS / "positive" / f"{name}.json")
    signer = vector["signer"]
    return Fixture(
        vector=vector,
        receipt=receipt_from(vector["receipt"]),
        key=signing_keys(vector)[signer["org"], signer["generation"]],
        signed=bytes.fromhex(vector["signed"]),
        kwargs=verify_kwargs(vector),
    )


@pytest.fixture
def acknowledged() -> Fixture:
    """Return the positive 'acknowledged' vector as a fixture."""
    return fixture_for("acknowledged")
