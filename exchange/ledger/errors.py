"""Errors raised by the ledger: event statements, Merkle proofs, checkpoints and bundles.

The tree::

    LedgerError                       base of everything this package raises
    ├── EventFormatError              an event statement breaks the encoding: ``field`` and
    │                                 ``offset`` say where (docs/ledger.md §3)
    ├── ProofError                    an inclusion or consistency proof does not verify, or is
    │                                 malformed (RFC 9162 §2.1.3.2, §2.1.4.2)
    ├── CheckpointError               a checkpoint note is malformed, unsigned, signed by no
    │   │                             trusted key or for another origin (C2SP tlog-checkpoint)
    │   └── InconsistentCheckpointError   signing it would contradict the last checkpoint signed
    ├── BundleError                   a proof bundle is malformed (C2SP tlog-proof)
    ├── StoredTreeError               a stored subtree hash a root or proof needs is missing
    │                                 or malformed (exchange.ledger.subtrees)
    └── LogVerificationError          a stored log does not match its checkpoints; it names the
                                      first checkpoint and the rows at fault

Verifiers raise; none returns ``False``. Messages are plain sentences naming the field, byte
offset, index or rule; they never contain an event's content or key material. Misuse by the
caller (a wrong type, a negative size passed to a generator) is ``TypeError``/``ValueError``
naming the argument.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every error raised by the ``exchange.ledger`` package."""


class EventFormatError(LedgerError):
    """An event statement is malformed: ``field`` names the part, ``offset`` the byte."""

    def __init__(self, field: str, offset: int, message: str) -> None:
        super().__init__(f"ledger event format error at byte {offset} in {field}: {message}")
        self.field = field
        self.offset = offset


class ProofError(LedgerError):
    """A Merkle inclusion or consistency proof does not verify or is malformed."""


class CheckpointError(LedgerError):
    """A checkpoint could not be parsed, opened or trusted."""


class InconsistentCheckpointError(CheckpointError):
    """The node refused to sign a checkpoint that contradicts the last one it signed."""


class BundleError(LedgerError):
    """A proof bundle is not in the format of docs/ledger.md §6 (C2SP tlog-proof)."""


class StoredTreeError(LedgerError):
    """A subtree hash the store should hold is missing or is not a hash."""


class LogVerificationError(LedgerError):
    """A log's events do not match its checkpoints, or one of them is malformed.

    ``checkpoint_index`` is the position of the first checkpoint at fault (or ``None`` when an
    event row itself is malformed); ``rows`` is the range of event indexes in which the fault
    must lie, because a root hash shows *that* rows changed, not which one.
    """

    def __init__(
        self,
        message: str,
        *,
        checkpoint_index: int | None = None,
        rows: range | None = None,
    ) -> None:
        super().__init__(message)
        self.checkpoint_index = checkpoint_index
        self.rows = rows
