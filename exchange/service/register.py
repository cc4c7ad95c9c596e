"""Records, register, deadlines: the node service's part of the sharing register.

The sharing register (docs/node.md, "The sharing register"): decisions not to share, the
DPO's export, overdue deadlines and subject access. Disclosures are registered by
:meth:`~exchange.service.sending.Sending.submit`, in the transaction that stores the
envelope; received records are indexed when first opened
(:mod:`exchange.service.inbox`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from exchange.keys.ids import OrgId
from exchange.logs import get_logger
from exchange.model import RegisterEntry, RegisterOutcome, SubjectKind, User
from exchange.policy import record_decision_not_to_share
from exchange.service.context import ServiceContext
from exchange.service.errors import ForbiddenError, UnprocessableError
from exchange.service.register_reports import (
    OverdueItem,
    RegisterPage,
    export_register,
    overdue_items,
    register_page,
    stream_register,
)
from exchange.sharing.prepare import SubmissionError, check_reason

log = get_logger("exchange.node")


def _require(user: User, roles: set[str], action: str) -> None:
    if user.role not in roles:
        raise ForbiddenError(f"the role {user.role} may not {action}")


class SharingRegister:
    """The sharing register: decisions not to share, export, overdue, subject access."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    async def record_not_shared(
        self,
        user: User,
        *,
        purpose: str,
        recipients: Sequence[OrgId],
        reason_code: str,
        reason: str,
        record_kind: str | None = None,
        identifiers: Sequence[tuple[SubjectKind, str]] = (),
    ) -> int:
        """Register a decision not to share (Information sharing advice 2024); return its id.

        ``recipients`` are the organisations the information was asked for by or would have
        gone to; ``identifiers`` (validated UPN / NHS number) let subject access find it.
        """
        _require(user, {"dsl", "staff"}, "record decisions about sharing")
        self.context.tenant(user.org)
        if purpose not in self.context.records.policy.purposes:
            raise UnprocessableError(
                "purpose is not one the policy defines (expected one of: "
                f"{', '.join(sorted(self.context.records.policy.purposes))})",
                rule="purposes",
            )
        kinds: dict[OrgId, str] = {}
        for org in recipients:
            entry = self.context.directory.organisations.get(org)
            kinds[org] = entry.kind if entry is not None else "unknown"
        try:
            text = check_reason(reason)
            decision = record_decision_not_to_share(
                purpose, reason_code, record_kind=record_kind, recipient_kinds=kinds
            )
        except SubmissionError as exc:
            raise UnprocessableError(str(exc), rule=exc.rule) from None
        except ValueError as exc:
            raise UnprocessableError(str(exc), rule="reason_code") from None
        register_id = await self.context.store.record_not_shared(
            RegisterEntry(
                org=user.org,
                outcome="not-shared",
                decided_by=user.id,
                decided_at=self.context.clock(),
                purpose=purpose,
                rule=decision.rule,
                reason=text,
                recipients=decision.recipients,
                record_kind=record_kind,
                reason_code=decision.reason_code.value if decision.reason_code else None,
                subjects=tuple(self.context.subject_key(k, v) for k, v in identifiers),
            )
        )
        log.info("register.not-shared", org=user.org, rule=decision.rule)
        return register_id

    async def register_export(
        self,
        user: User,
        *,
        since: float | None,
        until: float | None,
        form: str,
        purpose: str | None = None,
        outcome: RegisterOutcome | None = None,
    ) -> str | list[dict[str, Any]]:
        """Return the organisation's register as CSV text or JSON rows (DPO only).

        ``purpose`` and ``outcome`` keep only the decisions of that purpose or kind.
        """
        _require(user, {"dpo"}, "export the sharing register")
        self.context.tenant(user.org)
        self._check_purpose(purpose)
        result = await export_register(
            self.context.store,
            user.org,
            since=since,
            until=until,
            now=datetime.fromtimestamp(self.context.clock(), UTC),
            form=form,
            purpose=purpose,
            outcome=outcome,
        )
        log.info("register.exported", org=user.org, count=len(result))
        return result

    def register_stream(
        self,
        user: User,
        *,
        since: float | None,
        until: float | None,
        form: str,
        purpose: str | None = None,
        outcome: RegisterOutcome | None = None,
    ) -> AsyncIterator[str]:
        """Return the register export in pieces (DPO only): CSV lines or one JSON array.

        The checks run now, before anything is sent; the rows are read as the pieces are
        asked for, a page at a time, so the export's size costs no memory.
        """
        _require(user, {"dpo"}, "export the sharing register")
        self.context.tenant(user.org)
        self._check_purpose(purpose)
        pieces = stream_register(
            self.context.store,
            user.org,
            since=since,
            until=until,
            now=datetime.fromtimestamp(self.context.clock(), UTC),
            form=form,
            purpose=purpose,
            outcome=outcome,
        )
        return _logged_export(pieces, user.org)

    async def register_page(
        self,
        user: User,
        *,
        since: float | None,
        until: float | None,
        purpose: str | None,
        outcome: RegisterOutcome | None,
        limit: int,
        offset: int,
    ) -> RegisterPage:
        """Return one page of the organisation's register, newest first (DPO only)."""
        _require(user, {"dpo"}, "see the sharing register")
        self.context.tenant(user.org)
        self._check_purpose(purpose)
        return await register_page(
            self.context.store,
            user.org,
            since=since,
            until=until,
            purpose=purpose,
            outcome=outcome,
            limit=limit,
            offset=offset,
        )

    def _check_purpose(self, purpose: str | None) -> None:
        """Refuse a purpose the policy does not define (without quoting it)."""
        if purpose is not None and purpose not in self.context.records.policy.purposes:
            raise UnprocessableError("purpose is not one the policy defines", rule="purposes")

    async def overdue_items(self, org: OrgId, now: datetime | None = None) -> list[OverdueItem]:
        """Return ``org``'s deadlines past due without the receipt that meets them.

        The items hold ids, organisation ids, kinds, purposes and dates only, so they may go
        into a chase notification as they are.
        """
        moment = now if now is not None else datetime.fromtimestamp(self.context.clock(), UTC)
        return await overdue_items(self.context.store, org, moment)

    async def overdue_for(self, user: User) -> list[OverdueItem]:
        """Return the user's organisation's overdue items (DSL, staff and DPO)."""
        _require(user, {"dsl", "staff", "dpo"}, "see overdue items")
        self.context.tenant(user.org)
        return await self.overdue_items(user.org)


async def _logged_export(pieces: AsyncIterator[str], org: OrgId) -> AsyncIterator[str]:
    """Pass the export's pieces on; log it once it is complete (its size, never its rows)."""
    size = 0
    async for piece in pieces:
        size += len(piece)
        yield piece
    log.info("register.exported", org=org, bytes=size)
