"""Checkpoints: the C2SP tlog-checkpoint text, signed notes, and the consistency guard."""

from __future__ import annotations

import base64
import re

import pytest

from exchange.ledger import (
    EMPTY_ROOT,
    Checkpoint,
    CheckpointError,
    CheckpointSigner,
    InconsistentCheckpointError,
    MerkleLog,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from tests.ledger.helpers import ORIGIN, make_events, make_log, node_signer

# The example of c2sp.org/tlog-checkpoint ("Transparency Log Checkpoints").
SPEC_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_NOTE = (
    SPEC_TEXT + "\n— example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
).encode()

SIGNER = node_signer()
VERIFIERS = [SIGNER.verifier]


def checkpoint_of(log: MerkleLog, size: int) -> Checkpoint:
    return Checkpoint(ORIGIN, size, log.root(size))


def test_spec_example_parses_and_formats_byte_for_byte() -> None:
    """The specification's example checkpoint text parses and formats back identically."""
    checkpoint = parse_checkpoint(SPEC_TEXT)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert format_checkpoint(checkpoint) == SPEC_TEXT


def test_spec_example_note_is_well_formed_but_untrusted() -> None:
    """The example note parses as a signed note, and a key we do not trust is refused."""
    with pytest.raises(CheckpointError, match="no signature on the note is from a trusted key"):
        open_checkpoint(SPEC_NOTE, VERIFIERS, "example.com/behind-the-sofa")


def test_sign_and_open_round_trip() -> None:
    """A signed checkpoint opens to the same checkpoint; its text is the C2SP three lines."""
    log = make_log(9)
    checkpoint = checkpoint_of(log, 9)
    note = sign_checkpoint(checkpoint, SIGNER)
    root = base64.b64encode(log.root()).decode()
    assert note.startswith(f"{ORIGIN}\n9\n{root}\n\n— {ORIGIN} ".encode())
    assert open_checkpoint(note, VERIFIERS, ORIGIN) == checkpoint


def test_empty_tree_checkpoint() -> None:
    """The empty log's checkpoint has size 0 and the SHA-256 of the empty string as root."""
    checkpoint = Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    assert parse_checkpoint(format_checkpoint(checkpoint)) == checkpoint
    with pytest.raises(ValueError, match="empty tree"):
        Checkpoint(ORIGIN, 0, bytes(32))


ROOT = base64.b64encode(bytes(range(32))).decode()
MALFORMED_TEXT = [
    (f"{ORIGIN}\n1\n{ROOT}", "must end with a newline"),
    (f"{ORIGIN}\n1\n", "needs three"),
    (f"{ORIGIN}\n1\n{ROOT}\nextension\n", "extension lines"),
    (f"{ORIGIN}\n1\n{ROOT}\n\n", "extension lines"),
    (f"\n1\n{ROOT}\n", "line 1"),
    (f"exchange.example/a b\n1\n{ROOT}\n", "line 1"),
    (f"exchange.example/a+b\n1\n{ROOT}\n", "line 1"),
    (f"{ORIGIN}\n01\n{ROOT}\n", "line 2"),
    (f"{ORIGIN}\n-1\n{ROOT}\n", "line 2"),
    (f"{ORIGIN}\n+1\n{ROOT}\n", "line 2"),
    (f"{ORIGIN}\n 1\n{ROOT}\n", "line 2"),
    (f"{ORIGIN}\n١\n{ROOT}\n", "line 2"),
    (f"{ORIGIN}\n9223372036854775808\n{ROOT}\n", "line 2"),
    (f"{ORIGIN}\n1\n{ROOT[:-1]}\n", "line 3"),
    (f"{ORIGIN}\n1\n{ROOT[:-2]}9=\n", "line 3"),  # non-zero padding bits
    (f"{ORIGIN}\n1\n{base64.b64encode(bytes(31)).decode()}\n", "line 3"),
    (f"{ORIGIN}\n1\n{ROOT[:5]}_{ROOT[6:]}\n", "line 3"),
    (f"{ORIGIN}\n0\n{ROOT}\n", "empty tree"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED_TEXT)
def test_malformed_text_is_refused(text: str, message: str) -> None:
    """Each deviation from the three-line checkpoint text raises CheckpointError naming it."""
    with pytest.raises(CheckpointError, match=message):
        parse_checkpoint(text)


def test_open_refuses_other_origin_key_and_tampering() -> None:
    """A checkpoint of another log, by an untrusted key, or with altered text is refused."""
    checkpoint = checkpoint_of(make_log(3), 3)
    note = sign_checkpoint(checkpoint, SIGNER)
    with pytest.raises(CheckpointError, match=re.escape("not 'exchange.example/node/la-357'")):
        open_checkpoint(note, VERIFIERS, "exchange.example/node/la-357")
    impostor = node_signer("impostor")
    with pytest.raises(CheckpointError, match="trusted key"):
        open_checkpoint(sign_checkpoint(checkpoint, impostor), VERIFIERS, ORIGIN)
    altered = note.replace(b"\n3\n", b"\n4\n", 1)
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(altered, VERIFIERS, ORIGIN)


def test_key_name_must_be_the_origin() -> None:
    """sign_checkpoint refuses a signer whose key name is not the checkpoint's origin."""
    other = node_signer(origin="exchange.example/node/la-357")
    with pytest.raises(ValueError, match="is not the checkpoint's origin"):
        sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), other)


def test_signer_accepts_a_growing_log() -> None:
    """The signer signs the first checkpoint, then each larger one with a valid proof."""
    log = make_log(40)
    signer = CheckpointSigner(SIGNER)
    signer.sign(checkpoint_of(log, 0))
    signer.sign(checkpoint_of(log, 5))  # from the empty tree no proof is needed
    for old, new in [(5, 5), (5, 16), (16, 40)]:
        note = signer.sign(checkpoint_of(log, new), log.consistency_proof(old, new))
        assert open_checkpoint(note, VERIFIERS, ORIGIN) == checkpoint_of(log, new)
    assert signer.last == checkpoint_of(log, 40)


def test_signer_refuses_a_smaller_checkpoint() -> None:
    """A checkpoint with fewer entries than the last one signed is refused."""
    log = make_log(10)
    signer = CheckpointSigner(SIGNER, last=checkpoint_of(log, 10))
    with pytest.raises(InconsistentCheckpointError, match="fewer than the 10"):
        signer.sign(checkpoint_of(log, 9))


def test_signer_refuses_same_size_with_another_root() -> None:
    """A checkpoint of the same size with a different root is refused; the same one is not."""
    log = make_log(10)
    signer = CheckpointSigner(SIGNER)
    first = signer.sign(checkpoint_of(log, 10))
    assert signer.sign(checkpoint_of(log, 10)) == first
    forked = Checkpoint(ORIGIN, 10, make_log(11).root(10)[::-1])
    with pytest.raises(InconsistentCheckpointError, match="different roots"):
        signer.sign(forked)


def test_signer_refuses_growth_without_a_valid_proof() -> None:
    """A larger checkpoint without a proof, with a wrong proof or a rewritten past is refused."""
    log = make_log(20)
    signer = CheckpointSigner(SIGNER, last=checkpoint_of(log, 7))
    with pytest.raises(InconsistentCheckpointError, match="not consistent"):
        signer.sign(checkpoint_of(log, 20))
    with pytest.raises(InconsistentCheckpointError, match="not consistent"):
        signer.sign(checkpoint_of(log, 20), log.consistency_proof(8, 20))
    rewritten = MerkleLog()
    events = make_events(20)
    events[3] = events[4]
    for event in events:
        rewritten.append(event)
    with pytest.raises(InconsistentCheckpointError, match="not consistent"):
        signer.sign(checkpoint_of(rewritten, 20), rewritten.consistency_proof(7, 20))
    assert signer.last == checkpoint_of(log, 7)


def test_signer_refuses_a_proof_from_the_empty_tree_and_other_origins() -> None:
    """After the empty checkpoint a proof must be empty; another origin is never signed."""
    log = make_log(4)
    signer = CheckpointSigner(SIGNER, last=checkpoint_of(log, 0))
    with pytest.raises(InconsistentCheckpointError, match="must be empty"):
        signer.sign(checkpoint_of(log, 4), [log.leaf_hash(0)])
    with pytest.raises(InconsistentCheckpointError, match="not this log"):
        signer.sign(Checkpoint("exchange.example/node/la-357", 4, log.root()))
    with pytest.raises(ValueError, match="last: the checkpoint is for"):
        CheckpointSigner(SIGNER, last=Checkpoint("exchange.example/x", 0, EMPTY_ROOT))


def test_sign_tree_computes_root_and_proof_from_the_store() -> None:
    """sign_tree signs the store's tree, and refuses when the store's past was rewritten."""
    log = make_log(30)
    signer = CheckpointSigner(SIGNER)
    for size in (0, 1, 2, 17, 17, 30):
        checkpoint, note = signer.sign_tree(log.range_hash, size)
        assert checkpoint == checkpoint_of(log, size)
        assert open_checkpoint(note, VERIFIERS, ORIGIN) == checkpoint
    events = make_events(31)
    events[0], events[1] = events[1], events[0]
    reordered = MerkleLog()
    for event in events:
        reordered.append(event)
    with pytest.raises(InconsistentCheckpointError):
        signer.sign_tree(reordered.range_hash, 31)
