"""Thin aiohttp helpers around the sans-I/O core: verify, read, answer an error.

The server side rebuilds the request's URL from the node's configured public ``origin``
(never from the Host header, so a request signed for another node cannot be replayed here;
docs/protocol.md §4) and verifies the headers first (:func:`~exchange.peerauth.verify_headers`:
signature, key, time and replay), before it reads a byte of the body. Only then is the body
read, with the size limit enforced while reading, hashed as it arrives and compared with the
signed Content-Digest at the end (:func:`signed_upload`, which spools it to an unnamed
temporary file, and :func:`verify_aiohttp_request`, which keeps it in memory for small
bodies). An unsigned or wrongly signed request therefore costs no memory beyond its headers,
however large a body it declares. The client side needs no helper beyond
:func:`~exchange.peerauth.sign_request`, with two cautions: pass the URL to aiohttp as
``yarl.URL(url, encoded=True)`` so it goes on the wire exactly as signed, and pass the
Content-Type to ``sign_request`` yourself, because aiohttp adds one to a bytes body otherwise
and an uncovered Content-Type is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

from exchange.keys.directory import Directory
from exchange.peerauth.digest import BodyHasher
from exchange.peerauth.errors import (
    BodyTooLargeError,
    ClockSkewError,
    MalformedRequestError,
    NotAuthenticatedError,
    PeerAuthError,
    ReplayError,
    UploadsBusyError,
)
from exchange.peerauth.replay import ReplayCache
from exchange.peerauth.signatures import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_SKEW,
    LABEL,
    SignedHeaders,
    VerifiedPeer,
    verify_headers,
)
from exchange.peerauth.uploads import UploadLimits
from exchange.spool import Handoff, Spool

_CHUNK: Final = 64 * 1024
#: A body up to this size stays in memory; a larger one rolls over to an unnamed file.
SPOOL_IN_MEMORY: Final = 64 * 1024
#: Bytes gathered before one write to the spool file, which runs off the event loop.
_WRITE_BATCH: Final = 1024 * 1024

#: ``async (keyid, nonce, created, now) -> already seen?``; records the pair otherwise.
AsyncReplayCheck = Callable[[str, str, int, int], Awaitable[bool]]

#: Given the authenticated sender, returns what checks the body as it arrives: called with
#: every piece, in order, from a worker thread; what it raises refuses the upload, once the
#: body has matched its signed Content-Digest.
BodyCheck = Callable[[VerifiedPeer], Callable[[bytes], None]]


def request_headers(request: web.Request) -> dict[str, str]:
    """Return the request's headers by lower-case name, repeated lines joined with ", "."""
    joined: dict[str, str] = {}
    for name, value in request.headers.items():
        lower = name.lower()
        joined[lower] = f"{joined[lower]}, {value}" if lower in joined else value
    return joined


def _too_large(max_body: int) -> BodyTooLargeError:
    return BodyTooLargeError("body.too-large", f"the request body is longer than {max_body} bytes")


def _incomplete() -> MalformedRequestError:
    return MalformedRequestError(
        "body.incomplete", "the connection ended before the request body was complete"
    )


async def read_body(request: web.Request, max_body: int) -> bytes:
    """Read the body, refusing (413) as soon as it is longer than ``max_body`` bytes."""
    if request.content_length is not None and request.content_length > max_body:
        raise _too_large(max_body)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        total += len(chunk)
        if total > max_body:
            raise _too_large(max_body)
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_hashed(
    request: web.Request, max_body: int, hasher: BodyHasher, write: Callable[[list[bytes]], None]
) -> int:
    """Read the body in pieces, hand batches to ``write``; check the digest at the end.

    Returns the body's length. A body longer than ``max_body`` is refused (413) as soon as
    it is, a connection that ends early is refused (400), and a body that does not match the
    signed Content-Digest is refused (401) once it has all arrived. Each batch of about
    1 MiB is hashed and written in a worker thread while the next one is read (one batch in
    flight, in order), so neither hashing nor writing holds up the event loop or the network.
    """
    total = 0
    batch: list[bytes] = []
    batched = 0
    handoff = Handoff()

    def job(pieces: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            for piece in pieces:
                hasher.update(piece)
            write(pieces)

        return run

    try:
        try:
            async for chunk in request.content.iter_any():
                total += len(chunk)
                if total > max_body:
                    raise _too_large(max_body)
                batch.append(chunk)
                batched += len(chunk)
                if batched >= _WRITE_BATCH:
                    await handoff.run(job(batch))
                    batch, batched = [], 0
        except (ConnectionError, web.RequestPayloadError):
            raise _incomplete() from None
        await handoff.run(job(batch))
        await handoff.wait()
    except BaseException:
        # Never leave a write running into a spool that is about to be closed.
        await handoff.settle()
        raise
    hasher.check()
    return total


@dataclass
class SignedBody:
    """A request whose signature and body verified: its sender, and its body in a spool.

    The body is in a :class:`~exchange.spool.Spool`: in memory up to
    :data:`SPOOL_IN_MEMORY` bytes, beyond that in a file that has no name on disk (so a
    kill or a refusal leaves nothing behind) in the folder given to :func:`signed_upload`,
    from where it can be given its final name (:meth:`~exchange.spool.Spool.publish`). The
    spool is closed when the :func:`signed_upload` block ends.
    """

    peer: VerifiedPeer
    length: int
    body: Spool

    async def read(self) -> bytes:
        """Return the whole body (at most the ``max_body`` it was read with).

        For small bodies (receipts, JSON requests): a large one stays in its spool.
        """
        if self.body.in_memory:
            return self.body.read(self.length)
        return await asyncio.to_thread(self.body.read, self.length)


@contextlib.asynccontextmanager
async def signed_upload(
    request: web.Request,
    *,
    origin: str,
    directory: Directory,
    now: int,
    replay: AsyncReplayCheck,
    max_body: int,
    spool: Path | None,
    uploads: UploadLimits | None = None,
    max_skew: int = DEFAULT_MAX_SKEW,
    check: BodyCheck | None = None,
) -> AsyncIterator[SignedBody]:
    """Verify a peer request's headers, then spool and check its body; yield both.

    In order: one of ``uploads``' total places is taken (503 with ``Retry-After`` if none is
    free); the headers are verified and the nonce recorded through ``replay``, the store's
    asynchronous check (every refusal here is before a byte of the body is read); one of the
    signer's places is taken (503); the body is read into a spool in the folder ``spool``
    while it is hashed, and compared with the signed Content-Digest. With ``check``, each
    piece is also handed, as it is written, to what ``check(peer)`` returns (the envelope
    verified while it streams, so it is never read again); what that raises refuses the
    upload once the body has matched its Content-Digest. The places
    are held and the spool kept until the block ends, so a body being handled counts as in
    flight.
    """
    if not origin or origin.endswith("/") or "://" not in origin:
        raise ValueError("origin must be a scheme and authority such as 'https://node.example'")
    limits = uploads or UploadLimits(total=1 << 30, per_peer=1 << 30)
    with limits.any_upload():
        signed = await _verified_headers(
            request,
            origin=origin,
            directory=directory,
            now=now,
            replay=replay,
            max_body=max_body,
            max_skew=max_skew,
        )
        with (
            limits.upload_from(signed.peer.org_id),
            Spool(spool, in_memory=SPOOL_IN_MEMORY) as spooled,
        ):
            checked = None if check is None else _Checked(spooled, check(signed.peer))
            write = spooled.writelines if checked is None else checked.write
            length = await _read_hashed(request, max_body, signed.digest.hasher(), write)
            if checked is not None:
                checked.verdict()
            yield SignedBody(signed.peer, length, spooled)


class _Checked:
    """A batch writer that spools each batch, then hands it to ``feed`` in one piece.

    One piece per batch (about 1 MiB), not one per network read: the envelope reader
    gathers a chunk of up to 1 MiB, and fewer, larger pieces cost it fewer copies. What
    ``feed`` raises is kept, feeding stops, and :meth:`verdict` raises it once the body has
    all arrived and matched its signed Content-Digest: a body altered on the way is refused
    as such (401), whatever it does to the envelope.
    """

    def __init__(self, spooled: Spool, feed: Callable[[bytes], None]) -> None:
        self._spooled = spooled
        self._feed = feed
        self._refusal: Exception | None = None

    def write(self, batch: list[bytes]) -> None:
        self._spooled.writelines(batch)
        if self._refusal is None:
            try:
                self._feed(batch[0] if len(batch) == 1 else b"".join(batch))
            except Exception as exc:  # noqa: BLE001 - kept, and raised by verdict()
                self._refusal = exc

    def verdict(self) -> None:
        if self._refusal is not None:
            raise self._refusal


async def _verified_headers(
    request: web.Request,
    *,
    origin: str,
    directory: Directory,
    now: int,
    replay: AsyncReplayCheck,
    max_body: int,
    max_skew: int,
) -> SignedHeaders:
    pending: list[tuple[str, str, int, int]] = []
    signed = verify_headers(
        method=request.method,
        url=origin + request.raw_path,
        headers=request_headers(request),
        directory=directory,
        now=now,
        replay=_Deferred(pending),
        content_length=request.content_length,
        max_skew=max_skew,
        max_body=max_body,
    )
    for key, nonce, created, at in pending:
        if await replay(key, nonce, created, at):
            raise ReplayError
    return signed


class _Deferred:
    """A replay cache that only notes the pair; the asynchronous check runs right after."""

    def __init__(self, pending: list[tuple[str, str, int, int]]) -> None:
        self.pending = pending

    def seen_or_record(self, key: str, nonce: str, created: int, now: int) -> bool:
        self.pending.append((key, nonce, created, now))
        return False


async def verify_aiohttp_request(
    request: web.Request,
    *,
    origin: str,
    directory: Directory,
    replay: ReplayCache,
    now: int,
    max_skew: int = DEFAULT_MAX_SKEW,
    max_body: int = DEFAULT_MAX_BODY,
) -> tuple[VerifiedPeer, bytes]:
    """Authenticate an aiohttp request; return the sender and the body it signed.

    ``origin`` is this node's public origin as peers address it, such as
    ``https://node.example.org``, without a trailing slash. The headers are verified before
    the body is read; the body is kept in memory, so use this for small bodies and
    :func:`signed_upload` for large ones.
    """
    if not origin or origin.endswith("/") or "://" not in origin:
        raise ValueError("origin must be a scheme and authority such as 'https://node.example'")
    signed = verify_headers(
        method=request.method,
        url=origin + request.raw_path,
        headers=request_headers(request),
        directory=directory,
        now=now,
        replay=replay,
        content_length=request.content_length,
        max_skew=max_skew,
        max_body=max_body,
    )
    chunks: list[bytes] = []
    await _read_hashed(request, max_body, signed.digest.hasher(), chunks.extend)
    return signed.peer, b"".join(chunks)


def error_response(error: PeerAuthError) -> web.Response:
    """Return the HTTP answer to ``error``: its status and rule, and its plain message.

    A refusal because of a clock (:class:`~exchange.peerauth.errors.ClockSkewError`) also
    carries ``"problem": "signature.time"``; with the answer's ``Date`` (the receiver's
    clock) the sender can tell how far off the clocks are, and tries again later.
    """
    headers: dict[str, str] = {}
    doc = {"error": error.rule, "message": str(error)}
    if isinstance(error, ClockSkewError):
        doc["problem"] = error.problem
    if isinstance(error, NotAuthenticatedError):
        # RFC 9110 §15.5.2 requires a challenge with every 401. RFC 9421 registers no
        # authentication scheme, so the profile names its own: the label a signature needs.
        headers["WWW-Authenticate"] = f'Signature label="{LABEL}"'
    if isinstance(error, UploadsBusyError):
        headers["Retry-After"] = str(error.retry_after)
    return web.json_response(doc, status=error.status, headers=headers)
