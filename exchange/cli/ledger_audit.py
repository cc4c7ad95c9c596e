"""The whole-log audit of a node's ledger, as ``exchange ledger verify`` and ``db copy`` run it.

The audit reads every event, every signed checkpoint and the stored Merkle tree (in one read
transaction of either engine), recomputes the log from the events, checks each checkpoint's
signature, size, root and consistency with the one before, and checks the stored tree
against the events. What it returns (the size and root of the log) is what ``db copy``
compares between the SQLite store and the PostgreSQL database it filled.
"""

from __future__ import annotations

from dataclasses import dataclass

from exchange.cli.errors import CliError
from exchange.config import ConfigError, NodeConfig
from exchange.keys.notes import NoteSigner, NoteVerifier
from exchange.ledger.errors import LedgerError
from exchange.ledger.log import log_of, verify_log, verify_stored_tree
from exchange.ledger.merkle import MAX_TREE_SIZE
from exchange.ledger.subtrees import StoredSubtree
from exchange.service.tenants import read_key_pair, read_passphrase
from exchange.store.ledger import read_checkpoints, read_events, read_stored_tree
from exchange.store.sql import Db


@dataclass(frozen=True)
class LedgerFacts:
    """Everything of the ledger a store holds: events, signed checkpoints, the stored tree."""

    events: list[bytes]
    notes: list[bytes]
    head: int
    stored: list[StoredSubtree]


@dataclass(frozen=True)
class LedgerAudit:
    """A ledger that verified: its size, root, checkpoints and the events they attest."""

    size: int
    root: bytes
    checkpoints: int
    attested: int


def ledger_signer(config: NodeConfig) -> NoteSigner:
    """Return the node's ledger signer (its key file, opened with the passphrase)."""
    try:
        pair = read_key_pair(
            config.ledger_key, read_passphrase(config.ledger_passphrase_env, "ledger"), "ledger"
        )
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    return NoteSigner(config.ledger_origin, pair.signing)


def read_ledger(db: Db) -> LedgerFacts:
    """Read the ledger in ``db``'s transaction (every event row, not just the head's count)."""
    head, stored = read_stored_tree(db)
    notes = [note for _, note in read_checkpoints(db)]
    return LedgerFacts(read_events(db, 0, MAX_TREE_SIZE), notes, head, stored)


def audit_ledger(facts: LedgerFacts, verifier: NoteVerifier, origin: str) -> LedgerAudit:
    """Recompute the log, check every checkpoint and the stored tree; refuse in one line."""
    try:
        last = verify_log(facts.events, facts.notes, [verifier], origin)
        log = log_of(facts.events)
        verify_stored_tree(log, facts.head, facts.stored)
    except LedgerError as exc:
        raise CliError(f"the ledger does not verify: {exc}") from None
    attested = 0 if last is None else last.size
    return LedgerAudit(log.size, log.root(), len(facts.notes), attested)
