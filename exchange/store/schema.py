"""Schema migrations of the SQLite store, applied in order at start-up.

Each migration is a list of steps and runs in one transaction together with the row that
records it, so a crash during an upgrade leaves the database at the previous version. A step
is an SQL statement, or a Python function of the connection for work SQL cannot do (such as
hashing: migration 22 builds the stored Merkle tree of an existing ledger);
:func:`run_migration` runs either. Migrations are only ever appended: a released one is
never edited.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from exchange.store.ledger_tree import backfill_ledger_tree
from exchange.store.sql import Db

#: One step of a migration: an SQL statement or a function run on the connection.
Step = str | Callable[[Db], None]


def run_migration(db: Db, steps: Sequence[Step]) -> None:
    """Run a migration's steps in order on ``db`` (inside the caller's transaction)."""
    for step in steps:
        if isinstance(step, str):
            db.execute(step)
        else:
            step(db)


MIGRATIONS: Final[tuple[tuple[Step, ...], ...]] = (
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
        # Routing with fallback: which of the destination's routes the item is on,
        # and how many attempts in a row failed there.
        "ALTER TABLE outbox ADD COLUMN route_index INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE outbox ADD COLUMN route_failures INTEGER NOT NULL DEFAULT 0",
    ),
    (
        # Connectors and routing: a route an item must try first (``via``: "kind
        # address", e.g. a receipt going back through the relay it came from), the route
        # kind and transport id of the attempt that handed it over (a MESH message id, an
        # SMTP Message-ID, a relay item id), so a later non-delivery report finds the item.
        "ALTER TABLE outbox ADD COLUMN via TEXT",
        "ALTER TABLE outbox ADD COLUMN route_kind TEXT",
        "ALTER TABLE outbox ADD COLUMN transport_ref TEXT",
        "CREATE INDEX outbox_by_transport_ref ON outbox (transport_ref)",
    ),
    (
        # Records, the sharing register and deadlines. ``register`` holds one row
        # per decision to share (written in the transaction that stores the envelope) and one
        # per decision not to share; receipts are joined from ``receipts`` when exported.
        # ``register_recipients`` lists each row's (intended) recipients with their kinds.
        # Pupil identifiers are never stored: ``subject_index`` holds HMAC-SHA256 keyed hashes
        # (key: register.key in the data folder), for sent items and decisions (``item`` is
        # the envelope digest in hex, or ``decision:<id>``) and for received items once a
        # member of staff opens them (``received_index`` says which were indexed).
        """CREATE TABLE register (
            id INTEGER PRIMARY KEY,
            org TEXT NOT NULL,
            outcome TEXT NOT NULL,
            envelope_digest BLOB UNIQUE,
            envelope_id BLOB,
            decided_by TEXT NOT NULL,
            decided_at REAL NOT NULL,
            purpose TEXT NOT NULL,
            rule TEXT NOT NULL,
            lawful_basis TEXT,
            citation TEXT,
            record_kind TEXT,
            categories TEXT NOT NULL,
            reason_code TEXT,
            reason TEXT NOT NULL,
            attachments INTEGER NOT NULL DEFAULT 0,
            deadline_due TEXT,
            deadline_rule TEXT,
            deadline_explanation TEXT,
            satisfied_by TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX register_by_org ON register (org, decided_at)",
        "CREATE INDEX register_by_due ON register (org, deadline_due)",
        """CREATE TABLE register_recipients (
            register_id INTEGER NOT NULL REFERENCES register(id),
            recipient TEXT NOT NULL,
            kind TEXT NOT NULL,
            PRIMARY KEY (register_id, recipient)
        )""",
        """CREATE TABLE subject_index (
            org TEXT NOT NULL,
            direction TEXT NOT NULL,
            item TEXT NOT NULL,
            id_kind TEXT NOT NULL,
            id_hash BLOB NOT NULL,
            indexed_at REAL NOT NULL,
            PRIMARY KEY (org, direction, item, id_kind, id_hash)
        )""",
        "CREATE INDEX subject_index_by_hash ON subject_index (org, id_hash)",
        """CREATE TABLE received_index (
            owner TEXT NOT NULL,
            digest BLOB NOT NULL,
            outcome TEXT NOT NULL,
            indexed_at REAL NOT NULL,
            PRIMARY KEY (owner, digest)
        )""",
    ),
    (
        # Recall, threads and corrections. ``recalls`` holds one
        # row per (sent envelope, recipient): the outcome of the sender's recall and when it
        # happened on the other side (recalled, fetched or opened). ``outbox.recall_requested_at``
        # marks an item the sender recalled while an attempt was in flight: the worker never
        # claims it again and an attempt that did not hand it over ends it ``recalled``. The
        # inbox remembers who first opened an item (a recall then answers ``too-late``) and
        # when a recall reached it. ``thread_links`` links an envelope to the one it replies
        # to or corrects, per organisation: for items sent, at submission; for items
        # received, when a member of staff first opens them (the link is sealed inside).
        "ALTER TABLE outbox ADD COLUMN recall_requested_at REAL",
        "ALTER TABLE inbox ADD COLUMN opened_at REAL",
        "ALTER TABLE inbox ADD COLUMN opened_by TEXT",
        "ALTER TABLE inbox ADD COLUMN opened_by_role TEXT",
        "ALTER TABLE inbox ADD COLUMN recalled_at REAL",
        "ALTER TABLE sent ADD COLUMN in_reply_to BLOB",
        "ALTER TABLE register ADD COLUMN in_reply_to BLOB",
        "ALTER TABLE register ADD COLUMN corrects BLOB",
        """CREATE TABLE recalls (
            org TEXT NOT NULL,
            digest BLOB NOT NULL,
            recipient TEXT NOT NULL,
            requested_by TEXT NOT NULL,
            requested_at REAL NOT NULL,
            reason TEXT NOT NULL,
            reason_code TEXT NOT NULL,
            outcome TEXT NOT NULL,
            route TEXT,
            detail TEXT NOT NULL,
            at INTEGER,
            opened_by_role TEXT,
            updated_at REAL NOT NULL,
            PRIMARY KEY (org, digest, recipient)
        )""",
        """CREATE TABLE thread_links (
            org TEXT NOT NULL,
            digest BLOB NOT NULL,
            parent BLOB NOT NULL,
            relation TEXT NOT NULL,
            source TEXT NOT NULL,
            linked_at REAL NOT NULL,
            PRIMARY KEY (org, digest)
        )""",
        "CREATE INDEX thread_links_by_parent ON thread_links (org, parent)",
    ),
    (
        # Retention (exchange/store/retention.py). ``retention`` holds, per
        # organisation and envelope it holds, the rule that governs it and the computed review
        # date (Europe/London, YYYY-MM-DD), or why there is none (``unscheduled``); never the
        # date of birth it was computed from. Destruction marks the row and keeps it.
        # ``retention_holds`` are inquiry and litigation holds on one envelope or, with
        # ``digest`` NULL, on everything the organisation holds.
        """CREATE TABLE retention (
            org TEXT NOT NULL,
            digest BLOB NOT NULL,
            direction TEXT NOT NULL,
            holder_kind TEXT NOT NULL,
            rule TEXT,
            review_date TEXT,
            action TEXT,
            unscheduled TEXT,
            scheduled_at REAL NOT NULL,
            destroyed_at REAL,
            destroyed_by TEXT,
            destroyed_rule TEXT,
            destroyed_reason TEXT,
            PRIMARY KEY (org, digest)
        )""",
        "CREATE INDEX retention_by_review ON retention (org, review_date)",
        "CREATE INDEX retention_by_destroyed ON retention (destroyed_at)",
        """CREATE TABLE retention_holds (
            id INTEGER PRIMARY KEY,
            org TEXT NOT NULL,
            digest BLOB,
            reason TEXT NOT NULL,
            reference TEXT NOT NULL,
            placed_at REAL NOT NULL,
            placed_by TEXT NOT NULL,
            lifted_at REAL,
            lifted_by TEXT
        )""",
        "CREATE INDEX retention_holds_by_org ON retention_holds (org, lifted_at)",
    ),
    (
        # Chase notices get their own row kind. They were ``notice`` rows with ``via =
        # 'overdue'``, origin the late recipient and destination the sender whose staff are
        # mailed; a ``chase`` row keeps origin and destination as the envelope's sender and
        # recipient (exchange.model.OutboxKind). SQLite evaluates every right-hand side
        # from the row as it was, so the swap needs no temporary. No ``chase`` row exists
        # before this migration, so the (kind, ref, destination) key cannot collide.
        (
            "UPDATE outbox SET kind = 'chase', origin = destination, destination = origin, "
            "via = NULL WHERE kind = 'notice' AND via = 'overdue'"
        ),
    ),
    (
        # Staff accounts and web sessions (exchange/store/accounts.py). ``accounts`` gives an
        # existing ``users`` row a way to sign in: an email address unique on the node
        # whatever its case (``email_key``, case-folded), an Argon2id PHC string, the TOTP
        # secret once confirmed (``totp_secret``) or while being enrolled (``totp_pending``),
        # the time step of the last code accepted, the failures in a row and until when
        # sign-in is slowed. ``recovery_codes`` holds SHA-256 hashes of single-use codes.
        # ``sign_in_failures`` counts failures per email address (by hash), account or not,
        # so slowing down says nothing about whether one exists. ``sessions`` are named by
        # the SHA-256 of their token, never the token; ``level`` is how far sign-in got,
        # ``required`` how far it must get, ``method`` how it got there.
        """CREATE TABLE accounts (
            id INTEGER PRIMARY KEY,
            user_id TEXT NOT NULL UNIQUE REFERENCES users(id),
            email TEXT NOT NULL,
            email_key TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            totp_secret BLOB,
            totp_pending BLOB,
            totp_last_step INTEGER,
            failed_count INTEGER NOT NULL DEFAULT 0,
            slowed_until REAL,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE recovery_codes (
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            code_hash BLOB NOT NULL,
            used_at REAL,
            PRIMARY KEY (account_id, code_hash)
        )""",
        """CREATE TABLE sign_in_failures (
            email_hash BLOB PRIMARY KEY,
            failed_count INTEGER NOT NULL,
            slowed_until REAL,
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE sessions (
            id_hash BLOB PRIMARY KEY,
            user_id TEXT NOT NULL REFERENCES users(id),
            created_at REAL NOT NULL,
            last_seen REAL NOT NULL,
            level TEXT NOT NULL,
            required TEXT NOT NULL,
            method TEXT NOT NULL,
            csrf_secret BLOB NOT NULL
        )""",
        "CREATE INDEX sessions_by_user ON sessions (user_id)",
        "CREATE INDEX sessions_by_last_seen ON sessions (last_seen)",
        "CREATE INDEX sessions_by_created ON sessions (created_at)",
    ),
    (
        # Migration 9: the lists of sent items with 10,000 of them (bench/web_lists.py). A
        # page of an organisation's sent items seeks straight to its cursor, (submitted_at,
        # digest) in index order, instead of walking from the newest; and finding an
        # organisation's sent items by digest (the retention standing of each item listed)
        # uses (sender, digest) instead of reading every item the organisation sent. The
        # first index replaces sent_by_sender, which is a prefix of it.
        "CREATE INDEX sent_by_sender_order ON sent (sender, submitted_at, digest)",
        "CREATE INDEX sent_by_sender_digest ON sent (sender, digest)",
        "DROP INDEX sent_by_sender",
    ),
    (
        # Migration 10: administrators' pages (exchange/store/accounts.py). An invited
        # account has no password until its invitation is accepted: ``password_hash`` is '' and
        # ``invitation_hash`` holds the SHA-256 of the single-use code, valid until
        # ``invitation_expires_at``. ``factor_required`` makes a second factor required at
        # sign-in whatever the role (invited accounts, and after a reset).
        # ``last_sign_in_at`` is when the account last reached a signed-in session.
        "ALTER TABLE accounts ADD COLUMN invitation_hash BLOB",
        "ALTER TABLE accounts ADD COLUMN invitation_expires_at REAL",
        "ALTER TABLE accounts ADD COLUMN factor_required INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE accounts ADD COLUMN last_sign_in_at REAL",
        "CREATE INDEX outbox_by_origin ON outbox (origin, state)",
    ),
    (
        # Migration 11: the inbox page with 10,000 items (bench/web_lists.py). Its unread
        # items come first: an index walk over (owner, state, received_at) finds them without
        # sorting every item, and a notice email's link finds its item by envelope id.
        "CREATE INDEX inbox_by_owner_state ON inbox (owner, state, received_at, digest)",
        "CREATE INDEX envelopes_by_envelope_id ON envelopes (envelope_id)",
    ),
    (
        # Migration 12: the readiness check's write (SqliteStore.check_writable). One row,
        # rewritten by every /readyz, so that a store that cannot commit (a full disk) is
        # seen at once rather than at the next submission.
        "CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at REAL NOT NULL)",
    ),
    (
        # Migration 13: idempotency keys of staff submissions (exchange/store/idempotency.py).
        # Per caller (organisation and account) and key: the SHA-256 of the first request
        # and the answer it got, written with the envelope it made, until it expires.
        """CREATE TABLE idempotency_keys (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            request_hash BLOB NOT NULL,
            answer TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            PRIMARY KEY (scope, key)
        )""",
        "CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at)",
    ),
    (
        # Migration 14: stored bodies found damaged (exchange/store/damage.py). A body that no
        # longer opens or verifies is recorded here once, so its item cannot be opened or
        # decided, and (for a body the node sends) is not sent.
        """CREATE TABLE damaged_bodies (
            digest BLOB PRIMARY KEY,
            found_at REAL NOT NULL
        )""",
    ),
    (
        # Migration 15: the directory versions this node adopted (exchange/store/directory.py).
        # One row per version, with the SHA-256 of its signed note, written in the
        # transaction of its ``directory-adopted`` ledger events, so that a start on an older
        # ``[directory] file`` (a rollback while stopped) is refused.
        """CREATE TABLE directory_versions (
            version INTEGER PRIMARY KEY,
            digest BLOB NOT NULL,
            adopted_at REAL NOT NULL
        )""",
    ),
    (
        # Migration 16: the sender's own copy of what it sealed (exchange/store/own_copies.py).
        # ``sent.own_copy`` is the digest of a second envelope, sealed with the one sent and
        # addressed to the sending organisation itself, kept in the bodies folder and never
        # sent: the DPO's subject access copies and "what did we send?" read it. Null for an
        # item sent before this migration (no copy was kept) and once destroyed under
        # retention.
        "ALTER TABLE sent ADD COLUMN own_copy BLOB",
    ),
    (
        # Migration 17: named API tokens for machines (exchange/store/api_tokens.py). Each
        # acts with one role in one organisation until it expires or is revoked; only the
        # token's hash is kept. ``last_used_at`` is written at most once a minute per token.
        """CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            org TEXT NOT NULL,
            role TEXT NOT NULL,
            token_hash BLOB NOT NULL UNIQUE,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            last_used_at REAL,
            revoked_at REAL,
            created_by TEXT NOT NULL
        )""",
    ),
    (
        # Migration 18: step-up (exchange/auth/session.py). ``factor_at`` is when a second
        # factor was last given in the session; opening a record needs a recent one.
        "ALTER TABLE sessions ADD COLUMN factor_at REAL",
    ),
    (
        # Migration 19: passkeys (exchange/store/passkeys.py). ``passkeys`` holds each
        # account's WebAuthn credentials: the credential id (unique on the node), the COSE
        # public key, the authenticator's signature counter, its transports (comma-separated),
        # the name the person gave it, and when it was added and last used.
        # ``passkey_challenges`` holds the challenges issued and not answered yet, named by
        # their hash, with the browser each was issued to (a hash of its session's or its
        # pre-sign-in secret), what for, whose (null for a sign-in) and until when.
        """CREATE TABLE passkeys (
            id INTEGER PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id),
            credential_id BLOB NOT NULL UNIQUE,
            public_key BLOB NOT NULL,
            sign_count INTEGER NOT NULL,
            transports TEXT NOT NULL,
            name TEXT NOT NULL,
            created_at REAL NOT NULL,
            last_used_at REAL
        )""",
        "CREATE INDEX passkeys_by_account ON passkeys (account_id)",
        """CREATE TABLE passkey_challenges (
            key BLOB PRIMARY KEY,
            binding BLOB NOT NULL,
            purpose TEXT NOT NULL,
            user_id TEXT,
            expires_at REAL NOT NULL
        )""",
        "CREATE INDEX passkey_challenges_by_binding ON passkey_challenges (binding, purpose)",
        "CREATE INDEX passkey_challenges_by_expiry ON passkey_challenges (expires_at)",
    ),
    (
        # Migration 20: single sign-on links (exchange/store/sso_links.py). The person a
        # provider knows as ``subject`` (its ``sub``, unique per ``issuer``) signs in as
        # ``user_id``; one link per user and issuer. Removing an account removes its links.
        """CREATE TABLE sso_links (
            issuer TEXT NOT NULL,
            subject TEXT NOT NULL,
            user_id TEXT NOT NULL REFERENCES users(id),
            linked_at REAL NOT NULL,
            PRIMARY KEY (issuer, subject)
        )""",
        "CREATE UNIQUE INDEX sso_links_by_user ON sso_links (user_id, issuer)",
    ),
    (
        # Migration 21: account events (exchange/store/account_events.py). Each row is the
        # readable side of one ``account`` ledger event, written in its transaction: the
        # account's user id (``''``: the node's operator), who acted on it if someone else
        # did, the kind, the sign-in method and a short code, the salt that opens the
        # event's commitments and the event's ledger index. Never an email address or name.
        """CREATE TABLE account_events (
            id INTEGER PRIMARY KEY,
            org TEXT NOT NULL,
            at INTEGER NOT NULL,
            kind TEXT NOT NULL,
            method TEXT,
            detail TEXT NOT NULL DEFAULT '',
            user_id TEXT NOT NULL,
            actor_id TEXT,
            salt BLOB NOT NULL,
            ledger_idx INTEGER NOT NULL UNIQUE
        )""",
        "CREATE INDEX account_events_by_user ON account_events (org, user_id, id)",
        "CREATE INDEX account_events_by_actor ON account_events (org, actor_id, id)",
    ),
    (
        # Migration 22: the ledger's Merkle tree, stored (exchange/store/ledger_tree.py).
        # ``ledger_nodes`` holds the hash of each complete subtree above the leaves: level
        # ``level``, covering leaves ``idx * 2**level`` to ``(idx + 1) * 2**level - 1``;
        # ``ledger_head`` is one row with the log's size, which every append adds to first,
        # so appends are serialised by the database. The Python step writes both for the
        # events already stored.
        """CREATE TABLE ledger_nodes (
            level INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            hash BLOB NOT NULL,
            PRIMARY KEY (level, idx)
        )""",
        """CREATE TABLE ledger_head (
            one INTEGER PRIMARY KEY CHECK (one = 1),
            size INTEGER NOT NULL
        )""",
        backfill_ledger_tree,
    ),
    (
        # Migration 23: leases, for several ``exchange serve`` processes on one store
        # (exchange/store/leases.py). An ``attempting`` outbox item names the process making
        # the attempt and until when its lease holds; another process claims it once the
        # lease has run out. ``job_leases`` names, per background job that runs once in the
        # group (checkpoints, chases, collection, ...), the process running it and until when.
        "ALTER TABLE outbox ADD COLUMN lease_owner TEXT",
        "ALTER TABLE outbox ADD COLUMN lease_until REAL",
        """CREATE TABLE job_leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            until REAL NOT NULL
        )""",
    ),
    (
        # Migration 24: secrets every ``exchange serve`` process of the node shares
        # (exchange/store/node_secrets.py), made once by whichever process needs one first:
        # the key sealing single sign-ons under way and the key signing the pre-sign-in CSRF
        # cookie, so that a browser's next request may reach any process.
        """CREATE TABLE node_secrets (
            name TEXT PRIMARY KEY,
            secret BLOB NOT NULL,
            created_at REAL NOT NULL
        )""",
    ),
    (
        # Migration 25: drafts of records being sent from the web pages, in the store so any
        # process of the node serves a person's next page (exchange/store/drafts.py). The
        # state and each file piece are sealed by the pages with a key the store never holds.
        # Drafts kept in the data folder before (``drafts/``) cannot be moved: their sessions
        # carry on with new drafts.
        """CREATE TABLE drafts (
            owner BLOB NOT NULL,
            draft_id TEXT NOT NULL,
            state BLOB NOT NULL,
            updated_at REAL NOT NULL,
            sending_until REAL NOT NULL,
            PRIMARY KEY (owner, draft_id)
        )""",
        """CREATE TABLE draft_files (
            owner BLOB NOT NULL,
            draft_id TEXT NOT NULL,
            upload_id TEXT NOT NULL,
            piece INTEGER NOT NULL,
            sealed BLOB NOT NULL,
            PRIMARY KEY (owner, draft_id, upload_id, piece)
        )""",
    ),
)
