"""Per-recipient wrapping of the content key (docs/envelope.md §5 step 3, §7 step 11).

The HPKE ``info`` binds the envelope id and both parties' ids and key ids, so a slot copied
from another envelope, or relabelled for another recipient, never unwraps.
"""

from __future__ import annotations

import hmac

from exchange.envelope.errors import OpenError
from exchange.envelope.format import Header, Slot, encode_str8
from exchange.envelope.hpke import UnwrapError, open_base
from exchange.envelope.labels import L_WRAP
from exchange.envelope.payload import key_commitment
from exchange.keys.keypairs import EncryptionKey


def wrap_info(
    envelope_id: bytes, sender: str, sender_key: bytes, recipient: str, recipient_key: bytes
) -> bytes:
    """Return the HPKE ``info`` for one slot."""
    return (
        L_WRAP
        + envelope_id
        + encode_str8(sender)
        + sender_key
        + encode_str8(recipient)
        + recipient_key
    )


def unwrap_content_key(header: Header, slot: Slot, key: EncryptionKey) -> bytes:
    """Unwrap and check the content key, or raise the opaque :class:`OpenError`.

    Rules wrap.unwrap and key.commitment: the commitment comparison is constant-time.
    """
    info = wrap_info(
        header.envelope_id, header.sender, header.sender_key, slot.recipient, slot.recipient_key
    )
    try:
        content_key = open_base(key.to_cryptography(), info, slot.enc, slot.wrapped)
    except UnwrapError:
        raise OpenError from None
    if not hmac.compare_digest(key_commitment(content_key), header.commitment):
        raise OpenError
    return content_key
