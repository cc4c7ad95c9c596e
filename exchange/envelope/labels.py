"""Domain-separation labels of envelope format v1 (docs/envelope.md §2).

Each label ends in NUL so that no label is a prefix of another and none is valid signed-note
text; each signature, KDF input and hashed statement in the format starts with one.
"""

from __future__ import annotations

from typing import Final

L_HEADER_SIG: Final = b"exchange/v1/header-sig\x00"
L_TRAILER: Final = b"exchange/v1/trailer\x00"
L_WRAP: Final = b"exchange/v1/hpke-wrap\x00"
L_PAYLOAD_KEY: Final = b"exchange/v1/payload-key\x00"
L_COMMITMENT: Final = b"exchange/v1/key-commitment\x00"
L_INNER: Final = b"exchange/v1/inner\x00"
