"""Relay mailboxes: sealed items kept for organisations that collect (docs/relay.md).

A relay keeps a pull mailbox for each organisation whose directory entry lists a
``mailbox`` route at this relay: a receiving school with no public endpoint, say. Senders
deposit sealed envelopes (and receipters signed receipts) there; the owner's node lists,
fetches and acknowledges them. The relay sees ciphertext and routing ids only.

Every request is a POST signed as in the peer protocol (docs/protocol.md §2-§6) and is
authenticated, against ``public_url + request.raw_path`` and the current directory, from its
headers before a byte of its body is read, and before the organisation in its path is even
parsed; the body is then spooled while it is hashed and checked against the signed digest.
Uploads in flight are limited per signer and in total (:class:`~exchange.peerauth.UploadLimits`,
shared with the node's own peer endpoints). Who may call what:

==========================================  ============================================
``/relay/v1/mailboxes/{org}/envelopes``     the envelope's sender; ``{org}`` a recipient
``/relay/v1/mailboxes/{org}/receipts``      the receipter; ``{org}`` the receipt's sender
``.../list``, ``.../fetch``, ``.../ack``    ``{org}`` itself, the mailbox owner, only
``.../recall``, ``.../status``              the organisation that deposited the item
==========================================  ============================================

Every refusal is JSON in the peer protocol's shape: ``{"error": <rule or status>,
"message": <plain sentence>}``, never content; this module shapes its own errors, so it
does not depend on the host application's middleware.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from exchange.connectors.base import HeldBody, MessageKind
from exchange.keys.directory import Directory
from exchange.keys.ids import OrgId, parse_org_id
from exchange.logs import get_logger
from exchange.peerauth import PeerAuthError, UploadLimits, VerifiedPeer
from exchange.peerauth.aiohttp_glue import BodyCheck, SignedBody, error_response, signed_upload
from exchange.relay.admission import Deposit, Inspection, Inspector, RelayError, inspect_sealed
from exchange.relay.store import KINDS, MailboxFullError, RelayItem, RelayStore
from exchange.service.faults import (
    STORAGE_FULL_REFUSAL,
    STORAGE_FULL_RETRY_AFTER,
    fault_of,
)

log = get_logger("exchange.relay")

#: Every path starts with this, followed by the mailbox owner and the action.
PREFIX: Final = "/relay/v1/mailboxes"

#: The Content-Type of each kind, as deposited and as fetched (docs/protocol.md §8).
CONTENT_TYPES: Final[Mapping[MessageKind, str]] = {
    "envelope": "application/vnd.exchange.envelope",
    "receipt": "application/vnd.exchange.receipt",
}
#: The deposit endpoint of each kind.
DEPOSITS: Final[Mapping[str, MessageKind]] = {"envelopes": "envelope", "receipts": "receipt"}

DAY: Final = 24 * 3600
_HEX_RE: Final = re.compile(r"[0-9a-f]{64}")
_CURSOR_RE: Final = re.compile(r"[0-9]{1,18}")
_READ_PIECE: Final = 256 * 1024

#: ``async (keyid, nonce, created, now) -> already seen?``; records the pair otherwise.
ReplayCheck = Callable[[str, str, int, int], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """Size and count limits; every input the relay reads is bounded by one of these."""

    max_envelope_bytes: int = 64 * 1024 * 1024
    max_receipt_bytes: int = 4096
    max_json_bytes: int = 1024
    max_items_per_mailbox: int = 10_000
    max_list: int = 500

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive integer")


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What :meth:`Relay.purge` did: the items it expired and the old rows it forgot."""

    expired: tuple[RelayItem, ...]
    forgotten: int


def _at(value: float | None) -> int | None:
    return None if value is None else int(value)


class Relay:
    """The relay role of a node: its mailboxes, checks and limits.

    ``directory`` returns the current signed directory (the node reloads it);
    ``public_url`` the node's public origin as peers address it, without a trailing slash;
    ``replay`` records a verified request's nonce and says whether it was seen (the node
    passes ``store.seen_or_record_nonce``); ``clock`` is unix seconds. Items waiting longer
    than ``retention`` seconds are expired by :meth:`purge`; rows of items that ended
    (collected, recalled, expired) are kept ``history`` seconds so that a late recall or
    status still gets an answer. ``keeps_mailbox(org)`` says whether deposits for ``org``
    are taken; by default, when the directory lists a ``mailbox`` route of ``org`` at
    ``public_url``. ``inspect`` checks deposits (:func:`inspect_sealed`, the default;
    tests of the connector pass an opaque one to carry arbitrary bytes). ``uploads`` limits
    the requests in flight (the node passes the limits of its own peer endpoints); bodies
    are spooled in ``spool`` (None: the store's bodies folder, so that keeping one is a
    link, not a copy) while they are checked.
    """

    def __init__(
        self,
        store: RelayStore,
        *,
        directory: Callable[[], Directory],
        public_url: Callable[[], str],
        replay: ReplayCheck,
        clock: Callable[[], float] = time.time,
        limits: RelayLimits | None = None,
        retention: float = 30 * DAY,
        history: float = 90 * DAY,
        keeps_mailbox: Callable[[OrgId], bool] | None = None,
        inspect: Inspector = inspect_sealed,
        uploads: UploadLimits | None = None,
        spool: Path | None = None,
    ) -> None:
        if not retention > 0 or not history > 0:
            raise ValueError("retention and history must be positive numbers of seconds")
        self.store = store
        self.directory = directory
        self.public_url = public_url
        self.replay = replay
        self.clock = clock
        self.limits = limits or RelayLimits()
        self.retention = retention
        self.history = history
        self.keeps_mailbox = keeps_mailbox or self.listed_here
        self.inspect = inspect
        self.uploads = uploads or UploadLimits()
        self.spool = spool

    def listed_here(self, org: OrgId) -> bool:
        """Whether the directory lists a ``mailbox`` route of ``org`` at this relay."""
        entry = self.directory().organisations.get(org)
        here = self.public_url().rstrip("/")
        return entry is not None and any(
            r.kind == "mailbox" and r.address.rstrip("/") == here for r in entry.routes
        )

    # --- housekeeping -----------------------------------------------------------------------

    async def purge(self, now: float | None = None) -> PurgeReport:
        """Expire items waiting longer than ``retention``; forget rows ended before ``history``.

        Each expired item is logged (owner, kind, digest, depositor) and returned, so the
        node can report it; its body is deleted.
        """
        at = self.clock() if now is None else now
        expired = await self.store.expire(stored_before=at - self.retention, now=at)
        forgotten = await self.store.forget(ended_before=at - self.history)
        for item in expired:
            log.warning(
                f"relay.{item.kind}.expired",
                org=item.owner,
                digest=item.id.hex(),
                sender=item.author,
            )
        log.info("relay.purged", count=len(expired))
        if forgotten:
            log.info("relay.forgotten", count=forgotten)
        return PurgeReport(tuple(expired), forgotten)

    async def purge_forever(self, every: float = 3600.0) -> None:
        """Run :meth:`purge` every ``every`` seconds until cancelled; log failures by class."""
        while True:
            try:
                await self.purge()
            except Exception as exc:  # noqa: BLE001 - keep purging; the class is logged
                log.error("relay.purge-failed", error_class=type(exc).__name__)  # noqa: TRY400
            await asyncio.sleep(every)

    # --- authentication ---------------------------------------------------------------------

    @asynccontextmanager
    async def _authenticated(
        self, request: web.Request, max_body: int, *, check: BodyCheck | None = None
    ) -> AsyncIterator[tuple[OrgId, OrgId, SignedBody]]:
        """Yield (signer, mailbox owner, body) of a request whose signature and body verified.

        The upload counts as in flight (:attr:`uploads`) until the block ends, and the body
        stays in its spool (in memory when small, else an unnamed file) until then.
        """
        async with signed_upload(
            request,
            origin=self.public_url(),
            directory=self.directory(),
            now=int(self.clock()),
            replay=self.replay,
            max_body=max_body,
            spool=self.spool if self.spool is not None else self.store.bodies,
            uploads=self.uploads,
            check=check,
        ) as signed:
            # Only now is the path's organisation looked at: an anonymous caller cannot learn
            # which mailboxes exist.
            try:
                owner = parse_org_id(
                    request.match_info["org"], field="the organisation in the path"
                )
            except ValueError as exc:
                raise RelayError(400, str(exc)) from None
            yield signed.peer.org_id, owner, signed

    async def _authenticate(
        self, request: web.Request, max_body: int
    ) -> tuple[OrgId, OrgId, bytes]:
        """Return (signer, mailbox owner, body) of a small request whose signature verified."""
        async with self._authenticated(request, max_body) as (signer, owner, signed):
            return signer, owner, await signed.read()

    async def _owner_request(self, request: web.Request, what: str) -> tuple[OrgId, bytes]:
        signer, owner, body = await self._authenticate(request, self.limits.max_json_bytes)
        if signer != owner:
            raise RelayError(
                403,
                f"only the mailbox owner may {what} its items; the request was signed by {signer}",
            )
        return owner, body

    # --- deposits ---------------------------------------------------------------------------

    async def deposit(self, request: web.Request) -> web.StreamResponse:
        """POST .../{org}/envelopes or .../receipts: store once, answer 202 with the id."""
        kind = DEPOSITS[request.match_info["what"]]
        limit = (
            self.limits.max_envelope_bytes if kind == "envelope" else self.limits.max_receipt_bytes
        )
        inspections: list[Inspection] = []

        def check(peer: VerifiedPeer) -> Callable[[bytes], None]:
            # Verified as it arrives (after the request's headers were): never read again.
            del peer
            inspections.append(self.inspect(kind, self.directory(), int(self.clock())))
            return inspections[0].feed

        async with self._authenticated(request, limit, check=check) as (signer, owner, signed):
            body = await signed.read() if signed.body.in_memory else signed.body
            return await self._deposit(
                kind, signer, owner, body, inspection=inspections[0], request=request
            )

    async def _deposit(
        self,
        kind: MessageKind,
        signer: OrgId,
        owner: OrgId,
        body: bytes | HeldBody,
        *,
        inspection: Inspection,
        request: web.Request,
    ) -> web.StreamResponse:
        """Check and store one deposit whose request verified (a large one from its spool)."""
        if request.headers.get("Content-Type") != CONTENT_TYPES[kind]:
            raise RelayError(
                415, f"the Content-Type of a deposited {kind} must be {CONTENT_TYPES[kind]}"
            )
        if not self.keeps_mailbox(owner):
            raise RelayError(404, f"this relay keeps no mailbox for {owner}")
        now = self.clock()
        deposit = inspection.finish()
        _check_deposit(kind, deposit, signer, owner)
        try:
            item, new = await self.store.put(
                owner=owner,
                kind=kind,
                digest=deposit.digest,
                author=signer,
                body=body,
                now=now,
                max_items=self.limits.max_items_per_mailbox,
            )
        except MailboxFullError:
            log.warning(f"relay.{kind}.mailbox-full", org=owner, digest=deposit.digest.hex())
            raise RelayError(
                507,
                f"the mailbox of {owner} holds its limit of "
                f"{self.limits.max_items_per_mailbox} items; retry later",
            ) from None
        if new:
            log.info(
                f"relay.{kind}.stored",
                org=owner,
                digest=item.id.hex(),
                sender=signer,
                bytes=item.length,
            )
        return web.json_response({"id": item.id.hex(), "state": "stored"}, status=202)

    # --- the owner's side -------------------------------------------------------------------

    async def list_items(self, request: web.Request) -> web.StreamResponse:
        """POST .../{org}/list {limit, after}: the waiting items, oldest first."""
        owner, body = await self._owner_request(request, "list")
        doc = _json_object(body, {"limit": (int,), "after": (str, type(None))}, required={"limit"})
        limit = doc["limit"]
        if limit < 1:
            raise RelayError(400, "the field 'limit' must be at least 1")
        limit = min(limit, self.limits.max_list)
        after = doc.get("after")
        if after is not None and _CURSOR_RE.fullmatch(after) is None:
            raise RelayError(400, "the field 'after' must be a cursor from an earlier answer")
        items = await self.store.waiting(
            owner, limit=limit, after=0 if after is None else int(after)
        )
        return web.json_response(
            {
                "items": [
                    {
                        "id": i.id.hex(),
                        "kind": i.kind,
                        "length": i.length,
                        "stored_at": int(i.stored_at),
                    }
                    for i in items
                ],
                "next": str(items[-1].seq) if len(items) == limit else None,
            }
        )

    async def fetch(self, request: web.Request) -> web.StreamResponse:
        """POST .../{org}/fetch {id, kind}: the item's bytes; it stays until acknowledged."""
        owner, body = await self._owner_request(request, "fetch")
        kind, digest = _item_ref(body, kind_required=True)
        opened = await self.store.open_body(owner, kind, digest, self.clock())
        if opened is None:
            raise RelayError(404, f"no such {kind} is waiting in this mailbox")
        item, handle = opened
        try:
            response = web.StreamResponse(
                status=200,
                headers={"Content-Type": CONTENT_TYPES[kind], "Cache-Control": "no-store"},
            )
            response.content_length = item.length
            await response.prepare(request)
            # Once the answer has started, a failure can only cut it short: the client sees
            # a truncated body (fewer bytes than Content-Length) and fetches again.
            try:
                while piece := await asyncio.to_thread(handle.read, _READ_PIECE):
                    await response.write(piece)
                await response.write_eof()
            except OSError as exc:  # the client went away, or the disk failed
                log.warning(f"relay.{kind}.fetch-cut", org=owner, error_class=type(exc).__name__)
                return response
        finally:
            handle.close()
        log.info(f"relay.{kind}.fetched", org=owner, digest=digest.hex(), bytes=item.length)
        return response

    async def acknowledge(self, request: web.Request) -> web.StreamResponse:
        """POST .../{org}/ack {id, kind}: delete the body, keep the row; idempotent."""
        owner, body = await self._owner_request(request, "acknowledge")
        kind, digest = _item_ref(body, kind_required=True)
        item = await self.store.collect(owner, kind, digest, self.clock())
        if item is not None and item.state == "collected":
            log.info(f"relay.{kind}.collected", org=owner, digest=digest.hex())
        state = "unknown" if item is None else item.state
        return web.json_response({"id": digest.hex(), "state": state})

    # --- the depositor's side ---------------------------------------------------------------

    async def _deposited(self, request: web.Request) -> tuple[OrgId, RelayItem]:
        signer, owner, body = await self._authenticate(request, self.limits.max_json_bytes)
        kind, digest = _item_ref(body, kind_required=False)
        item = await self.store.item(owner, kind, digest)
        # Another organisation's item is "not found", so its existence is not disclosed.
        if item is None or item.author != signer:
            raise RelayError(404, f"no such {kind} deposited by {signer} is in this mailbox")
        return signer, item

    async def recall(self, request: web.Request) -> web.StreamResponse:
        """POST .../{org}/recall {id}: delete the item unless its owner has already fetched it."""
        signer, item = await self._deposited(request)
        after = await self.store.recall(item.owner, item.kind, item.id, self.clock())
        assert after is not None  # rows are only forgotten by purge, long after they ended
        answer: dict[str, Any]
        if after.state == "recalled":
            answer = {"outcome": "recalled", "recalled_at": _at(after.ended_at)}
        elif after.state == "expired":
            answer = {"outcome": "expired", "expired_at": _at(after.ended_at)}
        else:
            collected = after.fetched_at if after.state == "waiting" else after.ended_at
            answer = {"outcome": "too-late", "collected_at": _at(collected)}
        log.info(
            f"relay.{item.kind}.recall",
            org=item.owner,
            digest=item.id.hex(),
            sender=signer,
            outcome=answer["outcome"],
        )
        return web.json_response(answer)

    async def status(self, request: web.Request) -> web.StreamResponse:
        """POST .../{org}/status {id}: where the depositor's item stands."""
        _, item = await self._deposited(request)
        return web.json_response(
            {
                "state": item.state,
                "stored_at": _at(item.stored_at),
                "fetched_at": _at(item.fetched_at),
                "collected_at": _at(item.ended_at) if item.state == "collected" else None,
                "ended_at": _at(item.ended_at),
            }
        )


def _check_deposit(kind: MessageKind, deposit: Deposit, signer: OrgId, owner: OrgId) -> None:
    author = "sender" if kind == "envelope" else "receipter"
    if deposit.author != signer:
        raise RelayError(
            403, f"the request was signed by {signer} but the {kind}'s {author} is {deposit.author}"
        )
    if owner not in deposit.addressees:
        raise RelayError(403, f"the {kind} is not addressed to {owner}")


def _json_object(
    raw: bytes, fields: Mapping[str, tuple[type, ...]], *, required: set[str]
) -> dict[str, Any]:
    """Decode a small JSON object with only ``fields``, each of one of its types."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise RelayError(400, "the request body is not a valid JSON object") from None
    if not isinstance(doc, dict):
        raise RelayError(400, "the request body must be a JSON object")
    unknown = [name for name in doc if name not in fields]
    if unknown:
        raise RelayError(
            400, f"the request body has an unknown field; the fields are {', '.join(fields)}"
        )
    for name, types in fields.items():
        if name not in doc:
            if name in required:
                raise RelayError(400, f"the field {name!r} is missing")
            continue
        value = doc[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise RelayError(400, f"the field {name!r} has the wrong type")
    return doc


def _item_ref(raw: bytes, *, kind_required: bool) -> tuple[MessageKind, bytes]:
    """Return the (kind, digest) a body ``{"id": hex, "kind": ...}`` names."""
    required = {"id", "kind"} if kind_required else {"id"}
    doc = _json_object(raw, {"id": (str,), "kind": (str,)}, required=required)
    if _HEX_RE.fullmatch(doc["id"]) is None:
        raise RelayError(400, "the field 'id' must be 64 lower-case hexadecimal characters")
    kind = doc.get("kind", "envelope")
    if kind not in KINDS:
        raise RelayError(400, "the field 'kind' must be 'envelope' or 'receipt'")
    return kind, bytes.fromhex(doc["id"])


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _shaped(handler: Handler) -> Handler:
    """Answer every refusal of ``handler`` in the peer error shape, whatever the app does."""

    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except PeerAuthError as exc:
            log.warning("relay.refused", rule=exc.rule, status=exc.status)
            return error_response(exc)
        except RelayError as exc:
            log.info("relay.refused", status=exc.status)
            answer = _error(exc.status, str(exc))
            if exc.retry_after is not None:
                answer.headers["Retry-After"] = str(exc.retry_after)
            return answer
        except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback leaks
            cause = fault_of(exc).kind
            log.error("relay.failed", cause=cause, error_class=type(exc).__name__)  # noqa: TRY400
            if cause == "storage-full":
                # The sender's outbox takes a 503 as "try again later" (docs/protocol.md §6).
                response = _error(503, f"{STORAGE_FULL_REFUSAL}; try again later")
                response.headers["Retry-After"] = str(STORAGE_FULL_RETRY_AFTER)
                return response
            return _error(500, "the relay failed to handle the request; it has been logged")

    return run


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": str(status), "message": message}, status=status)


def add_relay_routes(app: web.Application, relay: Relay) -> None:
    """Add the relay's endpoints (``/relay/v1/mailboxes/{org}/...``) to ``app``."""
    base = PREFIX + "/{org}"
    app.router.add_post(base + "/{what:envelopes|receipts}", _shaped(relay.deposit))
    app.router.add_post(base + "/list", _shaped(relay.list_items))
    app.router.add_post(base + "/fetch", _shaped(relay.fetch))
    app.router.add_post(base + "/ack", _shaped(relay.acknowledge))
    app.router.add_post(base + "/recall", _shaped(relay.recall))
    app.router.add_post(base + "/status", _shaped(relay.status))
