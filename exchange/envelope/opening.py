"""Verifying and opening envelopes (docs/envelope.md §7).

:class:`Verifier` performs every check that needs no private key: structure, sender and key
validity in the directory, both signatures, the ciphertext hash; it yields the envelope's
digest. Relays and ``exchange inspect`` use it. :class:`Opener` adds the recipient's checks
and decryption. Both are sans-I/O: ``feed`` bytes, then ``finish``.

Plaintext returned by :meth:`Opener.feed` is **quarantined**: it must not be shown, stored
as final or acted upon until :meth:`Opener.finish` returns, because the trailer signature
and the inner block are checked only at the end. :func:`open_envelope` and
``exchange.files.open_to_file`` do this for callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from exchange.envelope.errors import NotRecipientError, OpenError, SenderError
from exchange.envelope.format import MAX_CLOCK_SKEW, Header, Slot
from exchange.envelope.labels import L_HEADER_SIG
from exchange.envelope.payload import PayloadCipher, check_inner
from exchange.envelope.reader import ChunkRead, EnvelopeReader, HeaderRead, TrailerRead
from exchange.envelope.wrap import unwrap_content_key
from exchange.keys.errors import KeyLookupError
from exchange.keys.ids import KeyId, OrgId
from exchange.keys.keypairs import BadSignatureError, OrgKeyPair, SigningPublicKey

_SENDER_RULES = {
    "unknown-organisation": "sender.known",
    "unknown-key": "sender.known",
    "revoked": "sender.key-revoked",
    "not-valid": "sender.key-valid",
}


class SenderKeys(Protocol):
    """What a verifier needs from the directory (``exchange.keys.directory.Directory`` has it)."""

    def signing_key_for(self, org_id: OrgId, key_id: KeyId, at: int) -> SigningPublicKey:
        """Return the sender's signing key valid at ``at``, or raise ``KeyLookupError``."""
        ...


@dataclass(frozen=True, slots=True)
class VerifiedEnvelope:
    """Public facts about an envelope whose signatures verified. No content."""

    header: Header
    digest: bytes
    envelope_length: int
    chunk_count: int


@dataclass(frozen=True, slots=True)
class OpenedEnvelope:
    """What a recipient learns on opening, beside the content itself."""

    verified: VerifiedEnvelope
    content_length: int


class Verifier:
    """Checks an envelope's structure and signatures without any private key."""

    def __init__(self, directory: SenderKeys, *, now: int) -> None:
        self._directory = directory
        self._now = now
        self._reader = EnvelopeReader()
        self._header: Header | None = None
        self._header_hash = b""
        self._sender_key: SigningPublicKey | None = None
        self._length = 0
        self._result: VerifiedEnvelope | None = None
        self._failed = False

    @property
    def header(self) -> Header | None:
        """The header, once it has been read and its signature verified."""
        return self._header

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Consume envelope bytes; return quarantined plaintext (always empty here)."""
        return b"".join(self.feed_pieces(data))

    def feed_pieces(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Like :meth:`feed`, but return the quarantined plaintext as pieces, unjoined."""
        self._check_usable()
        self._length += len(data)
        out: list[bytes] = []
        try:
            self._reader.receive(data)
            # One event at a time, so the header is checked before the next item is parsed.
            while (event := self._reader.next_event()) is not None:
                plaintext = self._handle(event)
                if plaintext:
                    out.append(plaintext)
        except BaseException:
            self._failed = True
            raise
        return out

    def _check_usable(self) -> None:
        # Like h11's ERROR state: after any failure the reader is dead, so a caller that
        # ignores an exception and feeds on can never reach a successful finish.
        if self._failed:
            raise RuntimeError("this envelope reader already failed; start a new one")

    def finish(self) -> VerifiedEnvelope:
        """Declare the end of input and return the verified facts."""
        self._check_usable()
        try:
            self._reader.close()
        except BaseException:
            self._failed = True
            raise
        if self._result is None:  # pragma: no cover - close() raised already
            raise OpenError
        return self._result

    def _handle(self, event: HeaderRead | ChunkRead | TrailerRead) -> bytes:
        if isinstance(event, HeaderRead):
            self._on_header(event)
            return b""
        if isinstance(event, ChunkRead):
            return self._on_chunk(event)
        self._on_trailer(event)
        return b""

    def _on_header(self, event: HeaderRead) -> None:
        header = event.header
        short = header.sender_key.hex()[:16]
        if header.created > self._now + MAX_CLOCK_SKEW:
            raise SenderError(
                "created.not-future",
                f"the envelope from {header.sender} claims a creation time "
                f"{header.created - self._now} s in the future",
            )
        try:
            key = self._directory.signing_key_for(header.sender, header.sender_key, header.created)
        except KeyLookupError as exc:
            rule = _SENDER_RULES.get(exc.reason, "sender.known")
            raise SenderError(rule, f"{header.sender} with signing key {short}…: {exc}") from None
        try:
            key.verify(L_HEADER_SIG + event.header_hash, event.header_sig)
        except BadSignatureError:
            raise OpenError from None  # rule sig.header
        self._header = header
        self._header_hash = event.header_hash
        self._sender_key = key

    def _on_chunk(self, event: ChunkRead) -> bytes:
        del event  # a verifier only needs the hash, which the reader keeps
        return b""

    def _on_trailer(self, event: TrailerRead) -> None:
        assert self._header is not None
        assert self._sender_key is not None
        try:
            self._sender_key.verify(event.statement, event.trailer.final_sig)
        except BadSignatureError:
            raise OpenError from None  # rule sig.trailer
        self._result = VerifiedEnvelope(
            header=self._header,
            digest=event.digest,
            envelope_length=self._length,
            chunk_count=event.trailer.chunk_count,
        )


class Opener(Verifier):
    """Verifies and decrypts an envelope addressed to one of the reader's key pairs.

    ``keys`` are the reader's key generations (all of one organisation, newest first is not
    required): the slot is chosen by organisation id and key id, never by trial decryption.
    """

    def __init__(self, directory: SenderKeys, keys: Sequence[OrgKeyPair], *, now: int) -> None:
        super().__init__(directory, now=now)
        if not keys:
            raise ValueError("keys must name at least one key pair")
        self._keys = {(k.org_id, k.encryption.public.key_id): k for k in keys}
        self._orgs = sorted({k.org_id for k in keys})
        self._cipher: PayloadCipher | None = None
        self._content_length = 0

    def __repr__(self) -> str:
        return f"Opener(orgs={self._orgs})"

    def _on_header(self, event: HeaderRead) -> None:
        super()._on_header(event)
        header = event.header
        slot, pair = self._pick_slot(header)
        content_key = unwrap_content_key(header, slot, pair.encryption)
        self._cipher = PayloadCipher(content_key, event.header_hash)

    def _pick_slot(self, header: Header) -> tuple[Slot, OrgKeyPair]:
        addressed = [s for s in header.slots if s.recipient in self._orgs]
        if not addressed:
            raise NotRecipientError(f"the envelope is not addressed to {', '.join(self._orgs)}")
        for slot in addressed:
            pair = self._keys.get((slot.recipient, slot.recipient_key))
            if pair is not None:
                return slot, pair
        slot = addressed[0]
        raise NotRecipientError(
            f"the envelope is addressed to {slot.recipient} under encryption key "
            f"{slot.recipient_key.hex()[:16]}…, which none of the given keys matches"
        )

    def _on_chunk(self, event: ChunkRead) -> bytes:
        assert self._cipher is not None
        plaintext = self._cipher.open(event.index, event.ciphertext, final=event.final)
        if event.final:
            # The final chunk comes after every data chunk, so the content's length and
            # hash are complete: check the inner block now (spec §7 step 12 order).
            check_inner(plaintext, self._header_hash, self._content_length)
            return b""
        self._content_length += len(plaintext)
        return plaintext

    @property
    def payload_cipher(self) -> PayloadCipher | None:
        """The chunk cipher, once the header verified and the slot unwrapped (else None).

        For a reader that goes back to single chunks of an envelope it has opened in full
        (reading a stored body's plaintext at an offset): each chunk it opens again is
        authenticated under its own index, as in the first reading.
        """
        return self._cipher

    def finish_opened(self) -> OpenedEnvelope:
        """Declare the end of input; return what was verified. Releases the quarantine."""
        verified = self.finish()
        return OpenedEnvelope(
            verified=verified,
            content_length=self._content_length,
        )


def open_envelope(
    data: bytes, directory: SenderKeys, keys: Sequence[OrgKeyPair], *, now: int
) -> tuple[bytes, OpenedEnvelope]:
    """Open an envelope held in memory; return the content only if every check passed."""
    opener = Opener(directory, keys, now=now)
    quarantine = opener.feed(data)
    opened = opener.finish_opened()
    return quarantine, opened


def verify_envelope(data: bytes, directory: SenderKeys, *, now: int) -> VerifiedEnvelope:
    """Verify an envelope held in memory without opening it."""
    verifier = Verifier(directory, now=now)
    verifier.feed(data)
    return verifier.finish()
