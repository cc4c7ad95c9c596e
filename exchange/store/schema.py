"""Schema migrations of the SQLite store, applied in order at start-up.

Each migration is a list of statements and runs in one transaction together with the row
that records it, so a crash during an upgrade leaves the database at the previous version.
Migrations are only ever appended: a released one is never edited.
"""

from __future__ import annotations

from typing import Final

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE envelopes (
            digest BLOB PRIMARY KEY,
            envelope_id BLOB NOT NULL,
            sender TEXT NOT NULL,
            recipients TEXT NOT NULL,
            record_kind TEXT NOT NULL,
            created INTEGER NOT NULL,
            length INTEGER NOT NULL,
            stored_at REAL NOT NULL
        )""",
        """CREATE TABLE sent (
            digest BLOB PRIMARY KEY REFERENCES envelopes(digest),
            sender TEXT NOT NULL,
            submitted_by TEXT NOT NULL,
            submitted_at REAL NOT NULL
        )""",
        "CREATE INDEX sent_by_sender ON sent (sender, submitted_at)",
        """CREATE TABLE inbox (
            owner TEXT NOT NULL,
            digest BLOB NOT NULL REFERENCES envelopes(digest),
            received_at REAL NOT NULL,
            state TEXT NOT NULL,
            delivered_receipt BLOB NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (owner, digest)
        )""",
        "CREATE INDEX inbox_by_owner ON inbox (owner, received_at)",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            envelope_digest BLOB NOT NULL,
            ref BLOB NOT NULL,
            origin TEXT NOT NULL,
            destination TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            last_error TEXT,
            UNIQUE (kind, ref, destination)
        )""",
        "CREATE INDEX outbox_due ON outbox (state, next_attempt_at)",
        "CREATE INDEX outbox_by_envelope ON outbox (envelope_digest)",
        """CREATE TABLE receipts (
            digest BLOB PRIMARY KEY,
            envelope_digest BLOB NOT NULL,
            receipter TEXT NOT NULL,
            status TEXT NOT NULL,
            time INTEGER NOT NULL,
            signed BLOB NOT NULL,
            recorded_at REAL NOT NULL
        )""",
        "CREATE INDEX receipts_by_envelope ON receipts (envelope_digest, time)",
        """CREATE TABLE ledger (
            idx INTEGER PRIMARY KEY,
            event BLOB NOT NULL,
            leaf_hash BLOB NOT NULL,
            envelope_digest BLOB
        )""",
        "CREATE INDEX ledger_by_hash ON ledger (leaf_hash)",
        "CREATE INDEX ledger_by_envelope ON ledger (envelope_digest)",
        """CREATE TABLE checkpoints (
            size INTEGER PRIMARY KEY,
            note BLOB NOT NULL,
            signed_at REAL NOT NULL
        )""",
        """CREATE TABLE users (
            id TEXT PRIMARY KEY,
            org TEXT NOT NULL,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            token_hash BLOB NOT NULL UNIQUE,
            created_at REAL NOT NULL
        )""",
        """CREATE TABLE nonces (
            key TEXT NOT NULL,
            nonce TEXT NOT NULL,
            created INTEGER NOT NULL,
            PRIMARY KEY (key, nonce)
        )""",
        "CREATE INDEX nonces_by_created ON nonces (created)",
    ),
    (
        # Routing with fallback (issue 4): which of the destination's routes the item is on,
        # and how many attempts in a row failed there.
        "ALTER TABLE outbox ADD COLUMN route_index INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE outbox ADD COLUMN route_failures INTEGER NOT NULL DEFAULT 0",
    ),
    (
        # Connectors and routing (issue 4): a route an item must try first (``via``: "kind
        # address", e.g. a receipt going back through the relay it came from), the route
        # kind and transport id of the attempt that handed it over (a MESH message id, an
        # SMTP Message-ID, a relay item id), so a later non-delivery report finds the item.
        "ALTER TABLE outbox ADD COLUMN via TEXT",
        "ALTER TABLE outbox ADD COLUMN route_kind TEXT",
        "ALTER TABLE outbox ADD COLUMN transport_ref TEXT",
        "CREATE INDEX outbox_by_transport_ref ON outbox (transport_ref)",
    ),
)
