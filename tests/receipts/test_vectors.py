"""The receipt test vectors: positives sign and verify exactly, negatives fail as declared."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from exchange.receipts import (
    ReceiptAddressError,
    ReceiptConflictError,
    ReceiptError,
    ReceiptFormatError,
    ReceiptKeyError,
    ReceiptMismatchError,
    ReceiptSignatureError,
    ReceiptTimeError,
    check_consistent,
    encode_receipt,
    parse_signed,
    serialize_signed,
    sign_receipt,
    verify_receipt,
)
from tests.receipts.conftest import (
    NEGATIVE,
    POSITIVE,
    ROOT,
    directory_from,
    load,
    receipt_from,
    signing_keys,
    verify_kwargs,
)
from tests.vectors.vectorkit import run_generator_check

ERRORS: dict[str, type[ReceiptError]] = {
    cls.__name__: cls
    for cls in (
        ReceiptFormatError,
        ReceiptAddressError,
        ReceiptTimeError,
        ReceiptKeyError,
        ReceiptSignatureError,
        ReceiptMismatchError,
        ReceiptConflictError,
    )
}


def _spec_rules() -> list[str]:
    """Return the rule ids of docs/receipts.md §7 and §9, in the order the spec lists them."""
    text = (ROOT / "docs" / "receipts.md").read_text(encoding="utf-8")
    section = text[text.index("## 7. ") : text.index("## 10. ")]
    return re.findall(r"\[(receipt\.[a-z-]+)\]", section)


def test_vectors_exist() -> None:
    """There is one positive vector per status and at least one negative vector."""
    assert [p.stem for p in POSITIVE] == ["acknowledged", "delivered", "opened", "rejected"]
    assert NEGATIVE


@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.stem)
def test_positive_signs_byte_for_byte(path: Path) -> None:
    """Signing a positive vector's fields with its key reproduces its statement and bytes."""
    vector = load(path)
    receipt = receipt_from(vector["receipt"])
    key = signing_keys(vector)[vector["signer"]["org"], vector["signer"]["generation"]]
    signed = sign_receipt(receipt, key)
    assert encode_receipt(receipt).hex() == vector["statement"]
    assert signed.signature.hex() == vector["signature"]
    assert serialize_signed(signed).hex() == vector["signed"]
    assert signed.digest.hex() == vector["digest"]


@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.stem)
def test_positive_verifies(path: Path) -> None:
    """verify_receipt accepts each positive vector and returns exactly its fields."""
    vector = load(path)
    receipt = verify_receipt(bytes.fromhex(vector["signed"]), **verify_kwargs(vector))
    assert receipt == receipt_from(vector["receipt"])
    assert receipt.status.value == path.stem


@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.stem)
def test_positive_digest_is_hash_of_statement_and_signature(path: Path) -> None:
    """A receipt's digest is SHA-256(statement ‖ signature), as docs/receipts.md §5 says."""
    vector = load(path)
    signed = parse_signed(bytes.fromhex(vector["signed"]))
    expected = hashlib.sha256(bytes.fromhex(vector["statement"] + vector["signature"]))
    assert signed.digest == expected.digest() == bytes.fromhex(vector["digest"])


@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.stem)
def test_positive_is_about_the_envelope_vector(path: Path) -> None:
    """The receipts name the digest and id of a real envelope vector, as the generator says."""
    vector = load(path)
    envelope = load(ROOT / vector["envelope"]["vector"])
    assert vector["envelope"]["expected_digest"] == envelope["digest"]
    assert vector["envelope"]["expected_envelope_id"] == envelope["envelope"][22:54]
    assert vector["envelope"]["recipients"] == envelope["openers"]


def _verify_and_reconcile(data: bytes, existing: list[Any], kwargs: dict[str, Any]) -> None:
    """Do what a sender does with a receipt: verify it, then check it against those held."""
    check_consistent(existing, verify_receipt(data, **kwargs))


@pytest.mark.parametrize("path", NEGATIVE, ids=lambda p: p.stem)
def test_negative_raises_declared_error(path: Path) -> None:
    """Verifying a negative vector raises exactly the declared class, with its rule."""
    vector = load(path)
    kwargs = verify_kwargs(vector)
    existing = [verify_receipt(bytes.fromhex(e), **kwargs) for e in vector["existing"]]
    with pytest.raises(ReceiptError) as info:
        _verify_and_reconcile(bytes.fromhex(vector["signed"]), existing, kwargs)
    assert type(info.value) is ERRORS[vector["error"]]
    assert info.value.rule == vector["rule"]


@pytest.mark.parametrize("path", NEGATIVE, ids=lambda p: p.stem)
def test_negative_vector_is_named_after_its_rule(path: Path) -> None:
    """A negative vector's file name is its rule id, and that rule is in the spec."""
    vector = load(path)
    assert path.stem == vector["rule"]
    assert vector["rule"] in _spec_rules()


def test_spec_lists_each_rule_once() -> None:
    """Parsing docs/receipts.md §7-§9 finds its 19 rule ids, each defined once."""
    rules = _spec_rules()
    assert len(rules) == len(set(rules)) == 19
    assert rules[0] == "receipt.length"


def test_every_spec_rule_has_a_negative_vector() -> None:
    """Every MUST rule id of docs/receipts.md has a negative vector named after it."""
    assert sorted(_spec_rules()) == sorted(p.stem for p in NEGATIVE)


def test_keys_match_the_envelope_vectors() -> None:
    """An organisation's current keys are the same in the receipt and envelope vectors."""
    receipt_keys = load(POSITIVE[0])["keys"]
    envelope_keys = load(ROOT / "tests" / "vectors" / "positive" / "two-recipients.json")["keys"]
    shared = {(k["org"], k["generation"]): k["ed25519_public"] for k in envelope_keys}
    compared = [k for k in receipt_keys if (k["org"], k["generation"]) in shared]
    assert len(compared) >= 4
    for k in compared:
        assert shared[k["org"], k["generation"]] == k["ed25519_public"]


# --- each negative vector breaks exactly its one rule ---------------------------------------


def _relaxed(rule: str, vector: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Return verification arguments under which only ``rule``'s check is switched off."""
    r = parse_signed(bytes.fromhex(vector["signed"])).receipt
    keys = signing_keys(vector)
    if rule == "receipt.sender":
        return {**kwargs, "sender": r.sender}
    if rule == "receipt.recipient":
        return {**kwargs, "recipients": [*kwargs["recipients"], r.receipter]}
    if rule == "receipt.time":
        return {**kwargs, "now": r.time - 300}
    if rule == "receipt.envelope-id":
        return {**kwargs, "expected_envelope_id": r.envelope_id}
    if rule == "receipt.digest":
        return {**kwargs, "expected_digest": r.envelope_digest}
    signer = keys[vector["signer"]["org"], vector["signer"]["generation"]]
    # The key rules and the signature rule: a directory that lists exactly the key that
    # signed, under the receipt's receipter and key id, valid at every time.
    return {**kwargs, "directory": _OneKey(r.receipter, r.receipter_key, signer.public)}


class _OneKey:
    def __init__(self, org: str, key_id: bytes, public: Any) -> None:
        self._entry = (org, key_id)
        self._public = public

    def signing_key_for(self, org_id: str, key_id: bytes, at: int) -> Any:
        del at
        assert (org_id, key_id) == self._entry
        return self._public


RELAXABLE = [
    "receipt.sender",
    "receipt.recipient",
    "receipt.time",
    "receipt.receipter-known",
    "receipt.key-revoked",
    "receipt.key-valid",
    "receipt.signature",
    "receipt.envelope-id",
    "receipt.digest",
]


@pytest.mark.parametrize("rule", RELAXABLE)
def test_negative_vector_verifies_once_its_one_check_is_off(rule: str) -> None:
    """With only the named check switched off, the negative vector verifies."""
    vector = load(ROOT / "tests" / "vectors" / "receipts" / "negative" / f"{rule}.json")
    kwargs = _relaxed(rule, vector, verify_kwargs(vector))
    receipt = verify_receipt(bytes.fromhex(vector["signed"]), **kwargs)
    assert receipt == parse_signed(bytes.fromhex(vector["signed"])).receipt


def test_final_disposition_vector_is_consistent_alone() -> None:
    """Without the earlier acknowledgement, the conflicting rejection is accepted."""
    vector = load(
        ROOT / "tests" / "vectors" / "receipts" / "negative" / "receipt.final-disposition.json"
    )
    new = verify_receipt(bytes.fromhex(vector["signed"]), **verify_kwargs(vector))
    check_consistent([], new)


def test_format_vectors_fail_in_the_named_field() -> None:
    """Each format vector's error names a field and an offset inside the bytes."""
    for path in NEGATIVE:
        vector = load(path)
        if vector["error"] != "ReceiptFormatError":
            continue
        data = bytes.fromhex(vector["signed"])
        with pytest.raises(ReceiptFormatError) as info:
            parse_signed(data)
        assert 0 <= info.value.offset <= len(data)
        assert info.value.field in str(info.value)


def test_directory_in_vectors_is_loadable() -> None:
    """The vectors' directory builds into a real Directory with the orgs named."""
    directory = directory_from(load(POSITIVE[0]))
    assert set(directory.organisations) == {"urn:106123", "la:356", "ods:X26ABC", "la:357"}


@pytest.mark.subprocess
def test_generator_check_passes() -> None:
    """`receipts_generate.py --check` finds the files on disk exactly as it would write them."""
    result = run_generator_check(ROOT / "tests" / "vectors" / "receipts_generate.py")
    assert result.returncode == 0, result.stderr


def test_vector_files_are_json_with_the_format_name() -> None:
    """Every vector declares the receipt vector format and its kind."""
    for path in POSITIVE + NEGATIVE:
        vector = json.loads(path.read_text(encoding="utf-8"))
        assert vector["format"] == "exchange-receipt-v1-test-vector"
        assert vector["kind"] == path.parent.name
