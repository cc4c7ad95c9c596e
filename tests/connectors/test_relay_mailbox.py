"""The mailbox connector against a real relay on 127.0.0.1: conformance, collection, recall.

The relay is ``exchange.relay.server`` (tests/connectors/relay_world.py). The conformance
suite sends arbitrary bytes, so its relay takes any bytes from SCHOOL to LA by their
SHA-256 (``opaque``); every other test here deposits real sealed envelopes and signed
receipts, which the relay verifies.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import structlog
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from exchange import logs
from exchange.connectors.base import (
    CollectError,
    Delivered,
    Message,
    MessageKind,
    RecallError,
    RecallRequest,
    Refused,
    RetryLater,
    SentItem,
)
from exchange.connectors.relay_mailbox import RelayMailboxConnector
from exchange.connectors.relay_wire import (
    decode_ref,
    encode_ref,
    mailbox_fingerprint,
    relay_url,
)
from exchange.envelope import verify_envelope
from exchange.keys.ids import OrgId
from exchange.receipts import parse_signed

from .conformance import Mode, PullConnectorConformance, RecallConformance, TrackConformance
from .relay_world import (
    LA,
    NURSE,
    SCHOOL,
    SIGN,
    RelayWorld,
    directory,
    now,
    opaque,
    receipt,
    running_relay,
    sealed,
)

pytestmark = pytest.mark.network

TIMEOUT = 5.0


@dataclass
class MailboxHarness:
    """The conformance suite's view of a relay: deposits as SCHOOL, collects as LA."""

    world: RelayWorld
    connector: RelayMailboxConnector
    collector: RelayMailboxConnector

    @property
    def address(self) -> str:
        """The relay's base URL, as a ``mailbox`` route lists it."""
        return self.world.url

    async def set_mode(self, mode: Mode) -> None:
        """accept; down (connections dropped); refuse (no mailbox here); slow (held)."""
        self.world.refusing = mode == "refuse"
        self.world.mode = {"accept": "accept", "down": "down", "refuse": "accept", "slow": "slow"}[
            mode
        ]

    async def received(self, destination: OrgId) -> list[tuple[MessageKind, bytes]]:
        """Return what waits in ``destination``'s mailbox, read from the relay's own store."""
        items = await self.world.store.waiting(destination, limit=1000)
        store = self.world.store
        return [(i.kind, store.body_path(i.kind, i.id).read_bytes()) for i in items]


class TestMailboxConformance(PullConnectorConformance, RecallConformance, TrackConformance):
    """The connector protocol, against the real relay code."""

    @pytest.fixture
    async def harness(self, tmp_path: Path) -> AsyncIterator[MailboxHarness]:
        """Yield a relay taking opaque bytes, a depositing and a collecting connector."""
        async with running_relay(tmp_path, inspect=opaque) as world:
            yield MailboxHarness(world, world.connector(), world.connector(mailboxes=(LA,)))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[RelayWorld]:
    """Yield a real relay that verifies what it is given."""
    async with running_relay(tmp_path) as running:
        yield running


def recall_of(digest: bytes, sender: OrgId) -> RecallRequest:
    """Return ``sender``'s recall of item ``digest`` in LA's mailbox (a relay reads the item)."""
    return RecallRequest(SentItem(digest, sender, LA), bytes(16), "sent-in-error", now())


def envelope_message(data: bytes, to: OrgId = LA, origin: OrgId = SCHOOL) -> Message:
    """Return the message of a real envelope, named by its digest."""
    digest = verify_envelope(data, directory("http://127.0.0.1:1"), now=now()).digest
    return Message("envelope", digest, origin, to, data)


def receipt_message(data: bytes, to: OrgId = SCHOOL, origin: OrgId = LA) -> Message:
    """Return the message of a signed receipt, named by its receipt digest."""
    return Message("receipt", parse_signed(data).digest, origin, to, data)


# --- round trips ----------------------------------------------------------------------------


async def test_envelope_and_receipt_round_trip(world: RelayWorld) -> None:
    """An envelope reaches LA's mailbox and its receipt SCHOOL's; each is collected once."""
    sender = world.connector()
    data = sealed(b"a referral")
    msg = envelope_message(data)
    outcome = await sender.deliver(msg, world.url, timeout=TIMEOUT)
    assert outcome == Delivered(transport_ref=msg.message_id.hex(), receipt=b"")

    la = world.connector(mailboxes=(LA,))
    (item,) = await la.collect(limit=10, timeout=TIMEOUT)
    assert (item.kind, item.destination, item.origin, item.body) == ("envelope", LA, None, data)
    await la.acknowledge(item.transport_ref, timeout=TIMEOUT)
    assert await la.collect(limit=10, timeout=TIMEOUT) == []

    signed = receipt(msg.message_id)
    back = receipt_message(signed)
    assert isinstance(await la.deliver(back, world.url, timeout=TIMEOUT), Delivered)
    school = world.connector(mailboxes=(SCHOOL,))
    (got,) = await school.collect(limit=10, timeout=TIMEOUT)
    assert (got.kind, got.destination, got.body) == ("receipt", SCHOOL, signed)
    await school.acknowledge(got.transport_ref, timeout=TIMEOUT)
    assert await school.collect(limit=10, timeout=TIMEOUT) == []


async def test_redelivery_and_acknowledgement_are_idempotent(world: RelayWorld) -> None:
    """The same envelope twice is stored once; acknowledging twice is harmless."""
    sender, la = world.connector(), world.connector(mailboxes=(LA,))
    msg = envelope_message(sealed(b"once"))
    first = await sender.deliver(msg, world.url, timeout=TIMEOUT)
    second = await sender.deliver(msg, world.url, timeout=TIMEOUT)
    assert first == second
    (item,) = await la.collect(limit=10, timeout=TIMEOUT)
    await la.acknowledge(item.transport_ref, timeout=TIMEOUT)
    await la.acknowledge(item.transport_ref, timeout=TIMEOUT)
    # A redelivery after collection stores nothing again.
    assert await sender.deliver(msg, world.url, timeout=TIMEOUT) == first
    assert await la.collect(limit=10, timeout=TIMEOUT) == []


async def test_collection_is_resumable(world: RelayWorld) -> None:
    """Collected but not acknowledged (a crash before storing): collected again, same ref."""
    msg = envelope_message(sealed(b"at least once"))
    await world.connector().deliver(msg, world.url, timeout=TIMEOUT)
    (first,) = await world.connector(mailboxes=(LA,)).collect(limit=10, timeout=TIMEOUT)
    # A new connector, as after a restart.
    (again,) = await world.connector(mailboxes=(LA,)).collect(limit=10, timeout=TIMEOUT)
    assert again == first


async def test_collect_pages_through_a_large_mailbox(world: RelayWorld) -> None:
    """More items than one list page are all collected, oldest first."""
    sender = world.connector()
    sent = []
    for i in range(105):
        msg = envelope_message(sealed(b"item %d" % i))
        sent.append(msg.body)
        assert isinstance(await sender.deliver(msg, world.url, timeout=TIMEOUT), Delivered)
    found = await world.connector(mailboxes=(LA,)).collect(limit=200, timeout=30.0)
    assert [c.body for c in found] == sent


async def test_set_mailboxes_keeps_refs_valid(world: RelayWorld) -> None:
    """A ref names its mailbox by relay and owner, so reordering the list keeps it valid."""
    await world.connector().deliver(envelope_message(sealed(b"x")), world.url, timeout=TIMEOUT)
    la = world.connector(mailboxes=(LA,))
    (item,) = await la.collect(limit=1, timeout=TIMEOUT)
    la.set_mailboxes([(world.url, SCHOOL), (world.url + "/", LA)])
    assert la.mailboxes == ((world.url, SCHOOL), (world.url, LA))
    await la.acknowledge(item.transport_ref, timeout=TIMEOUT)
    assert await la.collect(limit=10, timeout=TIMEOUT) == []
    la.set_mailboxes([(world.url, SCHOOL)])
    with pytest.raises(CollectError) as caught:
        await la.acknowledge(item.transport_ref, timeout=TIMEOUT)
    assert not caught.value.retry


async def test_bad_transport_ref_is_a_value_error(world: RelayWorld) -> None:
    """A ref the connector did not make is the caller's mistake."""
    with pytest.raises(ValueError, match="transport_ref"):
        await world.connector(mailboxes=(LA,)).acknowledge("memory-1", timeout=TIMEOUT)


# --- refusals seen by the connector ---------------------------------------------------------


async def test_envelope_not_addressed_to_the_mailbox_is_refused(world: RelayWorld) -> None:
    """An envelope for NURSE deposited in LA's mailbox: Refused (403), nothing stored."""
    data = sealed(b"for the nurse", to=(NURSE,))
    msg = envelope_message(data, to=LA)
    outcome = await world.connector().deliver(msg, world.url, timeout=TIMEOUT)
    assert outcome == Refused("the relay refused the envelope with 403")
    assert await world.store.waiting(LA, limit=10) == []


async def test_deposit_in_another_name_is_refused(world: RelayWorld) -> None:
    """NURSE cannot deposit SCHOOL's envelope: the request signer must be its sender."""
    msg = envelope_message(sealed(b"forwarded"), origin=NURSE)
    outcome = await world.connector().deliver(msg, world.url, timeout=TIMEOUT)
    assert outcome == Refused("the relay refused the envelope with 403")


async def test_organisation_without_a_mailbox_here_is_refused(world: RelayWorld) -> None:
    """NURSE lists no mailbox route at this relay: 404, Refused."""
    msg = envelope_message(sealed(b"x", to=(NURSE,)), to=NURSE)
    outcome = await world.connector().deliver(msg, world.url, timeout=TIMEOUT)
    assert outcome == Refused("the relay refused the envelope with 404")


async def test_full_mailbox_retries(tmp_path: Path) -> None:
    """A mailbox at its limit answers 507: RetryLater, and room again once collected."""
    from exchange.relay.server import RelayLimits

    async with running_relay(tmp_path, limits=RelayLimits(max_items_per_mailbox=1)) as world:
        sender, la = world.connector(), world.connector(mailboxes=(LA,))
        await sender.deliver(envelope_message(sealed(b"one")), world.url, timeout=TIMEOUT)
        second = envelope_message(sealed(b"two"))
        outcome = await sender.deliver(second, world.url, timeout=TIMEOUT)
        assert outcome == RetryLater("the relay answered 507 to the envelope")
        (item,) = await la.collect(limit=10, timeout=TIMEOUT)
        await la.acknowledge(item.transport_ref, timeout=TIMEOUT)
        assert isinstance(await sender.deliver(second, world.url, timeout=TIMEOUT), Delivered)


@pytest.mark.parametrize(
    "address",
    ["relay.example", "ftp://relay.example", "https://relay.example/?q=1", "https://x/#f"],
)
async def test_unusable_address_is_refused(world: RelayWorld, address: str) -> None:
    """A route address that is not an absolute http(s) URL is Refused before connecting."""
    outcome = await world.connector().deliver(
        envelope_message(sealed(b"x")), address, timeout=TIMEOUT
    )
    assert isinstance(outcome, Refused)
    assert outcome.reason.startswith("the mailbox route cannot be used")


async def test_plain_http_is_refused_by_default(world: RelayWorld) -> None:
    """Without allow_http, an http:// relay is Refused, and cannot be collected from."""
    plain = RelayMailboxConnector(world.session, SIGN)
    outcome = await plain.deliver(envelope_message(sealed(b"x")), world.url, timeout=TIMEOUT)
    assert outcome == Refused("the mailbox route's address is not https")
    with pytest.raises(ValueError, match="not https"):
        plain.set_mailboxes([(world.url, LA)])


# --- the sender's side: recall and status ----------------------------------------------------


async def test_recall_before_collection(world: RelayWorld) -> None:
    """Recalled before the owner fetched it: gone from the mailbox; status says recalled."""
    sender = world.connector()
    msg = envelope_message(sealed(b"sent by mistake"))
    await sender.deliver(msg, world.url, timeout=TIMEOUT)
    status = await sender.status(SentItem(msg.message_id, SCHOOL, LA), world.url, timeout=TIMEOUT)
    assert status.state == "waiting"
    assert status.collected_at is None
    outcome = await sender.recall(recall_of(msg.message_id, SCHOOL), world.url, timeout=TIMEOUT)
    assert outcome.outcome == "recalled"
    assert outcome.at is not None
    assert await world.connector(mailboxes=(LA,)).collect(limit=10, timeout=TIMEOUT) == []
    assert not world.store.body_path("envelope", msg.message_id).exists()
    status = await sender.status(SentItem(msg.message_id, SCHOOL, LA), world.url, timeout=TIMEOUT)
    assert status.state == "recalled"
    # Recalling again says the same.
    again = await sender.recall(recall_of(msg.message_id, SCHOOL), world.url, timeout=TIMEOUT)
    assert again.outcome == "recalled"


async def test_recall_after_collection_is_too_late(world: RelayWorld) -> None:
    """Once the owner fetched it, a recall is too late and says when it was collected."""
    sender, la = world.connector(), world.connector(mailboxes=(LA,))
    msg = envelope_message(sealed(b"already gone"))
    await sender.deliver(msg, world.url, timeout=TIMEOUT)
    (item,) = await la.collect(limit=10, timeout=TIMEOUT)
    fetched = await sender.recall(recall_of(msg.message_id, SCHOOL), world.url, timeout=TIMEOUT)
    assert fetched.outcome == "too-late"
    assert fetched.at is not None
    await la.acknowledge(item.transport_ref, timeout=TIMEOUT)
    collected = await sender.recall(recall_of(msg.message_id, SCHOOL), world.url, timeout=TIMEOUT)
    assert collected.outcome == "too-late"
    assert collected.at == fetched.at
    status = await sender.status(SentItem(msg.message_id, SCHOOL, LA), world.url, timeout=TIMEOUT)
    assert status.state == "collected"
    assert status.collected_at is not None


async def test_only_the_sender_may_recall_or_ask(world: RelayWorld) -> None:
    """Another organisation's recall or status finds nothing: the item is not disclosed."""
    sender = world.connector()
    msg = envelope_message(sealed(b"mine"))
    await sender.deliver(msg, world.url, timeout=TIMEOUT)
    for org in (NURSE, LA):
        outcome = await sender.recall(recall_of(msg.message_id, org), world.url, timeout=TIMEOUT)
        assert outcome.outcome == "unknown"
        status = await sender.status(SentItem(msg.message_id, org, LA), world.url, timeout=TIMEOUT)
        assert status.state == "unknown"
    status = await sender.status(SentItem(msg.message_id, SCHOOL, LA), world.url, timeout=TIMEOUT)
    assert status.state == "waiting"


async def test_recall_of_an_unknown_item(world: RelayWorld) -> None:
    """An id never deposited: unknown (the relay answers 404)."""
    outcome = await world.connector().recall(
        recall_of(bytes(32), SCHOOL), world.url, timeout=TIMEOUT
    )
    assert outcome.outcome == "unknown"


async def test_recall_of_an_unreachable_relay_raises(world: RelayWorld) -> None:
    """Recall through a relay that drops connections raises RecallError, retry=True."""
    world.mode = "down"
    with pytest.raises(RecallError) as caught:
        await world.connector().recall(recall_of(bytes(32), SCHOOL), world.url, timeout=TIMEOUT)
    assert caught.value.retry


# --- purge ----------------------------------------------------------------------------------


async def test_purge_expires_uncollected_items(world: RelayWorld) -> None:
    """Items waiting past retention are expired and reported; status and recall say so."""
    sender = world.connector()
    msg = envelope_message(sealed(b"never collected"))
    await sender.deliver(msg, world.url, timeout=TIMEOUT)
    early = await world.relay.purge(now=now() + 3600)
    assert early.expired == ()
    report = await world.relay.purge(now=now() + world.relay.retention + 60)
    assert [(i.owner, i.id, i.author, i.state) for i in report.expired] == [
        (LA, msg.message_id, SCHOOL, "expired")
    ]
    assert not world.store.body_path("envelope", msg.message_id).exists()
    assert await world.connector(mailboxes=(LA,)).collect(limit=10, timeout=TIMEOUT) == []
    status = await sender.status(SentItem(msg.message_id, SCHOOL, LA), world.url, timeout=TIMEOUT)
    assert status.state == "expired"
    outcome = await sender.recall(recall_of(msg.message_id, SCHOOL), world.url, timeout=TIMEOUT)
    assert outcome.outcome == "expired"
    # The sender sends it again: it is stored again, as a new deposit.
    assert isinstance(await sender.deliver(msg, world.url, timeout=TIMEOUT), Delivered)
    (item,) = await world.connector(mailboxes=(LA,)).collect(limit=10, timeout=TIMEOUT)
    assert item.body == msg.body


async def test_purge_forgets_ended_items_after_the_history_period(world: RelayWorld) -> None:
    """A collected item's row answers status until ``history`` has passed, then is gone."""
    sender, la = world.connector(), world.connector(mailboxes=(LA,))
    msg = envelope_message(sealed(b"collected long ago"))
    await sender.deliver(msg, world.url, timeout=TIMEOUT)
    (item,) = await la.collect(limit=10, timeout=TIMEOUT)
    await la.acknowledge(item.transport_ref, timeout=TIMEOUT)
    assert (await world.relay.purge(now=now() + 60)).forgotten == 0
    report = await world.relay.purge(now=now() + world.relay.history + 60)
    assert (report.expired, report.forgotten) == ((), 1)
    status = await sender.status(SentItem(msg.message_id, SCHOOL, LA), world.url, timeout=TIMEOUT)
    assert status.state == "unknown"


# --- hostile and broken relays --------------------------------------------------------------


@dataclass
class Hostile:
    """A relay stand-in that answers every request badly, as ``mode`` says."""

    mode: str = "garbage"
    released: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer according to ``mode``: garbage, slow, huge, huge-declared, or short."""
        await request.read()
        if self.mode == "garbage":
            return web.Response(status=202 if request.path.endswith("s") else 200, body=b"{not")
        if self.mode == "wrong-shape":
            return web.json_response({"items": "many", "id": 7}, status=202)
        if self.mode == "slow":
            assert self.released is not None
            await self.released.wait()
            return web.Response(status=503)
        response = web.StreamResponse(status=200)
        if self.mode == "huge-declared":
            response.content_length = 1 << 40
        await response.prepare(request)
        try:
            for _ in range(64 * 1024):
                await response.write(b"x" * 1024)
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        return response


@asynccontextmanager
async def hostile_relay(mode: str) -> AsyncIterator[str]:
    """Run a :class:`Hostile` stand-in on 127.0.0.1 port 0; yield its base URL."""
    stand_in = Hostile(mode, asyncio.Event())
    app = web.Application()
    app.router.add_post("/{tail:.*}", stand_in.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        assert stand_in.released is not None
        stand_in.released.set()
        await runner.cleanup()


@pytest.mark.parametrize("mode", ["garbage", "wrong-shape", "slow", "huge", "huge-declared"])
async def test_hostile_relay_gives_retry_later_and_collect_error(
    world: RelayWorld, mode: str
) -> None:
    """Nonsense, silence or floods from a relay: RetryLater, CollectError; no hang."""
    async with hostile_relay(mode) as url:
        connector = RelayMailboxConnector(
            world.session, SIGN, mailboxes=[(url, LA)], allow_http=True, max_message=1 << 20
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = await connector.deliver(envelope_message(sealed(b"x")), url, timeout=0.5)
        assert isinstance(outcome, RetryLater), outcome
        with pytest.raises(CollectError) as caught:
            await connector.collect(limit=10, timeout=0.5)
        assert caught.value.retry
        assert loop.time() - started < 0.5 * 2 + 3.0


async def test_one_unreachable_mailbox_does_not_fail_the_others(world: RelayWorld) -> None:
    """A hostile relay is skipped for the round; the real relay's items are collected."""
    await world.connector().deliver(envelope_message(sealed(b"ok")), world.url, timeout=TIMEOUT)
    async with hostile_relay("slow") as bad:
        la = world.connector()
        la.set_mailboxes([(bad, LA), (world.url, LA)])
        (item,) = await la.collect(limit=10, timeout=1.0)
        assert item.destination == LA
        # Next round starts with the other mailbox; still one item, still no error.
        assert len(await la.collect(limit=10, timeout=1.0)) == 1


async def test_no_mailboxes_collects_nothing(world: RelayWorld) -> None:
    """A connector with no mailboxes has nothing to collect and no error."""
    assert await world.connector().collect(limit=10, timeout=TIMEOUT) == []


# --- transport refs -------------------------------------------------------------------------

_HEX16 = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)


@given(
    fp=_HEX16,
    kind=st.sampled_from(["envelope", "receipt"]),
    digest=st.binary(min_size=32, max_size=32),
)
def test_transport_ref_round_trips(fp: str, kind: MessageKind, digest: bytes) -> None:
    """Every ref decodes to what was encoded, and fits a receipt's transport_ref field."""
    ref = encode_ref(fp, kind, digest)
    assert decode_ref(ref) == (fp, kind, digest)
    assert len(ref) <= 128
    assert ref.isascii()
    assert " " not in ref


@given(text=st.text(max_size=120))
def test_decoding_any_text_either_round_trips_or_refuses(text: str) -> None:
    """A string is either exactly a ref the encoder makes, or refused with ValueError."""
    try:
        fp, kind, digest = decode_ref(text)
    except ValueError:
        return
    assert encode_ref(fp, kind, digest) == text


@given(
    url=st.sampled_from(["https://relay.example", "https://relay.example/", "http://10.0.0.1:8"]),
    owner=st.sampled_from([LA, SCHOOL, NURSE]),
)
def test_fingerprint_is_stable(url: str, owner: OrgId) -> None:
    """A mailbox's fingerprint ignores a trailing slash and differs by owner."""
    fp = mailbox_fingerprint(url, owner)
    assert fp == mailbox_fingerprint(url.rstrip("/") + "/", owner)
    others = {mailbox_fingerprint(url, o) for o in (LA, SCHOOL, NURSE)}
    assert len(others) == 3


def test_relay_url() -> None:
    """Endpoint URLs: base without trailing slash, owner checked, action checked."""
    assert (
        relay_url("https://relay.example/base/", LA, "list")
        == "https://relay.example/base/relay/v1/mailboxes/la:999/list"
    )
    with pytest.raises(ValueError, match="owner"):
        relay_url("https://relay.example", "Not An Org", "list")
    with pytest.raises(ValueError, match="action"):
        relay_url("https://relay.example", LA, "delete")  # type: ignore[arg-type]


# --- no record content in logs --------------------------------------------------------------

NAME = "Tallulah Sentinel-Child"
DOB = "2014-03-09"
UPN = "A123456789012"
NHS = "943 476 5919"
CONTENT = json.dumps({"child": {"name": NAME, "dob": DOB, "upn": UPN, "nhs": NHS}}).encode()
NEEDLES = [NAME, "Tallulah", "Sentinel", DOB, UPN, NHS, NHS.replace(" ", "")]


@pytest.fixture
def structured_log() -> Iterator[io.StringIO]:
    """Send every structlog event, as production JSON, to a buffer."""
    buffer = io.StringIO()
    logs.configure(json=True, level=logging.DEBUG, stream=buffer)
    yield buffer
    structlog.reset_defaults()


async def test_nothing_of_the_record_reaches_logs_or_answers(
    world: RelayWorld, structured_log: io.StringIO
) -> None:
    """A full life cycle, and bad requests carrying the sentinel, log ids only."""
    sender, la = world.connector(), world.connector(mailboxes=(LA,))
    data = sealed(CONTENT)
    msg = envelope_message(data)
    assert isinstance(await sender.deliver(msg, world.url, timeout=TIMEOUT), Delivered)
    (item,) = await la.collect(limit=10, timeout=TIMEOUT)
    await la.acknowledge(item.transport_ref, timeout=TIMEOUT)
    await sender.recall(recall_of(msg.message_id, SCHOOL), world.url, timeout=TIMEOUT)
    await world.relay.purge(now=now() + 10**8)

    answers: list[bytes] = []
    # Plaintext posing as an envelope and as a receipt, signed properly.
    for action, content_type in (
        ("envelopes", "application/vnd.exchange.envelope"),
        ("receipts", "application/vnd.exchange.receipt"),
    ):
        url = world.endpoint(LA, action)
        async with world.session.post(
            url, data=CONTENT, headers=SIGN(SCHOOL, url, CONTENT, content_type)
        ) as resp:
            assert resp.status in {413, 422}
            answers.append(await resp.read())
    # The sentinel in JSON field names and values of the owner's endpoints.
    for action in ("list", "fetch", "ack", "recall", "status"):
        url = world.endpoint(LA, action)
        for doc in ({NAME: DOB}, {"id": NAME, "kind": UPN}, {"limit": NHS, "after": DOB}):
            body = json.dumps(doc).encode()
            async with world.session.post(
                url, data=body, headers=SIGN(LA, url, body, "application/json")
            ) as resp:
                assert resp.status == 400, await resp.text()
                answers.append(await resp.read())

    lines = structured_log.getvalue()
    assert "relay.envelope.stored" in lines
    for needle in NEEDLES:
        assert needle not in lines, f"{needle!r} found in the log"
        for answer in answers:
            assert needle.encode() not in answer, f"{needle!r} found in an answer"
    assert hashlib.sha256(CONTENT).hexdigest() not in lines


LISTED = 3 * 1024 * 1024
MODE = web.AppKey("mode", str)


async def _bad_fetch(request: web.Request) -> web.StreamResponse:
    """List one 3 MiB item; answer its fetch with more bytes, or cut short."""
    await request.read()
    if request.path.endswith("/list"):
        item = {"id": "ab" * 32, "kind": "envelope", "length": LISTED, "stored_at": 1}
        return web.json_response({"items": [item], "next": None})
    mode = request.app[MODE]
    response = web.StreamResponse(status=200)
    response.content_length = LISTED + 1024 if mode == "longer" else LISTED
    await response.prepare(request)
    await response.write(b"x" * (LISTED // 2))
    if mode == "longer":
        await response.write(b"x" * (LISTED // 2 + 1024))
        return response
    assert request.transport is not None
    request.transport.close()  # cut short: half of what was declared
    return response


@pytest.mark.parametrize("mode", ["longer", "cut-short"])
async def test_a_fetch_that_is_not_the_listed_length_is_refused_and_leaves_nothing(
    world: RelayWorld, tmp_path: Path, mode: str
) -> None:
    """A large fetched item is streamed to disk; one longer or shorter than listed is dropped."""
    app = web.Application()
    app[MODE] = mode
    app.router.add_post("/{tail:.*}", _bad_fetch)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    spool = tmp_path / "spool"
    spool.mkdir()
    try:
        url = f"http://127.0.0.1:{port}"
        connector = RelayMailboxConnector(
            world.session, SIGN, mailboxes=[(url, LA)], allow_http=True, spool=spool
        )
        with pytest.raises(CollectError) as caught:
            await connector.collect(limit=10, timeout=5.0)
    finally:
        await runner.cleanup()
    assert caught.value.retry
    words = "larger than" if mode == "longer" else "could not"
    assert words in caught.value.reason
    assert list(spool.iterdir()) == []
