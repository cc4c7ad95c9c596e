"""The relay's endpoints over real HTTP on 127.0.0.1: who may call what, limits, answers.

Requests are made by hand here (signed with the standard signer, or not at all), so each
rule of docs/relay.md is seen as a status and a plain sentence in the peer error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from exchange.keys.ids import OrgId
from exchange.receipts import parse_signed
from exchange.relay.server import RelayLimits
from tests.connectors.relay_world import (
    LA,
    NURSE,
    SCHOOL,
    SIGN,
    RelayWorld,
    directory,
    receipt,
    running_relay,
    sealed,
)
from tests.connectors.test_relay_mailbox import envelope_message

pytestmark = pytest.mark.network

ENVELOPE = "application/vnd.exchange.envelope"
RECEIPT = "application/vnd.exchange.receipt"
JSON = "application/json"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[RelayWorld]:
    """Yield a real relay that verifies what it is given."""
    async with running_relay(tmp_path) as running:
        yield running


async def post(
    world: RelayWorld,
    owner: str,
    action: str,
    body: bytes | dict[str, Any],
    *,
    signer: OrgId | None,
    content_type: str = JSON,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    """POST to ``owner``'s endpoint ``action`` signed as ``signer`` (None: unsigned)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    url = world.endpoint(owner, action)  # type: ignore[arg-type]
    sent = (
        {"Content-Type": content_type} if signer is None else SIGN(signer, url, data, content_type)
    )
    sent.update(headers or {})
    async with world.session.post(url, data=data, headers=sent) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


def error_of(body: bytes) -> dict[str, str]:
    """Return a refusal's JSON, checking it has the peer error shape and nothing else."""
    doc = json.loads(body)
    assert set(doc) == {"error", "message"}
    assert isinstance(doc["message"], str)
    assert doc["message"]
    return {"error": doc["error"], "message": doc["message"]}


async def deposit(world: RelayWorld, content: bytes = b"record") -> bytes:
    """Deposit a real envelope from SCHOOL in LA's mailbox; return its digest."""
    msg = envelope_message(sealed(content))
    status, body, _ = await post(
        world, LA, "envelopes", msg.body, signer=SCHOOL, content_type=ENVELOPE
    )
    assert status == 202, body
    assert json.loads(body) == {"id": msg.message_id.hex(), "state": "stored"}
    return msg.message_id


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action", ["envelopes", "receipts", "list", "fetch", "ack", "recall", "status"]
)
async def test_unsigned_request_is_refused_before_the_path_is_read(
    world: RelayWorld, action: str
) -> None:
    """No signature: 401 with a challenge, even for a malformed organisation in the path."""
    for owner in (LA, "NOT-AN-ORG"):
        status, body, headers = await post(world, owner, action, {"limit": 1}, signer=None)
        assert status == 401
        assert error_of(body)["error"] == "signature-input.missing"
        assert headers["WWW-Authenticate"] == 'Signature label="exch"'


async def test_replayed_request_is_refused(world: RelayWorld) -> None:
    """The same signed request twice: the second is a replay (401 nonce.replayed)."""
    url = world.endpoint(LA, "list")
    data = json.dumps({"limit": 5}).encode()
    headers = SIGN(LA, url, data, JSON)
    async with world.session.post(url, data=data, headers=headers) as resp:
        assert resp.status == 200
    async with world.session.post(url, data=data, headers=headers) as resp:
        assert resp.status == 401
        assert error_of(await resp.read())["error"] == "nonce.replayed"


async def test_request_signed_for_another_host_is_refused(world: RelayWorld) -> None:
    """A signature over another origin's URL does not verify here (docs/protocol.md §4)."""
    data = json.dumps({"limit": 5}).encode()
    headers = SIGN(LA, f"https://elsewhere.example/relay/v1/mailboxes/{LA}/list", data, JSON)
    async with world.session.post(world.endpoint(LA, "list"), data=data, headers=headers) as resp:
        assert resp.status == 401
        assert error_of(await resp.read())["error"] == "signature.invalid"


async def test_malformed_organisation_after_authentication_is_400(world: RelayWorld) -> None:
    """A signed request to a path that names no organisation: 400 naming the path."""
    status, body, _ = await post(world, "NOT-AN-ORG", "list", {"limit": 1}, signer=LA)
    assert status == 400
    assert "organisation in the path" in error_of(body)["message"]


# --- only the owner lists, fetches and acknowledges -----------------------------------------


@pytest.mark.parametrize("action", ["list", "fetch", "ack"])
@pytest.mark.parametrize("intruder", [SCHOOL, NURSE])
async def test_only_the_owner_may_list_fetch_or_acknowledge(
    world: RelayWorld, action: str, intruder: OrgId
) -> None:
    """Another organisation's signature, even the sender's: 403 with a plain sentence."""
    digest = await deposit(world)
    body = {"limit": 10} if action == "list" else {"id": digest.hex(), "kind": "envelope"}
    status, answer, _ = await post(world, LA, action, body, signer=intruder)
    assert status == 403
    refusal = error_of(answer)
    assert refusal["error"] == "403"
    assert refusal["message"].startswith("only the mailbox owner may")
    # The item is untouched.
    assert [i.id for i in await world.store.waiting(LA, limit=10)] == [digest]


async def test_list_fetch_ack_answers(world: RelayWorld) -> None:
    """List shape, fetch bytes and type, ack twice and ack of an unknown id are 200."""
    digest = await deposit(world)
    status, body, _ = await post(world, LA, "list", {"limit": 10, "after": None}, signer=LA)
    assert status == 200
    listed = json.loads(body)
    assert listed["next"] is None
    (item,) = listed["items"]
    assert set(item) == {"id", "kind", "length", "stored_at"}
    assert (item["id"], item["kind"]) == (digest.hex(), "envelope")
    ref = {"id": digest.hex(), "kind": "envelope"}
    status, fetched, headers = await post(world, LA, "fetch", ref, signer=LA)
    assert status == 200
    assert headers["Content-Type"] == ENVELOPE
    assert len(fetched) == item["length"]
    assert envelope_message(fetched).message_id == digest
    for _ in range(2):
        status, body, _ = await post(world, LA, "ack", ref, signer=LA)
        assert (status, json.loads(body)) == (200, {"id": digest.hex(), "state": "collected"})
    status, body, _ = await post(world, LA, "ack", {"id": "00" * 32, "kind": "receipt"}, signer=LA)
    assert (status, json.loads(body)["state"]) == (200, "unknown")
    status, body, _ = await post(world, LA, "fetch", ref, signer=LA)
    assert status == 404
    assert error_of(body)["message"] == "no such envelope is waiting in this mailbox"


async def test_list_pages_with_a_cursor(world: RelayWorld) -> None:
    """A full page has a cursor; following it gives the rest, then none."""
    digests = [await deposit(world, b"item %d" % i) for i in range(3)]
    status, body, _ = await post(world, LA, "list", {"limit": 2}, signer=LA)
    page = json.loads(body)
    assert [i["id"] for i in page["items"]] == [d.hex() for d in digests[:2]]
    assert page["next"] is not None
    status, body, _ = await post(world, LA, "list", {"limit": 2, "after": page["next"]}, signer=LA)
    assert status == 200
    rest = json.loads(body)
    assert ([i["id"] for i in rest["items"]], rest["next"]) == ([digests[2].hex()], None)


@pytest.mark.parametrize(
    ("action", "body", "message"),
    [
        ("list", {"limit": 0}, "the field 'limit' must be at least 1"),
        ("list", {"limit": True}, "the field 'limit' has the wrong type"),
        ("list", {}, "the field 'limit' is missing"),
        ("list", {"limit": 1, "after": "x"}, "the field 'after' must be a cursor"),
        ("list", {"limit": 1, "extra": 1}, "unknown field"),
        ("fetch", {"id": "AB" * 32, "kind": "envelope"}, "64 lower-case hexadecimal"),
        ("fetch", {"id": "ab" * 32}, "the field 'kind' is missing"),
        ("ack", {"id": "ab" * 32, "kind": "letter"}, "the field 'kind' must be"),
        ("recall", [1, 2], "must be a JSON object"),
        ("status", b"\xff\xfe", "not a valid JSON object"),
    ],
)
async def test_malformed_json_is_400_naming_the_field(
    world: RelayWorld, action: str, body: Any, message: str
) -> None:
    """Every JSON body is checked field by field; the answer names the field, not the value."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, answer, _ = await post(world, LA, action, data, signer=LA)
    assert status == 400
    assert message in error_of(answer)["message"]


async def test_json_bodies_are_size_limited(world: RelayWorld) -> None:
    """A JSON request over the limit is 413 before it is parsed."""
    body = json.dumps({"limit": 1, "after": "1" * 5000}).encode()
    status, answer, _ = await post(world, LA, "list", body, signer=LA)
    assert status == 413
    assert error_of(answer)["error"] == "body.too-large"


# --- deposits -------------------------------------------------------------------------------


async def test_deposit_must_be_signed_by_the_sender(world: RelayWorld) -> None:
    """NURSE deposits SCHOOL's envelope: 403, naming both organisations."""
    data = sealed(b"x")
    status, body, _ = await post(world, LA, "envelopes", data, signer=NURSE, content_type=ENVELOPE)
    assert status == 403
    assert error_of(body)["message"] == (
        f"the request was signed by {NURSE} but the envelope's sender is {SCHOOL}"
    )


async def test_deposit_must_be_addressed_to_the_mailbox(world: RelayWorld) -> None:
    """An envelope for LA deposited in SCHOOL's mailbox: 403."""
    status, body, _ = await post(
        world, SCHOOL, "envelopes", sealed(b"x"), signer=SCHOOL, content_type=ENVELOPE
    )
    assert status == 403
    assert error_of(body)["message"] == f"the envelope is not addressed to {SCHOOL}"


async def test_tampered_envelope_is_422(world: RelayWorld) -> None:
    """A changed byte in the ciphertext: the relay's verification refuses it (422)."""
    data = bytearray(sealed(b"x" * 1000))
    data[len(data) // 2] ^= 1
    status, body, _ = await post(
        world, LA, "envelopes", bytes(data), signer=SCHOOL, content_type=ENVELOPE
    )
    assert status == 422
    assert error_of(body)["message"].startswith("the envelope was refused")


async def test_wrong_content_type_is_415(world: RelayWorld) -> None:
    """A deposit must say what it is (the Content-Type is signed)."""
    status, body, _ = await post(
        world, LA, "envelopes", sealed(b"x"), signer=SCHOOL, content_type=RECEIPT
    )
    assert status == 415
    assert error_of(body)["message"] == (
        f"the Content-Type of a deposited envelope must be {ENVELOPE}"
    )


async def test_receipt_rules(world: RelayWorld) -> None:
    """A receipt goes to its sender's mailbox, deposited by its receipter, signature valid."""
    signed = receipt(bytes(32))
    status, body, _ = await post(world, SCHOOL, "receipts", signed, signer=LA, content_type=RECEIPT)
    assert (status, json.loads(body)["id"]) == (202, parse_signed(signed).digest.hex())
    status, body, _ = await post(world, SCHOOL, "receipts", signed, signer=LA, content_type=RECEIPT)
    assert status == 202  # idempotent
    status, body, _ = await post(
        world, SCHOOL, "receipts", signed, signer=NURSE, content_type=RECEIPT
    )
    assert status == 403
    assert "receipter is la:999" in error_of(body)["message"]
    status, body, _ = await post(world, LA, "receipts", signed, signer=LA, content_type=RECEIPT)
    assert status == 403
    assert error_of(body)["message"] == f"the receipt is not addressed to {LA}"
    forged = signed[:-1] + bytes([signed[-1] ^ 1])
    status, body, _ = await post(world, SCHOOL, "receipts", forged, signer=LA, content_type=RECEIPT)
    assert status == 422
    assert "signature does not verify" in error_of(body)["message"]
    status, body, _ = await post(
        world, SCHOOL, "receipts", b"\x00" * 5000, signer=LA, content_type=RECEIPT
    )
    assert status == 413


async def test_a_shared_body_outlives_one_owner_collecting_it(world: RelayWorld) -> None:
    """One envelope for LA and NURSE, both collecting here: one ack keeps the other's copy."""
    world.directory = directory(world.url, mailboxes=(SCHOOL, LA, NURSE))
    msg = envelope_message(sealed(b"for both", to=(LA, NURSE)))
    for owner in (LA, NURSE):
        status, _, _ = await post(
            world, owner, "envelopes", msg.body, signer=SCHOOL, content_type=ENVELOPE
        )
        assert status == 202
    ref = {"id": msg.message_id.hex(), "kind": "envelope"}
    assert (await post(world, LA, "ack", ref, signer=LA))[0] == 200
    status, fetched, _ = await post(world, NURSE, "fetch", ref, signer=NURSE)
    assert (status, fetched) == (200, msg.body)
    assert (await post(world, NURSE, "ack", ref, signer=NURSE))[0] == 200
    assert not world.store.body_path("envelope", msg.message_id).exists()


# --- size limits ----------------------------------------------------------------------------


async def _raw(world: RelayWorld) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = int(world.url.rsplit(":", 1)[1])
    return await asyncio.open_connection("127.0.0.1", port)


async def _status(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10.0)
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(v)
        for k, _, v in (line.partition(": ") for line in lines)
        if k.lower() == "content-length"
    )
    return int(lines[0].split()[1]), await asyncio.wait_for(
        reader.readexactly(length), timeout=10.0
    )


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[RelayWorld]:
    """Yield a relay taking envelopes of at most 16 KiB."""
    async with running_relay(tmp_path, limits=RelayLimits(max_envelope_bytes=16 * 1024)) as running:
        yield running


async def test_declared_oversized_envelope_is_413_before_reading_it(small: RelayWorld) -> None:
    """A Content-Length over the limit is answered 413 while the body is still unsent."""
    reader, writer = await _raw(small)
    writer.write(
        (
            f"POST /relay/v1/mailboxes/{LA}/envelopes HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: {ENVELOPE}\r\nContent-Length: {16 * 1024 * 1000}\r\n\r\n"
        ).encode()
        + b"\x00" * 1024
    )
    await writer.drain()
    try:
        status, body = await _status(reader)
    finally:
        await _close(writer)
    assert status == 413
    assert error_of(body)["error"] == "body.too-large"


async def test_streamed_oversized_envelope_is_413_early(small: RelayWorld) -> None:
    """A signed chunked body growing past the limit is answered 413 long before it ends."""
    reader, writer = await _raw(small)
    # Signed, so the headers verify and the body is read (an unsigned one is refused unread).
    signed = SIGN(SCHOOL, small.endpoint(LA, "envelopes"), b"never sent", ENVELOPE)
    lines = "".join(f"{name}: {value}\r\n" for name, value in signed.items())
    writer.write(
        (
            f"POST /relay/v1/mailboxes/{LA}/envelopes HTTP/1.1\r\nHost: x\r\n"
            f"{lines}Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
    )
    piece, total, sent = b"\x00" * 65536, 64 * 1024 * 1024, 0

    async def stream() -> None:
        nonlocal sent
        with contextlib.suppress(ConnectionError):
            while sent < total:
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                sent += len(piece)

    streaming = asyncio.create_task(stream())
    try:
        status, _ = await _status(reader)
    finally:
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming
        await _close(writer)
    assert status == 413
    assert sent < total
