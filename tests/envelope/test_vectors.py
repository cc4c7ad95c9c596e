"""The envelope test vectors: positives open and reseal exactly, negatives fail as declared."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from exchange.envelope import (
    FormatError,
    NotRecipientError,
    OpenError,
    SenderError,
    open_envelope,
    seal,
    verify_envelope,
)
from exchange.envelope import format as format_module
from exchange.envelope import opening as opening_module
from exchange.envelope import wrap as wrap_module
from tests.vectors.vectorkit import run_generator_check

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
POSITIVE = sorted((VECTORS / "positive").glob("*.json"))
NEGATIVE = sorted((VECTORS / "negative").glob("*.json"))
ERRORS: dict[str, type[OpenError]] = {
    "OpenError": OpenError,
    "FormatError": FormatError,
    "SenderError": SenderError,
    "NotRecipientError": NotRecipientError,
}


def _load(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def _spec_rules() -> list[str]:
    """Return the rule ids of docs/envelope.md §7, in the order the spec lists them."""
    text = (ROOT / "docs" / "envelope.md").read_text(encoding="utf-8")
    section = text[text.index("## 7. Opening") : text.index("## 8. Errors")]
    return re.findall(r"\[([a-z]+(?:\.[a-z-]+)+)\]", section)


def test_vectors_exist() -> None:
    """The generator has written at least the eight positive vectors the brief names."""
    assert len(POSITIVE) >= 8
    assert NEGATIVE


@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.stem)
def test_positive_opens_for_every_recipient(path: Path, vector_keys: Any) -> None:
    """Each recipient opens a positive vector to exactly its content and digest."""
    vector = _load(path)
    keys = vector_keys(vector)
    envelope = bytes.fromhex(vector["envelope"])
    assert vector["openers"] == sorted(r["org"] for r in vector["seal"]["recipients"])
    for org in vector["openers"]:
        content, opened = open_envelope(
            envelope, keys.directory, keys.by_org[org], now=vector["now"]
        )
        assert content == bytes.fromhex(vector["content"])
        assert opened.verified.digest.hex() == vector["digest"]
        assert opened.content_length == len(content)


@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.stem)
def test_positive_verifies_without_private_key(path: Path, vector_keys: Any) -> None:
    """verify_envelope accepts each positive vector and yields its digest."""
    vector = _load(path)
    keys = vector_keys(vector)
    verified = verify_envelope(bytes.fromhex(vector["envelope"]), keys.directory, now=vector["now"])
    assert verified.digest.hex() == vector["digest"]
    assert verified.header.sender == vector["seal"]["sender"]
    assert list(verified.header.recipients) == vector["openers"]


@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.stem)
def test_positive_reseals_byte_for_byte(path: Path, vector_keys: Any, replay_random: Any) -> None:
    """Sealing a positive vector's inputs with its recorded random bytes reproduces it."""
    vector = _load(path)
    keys = vector_keys(vector)
    inputs = vector["seal"]
    draws = [bytes.fromhex(d) for d in inputs["random"]]
    envelope, sealed = seal(
        bytes.fromhex(vector["content"]),
        keys.by_generation[inputs["sender"], inputs["sender_generation"]],
        keys.recipients(inputs),
        record_kind=inputs["record_kind"],
        created=inputs["created"],
        chunk_size=inputs["chunk_size"],
        random=replay_random(draws),
    )
    assert envelope.hex() == vector["envelope"]
    assert sealed.digest.hex() == vector["digest"]
    # The draws are the envelope id, the content key and one HPKE seed per recipient.
    assert len(draws) == 2 + len(inputs["recipients"])


@pytest.mark.parametrize("path", POSITIVE + NEGATIVE, ids=lambda p: p.stem)
def test_vector_keys_derive_from_their_seeds(path: Path, vector_keys: Any) -> None:
    """The public keys and key ids in a vector are those its seeds derive."""
    vector = _load(path)
    keys = vector_keys(vector)
    for k in vector["keys"]:
        pair = keys.by_generation[k["org"], k["generation"]]
        assert pair.signing.public.raw.hex() == k["ed25519_public"]
        assert pair.signing.public.key_id.hex() == k["ed25519_key_id"]
        assert pair.encryption.public.raw.hex() == k["x25519_public"]
        assert pair.encryption.public.key_id.hex() == k["x25519_key_id"]


@pytest.mark.parametrize("path", NEGATIVE, ids=lambda p: p.stem)
def test_negative_raises_declared_error(path: Path, vector_keys: Any) -> None:
    """Opening a negative vector as its opener raises exactly the declared class and rule."""
    vector = _load(path)
    keys = vector_keys(vector)
    expected = ERRORS[vector["error"]]
    with pytest.raises(OpenError) as info:
        open_envelope(
            bytes.fromhex(vector["envelope"]),
            keys.directory,
            keys.by_org[vector["opener"]],
            now=vector["now"],
        )
    assert type(info.value) is expected
    if expected in {FormatError, SenderError, NotRecipientError}:
        assert info.value.rule == vector["rule"]
    else:
        assert info.value.rule is None
        assert str(info.value) == str(OpenError())  # the one opaque sentence


@pytest.mark.parametrize("path", NEGATIVE, ids=lambda p: p.stem)
def test_negative_verifier_outcome(path: Path, vector_keys: Any) -> None:
    """verify_envelope fails as declared, or accepts when only a recipient can see the defect."""
    vector = _load(path)
    keys = vector_keys(vector)
    envelope = bytes.fromhex(vector["envelope"])
    if vector["verifier_error"] is None:
        verified = verify_envelope(envelope, keys.directory, now=vector["now"])
        assert verified.digest.hex() == vector["digest"]
        return
    with pytest.raises(OpenError) as info:
        verify_envelope(envelope, keys.directory, now=vector["now"])
    assert type(info.value) is ERRORS[vector["verifier_error"]]
    if vector["verifier_error"] != "OpenError":
        assert info.value.rule == vector["rule"]


@pytest.mark.parametrize("path", NEGATIVE, ids=lambda p: p.stem)
def test_negative_vector_is_named_after_its_rule(path: Path) -> None:
    """A negative vector's file name is its rule id, and that rule is in the spec."""
    vector = _load(path)
    assert path.stem == vector["rule"]
    assert vector["rule"] in _spec_rules()


def test_spec_lists_the_rules_we_expect() -> None:
    """Parsing §7 of docs/envelope.md finds its 26 rule ids, each once."""
    rules = _spec_rules()
    assert len(rules) == len(set(rules)) == 26
    assert rules[0] == "header.magic"
    assert rules[-1] == "envelope.trailing-data"


def test_every_spec_rule_has_a_negative_vector() -> None:
    """Every MUST rule id in docs/envelope.md §7 has a negative vector named after it."""
    missing = sorted(set(_spec_rules()) - {p.stem for p in NEGATIVE})
    assert missing == []


def test_unknown_key_of_known_sender_is_sender_known(vector_keys: Any) -> None:
    """A listed organisation signing with a key the directory lacks is refused as sender.known."""
    vector = _load(VECTORS / "negative" / "sender.key-valid.json")
    listed = [
        d for d in vector["directory"] if (d["org"], d["generation"]) != ("urn:106123", "expired")
    ]
    keys = vector_keys({**vector, "directory": listed})
    with pytest.raises(SenderError) as info:
        open_envelope(
            bytes.fromhex(vector["envelope"]),
            keys.directory,
            keys.by_org["la:356"],
            now=vector["now"],
        )
    assert info.value.rule == "sender.known"
    assert "urn:106123" in str(info.value)


@pytest.mark.subprocess
def test_generator_check_passes() -> None:
    """`generate.py --check` finds the files on disk exactly as it would write them."""
    result = run_generator_check(VECTORS / "generate.py")
    assert result.returncode == 0, result.stderr


class _AnyKnownKey:
    """A directory that trusts every signing key the vector lists, at every time."""

    def __init__(self, keys: Any) -> None:
        self._keys = {
            pair.signing.public.key_id: pair.signing.public for pair in keys.by_generation.values()
        }

    def signing_key_for(self, org_id: str, key_id: bytes, at: int) -> Any:
        del org_id, at
        return self._keys[key_id]


def _relaxers(vector: dict[str, Any], keys: Any, mp: pytest.MonkeyPatch) -> dict[str, Any]:
    """Return, per rule, a step that switches that one check off (and nothing else)."""
    envelope = bytes.fromhex(vector["envelope"])
    # Header fields, from the bytes themselves (decode_header would refuse some of them).
    kind_at = 11 + 16 + 8 + 1 + envelope[35] + 32
    kind_len = envelope[kind_at]
    commitment_at = kind_at + 1 + kind_len + 4
    commitment = envelope[commitment_at : commitment_at + 32]
    return {
        "header.magic": lambda: mp.setattr(format_module, "MAGIC", envelope[:8]),
        "header.version": lambda: mp.setattr(format_module, "VERSION", envelope[8]),
        "header.ids": lambda: mp.setattr(format_module, "_KIND_RE", re.compile(rb"[A-Za-z]+")),
        "header.chunk-size": lambda: mp.setattr(format_module, "is_valid_chunk_size", bool),
        "header.recipient-count": lambda: mp.setattr(format_module, "MAX_RECIPIENTS", 17),
        "sender.known": lambda: _AnyKnownKey(keys),
        "sender.key-valid": lambda: _AnyKnownKey(keys),
        "sender.key-revoked": lambda: _AnyKnownKey(keys),
        "created.not-future": lambda: mp.setattr(opening_module, "MAX_CLOCK_SKEW", 301),
        "key.commitment": lambda: mp.setattr(wrap_module, "key_commitment", lambda _: commitment),
        "inner.header-hash": lambda: mp.setattr(opening_module, "check_inner", _no_check),
        "inner.content-length": lambda: mp.setattr(opening_module, "check_inner", _no_check),
    }


def _no_check(*args: object) -> None:
    del args


RELAXABLE = [
    "header.magic",
    "header.version",
    "header.ids",
    "header.chunk-size",
    "header.recipient-count",
    "sender.known",
    "sender.key-valid",
    "sender.key-revoked",
    "created.not-future",
    "key.commitment",
    "inner.header-hash",
    "inner.content-length",
]


@pytest.mark.parametrize("rule", RELAXABLE)
def test_negative_vector_opens_once_its_one_check_is_off(
    rule: str, vector_keys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only the named check switched off, the negative vector opens to its content."""
    vector = _load(VECTORS / "negative" / f"{rule}.json")
    keys = vector_keys(vector)
    directory = _relaxers(vector, keys, monkeypatch)[rule]() or keys.directory
    content, opened = open_envelope(
        bytes.fromhex(vector["envelope"]),
        directory,
        keys.by_org[vector["opener"]],
        now=vector["now"],
    )
    assert content == bytes.fromhex(vector["content"])
    assert opened.verified.digest.hex() == vector["digest"]


@pytest.mark.parametrize(
    ("rule", "opener"), [("recipient.addressed", "la:356"), ("envelope.trailing-data", None)]
)
def test_negative_vector_opens_without_its_defect(
    rule: str, opener: str | None, vector_keys: Any
) -> None:
    """Opened by the addressee, or without the extra byte, the vector opens to its content."""
    vector = _load(VECTORS / "negative" / f"{rule}.json")
    keys = vector_keys(vector)
    envelope = bytes.fromhex(vector["envelope"])
    if opener is None:
        envelope, opener = envelope[:-1], vector["opener"]
    content, _ = open_envelope(envelope, keys.directory, keys.by_org[opener], now=vector["now"])
    assert content == bytes.fromhex(vector["content"])
