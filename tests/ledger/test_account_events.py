"""Account events: their statement, commitments and reason, and the vectors that pin them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.keys.ids import OrgId
from exchange.ledger import EventFormatError, EventType, LedgerEvent, decode_event
from exchange.ledger.account_events import (
    L_ACCOUNT_ACTOR,
    L_ACCOUNT_SUBJECT,
    AccountEvent,
    commitment,
)
from exchange.ledger.events import ACCOUNT_KINDS, MAX_EVENT_LEN
from tests.ledger.helpers import T0, digest
from tests.vectors.vectorkit import run_generator_check

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "ledger"
POSITIVE = sorted((VECTORS / "positive").glob("*.json"))
NEGATIVE = sorted((VECTORS / "negative").glob("*.json"))
SALT = bytes(range(32))


def load(path: Path) -> dict[str, Any]:
    """Return one vector file."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _event(**changes: Any) -> AccountEvent:
    fields: dict[str, Any] = {
        "kind": "sign-in",
        "org": OrgId("la:356"),
        "at": T0,
        "user_id": "jane.smith@frontdoor.example",
        "salt": SALT,
        "method": "password+totp",
    }
    fields.update(changes)
    return AccountEvent(**fields)


def test_statement_holds_commitments_and_codes_only() -> None:
    """The statement has the type ``account``, the commitments and a code: no user id."""
    event = _event(actor_id="u-admin")
    statement = event.statement()
    data = statement.encode()
    assert statement.type is EventType.ACCOUNT
    assert (
        statement.envelope_digest
        == hashlib.sha256(L_ACCOUNT_SUBJECT + SALT + b"jane.smith@frontdoor.example").digest()
    )
    assert statement.receipt_digest == commitment(L_ACCOUNT_ACTOR, SALT, "u-admin")
    assert statement.reason == "sign-in:password.totp"
    assert statement.counterparty is None
    assert b"jane" not in data
    assert b"u-admin" not in data
    assert decode_event(data) == statement


def test_salts_make_events_of_one_account_unlinkable() -> None:
    """Two events of the same account with different salts have different digests."""
    one = _event().subject
    other = _event(salt=bytes(32)).subject
    assert one != other
    assert _event().subject == one  # the same salt opens to the same account


def test_an_event_about_oneself_has_no_actor() -> None:
    """Without an actor the statement has no receipt-digest field; the operator is ''."""
    assert _event().statement().receipt_digest is None
    assert _event(actor_id="").actor == commitment(L_ACCOUNT_ACTOR, SALT, "")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, "sign-in:password.totp"),
        ({"kind": "role-changed", "method": None, "detail": "dpo"}, "role-changed:dpo"),
        ({"kind": "disabled", "method": None}, "disabled"),
        (
            {"kind": "sign-in-failed", "method": "password", "detail": "x"},
            "sign-in-failed:password:x",
        ),
    ],
)
def test_reason_is_kind_method_and_detail(changes: dict[str, Any], reason: str) -> None:
    """The reason is ``<kind>[:<method>][:<detail>]``, with '+' in a method written '.'."""
    assert _event(**changes).reason == reason


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "signed-in"}, "kind must be one of"),
        ({"salt": b"short"}, "salt must be 32 bytes"),
        ({"method": "Password"}, "method must be a lower-case code"),
        ({"method": "p" * 25}, "method must be a lower-case code"),
        ({"detail": "Jane Smith"}, "detail must be a lower-case code"),
        ({"detail": "d" * 17}, "detail must be a lower-case code"),
    ],
)
def test_invalid_account_event_cannot_be_built(changes: dict[str, Any], message: str) -> None:
    """A kind not in the list, a bad salt, or prose in a method or detail is refused."""
    with pytest.raises(ValueError, match=message):
        _event(**changes)


@given(
    kind=st.sampled_from(ACCOUNT_KINDS),
    method=st.none() | st.from_regex(r"[a-z0-9][a-z0-9+._-]{0,23}", fullmatch=True),
    detail=st.from_regex(r"([a-z0-9][a-z0-9._-]{0,15})?", fullmatch=True),
    actor=st.none() | st.text(max_size=40),
)
def test_every_account_event_fits_a_statement(
    kind: str, method: str | None, detail: str, actor: str | None
) -> None:
    """Any valid account event encodes within the longest statement and round-trips."""
    event = _event(kind=kind, method=method, detail=detail, actor_id=actor)
    data = event.statement().encode()
    assert len(data) <= MAX_EVENT_LEN
    assert decode_event(data) == event.statement()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"counterparty": OrgId("urn:106123")}, "names no counterparty"),
        ({"reason": None}, "must start with an account event kind"),
        ({"reason": "opened"}, "must start with an account event kind"),
    ],
)
def test_account_statement_rules_hold_when_built(changes: dict[str, Any], message: str) -> None:
    """A LedgerEvent of type account with a counterparty or without a kind is refused."""
    fields: dict[str, Any] = {
        "type": EventType.ACCOUNT,
        "time": T0,
        "org": OrgId("la:356"),
        "envelope_digest": digest("subject"),
        "reason": "sign-in:password",
    }
    fields.update(changes)
    with pytest.raises(ValueError, match=message):
        LedgerEvent(**fields)


def test_the_vectors_are_all_there() -> None:
    """Four positive vectors, and a negative vector for each rule of §3 and §3.3."""
    assert len(POSITIVE) == 4
    assert {p.stem for p in NEGATIVE} == {
        "event.label", "event.version", "event.type", "event.time", "event.org",
        "event.flags", "event.reason", "event.end", "event.length",
        "event.account.counterparty", "event.account.reason", "event.account.kind",
    }  # fmt: skip


@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.stem)
def test_positive_vector(path: Path) -> None:
    """An encoder given the event produces exactly the statement; a decoder reads it back."""
    v = load(path)
    e = v["event"]
    event = AccountEvent(
        kind=e["kind"], org=OrgId(e["org"]), at=e["time"], user_id=e["user_id"],
        salt=bytes.fromhex(e["salt"]), method=e["method"], detail=e["detail"],
        actor_id=e["actor_id"],
    )  # fmt: skip
    statement = bytes.fromhex(v["statement"])
    assert event.subject.hex() == v["subject"]
    assert (None if event.actor is None else event.actor.hex()) == v["actor"]
    assert event.reason == v["reason"]
    assert event.statement().encode() == statement
    assert decode_event(statement) == event.statement()
    assert hashlib.sha256(b"\x00" + statement).hexdigest() == v["leaf_hash"]
    # The commitment opens with the salt and the user id, as docs/ledger.md §3.3 says.
    label = v["subject_label"].encode("ascii")
    opened = hashlib.sha256(label + bytes.fromhex(e["salt"]) + e["user_id"].encode()).hexdigest()
    assert opened == v["subject"]


@pytest.mark.parametrize("path", NEGATIVE, ids=lambda p: p.stem)
def test_negative_vector(path: Path) -> None:
    """A statement breaking one rule is refused, naming the field the vector names."""
    v = load(path)
    assert v["error"] == "EventFormatError"
    with pytest.raises(EventFormatError) as caught:
        decode_event(bytes.fromhex(v["statement"]))
    assert caught.value.field == v["field"]


@pytest.mark.subprocess
def test_generator_check_passes() -> None:
    """`ledger_generate.py --check` finds the files on disk exactly as it would write them."""
    result = run_generator_check(ROOT / "tests" / "vectors" / "ledger_generate.py")
    assert result.returncode == 0, result.stderr
