"""The storage interface of a node, and the records it holds.

One async interface, :class:`Store`, with an embedded SQLite implementation
(``exchange.store.sqlite``); a PostgreSQL implementation comes next, so nothing here is
SQLite-specific. Every method that changes state is one transaction: an envelope, its outbox
rows and its ledger event are committed together or not at all ("persist, then send",
docs/architecture.md §4). Envelope bodies are files named by digest, written and synced before the
transaction that refers to them commits.

Records hold ids, digests, sizes and times only: never record content.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, Protocol

from exchange.keys.ids import OrgId
from exchange.model import (
    Destruction,
    EnvelopeRecord,
    EventHash,
    HeldEnvelope,
    HeldItem,
    HoldRecord,
    IdempotencyRecord,
    InboxItem,
    InboxRecall,
    InboxState,
    NewOutbox,
    Opening,
    OutboxItem,
    RecallRow,
    ReceiptRecord,
    ReceivedEntry,
    RegisterEntry,
    RegisterOutcome,
    RegisterRow,
    RetentionSchedule,
    SentItem,
    SubjectKey,
    ThreadLink,
    User,
)
from exchange.store.account_events import AccountActivity
from exchange.store.blobs import Blobs
from exchange.store.damage import StoreDamagedError
from exchange.store.directory import AdoptedVersion
from exchange.store.sent_lists import MAX_OWED, SentDeadline, SentFilter

#: Most rows one retention listing returns (the due list and the unscheduled list each).
MAX_LISTED: Final = 500

#: Decides a destruction inside its transaction: given the item and the holds in force,
#: return the destruction to record and the ledger event to append, or raise to refuse.
Decide = Callable[[HeldItem, Sequence[HoldRecord]], tuple[Destruction, bytes]]
if TYPE_CHECKING:
    from exchange.auth.account import Account, NewAccount
    from exchange.auth.api_token import ApiToken, NewApiToken
    from exchange.auth.passkey import NewPasskey, Passkey, PasskeyChallenge
    from exchange.auth.session import Session
    from exchange.auth.totp import TotpSecret
    from exchange.ledger.account_events import AccountEvent
    from exchange.ledger.merkle import SubtreeKey
    from exchange.ledger.subtrees import StoredSubtree
    from exchange.model import HeldItem, RetentionSchedule, Role, ThreadLink
    from exchange.outbox.machine import Transition
    from exchange.store.node_state import DeadLetter, OutboxSummary


#: Where an item stands in the inbox's unread-first order: whether it was read (0 unread,
#: 1 read), when it was received and its digest (the tie-break).
InboxPlace = tuple[int, float, bytes]


def inbox_place(item: InboxItem) -> InboxPlace:
    """Return an inbox item's place in the unread-first order."""
    return (0 if item.state == "delivered" else 1, item.received_at, item.envelope.digest)


class DuplicateError(Exception):
    """The row already exists (the caller decides whether that is a replay or a conflict)."""


# --- opening an inbox item ----------------------------------------------------------


@dataclass(frozen=True)
class FirstOpened:
    """What only the first opening of an item writes: its receipt, outbox rows and event."""

    receipt: ReceiptRecord
    outbox: Sequence[NewOutbox]
    opened_event: bytes


@dataclass(frozen=True)
class ItemOpening:
    """Everything one opening of an inbox item writes, computed before its transaction.

    ``first`` is set when the item was still ``delivered`` when it was read; the store
    applies it only if the item still is. ``subjects`` and ``index_outcome`` index the
    record for the sharing register (``index_outcome`` None: a later reading, such as a
    download, which the first opening already indexed), ``link`` threads it to the item
    its record names, and ``schedule`` is its retention review date (None when it already has one).
    """

    owner: OrgId
    digest: bytes
    user_id: str
    role: str
    now: float
    accessed_event: bytes
    first: FirstOpened | None
    subjects: Sequence[SubjectKey]
    index_outcome: str | None
    link: ThreadLink | None
    schedule: RetentionSchedule | None


@dataclass(frozen=True)
class OpeningOutcome:
    """What recording an opening found.

    ``state`` is ``opened`` (this opening was the first), ``already`` (it had been opened)
    or ``recalled`` (a recall won the race and nothing was written); ``scheduled`` says
    whether the item's retention schedule was stored by it.
    """

    state: Literal["opened", "already", "recalled"]
    scheduled: bool


# --- the sharing register ---------------------------------------------------------


class RegisterStore(Protocol):
    """The register's part of the store (``exchange.store.register``)."""

    async def record_not_shared(self, entry: RegisterEntry) -> int:
        """Store a decision not to share (with its subjects); return its register id."""
        ...

    async def register_rows(
        self,
        org: OrgId,
        *,
        since: float | None = None,
        until: float | None = None,
        purpose: str | None = None,
        outcome: RegisterOutcome | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[RegisterRow]:
        """Return ``org``'s register rows decided in ``since <= t < until``, oldest first.

        ``purpose`` and ``outcome`` keep only the rows with that purpose or decision;
        ``limit`` and ``offset`` read one page of them, and ``newest_first`` turns the order.
        """
        ...

    async def register_count(
        self,
        org: OrgId,
        *,
        since: float | None = None,
        until: float | None = None,
        purpose: str | None = None,
        outcome: RegisterOutcome | None = None,
    ) -> int:
        """Return how many of ``org``'s register rows :meth:`register_rows` would read."""
        ...

    async def overdue_rows(self, org: OrgId, *, due_before: str) -> list[tuple[RegisterRow, OrgId]]:
        """Return (row, recipient) for deadlines before ``due_before`` not met by a receipt."""
        ...

    async def index_received(
        self,
        owner: OrgId,
        digest: bytes,
        *,
        subjects: Sequence[SubjectKey],
        outcome: str,
        now: float,
    ) -> bool:
        """Index a received item's subjects once (at its first opening); True if new."""
        ...

    async def subject_matches(
        self, org: OrgId, hashes: Sequence[bytes]
    ) -> tuple[list[RegisterRow], list[ReceivedEntry]]:
        """Return the register rows and received items whose subjects have these hashes."""
        ...

    async def received_not_indexed(self, owner: OrgId) -> list[ReceivedEntry]:
        """Return items delivered to ``owner`` whose subjects are not in the index."""
        ...

    async def holds_subject_hashes(self) -> bool:
        """Return whether any keyed subject hash is stored (made with ``register.key``)."""
        ...

    async def subject_hits(self, org: OrgId, hashes: Sequence[bytes]) -> list[tuple[str, bytes]]:
        """Return (item, hash) for every index entry of ``org`` with one of these hashes."""
        ...

    async def unidentified_items(self, org: OrgId) -> tuple[list[RegisterRow], list[ReceivedEntry]]:
        """Return ``org``'s items whose records carry no identifier (not destroyed ones)."""
        ...

    async def destroyed_items(self, org: OrgId) -> list[HeldItem]:
        """Return the items ``org`` destroyed under retention (exchange/store/retention.py)."""
        ...


class RecallStore(Protocol):
    """Recall, threads and corrections: their part of the store (``exchange.store.recall``)."""

    async def request_recall(self, origin: OrgId, digest: bytes, now: float) -> dict[OrgId, str]:
        """Cancel what has not left; mark the rest recalled. Return each recipient's state."""
        ...

    async def outbox_states(self, origin: OrgId, digest: bytes) -> dict[OrgId, str]:
        """Return the state of each recipient's outbox item of a sent envelope."""
        ...

    async def record_recalls(
        self, rows: Sequence[RecallRow], ledger_events: Sequence[bytes]
    ) -> None:
        """Keep each recipient's recall outcome (replacing an earlier one) with ledger events."""
        ...

    async def recalls_for(
        self, org: OrgId, digests: Sequence[bytes]
    ) -> dict[bytes, list[RecallRow]]:
        """Return the recall outcomes of ``org``'s sent envelopes, by digest."""
        ...

    async def recall_inbox(
        self, owner: OrgId, digest: bytes, *, now: float, ledger_events: Sequence[bytes]
    ) -> InboxRecall | None:
        """Recall ``owner``'s inbox item if it is still ``delivered``; None if not held."""
        ...

    async def body_referenced(self, digest: bytes) -> bool:
        """Return whether any organisation on this node still needs the envelope's body."""
        ...

    async def inbox_opened(self, owner: OrgId, digests: Sequence[bytes]) -> dict[bytes, Opening]:
        """Return (opened_at, opened_by_role, recalled_at) of ``owner``'s inbox items."""
        ...

    async def held_envelope(self, org: OrgId, digest: bytes) -> HeldEnvelope | None:
        """Return the envelope ``org`` sent or received by ``digest``, or None."""
        ...

    async def thread_links(
        self, org: OrgId, digest: bytes
    ) -> tuple[bytes, dict[bytes, tuple[bytes, str]]]:
        """Return the thread's root and every link under it: ``{digest: (parent, relation)}``."""
        ...

    async def links_of(
        self, org: OrgId, digests: Sequence[bytes]
    ) -> dict[bytes, tuple[bytes, str]]:
        """Return the parent and relation of each of ``org``'s items that has one."""
        ...

    async def corrections_of(
        self, org: OrgId, digests: Sequence[bytes]
    ) -> dict[bytes, list[bytes]]:
        """Return, for each of ``org``'s items, the items that correct it (oldest first)."""
        ...

    async def register_purpose(
        self, org: OrgId, digest: bytes
    ) -> tuple[str, list[str], str | None] | None:
        """Return the (purpose, categories, lawful basis) ``org`` registered for a sent item."""
        ...


class RetentionStore(Protocol):
    """Retention: review dates, holds and destruction (``exchange.store.retention``)."""

    async def schedule_retention(self, schedule: RetentionSchedule) -> bool:
        """Store a received item's schedule (at its first opening); False if it had one."""
        ...

    async def held_item(self, org: OrgId, digest: bytes) -> HeldItem | None:
        """Return the envelope ``org`` holds (sent or received) with its retention row."""
        ...

    async def held_items(self, org: OrgId, digests: Sequence[bytes]) -> dict[bytes, HeldItem]:
        """Return the holdings of ``org`` among ``digests``, by digest (for the views)."""
        ...

    async def retention_due(
        self, org: OrgId, *, before: str, limit: int = MAX_LISTED
    ) -> list[HeldItem]:
        """Return ``org``'s items not destroyed whose review date is before ``before``."""
        ...

    async def retention_unscheduled(self, org: OrgId, *, limit: int = MAX_LISTED) -> list[HeldItem]:
        """Return ``org``'s items without a review date: never opened, or none computable."""
        ...

    async def add_hold(
        self,
        org: OrgId,
        *,
        digest: bytes | None,
        reason: str,
        reference: str,
        placed_by: str,
        now: float,
    ) -> HoldRecord:
        """Place a hold on one envelope ``org`` holds, or on everything (``digest`` None)."""
        ...

    async def lift_hold(
        self, org: OrgId, hold_id: int, *, lifted_by: str, now: float
    ) -> HoldRecord | None:
        """Lift a hold of ``org``; return it as it now is (None if ``org`` has no such hold)."""
        ...

    async def retention_holds(self, org: OrgId, *, active: bool) -> list[HoldRecord]:
        """Return ``org``'s holds in force (``active``), or every hold ever placed."""
        ...

    async def destroy_held(
        self, org: OrgId, digest: bytes, decide: Decide
    ) -> tuple[HeldItem, Destruction, bool] | None:
        """Destroy ``org``'s holding of ``digest`` if ``decide`` allows; None if not held."""
        ...

    async def unreferenced_bodies(self) -> list[bytes]:
        """Return the digests of destroyed envelopes no organisation on the node still holds."""
        ...


#: What :meth:`AccountStore.change_account` did: the change, nothing (no such account), or
#: nothing because it would leave the organisation with no administrator who can sign in.
AccountChange = Literal["done", "missing", "last-admin"]
#: What linking a single sign-on person to an account did: linked, or why not (the account
#: is gone, disabled, already linked to another person of the issuer, or its invitation
#: expired).
LinkOutcome = Literal["linked", "missing", "disabled", "taken", "invitation-expired"]


class AccountStore(Protocol):
    """Staff accounts and web sessions (``exchange.store.accounts``); no rules, only rows."""

    async def add_account(self, account: NewAccount, now: float) -> int | None:
        """Create an account for an existing user; return its id (None: no such user)."""
        ...

    async def add_user_with_account(
        self, user: User, token_hash: bytes, account: NewAccount, now: float
    ) -> int:
        """Create a user holding a token and their account together; return the account id."""
        ...

    async def account_by_email(self, email_key: str) -> Account | None:
        """Return the account whose case-folded address is ``email_key``, or None."""
        ...

    async def account_by_user(self, user_id: str) -> Account | None:
        """Return the account of user ``user_id``, or None."""
        ...

    async def accounts_without_second_factor(self, roles: Sequence[str]) -> list[str]:
        """Return the user ids of enabled accounts of ``roles`` with no second factor."""
        ...

    async def set_account_disabled(self, user_id: str, *, disabled: bool, now: float) -> bool:
        """Disable or enable an account; disabling ends its sessions. False: no account."""
        ...

    async def add_invited_user(
        self,
        user: User,
        token_hash: bytes,
        account: NewAccount,
        *,
        invitation_hash: bytes,
        expires: float,
        now: float,
        audit: AccountEvent | None = None,
    ) -> int:
        """Create a user and an account that waits for its invitation; return the account id.

        Here and below, ``audit`` is an account event recorded in the same transaction when
        the change is made.
        """
        ...

    async def renew_invitation(
        self,
        account_id: int,
        invitation_hash: bytes,
        *,
        expires: float,
        now: float,
        audit: AccountEvent | None = None,
    ) -> bool:
        """Replace the code of an invitation not accepted yet; False if none is waiting."""
        ...

    async def accept_invitation(
        self,
        account_id: int,
        invitation_hash: bytes,
        password_hash: str,
        *,
        now: float,
        audit: AccountEvent | None = None,
    ) -> bool:
        """Set the password of an invited account and use up its code, if still valid."""
        ...

    async def account_by_id(self, account_id: int) -> Account | None:
        """Return the account numbered ``account_id``, or None."""
        ...

    async def organisation_accounts(self, org: OrgId) -> list[Account]:
        """Return every account of ``org``'s staff, by name."""
        ...

    async def change_account(
        self,
        account_id: int,
        *,
        now: float,
        role: Role | None = None,
        disabled: bool | None = None,
        reset_second_factor: bool = False,
        keep_an_admin: bool = True,
        audit: AccountEvent | None = None,
    ) -> AccountChange:
        """Change an account's role, disable or enable it, or reset its second factor."""
        ...

    async def remove_account(
        self,
        account_id: int,
        *,
        token_hash: bytes,
        keep_an_admin: bool = True,
        audit: AccountEvent | None = None,
    ) -> AccountChange:
        """Remove an account (its sessions and codes too); its user keeps ``token_hash``."""
        ...

    async def note_sign_in(self, user_id: str, now: float) -> None:
        """Record that the account of ``user_id`` reached a signed-in session at ``now``."""
        ...

    async def readers_signed_in_without_second_factor(self, roles: Sequence[str]) -> list[int]:
        """Return the ids of reader accounts signed in with the password alone."""
        ...

    async def sign_in_slowed_until(self, email_hash: bytes) -> float | None:
        """Return until when sign-in with an address (by hash) is slowed, if it is."""
        ...

    async def record_failure(
        self,
        now: float,
        slow: Callable[[int], float | None],
        *,
        email_hash: bytes | None,
        account_id: int | None,
        audit: AccountEvent | None = None,
    ) -> float | None:
        """Count one failure for an address and/or an account; return the latest slowdown."""
        ...

    async def clear_failures(self, *, email_hash: bytes | None, account_id: int | None) -> None:
        """Forget the failures in a row of an address and/or an account (after a success)."""
        ...

    async def set_totp_pending(self, account_id: int, secret: TotpSecret, now: float) -> None:
        """Keep a secret shown for enrolment until a code confirms it."""
        ...

    async def confirm_totp(
        self,
        account_id: int,
        secret: TotpSecret,
        *,
        step: int,
        recovery_hashes: Sequence[bytes],
        now: float,
    ) -> bool:
        """Make the pending secret the account's, with new recovery codes (old ones go)."""
        ...

    async def use_totp_step(self, account_id: int, step: int) -> bool:
        """Record ``step`` as the last used, only if it is later than the last; True if so."""
        ...

    async def use_recovery_code(self, account_id: int, code_hash: bytes, now: float) -> bool:
        """Mark an unused recovery code used; True if it was there and unused."""
        ...

    async def add_session(
        self,
        session: Session,
        *,
        replacing: bytes | None = None,
        audit: AccountEvent | None = None,
    ) -> None:
        """Store a new session, deleting the one it replaces in the same transaction."""
        ...

    async def session(self, id_hash: bytes) -> Session | None:
        """Return the session named by ``id_hash`` with its user, or None."""
        ...

    async def touch_session(self, id_hash: bytes, now: float) -> bool:
        """Record that a session was used at ``now``; False if it is gone."""
        ...

    async def delete_session(self, id_hash: bytes) -> bool:
        """Delete one session; True if it existed."""
        ...

    async def delete_user_sessions(self, user_id: str) -> int:
        """Delete every session of a user; return how many."""
        ...

    async def sweep_sessions(self, *, idle_before: float, created_before: float) -> int:
        """Delete sessions last used at or before ``idle_before`` or made by ``created_before``."""
        ...


class SentListStore(Protocol):
    """What the sent and overdue lists read: deadlines of sent items, unanswered items."""

    async def sent_deadlines(
        self, org: OrgId, digests: Sequence[bytes]
    ) -> dict[bytes, SentDeadline]:
        """Return the deadline ``org`` registered for each of these sent items that has one."""
        ...

    async def inbox_awaiting(self, owner: OrgId, *, limit: int = MAX_OWED) -> list[InboxItem]:
        """Return ``owner``'s received items nobody has acknowledged or rejected, oldest first."""
        ...


class NodeStateStore(Protocol):
    """What an organisation's administrator sees of the node (``exchange.store.node_state``)."""

    async def outbox_summary(self, origin: OrgId) -> list[OutboxSummary]:
        """Return ``origin``'s envelopes and receipts going out, counted by destination."""
        ...

    async def dead_letters(self, origin: OrgId, limit: int) -> list[DeadLetter]:
        """Return up to ``limit`` of ``origin``'s dead outbox items, the latest first."""
        ...

    async def attempt_events(self, origin: OrgId, since: float) -> list[bytes]:
        """Return the ledger events of envelopes ``origin`` sent that changed since ``since``."""
        ...

    async def requeue_dead_of(
        self, origin: OrgId, now: float, envelope_digest: bytes | None = None
    ) -> int:
        """Give ``origin``'s dead items (of one envelope, or all) a fresh start; how many."""
        ...


class IdempotencyStore(Protocol):
    """Idempotency keys of staff submissions (exchange/store/idempotency.py)."""

    async def idempotency_record(
        self, scope: str, key: str, now: float
    ) -> IdempotencyRecord | None:
        """Forget every key expired at ``now``; return ``scope``'s ``key`` if still held."""
        ...


class DirectoryStore(Protocol):
    """The directory versions the node adopted (exchange/store/directory.py)."""

    async def record_directory(
        self, adopted: AdoptedVersion, *, ledger_events: Sequence[bytes]
    ) -> None:
        """Record an adopted version with its ``directory-adopted`` ledger events."""
        ...

    async def latest_directory(self) -> AdoptedVersion | None:
        """Return the highest directory version adopted, if any."""
        ...


class ApiTokenStore(Protocol):
    """Machines' API tokens (``exchange.store.api_tokens``); hashes only, no rules."""

    async def add_api_token(
        self, token: NewApiToken, *, audit: Callable[[int], AccountEvent] | None = None
    ) -> int:
        """Store a new token; return its number. :class:`DuplicateError` if the name is taken.

        ``audit`` makes, from the new token's number, the account event recorded with it.
        """
        ...

    async def api_tokens(self, org: OrgId | None = None) -> list[ApiToken]:
        """Return every token (of ``org`` if given), newest first."""
        ...

    async def api_token_by_hash(self, token_hash: bytes) -> ApiToken | None:
        """Return the token whose hash is ``token_hash`` (revoked or expired too), or None."""
        ...

    async def api_token_named(self, name_or_id: str) -> ApiToken | None:
        """Return the token named ``name_or_id``, or numbered so, or None."""
        ...

    async def revoke_api_token(
        self, token_id: int, now: float, *, audit: AccountEvent | None = None
    ) -> bool:
        """Revoke a token from ``now``; False if there is none or it was revoked already."""
        ...

    async def note_api_token_use(self, token_id: int, now: float) -> None:
        """Record that a token was used at ``now`` (never moving its last use back)."""
        ...


class PasskeyStore(Protocol):
    """Accounts' passkeys and their challenges (``exchange.store.passkeys``); no rules."""

    async def add_passkey(
        self, user_id: str, passkey: NewPasskey, *, name: str, now: float
    ) -> Passkey | None:
        """Store a verified passkey for the account of ``user_id``; None if it has no account."""
        ...

    async def passkeys_of(self, user_id: str) -> list[Passkey]:
        """Return the passkeys of the account of ``user_id``, oldest first."""
        ...

    async def passkey_by_credential(self, credential_id: bytes) -> Passkey | None:
        """Return the passkey whose credential id is ``credential_id``, or None."""
        ...

    async def remove_passkey(self, user_id: str, passkey_id: int) -> bool:
        """Delete passkey ``passkey_id`` if it is the account of ``user_id``'s; True if so."""
        ...

    async def note_passkey_use(
        self, passkey_id: int, *, sign_count_was: int, sign_count: int, now: float
    ) -> bool:
        """Record a use with its new counter, only if the counter is still ``sign_count_was``."""
        ...

    async def add_passkey_challenge(self, challenge: PasskeyChallenge, *, now: float) -> None:
        """Keep a challenge, replacing the browser's earlier one for the same purpose."""
        ...

    async def take_passkey_challenge(self, key: bytes) -> PasskeyChallenge | None:
        """Return the challenge named ``key`` and delete it, so it is answered once; or None."""
        ...


class SsoLinkStore(Protocol):
    """Single sign-on links to accounts (``exchange.store.sso_links``); no rules."""

    async def sso_linked_user(self, issuer: str, subject: str) -> str | None:
        """Return the user id linked to ``subject`` of ``issuer``, or None."""
        ...

    async def sso_issuers_of(self, user_id: str) -> list[str]:
        """Return the issuers whose people are linked to ``user_id``'s account."""
        ...

    async def link_sso(self, issuer: str, subject: str, user_id: str, *, now: float) -> LinkOutcome:
        """Link ``subject`` of ``issuer`` to ``user_id``'s account, if it may be linked."""
        ...

    async def add_sso_user(
        self,
        user: User,
        token_hash: bytes,
        account: NewAccount,
        *,
        issuer: str,
        subject: str,
        now: float,
    ) -> int:
        """Create a user, their account (no password) and its link together; return its id."""
        ...


class AccountEventStore(Protocol):
    """Account events and their readable rows (``exchange.store.account_events``)."""

    async def record_account_event(self, event: AccountEvent) -> None:
        """Record an account event that changes nothing else, with its ledger statement."""
        ...

    async def account_events(
        self,
        org: OrgId,
        *,
        user_id: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[AccountActivity]:
        """Return ``org``'s account events (of ``user_id`` if given), newest first."""
        ...


class LeaseStore(Protocol):
    """Leases of outbox items and of group-wide jobs (exchange.store.leases).

    ``owner`` is the id of one ``exchange serve`` process; leases hold until a time.
    """

    async def claim_due(self, now: float, limit: int, owner: str, lease: float) -> list[OutboxItem]:
        """Move up to ``limit`` due items (or items whose lease ran out) to ``attempting``.

        Each is leased to ``owner`` until ``now + lease``. Two processes claiming at once
        never claim the same item.
        """
        ...

    async def renew_leases(self, owner: str, item_ids: Collection[int], until: float) -> int:
        """Extend ``owner``'s leases on the items ``item_ids`` to ``until``; return how many."""
        ...

    async def requeue_attempting(self, owner: str, now: float) -> int:
        """Give back the items ``owner`` still has ``attempting``; return how many."""
        ...

    async def take_job(self, name: str, owner: str, now: float, lease: float) -> bool:
        """Take or renew the lease on job ``name`` for ``owner``; False while another holds it."""
        ...

    async def release_job(self, name: str, owner: str) -> bool:
        """Give up ``owner``'s lease on job ``name``; return whether it held one."""
        ...


class NodeSecretStore(Protocol):
    """Secrets every process of the node shares, made once (exchange.store.node_secrets)."""

    async def node_secret(self, name: str, candidate: bytes, now: float) -> bytes:
        """Return the secret named ``name``, storing ``candidate`` as it if there is none yet."""
        ...


class DraftRowStore(Protocol):
    """Sealed drafts of the web send journey and their files (exchange.store.drafts)."""

    async def create_draft(self, owner: bytes, draft_id: str, state: bytes, now: float) -> None:
        """Keep a new draft's sealed ``state`` (its id is new: a repeat fails)."""
        ...

    async def save_draft(self, owner: bytes, draft_id: str, state: bytes, now: float) -> bool:
        """Replace a draft's sealed state; False if there is no such draft."""
        ...

    async def draft_state(self, owner: bytes, draft_id: str) -> bytes | None:
        """Return a draft's sealed state, or None if the session has no draft by that id."""
        ...

    async def delete_draft(self, owner: bytes, draft_id: str) -> None:
        """Delete a draft and its files."""
        ...

    async def finish_draft(self, owner: bytes, draft_id: str, state: bytes, now: float) -> None:
        """Replace a sent draft's state with ``state``, delete its files, end its claim."""
        ...

    async def claim_draft(self, owner: bytes, draft_id: str, now: float, until: float) -> bool:
        """Claim a draft for sending until ``until``; False while another claim holds it."""
        ...

    async def release_draft(self, owner: bytes, draft_id: str) -> None:
        """End the claim on a draft (its sending stopped without an envelope)."""
        ...

    async def add_draft_piece(
        self, owner: bytes, draft_id: str, upload_id: str, index: int, sealed: bytes
    ) -> None:
        """Keep piece ``index`` of a draft's file (sealed)."""
        ...

    async def draft_piece_lengths(self, owner: bytes, draft_id: str, upload_id: str) -> list[int]:
        """Return the length of each sealed piece of a draft's file, in order."""
        ...

    async def draft_pieces(
        self, owner: bytes, draft_id: str, upload_id: str, first: int, count: int
    ) -> list[bytes]:
        """Return ``count`` sealed pieces of a draft's file from piece ``first``, in order."""
        ...

    async def delete_draft_file(self, owner: bytes, draft_id: str, upload_id: str) -> None:
        """Delete one of a draft's files."""
        ...

    async def draft_ids(self, owner: bytes) -> list[str]:
        """Return the ids of a session's drafts."""
        ...

    async def draft_file_ids(self, owner: bytes) -> list[str]:
        """Return the ids of the files a session's drafts hold (whole or being written)."""
        ...

    async def sweep_drafts(self) -> int:
        """Delete the drafts and files of sessions that have ended; return how many sessions."""
        ...


class Store(
    DraftRowStore,
    NodeSecretStore,
    LeaseStore,
    SsoLinkStore,
    AccountEventStore,
    DirectoryStore,
    PasskeyStore,
    ApiTokenStore,
    IdempotencyStore,
    RegisterStore,
    RecallStore,
    RetentionStore,
    AccountStore,
    SentListStore,
    NodeStateStore,
    Protocol,
):
    """What a node needs from its database. All methods are coroutines."""

    async def close(self) -> None:
        """Finish pending work and release the database."""
        ...

    @property
    def folder(self) -> Path:
        """The node's data folder, which holds the database and the bodies."""
        ...

    @property
    def outbox_backlog(self) -> Mapping[OrgId, int]:
        """Envelope items not yet given to each destination, as of the last commit.

        Kept in memory by the store, so reading it costs no query (the busy check of every
        submission reads it: exchange.service.busy).
        """
        ...

    # --- envelope bodies (named by digest) ---------------------------------------------
    @property
    def blobs(self) -> Blobs:
        """The envelope bodies, reachable by every process sharing this store."""
        ...

    @property
    def damage(self) -> StoreDamagedError | None:
        """The damage found in the database since it was opened, if any."""
        ...

    async def sweep_leftovers(self) -> int:
        """Remove temporaries and uncommitted bodies older than an hour; return how many."""
        ...

    async def mark_damaged(self, digest: bytes, now: float) -> None:
        """Record that the body of ``digest`` is damaged (once; the first time is kept)."""
        ...

    async def is_damaged(self, digest: bytes) -> bool:
        """Return whether the body of ``digest`` was found damaged."""

    async def check_writable(self, now: float) -> None:
        """Raise unless the store can commit a write and create a file (the readiness check)."""
        ...

    # --- envelopes the node's organisations send ---------------------------------------
    async def record_submission(
        self,
        envelope: EnvelopeRecord,
        *,
        submitted_by: str,
        now: float,
        outbox: Sequence[NewOutbox],
        ledger_events: Sequence[bytes],
        register: RegisterEntry | None = None,
        thread: ThreadLink | None = None,
        retention: RetentionSchedule | None = None,
        idempotency: IdempotencyRecord | None = None,
        own_copy: bytes | None = None,
    ) -> None:
        """Commit a sealed envelope, its outbox rows, ledger events and register row together.

        ``idempotency`` is the caller's key and the answer, committed with them; ``own_copy``
        the digest of the sender's own copy of what it sealed (never sent).
        """
        ...

    async def own_copy(self, sender: OrgId, digest: bytes) -> bytes | None:
        """Return the digest of ``sender``'s own copy of the envelope ``digest`` (None: none)."""
        ...

    async def list_sent(
        self,
        sender: OrgId,
        *,
        limit: int,
        before: tuple[float, bytes] | None = None,
        after: tuple[float, bytes] | None = None,
        only: SentFilter | None = None,
    ) -> list[SentItem]:
        """Return the newest ``limit`` envelopes ``sender`` sent, with their timelines.

        ``before`` continues after a page's last item, ``after`` goes back to the page
        before its first; ``only`` keeps the items a filter selects.
        """
        ...

    async def sent_item(self, sender: OrgId, digest: bytes) -> SentItem | None:
        """Return one sent envelope of ``sender``, or ``None``."""
        ...

    # --- the outbox (claims and leases: LeaseStore) --------------------------------------
    async def apply_transition(self, transition: Transition) -> bool:
        """Write a transition of the outbox machine with its receipt and ledger events.

        Returns False, writing nothing, if the item's state or recall mark changed since the
        transition was computed; the caller reads the item again and asks the machine anew.
        """
        ...

    async def outbox_item(self, item_id: int) -> OutboxItem | None:
        """Return one outbox item as it is now, or ``None``."""
        ...

    async def requeue_dead(self, now: float, envelope_digest: bytes | None = None) -> int:
        """Give dead items (of one envelope, or all) a fresh start; return how many."""
        ...

    async def bring_retries_forward(self, by: float) -> int:
        """Make deliveries waiting to retry due ``by`` seconds sooner; return how many.

        For a clock put back: their waits were counted from a time that was ahead.
        """
        ...

    async def make_due_now(self, destination: OrgId, now: float) -> int:
        """Make ``destination``'s deliveries waiting to retry due at ``now``; return how many.

        For a destination that answers again: its backlog goes at once, not on its timers.
        """
        ...

    async def add_outbox(
        self, envelope_digest: bytes, rows: Sequence[NewOutbox], *, now: float
    ) -> int:
        """Queue ``rows`` unless already held; return how many were new."""
        ...

    async def reopen_handed_over(
        self, route_kind: str, transport_ref: str, *, now: float, error: str
    ) -> OutboxItem | None:
        """Re-queue a handed-over item reported undelivered, on its next route.

        Returns the item as it was, or ``None`` if none matched or it was recalled.
        """
        ...

    async def outbox_counts(self) -> dict[str, int]:
        """Return the number of outbox items in each state."""
        ...

    async def receipt_counts(self) -> dict[str, int]:
        """Return the number of receipts held, by status."""
        ...

    # --- envelopes delivered to the node's organisations ---------------------------------
    async def record_delivery(
        self,
        owner: OrgId,
        envelope: EnvelopeRecord,
        *,
        now: float,
        receipt: ReceiptRecord,
        ledger_events: Sequence[bytes],
        outbox: Sequence[NewOutbox] = (),
    ) -> bytes:
        """Store an inbound envelope once; return the ``delivered`` receipt on record.

        A repeated delivery stores nothing and returns the receipt of the first one.
        """
        ...

    async def inbox(
        self, owner: OrgId, *, limit: int, before: tuple[float, bytes] | None = None
    ) -> list[InboxItem]:
        """Return the newest ``limit`` items delivered to ``owner``."""
        ...

    async def inbox_item(self, owner: OrgId, digest: bytes) -> InboxItem | None:
        """Return one inbox item of ``owner``, or ``None``."""
        ...

    async def inbox_unread_first(
        self, owner: OrgId, *, limit: int, after: InboxPlace | None = None
    ) -> list[InboxItem]:
        """Return ``limit`` of ``owner``'s items: unread (``delivered``) first, then newest.

        ``after`` (the last item's place, :func:`inbox_place`) continues a listing.
        """
        ...

    async def inbox_item_by_envelope_id(self, owner: OrgId, envelope_id: bytes) -> InboxItem | None:
        """Return ``owner``'s inbox item of the envelope with this id, or ``None``."""
        ...

    async def record_opening(self, opening: ItemOpening) -> OpeningOutcome:
        """Record one opening of an inbox item in one transaction (see :class:`ItemOpening`).

        If a recall won the race for a first opening, nothing is written.
        """
        ...

    async def update_inbox(
        self,
        owner: OrgId,
        digest: bytes,
        *,
        state: InboxState,
        receipt: ReceiptRecord | None,
        outbox: Sequence[NewOutbox],
        ledger_events: Sequence[bytes],
        now: float,
    ) -> bool:
        """Change an inbox item's state with its receipt, outbox rows and ledger events.

        Returns False, writing nothing, if the item was recalled meanwhile.
        """
        ...

    # --- receipts -----------------------------------------------------------------------
    async def add_receipt(
        self, receipt: ReceiptRecord, *, ledger_events: Sequence[bytes], now: float
    ) -> bool:
        """Store a verified receipt (from a recipient); return False if already held."""
        ...

    async def receipt(self, digest: bytes) -> ReceiptRecord | None:
        """Return a receipt by its digest."""
        ...

    async def receipts_for(self, envelope_digest: bytes) -> list[ReceiptRecord]:
        """Return every receipt held for an envelope, oldest first."""
        ...

    async def envelope(self, digest: bytes) -> EnvelopeRecord | None:
        """Return an envelope's facts by digest."""
        ...

    async def envelope_to_send(self, digest: bytes) -> tuple[EnvelopeRecord | None, bool]:
        """Return an envelope's facts and whether its body was found damaged, in one read."""
        ...

    # --- the ledger ---------------------------------------------------------------------
    async def append_ledger(self, events: Sequence[bytes]) -> int:
        """Append events on their own; return the new size."""
        ...

    async def ledger_events(self, start: int, end: int) -> list[bytes]:
        """Return the events with indexes ``start <= i < end``."""
        ...

    async def ledger_size(self) -> int:
        """Return the number of events in the ledger."""
        ...

    async def ledger_subtrees(self, keys: Collection[SubtreeKey]) -> dict[SubtreeKey, bytes]:
        """Return the stored hashes of the complete subtrees ``keys`` (those that exist)."""
        ...

    async def ledger_stored_tree(self) -> tuple[int, list[StoredSubtree]]:
        """Return the head's size and every stored subtree, leaves (level 0) included."""
        ...

    async def ledger_events_for(self, envelope_digest: bytes) -> list[tuple[int, bytes]]:
        """Return ``(index, event)`` for every event naming the envelope, in log order."""
        ...

    async def ledger_index_of(self, event_hash: EventHash) -> int | None:
        """Return the index of the event whose leaf hash is ``event_hash``."""
        ...

    async def save_checkpoint(self, size: int, note: bytes, now: float) -> None:
        """Keep a signed checkpoint."""
        ...

    async def checkpoints(self) -> list[tuple[int, bytes]]:
        """Return every checkpoint, oldest first."""
        ...

    async def last_checkpoint(self) -> tuple[int, bytes] | None:
        """Return the checkpoint of the largest size (the last signed), or None."""
        ...

    async def checkpoint_of_size(self, size: int) -> bytes | None:
        """Return the signed note of the checkpoint of ``size``, or None if none was stored."""
        ...

    # --- staff ----------------------------------------------------------------------------
    async def add_user(self, user: User, token_hash: bytes, now: float) -> None:
        """Create a user holding the token whose hash is given."""
        ...

    async def user_by_token_hash(self, token_hash: bytes) -> User | None:
        """Return the user holding a token, by the token's hash."""
        ...

    async def users_of(self, org: OrgId) -> list[User]:
        """Return the users of ``org``, by id."""
        ...

    # --- replay protection ------------------------------------------------------------------
    async def seen_or_record_nonce(self, key: str, nonce: str, created: int, now: int) -> bool:
        """Return True if ``(key, nonce)`` was seen; otherwise record it and return False."""
        ...
