"""What a relay checks about a deposit before it takes it: public facts only (docs/relay.md §3).

A relay holds no private key, so it cannot open an envelope; it checks everything that
needs none. An envelope must pass :class:`exchange.envelope.Verifier` (structure, the
sender's key in the directory, both signatures, the ciphertext hash); a receipt must parse
and carry a valid signature of its receipter's key. What comes out is a :class:`Deposit`:
the digest that names the item, the organisation that must have signed the request, and the
organisations whose mailbox may hold it. Every refusal is a :class:`RelayError` with a
status and a plain sentence naming the rule, never content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from exchange.connectors.base import HeldBody, MessageKind
from exchange.envelope import OpenError, Verifier
from exchange.envelope.format import MAX_CLOCK_SKEW
from exchange.keys.directory import Directory
from exchange.keys.errors import KeyLookupError
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import BadSignatureError
from exchange.receipts import ReceiptError, parse_signed
from exchange.receipts.format import MAX_SIGNED_LEN


class RelayError(Exception):
    """A refusal the relay answers with ``status`` and a plain, content-free sentence.

    ``retry_after`` (seconds) goes with a 503 for an item dated in the future by a fast
    clock: genuine, only early, and taken when deposited again once it is due.
    """

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Deposit:
    """The public facts of an item: its name, who must deposit it, whose mailbox may hold it.

    ``digest`` is the envelope digest or the receipt digest; ``author`` the envelope's
    sender or the receipt's receipter; ``addressees`` the envelope's recipients or the
    receipt's sender (the organisation the receipt is for).
    """

    digest: bytes
    author: OrgId
    addressees: frozenset[OrgId]


#: Checks one deposit: ``(kind, body, directory, now) -> Deposit``, or raises RelayError.
#: A body that arrived large is in its spool, read in pieces (blocking: run it in a thread).
Inspector = Callable[[MessageKind, bytes | HeldBody, Directory, int], Deposit]

#: Size of each piece of a spooled deposit fed to the verifier.
_PIECE: Final = 1024 * 1024


def inspect_sealed(
    kind: MessageKind, body: bytes | HeldBody, directory: Directory, now: int
) -> Deposit:
    """Check an envelope or a signed receipt with public information; return its facts."""
    if kind == "envelope":
        return _envelope(body, directory, now)
    if not isinstance(body, bytes):
        try:
            body = body.read(MAX_SIGNED_LEN)
        except ValueError:
            raise RelayError(422, "the receipt was refused: it is too long") from None
    return _receipt(body, directory, now)


def _envelope(body: bytes | HeldBody, directory: Directory, now: int) -> Deposit:
    verifier = Verifier(directory, now=now)
    try:
        for piece in [body] if isinstance(body, bytes) else body.pieces(_PIECE):
            verifier.feed(piece)
        verified = verifier.finish()
    except OpenError as exc:
        if exc.rule == "created.not-future":
            raise RelayError(
                503,
                "created.not-future: the envelope is dated in the future of the relay's clock; "
                "deposit it again later",
                retry_after=60,
            ) from None
        # Format and sender errors name the rule and offset; crypto failures one sentence.
        raise RelayError(422, f"the envelope was refused: {exc}") from None
    header = verified.header
    return Deposit(verified.digest, header.sender, frozenset(header.recipients))


def _receipt(body: bytes, directory: Directory, now: int) -> Deposit:
    try:
        signed = parse_signed(body)
    except ReceiptError as exc:
        raise RelayError(422, f"the receipt was refused: {exc}") from None
    r = signed.receipt
    if r.time > now + MAX_CLOCK_SKEW:
        # Signed by a fast clock: refused for now only, so the sender deposits it again.
        raise RelayError(
            503,
            f"receipt.time: the receipt is dated {r.time - now} s ahead of the relay's clock; "
            "deposit it again later",
            retry_after=r.time - now - MAX_CLOCK_SKEW + 1,
        )
    try:
        public = directory.signing_key_for(r.receipter, r.receipter_key, r.time)
        public.verify(signed.statement, signed.signature)
    except KeyLookupError as exc:
        raise RelayError(422, f"the receipt was refused: {exc}") from None
    except BadSignatureError:
        raise RelayError(
            422, "the receipt was refused: its signature does not verify with the receipter's key"
        ) from None
    return Deposit(signed.digest, r.receipter, frozenset({r.sender}))
