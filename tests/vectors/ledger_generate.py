r"""Deterministic generator of the account event test vectors (docs/ledger.md §3.3).

Run ``python tests/vectors/ledger_generate.py`` from the repository root to (re)write
``tests/vectors/ledger/positive/*.json`` and ``tests/vectors/ledger/negative/*.json``; with
``--check`` it writes nothing and exits with status 1 if any file on disk differs from what
it would write (or if a file is missing or left over). Nothing here reads the clock or the
operating system's random source:

- **Salts.** The salt of vector ``name`` is the first 32 bytes of the SHAKE-256 stream of
  ``"exchange/v1/test-vector-random\0" ‖ name``, as the envelope vectors draw randomness.
- **Clock.** Event times are fixed offsets after ``NOW`` (2026-01-01T00:00:00Z).

Statements are written by :func:`raw_statement`, an encoder written from docs/ledger.md §3.1
alone that takes every field as raw values, so a negative vector holds exactly one defect.
For every positive vector the generator checks that it and ``exchange.ledger`` produce the
same bytes, and that ``exchange.ledger`` decodes them back to the same fields.
"""

from __future__ import annotations

import hashlib
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from vectorkit import FRONT_DOOR, NOW, SCHOOL, generator_main, render

from exchange.keys.ids import OrgId
from exchange.ledger.account_events import L_ACCOUNT_ACTOR, L_ACCOUNT_SUBJECT, AccountEvent
from exchange.ledger.events import decode_event

HERE: Final = Path(__file__).resolve().parent
OUT: Final = HERE / "ledger"
RANDOM_LABEL: Final = b"exchange/v1/test-vector-random\x00"
LABEL: Final = b"exchange/v1/ledger-event\x00"
ACCOUNT_CODE: Final = 12


def salt_of(name: str) -> bytes:
    """Return the fixed 32-byte salt of vector ``name``."""
    return hashlib.shake_256(RANDOM_LABEL + name.encode()).digest(32)


def _str8(raw: bytes) -> bytes:
    return bytes([len(raw)]) + raw


def raw_statement(
    *,
    code: int = ACCOUNT_CODE,
    time: int,
    org: bytes,
    digest: bytes,
    counterparty: bytes | None = None,
    receipt: bytes | None = None,
    reason: bytes | None = None,
    version: int = 1,
    label: bytes = LABEL,
    flags: int | None = None,
) -> bytes:
    """Return a statement from raw field values (docs/ledger.md §3.1), defects and all."""
    computed = (
        (0x01 if counterparty is not None else 0)
        | (0x02 if receipt is not None else 0)
        | (0x04 if reason is not None else 0)
    )
    return b"".join(
        [
            label,
            bytes([version, code]),
            struct.pack(">Q", time),
            _str8(org),
            digest,
            bytes([computed if flags is None else flags]),
            b"" if counterparty is None else _str8(counterparty),
            b"" if receipt is None else receipt,
            b"" if reason is None else _str8(reason),
        ]
    )


@dataclass(frozen=True)
class Positive:
    """An account event a node records, with what it stands for."""

    name: str
    description: str
    kind: str
    org: str
    at: int
    user_id: str
    method: str | None = None
    detail: str = ""
    actor_id: str | None = None

    def event(self) -> AccountEvent:
        """Return the event, salted with the vector's own salt."""
        return AccountEvent(
            kind=self.kind, org=OrgId(self.org), at=self.at, user_id=self.user_id,
            salt=salt_of(self.name), method=self.method, detail=self.detail,
            actor_id=self.actor_id,
        )  # fmt: skip


# fmt: off
POSITIVE: Final = [
    Positive(
        "sign-in-totp",
        "A member of staff signed in with a password and an authenticator app code.",
        "sign-in", FRONT_DOOR, NOW + 60, "u-4f1c2a9b0d3e5f67", method="password+totp",
    ),
    Positive(
        "sign-in-failed",
        "A wrong password for an existing account.",
        "sign-in-failed", FRONT_DOOR, NOW + 61, "u-4f1c2a9b0d3e5f67", method="password",
    ),
    Positive(
        "role-changed",
        "An administrator gave another account the DPO role: the actor is committed to too.",
        "role-changed", FRONT_DOOR, NOW + 120, "u-4f1c2a9b0d3e5f67", detail="dpo",
        actor_id="u-a0b1c2d3e4f5a6b7",
    ),
    Positive(
        "token-created-by-operator",
        "The node's operator (user id '') made API token number 7 with the staff role at the "
        "console; the event is about the operator, so it has no actor.",
        "token-created", SCHOOL, NOW + 180, "", detail="7.staff",
    ),
]
# fmt: on


@dataclass(frozen=True)
class Negative:
    """A statement that breaks exactly one rule of docs/ledger.md §3."""

    rule: str
    description: str
    field: str
    statement: bytes


def _good(**changes: Any) -> bytes:
    """Return the raw statement of a valid sign-in event, with ``changes`` made."""
    fields: dict[str, Any] = {
        "time": NOW + 60,
        "org": FRONT_DOOR.encode(),
        "digest": hashlib.sha256(L_ACCOUNT_SUBJECT + salt_of("negative") + b"u-1").digest(),
        "reason": b"sign-in:password.totp",
    }
    fields.update(changes)
    return raw_statement(**fields)


GOOD: Final = _good()
#: Where the flags byte of GOOD is: label, version, type, time, str8 org, digest.
FLAGS_AT: Final = len(LABEL) + 2 + 8 + 1 + len(FRONT_DOOR) + 32

NEGATIVE: Final = [
    Negative("event.label", "The label is another one of the project's.", "label",
             _good(label=b"exchange/v1/receipt\x00\x00\x00\x00\x00\x00")),
    Negative("event.version", "Version 2.", "version", _good(version=2)),
    Negative("event.type", "Type code 13, which no type has.", "type", _good(code=13)),
    Negative("event.time", "A time above 2^63 - 1.", "time", _good(time=1 << 63)),
    Negative("event.org", "An organisation id with upper case and a space.", "org",
             _good(org=b"LA 356")),
    Negative("event.flags", "Flag bit 0x08, which no field has.", "flags",
             _good(flags=0x0C)),
    Negative("event.reason", "A reason with upper case and a space: prose, not a code.",
             "reason", _good(reason=b"sign-in:Jane Smith")),
    Negative("event.end", "One byte after the last field.", "end", GOOD + b"\x00"),
    Negative("event.length", "Longer than the longest statement.", "length",
             GOOD + bytes(300)),
    Negative("event.account.counterparty",
             "An account event that names another organisation.", "counterparty",
             _good(counterparty=SCHOOL.encode())),
    Negative("event.account.reason", "An account event with no reason.", "reason",
             _good(reason=None)),
    Negative("event.account.kind", "An account event whose reason starts with no kind.",
             "reason", _good(reason=b"signed-in:password")),
]  # fmt: skip


def positive_vector(case: Positive) -> dict[str, Any]:
    """Return the file of one positive vector, after checking both encoders agree."""
    event = case.event()
    statement = event.statement().encode()
    raw = raw_statement(
        time=case.at,
        org=case.org.encode(),
        digest=event.subject,
        receipt=event.actor,
        reason=event.reason.encode(),
    )
    if raw != statement or decode_event(statement) != event.statement():
        raise SystemExit(f"{case.name}: the encoders disagree")
    return {
        "format": "exchange-ledger-account-event-v1-test-vector",
        "kind": "positive",
        "name": case.name,
        "description": case.description,
        "event": {
            "kind": case.kind,
            "org": case.org,
            "time": case.at,
            "user_id": case.user_id,
            "actor_id": case.actor_id,
            "method": case.method,
            "detail": case.detail,
            "salt": event.salt.hex(),
        },
        "subject_label": L_ACCOUNT_SUBJECT.decode("ascii"),
        "actor_label": L_ACCOUNT_ACTOR.decode("ascii"),
        "subject": event.subject.hex(),
        "actor": None if event.actor is None else event.actor.hex(),
        "reason": event.reason,
        "statement": statement.hex(),
        "leaf_hash": hashlib.sha256(b"\x00" + statement).hexdigest(),
    }


def negative_vector(case: Negative) -> dict[str, Any]:
    """Return the file of one negative vector."""
    return {
        "format": "exchange-ledger-account-event-v1-test-vector",
        "kind": "negative",
        "name": case.rule,
        "description": case.description,
        "rule": case.rule,
        "error": "EventFormatError",
        "field": case.field,
        "statement": case.statement.hex(),
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
