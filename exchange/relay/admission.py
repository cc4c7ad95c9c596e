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
from typing import Protocol

from exchange.connectors.base import MessageKind
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


class Inspection(Protocol):
    """The check of one deposit, fed its body piece by piece as it arrives.

    :meth:`feed` never raises: a deposit that cannot pass is noted, feeding it stops, and
    :meth:`finish` raises the :class:`RelayError` (so the relay's other checks, made once
    the request is complete, keep their order). Fed from a worker thread, one piece at a
    time.
    """

    def feed(self, piece: bytes) -> None:
        """Check the next piece."""
        ...

    def finish(self) -> Deposit:
        """Return the deposit's facts once every piece was fed; raise RelayError if refused."""
        ...


#: Starts the check of one deposit: ``(kind, directory, now) -> Inspection``.
Inspector = Callable[[MessageKind, Directory, int], Inspection]


def inspect_sealed(kind: MessageKind, directory: Directory, now: int) -> Inspection:
    """Check an envelope or a signed receipt with public information, as it arrives."""
    if kind == "envelope":
        return _Envelope(directory, now)
    return _Receipt(directory, now)


class _Envelope:
    """An envelope verified as it arrives (structure, sender's key, both signatures, hash)."""

    def __init__(self, directory: Directory, now: int) -> None:
        self._verifier = Verifier(directory, now=now)
        self._refusal: OpenError | None = None

    def feed(self, piece: bytes) -> None:
        if self._refusal is None:
            try:
                self._verifier.feed(piece)
            except OpenError as exc:
                self._refusal = exc

    def finish(self) -> Deposit:
        try:
            if self._refusal is not None:
                raise self._refusal
            verified = self._verifier.finish()
        except OpenError as exc:
            if exc.rule == "created.not-future":
                raise RelayError(
                    503,
                    "created.not-future: the envelope is dated in the future of the relay's "
                    "clock; deposit it again later",
                    retry_after=60,
                ) from None
            # Format and sender errors name the rule and offset; crypto failures one sentence.
            raise RelayError(422, f"the envelope was refused: {exc}") from None
        header = verified.header
        return Deposit(verified.digest, header.sender, frozenset(header.recipients))


class _Receipt:
    """A signed receipt, gathered (it is small) and checked once complete."""

    def __init__(self, directory: Directory, now: int) -> None:
        self._directory = directory
        self._now = now
        self._data = bytearray()

    def feed(self, piece: bytes) -> None:
        if len(self._data) <= MAX_SIGNED_LEN:
            self._data += piece

    def finish(self) -> Deposit:
        if len(self._data) > MAX_SIGNED_LEN:
            raise RelayError(422, "the receipt was refused: it is too long")
        return _receipt(bytes(self._data), self._directory, self._now)


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
