"""Deterministic generator of the receipt test vectors (docs/receipts.md §10).

Run ``python tests/vectors/receipts_generate.py`` from the repository root to (re)write
``tests/vectors/receipts/positive/*.json`` and ``tests/vectors/receipts/negative/*.json``;
with ``--check`` it writes nothing and exits with status 1 if any file on disk differs from
what it would write (or if a file is missing or left over). Nothing here reads the clock or
the operating system's random source, so every run produces the same bytes:

- **Keys.** Every key generation has an Ed25519 seed
  ``SHA-256(KEY_LABEL ‖ "ed25519" ‖ 0x00 ‖ org id ‖ 0x00 ‖ generation)`` and an X25519 secret
  made the same way with ``"x25519"``: the formula and label of the envelope generator, so
  an organisation's ``current`` keys are the same in both sets of vectors.
- **The envelope.** Every receipt is about a real envelope: ``positive/two-recipients.json``
  of the envelope vectors (sender ``urn:106123``, recipients ``la:356`` and ``ods:X26ABC``).
  Its digest and envelope id are read from that file, so if the envelope vectors change,
  ``--check`` fails here too. ``positive/one-byte.json`` supplies "another envelope".
- **Clock.** ``NOW`` (2026-01-01T00:00:00Z, as in the envelope vectors) is every vector's
  ``now``; receipt times are fixed offsets before it.
- **Signatures.** Ed25519 is deterministic (RFC 8032), so the same key and statement give
  the same signature.

Statements are written by :func:`raw_statement`, an encoder written from the spec alone that
takes every field as raw values, so a negative vector can hold exactly one defect while its
signature is still made by the named key over the defective bytes. For every positive
vector the generator checks that ``raw_statement`` and ``exchange.receipts`` produce the same
statement, signature and wire bytes.
"""

from __future__ import annotations

import hashlib
import json
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

# The keys, clock and organisations are the envelope vectors' own (this script's folder is
# first on sys.path when it runs), so an organisation's current keys are the same in both
# vector sets.
from vectorkit import (
    FRONT_DOOR,
    NOW,
    NURSES,
    SCHOOL,
    THIRD_PARTY,
    YEAR,
    Generation,
    current,
    find_generation,
    generator_main,
    key_json,
    render,
)
from vectorkit import directory_json as vectorkit_directory

from exchange.keys.ids import KeyId, OrgId
from exchange.receipts import (
    Receipt,
    ReceiptStatus,
    encode_receipt,
    serialize_signed,
    sign_receipt,
)

HERE: Final = Path(__file__).resolve().parent
OUT: Final = HERE / "receipts"

FORMAT_NAME: Final = "exchange-receipt-v1-test-vector"

#: The envelope every receipt is about, and another one, from the envelope vectors.
ENVELOPE_VECTOR: Final = "two-recipients"
OTHER_ENVELOPE_VECTOR: Final = "one-byte"

L_RECEIPT: Final = b"exchange/v1/receipt\x00"
STATUS_BYTES: Final = {"delivered": 1, "opened": 2, "acknowledged": 3, "rejected": 4}


# --- keys and the directory -----------------------------------------------------------------


GENERATIONS: Final = (
    current(SCHOOL),
    current(FRONT_DOOR),
    # Expired a year before NOW: a receipt dated NOW - 60 is outside its window.
    Generation(FRONT_DOOR, "expired", NOW - 3 * YEAR, NOW - YEAR),
    # Inside its window but revoked: refused at every time.
    Generation(FRONT_DOOR, "revoked", NOW - YEAR, NOW + YEAR, revoked=True),
    # Keys la:356 holds but never enrolled: the directory does not list them.
    Generation(FRONT_DOOR, "unlisted", NOW - YEAR, NOW + YEAR, listed=False),
    current(NURSES),
    current(THIRD_PARTY),
)


def generation(org: str, name: str = "current") -> Generation:
    """Return the generation ``name`` of ``org``."""
    return find_generation(GENERATIONS, org, name)


def keys_json() -> list[dict[str, Any]]:
    """Return every key generation with its secrets, public keys and key ids (hex)."""
    return [key_json(gen, encryption_key_id=False) for gen in GENERATIONS]


def directory_json() -> list[dict[str, Any]]:
    """Return the directory: each listed generation's public keys, window and revocation."""
    return vectorkit_directory(
        GENERATIONS, ("signing_public", "signing_key_id", "encryption_public")
    )


# --- the envelope ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """What the sender knows about an envelope it sealed."""

    vector: str
    digest: bytes
    envelope_id: bytes
    sender: str
    recipients: tuple[str, ...]


def envelope(name: str) -> Envelope:
    """Read the digest, id, sender and recipients of envelope vector ``name``."""
    vector = json.loads((HERE / "positive" / f"{name}.json").read_text(encoding="utf-8"))
    raw = bytes.fromhex(vector["envelope"])
    # docs/envelope.md §4: magic (8), version (1), header_len (2), then the envelope id.
    return Envelope(
        vector=name,
        digest=bytes.fromhex(vector["digest"]),
        envelope_id=raw[11:27],
        sender=vector["seal"]["sender"],
        recipients=tuple(vector["openers"]),
    )


def envelope_json(env: Envelope) -> dict[str, Any]:
    """Return the verification inputs: what the sender knows from sealing."""
    return {
        "vector": f"tests/vectors/positive/{env.vector}.json",
        "expected_digest": env.digest.hex(),
        "expected_envelope_id": env.envelope_id.hex(),
        "sender": env.sender,
        "recipients": list(env.recipients),
    }


# --- the statement, from the spec alone -----------------------------------------------------


@dataclass(frozen=True)
class Fields:
    """Every field of a statement as raw values, so any of them can be made wrong."""

    status: str
    receipter: str
    generation: str
    time: int
    envelope_digest: bytes
    envelope_id: bytes
    sender: str
    disposition: str = ""
    transport_ref: str = ""
    label: bytes = L_RECEIPT
    version: int = 1
    status_byte: int | None = None

    @property
    def receipter_key(self) -> bytes:
        """Return the key id of the receipter's signing key of this generation."""
        return generation(self.receipter, self.generation).pair.signing.public.key_id


def _str8(value: str) -> bytes:
    raw = value.encode("ascii")
    return bytes([len(raw)]) + raw


def raw_statement(f: Fields) -> bytes:
    """Encode ``f`` exactly as docs/receipts.md §4 lays it out, valid or not."""
    status = STATUS_BYTES[f.status] if f.status_byte is None else f.status_byte
    return b"".join(
        [
            f.label,
            bytes([f.version, status]),
            f.envelope_digest,
            f.envelope_id,
            _str8(f.sender),
            _str8(f.receipter),
            f.receipter_key,
            struct.pack(">Q", f.time),
            _str8(f.disposition),
            _str8(f.transport_ref),
        ]
    )


def wire(statement: bytes, signature: bytes) -> bytes:
    """Return the signed wire form: u16 statement length ‖ statement ‖ signature."""
    return struct.pack(">H", len(statement)) + statement + signature


def fields_json(f: Fields) -> dict[str, Any]:
    """Return a valid statement's fields as JSON values."""
    return {
        "status": f.status,
        "envelope_digest": f.envelope_digest.hex(),
        "envelope_id": f.envelope_id.hex(),
        "sender": f.sender,
        "receipter": f.receipter,
        "receipter_key": f.receipter_key.hex(),
        "time": f.time,
        "disposition": f.disposition or None,
        "transport_ref": f.transport_ref,
    }


# --- vectors --------------------------------------------------------------------------------


def _about(env: Envelope, status: str, receipter: str, time: int, **kw: Any) -> Fields:
    """Return a receipt about ``env``; keyword arguments override any field."""
    values: dict[str, Any] = {
        "generation": "current",
        "envelope_digest": env.digest,
        "envelope_id": env.envelope_id,
        "sender": env.sender,
    }
    return Fields(status=status, receipter=receipter, time=time, **{**values, **kw})


@dataclass(frozen=True)
class PositiveCase:
    """A receipt every verifier must accept, and every signer must reproduce."""

    name: str
    description: str
    fields: Callable[[Envelope], Fields]


POSITIVE: Final = (
    PositiveCase(
        "delivered",
        "la:356's node stored the envelope and answers the HTTPS push with this receipt; the "
        "transport reference is the HTTP request id.",
        lambda e: _about(
            e,
            "delivered",
            FRONT_DOOR,
            NOW - 100,
            transport_ref="6f1c2a7e-3b4d-4e8f-9a0b-1c2d3e4f5a6b",
        ),
    ),
    PositiveCase(
        "opened",
        "A school nurse at ods:X26ABC opened the record; the receipt went back over MESH.",
        lambda e: _about(
            e, "opened", NURSES, NOW - 80, transport_ref="20251231235840123456_3573F8"
        ),
    ),
    PositiveCase(
        "acknowledged",
        "la:356 accepted the referral for assessment; the receipt went back by SMTP.",
        lambda e: _about(
            e,
            "acknowledged",
            FRONT_DOOR,
            NOW - 60,
            disposition="accepted-for-assessment",
            transport_ref="<r.7k2m9q@exchange.la356.example>",
        ),
    ),
    PositiveCase(
        "rejected",
        "ods:X26ABC refused the record as not for it; no transport reference (empty).",
        lambda e: _about(e, "rejected", NURSES, NOW - 40, disposition="not-for-us"),
    ),
)


@dataclass(frozen=True)
class NegativeCase:
    """A receipt that breaks exactly one rule, and the error a verifier must raise."""

    rule: str
    error: str
    description: str
    fields: Callable[[Envelope, Envelope], Fields]
    #: Whose key signs (org, generation); by default the receipter's own.
    signer: tuple[str, str] | None = None
    #: Edits the statement after encoding, before signing.
    edit_statement: Callable[[bytes], bytes] | None = None
    #: Edits the finished wire bytes.
    edit_wire: Callable[[bytes], bytes] | None = None
    #: Receipts the sender already holds (each valid), as positive case names.
    existing: Sequence[str] = field(default=())


def _ack(e: Envelope, **kw: Any) -> Fields:
    kw.setdefault("disposition", "accepted-for-assessment")
    return _about(e, "acknowledged", FRONT_DOOR, kw.pop("time", NOW - 60), **kw)


NEGATIVE: Final = (
    NegativeCase(
        "receipt.length",
        "ReceiptFormatError",
        "The last byte of the signature is missing.",
        lambda e, _: _ack(e),
        edit_wire=lambda b: b[:-1],
    ),
    NegativeCase(
        "receipt.label",
        "ReceiptFormatError",
        "The statement starts with 'exchange/v0/receipt\\0' (signed so by la:356).",
        lambda e, _: _ack(e, label=b"exchange/v0/receipt\x00"),
    ),
    NegativeCase(
        "receipt.version",
        "ReceiptFormatError",
        "The version byte is 2.",
        lambda e, _: _ack(e, version=2),
    ),
    NegativeCase(
        "receipt.status",
        "ReceiptFormatError",
        "The status byte is 0x05, which names no status.",
        lambda e, _: _ack(e, status_byte=5),
    ),
    NegativeCase(
        "receipt.ids",
        "ReceiptFormatError",
        "The sender is 'URN:106123': an upper-case namespace is not an organisation id.",
        lambda e, _: _ack(e, sender="URN:106123"),
    ),
    NegativeCase(
        "receipt.codes",
        "ReceiptFormatError",
        "The disposition is 'Accepted for assessment': free text, not a code.",
        lambda e, _: _ack(e, disposition="Accepted for assessment"),
    ),
    NegativeCase(
        "receipt.transport-ref",
        "ReceiptFormatError",
        "The transport reference holds a space and a header line: "
        "'<r.7k2m9q@exchange.la356.example> Bcc:x'.",
        lambda e, _: _ack(e, transport_ref="<r.7k2m9q@exchange.la356.example> Bcc:x"),
    ),
    NegativeCase(
        "receipt.disposition",
        "ReceiptFormatError",
        "A rejected receipt without a reason code.",
        lambda e, _: _about(e, "rejected", NURSES, NOW - 40),
    ),
    NegativeCase(
        "receipt.trailing-data",
        "ReceiptFormatError",
        "One zero byte follows the transport reference inside the signed statement (the "
        "length prefix counts it).",
        lambda e, _: _ack(e),
        edit_statement=lambda s: s + b"\x00",
    ),
    NegativeCase(
        "receipt.sender",
        "ReceiptAddressError",
        "The receipt is addressed to la:357, not to the envelope's sender urn:106123.",
        lambda e, _: _ack(e, sender=THIRD_PARTY),
    ),
    NegativeCase(
        "receipt.recipient",
        "ReceiptAddressError",
        "la:357 (listed, valid key, correct signature) was not a recipient of the envelope.",
        lambda e, _: _about(
            e, "acknowledged", THIRD_PARTY, NOW - 60, disposition="accepted-for-assessment"
        ),
    ),
    NegativeCase(
        "receipt.time",
        "ReceiptTimeError",
        "The receipt is dated 301 s after the verifier's clock (300 s of skew are allowed).",
        lambda e, _: _ack(e, time=NOW + 301),
    ),
    NegativeCase(
        "receipt.receipter-known",
        "ReceiptKeyError",
        "Signed by a key of la:356 that the directory does not list.",
        lambda e, _: _ack(e, generation="unlisted"),
    ),
    NegativeCase(
        "receipt.key-revoked",
        "ReceiptKeyError",
        "Signed by la:356's revoked key, at a time inside its window.",
        lambda e, _: _ack(e, generation="revoked"),
    ),
    NegativeCase(
        "receipt.key-valid",
        "ReceiptKeyError",
        "Signed by la:356's key that expired a year before the receipt's time.",
        lambda e, _: _ack(e, generation="expired"),
    ),
    NegativeCase(
        "receipt.signature",
        "ReceiptSignatureError",
        "Names la:356's current key but carries a valid signature by la:357's key.",
        lambda e, _: _ack(e),
        signer=(THIRD_PARTY, "current"),
    ),
    NegativeCase(
        "receipt.envelope-id",
        "ReceiptMismatchError",
        "Names the id of another envelope (envelope vector one-byte) with this envelope's digest.",
        lambda e, other: _ack(e, envelope_id=other.envelope_id),
    ),
    NegativeCase(
        "receipt.digest",
        "ReceiptMismatchError",
        "Names this envelope's id but the digest of another envelope (envelope vector "
        "one-byte): the receipter holds other bytes than the sender sealed.",
        lambda e, other: _ack(e, envelope_digest=other.digest),
    ),
    NegativeCase(
        "receipt.final-disposition",
        "ReceiptConflictError",
        "la:356 already acknowledged the envelope (positive vector 'acknowledged'); this "
        "valid receipt rejects it as 'wrong-pupil'.",
        lambda e, _: _about(e, "rejected", FRONT_DOOR, NOW - 30, disposition="wrong-pupil"),
        existing=("acknowledged",),
    ),
)


def _common(name: str, kind: str, description: str, env: Envelope) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "kind": kind,
        "name": name,
        "description": description,
        "now": NOW,
        "keys": keys_json(),
        "directory": directory_json(),
        "envelope": envelope_json(env),
    }


def _signed_positive(case: PositiveCase, env: Envelope) -> tuple[Fields, bytes, bytes]:
    f = case.fields(env)
    statement = raw_statement(f)
    signature = generation(f.receipter, f.generation).pair.signing.sign(statement)
    receipt = Receipt(
        status=ReceiptStatus(f.status),
        envelope_digest=f.envelope_digest,
        envelope_id=f.envelope_id,
        sender=OrgId(f.sender),
        receipter=OrgId(f.receipter),
        receipter_key=KeyId(f.receipter_key),
        time=f.time,
        disposition=f.disposition or None,
        transport_ref=f.transport_ref,
    )
    # The spec-only encoder must agree with the implementation byte for byte, or the
    # negative vectors would differ from real receipts in more than their one defect.
    signed = sign_receipt(receipt, generation(f.receipter, f.generation).pair.signing)
    if encode_receipt(receipt) != statement or signed.signature != signature:
        raise AssertionError(f"raw_statement disagrees with exchange.receipts for {case.name}")
    if serialize_signed(signed) != wire(statement, signature):
        raise AssertionError(f"the wire form disagrees with exchange.receipts for {case.name}")
    return f, statement, signature


def positive_vector(case: PositiveCase) -> dict[str, Any]:
    """Sign ``case`` and return its vector."""
    env = envelope(ENVELOPE_VECTOR)
    f, statement, signature = _signed_positive(case, env)
    return {
        **_common(case.name, "positive", case.description, env),
        "signer": {"org": f.receipter, "generation": f.generation},
        "receipt": fields_json(f),
        "statement": statement.hex(),
        "signature": signature.hex(),
        "signed": wire(statement, signature).hex(),
        "digest": hashlib.sha256(statement + signature).hexdigest(),
    }


def negative_vector(neg: NegativeCase) -> dict[str, Any]:
    """Build ``neg`` with its one defect and return its vector."""
    env, other = envelope(ENVELOPE_VECTOR), envelope(OTHER_ENVELOPE_VECTOR)
    f = neg.fields(env, other)
    statement = raw_statement(f)
    if neg.edit_statement is not None:
        statement = neg.edit_statement(statement)
    signer = neg.signer or (f.receipter, f.generation)
    signed = wire(statement, generation(*signer).pair.signing.sign(statement))
    if neg.edit_wire is not None:
        signed = neg.edit_wire(signed)
    by_name = {c.name: c for c in POSITIVE}
    existing = []
    for name in neg.existing:
        _, s, sig = _signed_positive(by_name[name], env)
        existing.append(wire(s, sig).hex())
    return {
        **_common(neg.rule, "negative", neg.description, env),
        "rule": neg.rule,
        "error": neg.error,
        "signer": {"org": signer[0], "generation": signer[1]},
        "existing": existing,
        "signed": signed.hex(),
    }


def all_files() -> dict[Path, str]:
    """Return every vector file's path and text."""
    files = {OUT / "positive" / f"{c.name}.json": render(positive_vector(c)) for c in POSITIVE}
    for neg in NEGATIVE:
        files[OUT / "negative" / f"{neg.rule}.json"] = render(negative_vector(neg))
    return files


def main(argv: Sequence[str] | None = None) -> int:
    """Write the vectors, or with ``--check`` report whether the files on disk differ."""
    return generator_main(__doc__, all_files, OUT, HERE, argv)


if __name__ == "__main__":
    sys.exit(main())
