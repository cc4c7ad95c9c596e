"""A single sign-on under way, sealed for the browser to hold until the provider sends it back.

Between sending a person to their provider and the provider sending them back, the node
must remember the login's ``state``, ``nonce`` and PKCE verifier, where to go afterwards,
whether it is a step-up and the session it replaces or raises. It keeps nothing:
:func:`seal_pending` encrypts and authenticates them (AES-256-GCM, with a key of the node,
made once and kept in its store so that each of its processes holds the same one) into a
short cookie value, and :func:`open_pending` gives them back only if the value is this
node's, whole, and younger than :data:`PENDING_LIFETIME`. The provider may send the browser
back to any process of the node; a restart ends nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: How long a person may take at their provider, in seconds.
PENDING_LIFETIME: Final = 10 * 60
KEY_LEN: Final = 32
_NONCE_LEN: Final = 12
_LABEL: Final = b"exchange/v1/sso-pending\x00"
#: The longest sealed value read back (a cookie holds at most 4096 bytes anyway).
MAX_SEALED_LEN: Final = 4096


@dataclass(frozen=True)
class PendingLogin:
    """What the callback needs to finish one sign-in (secrets never shown by ``repr``)."""

    provider: str
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    verifier: str = field(repr=False)
    created: float
    #: The page to land on afterwards (a path of this node), if one was asked for.
    return_to: str | None = None
    #: A step-up of a signed-in session rather than a sign-in.
    step_up: bool = False
    #: The session the browser held when the sign-in began, which it replaces or raises.
    #: Kept here because the session cookie (``SameSite=Strict``) is not sent with the
    #: provider's redirect back, a navigation from another site.
    session_token: str | None = field(default=None, repr=False)


def seal_pending(key: bytes, pending: PendingLogin, random: Callable[[int], bytes]) -> str:
    """Return ``pending`` encrypted and authenticated under ``key``, as cookie-safe text."""
    nonce = random(_NONCE_LEN)
    data = json.dumps(asdict(pending), separators=(",", ":")).encode("utf-8")
    sealed = nonce + AESGCM(key).encrypt(nonce, data, _LABEL)
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")


def _fields(doc: object) -> PendingLogin | None:
    if not isinstance(doc, dict):
        return None
    try:
        pending = PendingLogin(**doc)
    except TypeError:
        return None
    texts: tuple[object, ...] = (pending.provider, pending.state, pending.nonce, pending.verifier)
    token: object = pending.session_token
    created: object = pending.created
    if not all(isinstance(t, str) for t in texts) or not isinstance(created, int | float):
        return None
    return pending if token is None or isinstance(token, str) else None


def open_pending(key: bytes, text: str, *, now: float) -> PendingLogin | None:
    """Return the login sealed in ``text``, or None if it is not whole, not ours, or too old."""
    if not text or len(text) > MAX_SEALED_LEN or not text.isascii():
        return None
    try:
        sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = AESGCM(key).decrypt(sealed[:_NONCE_LEN], sealed[_NONCE_LEN:], _LABEL)
        pending = _fields(json.loads(data))
    except (binascii.Error, ValueError, InvalidTag):
        return None
    if pending is None or not pending.created <= now < pending.created + PENDING_LIFETIME:
        return None
    return pending
