"""Envelope format v1: seal, open and verify, sans-I/O and streaming (docs/envelope.md)."""

from exchange.envelope.errors import (
    EnvelopeError,
    FormatError,
    NotRecipientError,
    OpenError,
    SealError,
    SenderError,
)
from exchange.envelope.format import DEFAULT_CHUNK_SIZE, MAX_RECIPIENTS, Header, Slot
from exchange.envelope.opening import (
    OpenedEnvelope,
    Opener,
    SenderKeys,
    VerifiedEnvelope,
    Verifier,
    open_envelope,
    verify_envelope,
)
from exchange.envelope.seal import Recipient, SealedEnvelope, Sealer, seal

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_RECIPIENTS",
    "EnvelopeError",
    "FormatError",
    "Header",
    "NotRecipientError",
    "OpenError",
    "OpenedEnvelope",
    "Opener",
    "Recipient",
    "SealError",
    "SealedEnvelope",
    "Sealer",
    "SenderError",
    "SenderKeys",
    "Slot",
    "VerifiedEnvelope",
    "Verifier",
    "open_envelope",
    "seal",
    "verify_envelope",
]
