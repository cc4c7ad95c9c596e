"""The ledger: an RFC 9162 Merkle log of exchange events with C2SP signed checkpoints.

Pure code only (no I/O, no clock, no database): :mod:`~exchange.ledger.events` defines the
event statements that are the leaves, :mod:`~exchange.ledger.merkle` the tree and its proofs,
:mod:`~exchange.ledger.checkpoint` the signed tree heads and the rule that the node never
signs an inconsistent one, :mod:`~exchange.ledger.bundle` the offline proof bundles and
:mod:`~exchange.ledger.log` the in-memory reference log and the whole-log audit, and
:mod:`~exchange.ledger.subtrees` the arithmetic of a tree kept as stored complete subtrees.
The store that persists the log lives elsewhere and must agree with :class:`MerkleLog`. The
rules are in docs/ledger.md.
"""

from __future__ import annotations

from exchange.ledger.bundle import BUNDLE_HEADER, make_bundle, verify_bundle
from exchange.ledger.checkpoint import (
    Checkpoint,
    CheckpointSigner,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from exchange.ledger.errors import (
    BundleError,
    CheckpointError,
    EventFormatError,
    InconsistentCheckpointError,
    LedgerError,
    LogVerificationError,
    ProofError,
    StoredTreeError,
)
from exchange.ledger.events import (
    L_LEDGER_EVENT,
    EventType,
    LedgerEvent,
    decode_event,
    encode_event,
)
from exchange.ledger.log import MerkleLog, verify_log
from exchange.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    RangeHasher,
    SubtreeHasher,
    consistency_proof,
    consistency_proof_from,
    inclusion_proof,
    inclusion_proof_from,
    leaf_hash,
    list_range_hasher,
    node_hash,
    root_hash,
    subtree_range_hasher,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "BUNDLE_HEADER",
    "EMPTY_ROOT",
    "L_LEDGER_EVENT",
    "BundleError",
    "Checkpoint",
    "CheckpointError",
    "CheckpointSigner",
    "EventFormatError",
    "EventType",
    "Frontier",
    "InconsistentCheckpointError",
    "LedgerError",
    "LedgerEvent",
    "LogVerificationError",
    "MerkleLog",
    "ProofError",
    "RangeHasher",
    "StoredTreeError",
    "SubtreeHasher",
    "consistency_proof",
    "consistency_proof_from",
    "decode_event",
    "encode_event",
    "format_checkpoint",
    "inclusion_proof",
    "inclusion_proof_from",
    "leaf_hash",
    "list_range_hasher",
    "make_bundle",
    "node_hash",
    "open_checkpoint",
    "parse_checkpoint",
    "root_hash",
    "sign_checkpoint",
    "subtree_range_hasher",
    "verify_bundle",
    "verify_consistency",
    "verify_inclusion",
    "verify_log",
]
