"""Proof bundles (C2SP tlog-proof@v1): round trip, exact layout and tampering."""

from __future__ import annotations

import base64
import re

import pytest

from exchange.ledger import (
    BundleError,
    Checkpoint,
    CheckpointError,
    LedgerError,
    MerkleLog,
    ProofError,
    decode_event,
    make_bundle,
    sign_checkpoint,
    verify_bundle,
)
from tests.ledger.helpers import ORIGIN, make_event, make_log, node_signer

SIGNER = node_signer()
VERIFIERS = [SIGNER.verifier]


def bundle_for(log: MerkleLog, index: int, size: int | None = None) -> bytes:
    size = log.size if size is None else size
    note = sign_checkpoint(Checkpoint(ORIGIN, size, log.root(size)), SIGNER)
    return make_bundle(log.event(index), index, log.inclusion_proof(index, size), note)


def test_round_trip_for_every_index() -> None:
    """Every event of a log, bundled at the latest or an earlier checkpoint, verifies."""
    log = make_log(13)
    for size in (13, 8, 1):
        for index in range(size):
            event, checkpoint = verify_bundle(bundle_for(log, index, size), VERIFIERS, ORIGIN)
            assert event == make_event(index)
            assert checkpoint == Checkpoint(ORIGIN, size, log.root(size))


def test_layout_follows_tlog_proof() -> None:
    """The bundle is the header, extra, index, proof lines, an empty line and the note."""
    log = make_log(6)
    bundle = bundle_for(log, 4)
    note = sign_checkpoint(Checkpoint(ORIGIN, 6, log.root()), SIGNER)
    lines = [
        "c2sp.org/tlog-proof@v1",
        "extra " + base64.b64encode(log.event(4)).decode(),
        "index 4",
        *(base64.b64encode(h).decode() for h in log.inclusion_proof(4)),
    ]
    assert bundle == ("\n".join(lines) + "\n\n").encode() + note


def test_every_single_byte_change_is_refused() -> None:
    """Changing any one byte of a bundle makes verification raise a LedgerError."""
    bundle = bundle_for(make_log(11), 6)
    for position in range(len(bundle)):
        changed = bytearray(bundle)
        changed[position] ^= 0x01
        with pytest.raises(LedgerError):
            verify_bundle(bytes(changed), VERIFIERS, ORIGIN)


def test_another_valid_event_does_not_verify() -> None:
    """Swapping in a different, well-formed event statement fails the inclusion proof."""
    log = make_log(11)
    bundle = bundle_for(log, 6)
    swapped = bundle.replace(
        base64.b64encode(log.event(6)), base64.b64encode(make_event(99).encode())
    )
    with pytest.raises(ProofError, match="does not lead to the root"):
        verify_bundle(swapped, VERIFIERS, ORIGIN)


def test_proof_lines_added_or_removed_fail() -> None:
    """A proof line removed or added makes the inclusion proof fail."""
    log = make_log(11)
    bundle = bundle_for(log, 6)
    head, _, note = bundle.partition(b"\n\n")
    lines = head.split(b"\n")
    for changed in (lines[:-1], [*lines, lines[-1]]):
        with pytest.raises(ProofError):
            verify_bundle(b"\n".join(changed) + b"\n\n" + note, VERIFIERS, ORIGIN)


def test_untrusted_or_other_origin_checkpoint_is_refused() -> None:
    """The checkpoint must be signed by a trusted key and be for the expected origin."""
    bundle = bundle_for(make_log(5), 2)
    with pytest.raises(CheckpointError, match="trusted key"):
        verify_bundle(bundle, [node_signer("other").verifier], ORIGIN)
    with pytest.raises(CheckpointError, match=re.escape("not 'exchange.example/node/la-357'")):
        verify_bundle(bundle, VERIFIERS, "exchange.example/node/la-357")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda b: b.replace(b"@v1", b"@v2"), "line 1"),
        (lambda b: b.replace(b"extra ", b"extras "), "line 2"),
        (lambda b: b.replace(b"index 2", b"index 02"), "line 3"),
        (lambda b: b.replace(b"index 2", b"index  2"), "line 3"),
        (lambda b: b.replace(b"\n\n", b"\n", 1).replace(b"\n\n", b"\n"), "no empty line"),
        (lambda b: b"\xff" + b, "not ASCII"),
        (lambda b: b + bytes(40_000), "longer than the limit"),
    ],
)
def test_malformed_bundle_is_named(edit: object, message: str) -> None:
    """Structural faults raise BundleError naming the line or rule."""
    bundle = bundle_for(make_log(5), 2)
    with pytest.raises(BundleError, match=message):
        verify_bundle(edit(bundle), VERIFIERS, ORIGIN)  # type: ignore[operator]


def test_bundle_without_extra_is_refused() -> None:
    """A tlog-proof with no extra line carries no event, so there is nothing to verify."""
    bundle = bundle_for(make_log(5), 2)
    head, _, rest = bundle.partition(b"\n")
    stripped = head + b"\n" + rest.partition(b"\n")[2]
    with pytest.raises(BundleError, match="line 2 of the bundle must be 'extra'"):
        verify_bundle(stripped, VERIFIERS, ORIGIN)


def test_make_bundle_refuses_bad_inputs() -> None:
    """make_bundle refuses a non-statement, a negative index or a malformed proof."""
    log = make_log(3)
    note = sign_checkpoint(Checkpoint(ORIGIN, 3, log.root()), SIGNER)
    with pytest.raises(LedgerError):
        make_bundle(b"not an event", 0, [], note)
    with pytest.raises(ValueError, match="index"):
        make_bundle(log.event(0), -1, [], note)
    with pytest.raises(ValueError, match="proof"):
        make_bundle(log.event(0), 0, [b"short"], note)
    assert decode_event(log.event(0)) == make_event(0)
