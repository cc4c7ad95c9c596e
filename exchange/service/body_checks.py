"""Checks that a stored envelope body is still the envelope it was (local damage).

A body is verified when it is sealed or received; on disk it can still be changed (a bad
sector, a restore gone wrong, a person). Before the node sends one of its own bodies it
verifies it again: a damaged body is never sent (the receiver would refuse it, and the
sender would read that as the receiver's refusal). The body is recorded as damaged
(:meth:`exchange.store.base.Store.mark_damaged`) and logged by digest only.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable, Iterator
from typing import Final

from exchange.envelope import FormatError, Opener, OpenError, SenderError, Verifier
from exchange.logs import get_logger
from exchange.service.context import PIECE, ServiceContext
from exchange.service.errors import ServiceError
from exchange.service.tenants import Tenant
from exchange.store.blobs import ThreadReader

log = get_logger("exchange.store")

#: What the sender's sent view says of an envelope whose stored copy is damaged.
LOCAL_DAMAGE: Final = (
    "the stored copy of this envelope is damaged on this node (local damage), so it was not "
    "sent; send the record again"
)


class BodyDamagedError(Exception):
    """A stored body no longer opens or verifies (it was verified when stored)."""


def open_body(context: ServiceContext, tenant: Tenant, body: ThreadReader, created: int) -> bytes:
    """Decrypt a stored ``body`` with ``tenant``'s keys, checking everything again.

    The body was verified when it was stored; a body altered since is refused
    (:class:`BodyDamagedError`), never released. A missing body raises ``FileNotFoundError``.
    """
    opener = Opener(context.directory, tenant.keys, now=max(context.now(), created))
    pieces: list[bytes] = []
    try:
        for block in body.blocks(PIECE):
            pieces += opener.feed_pieces(block)
        opener.finish_opened()
    except SenderError as exc:
        # The sender's key is no longer trusted: not damage, a refusal to release.
        raise ServiceError(f"the stored envelope could not be opened: {exc}", status=500) from None
    except (FormatError, OpenError):
        raise BodyDamagedError from None
    return b"".join(pieces)


def body_verifies(
    context: ServiceContext, digest: bytes, blocks: Iterable[bytes | memoryview], created: int
) -> bool:
    """Return whether a body's ``blocks`` still verify as the envelope ``digest``.

    Nothing is decrypted.

    A sender key no longer trusted is not damage: the bytes may be intact; that refusal is
    the receiver's to make.
    """
    verifier = Verifier(context.directory, now=max(context.now(), created))
    try:
        for block in blocks:
            verifier.feed(block)
        verified = verifier.finish()
    except SenderError:
        return True
    except OpenError:
        return False
    return verified.digest == digest


async def own_body_intact(
    context: ServiceContext, digest: bytes, body: bytes | ThreadReader, created: int
) -> bytes | None:
    """Check one of the node's own bodies (its envelope ``created`` then) before it is sent.

    ``body`` is the body's bytes (a small one, already read) or its reader, read in pieces
    in a worker thread. Returns the SHA-256 of the body as read (what a request's
    Content-Digest names, so a body is read once for both), or None if it may not be sent;
    a damaged one is recorded as such. The outbox worker asks only about a body not yet
    recorded as damaged (it reads that with the envelope's row).
    """
    running = hashlib.sha256()
    if isinstance(body, bytes):
        view = memoryview(body)
        blocks = (view[start : start + PIECE] for start in range(0, len(view), PIECE))
        intact = body_verifies(context, digest, blocks, created)
        running.update(body)
    else:
        reader = body

        def hashed() -> Iterator[bytes]:
            for block in reader.blocks(PIECE):
                running.update(block)
                yield block

        intact = await asyncio.to_thread(body_verifies, context, digest, hashed(), created)
    if intact:
        return running.digest()
    await context.store.mark_damaged(digest, context.clock())
    log.error("outbox.damaged", digest=digest.hex(), outcome="body-damaged")
    return None
