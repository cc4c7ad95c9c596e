"""Passkeys (WebAuthn credentials) as the node keeps them, and the rules around them.

A passkey is a key pair an authenticator (a phone, a laptop's fingerprint reader, a
security key) makes for this node; the node keeps the public key, the credential's id, the
authenticator's signature counter and a name the person chose ("Work laptop"). Signing in
with one proves both factors at once: the device (something you have) unlocked by the
person's fingerprint, face or PIN (user verification, which the node requires).

The **relying party** is the node as WebAuthn names it: its ID is the host of the node's
``public_url`` and the origin the browser reports must be that URL's scheme, host and port
(WebAuthn §5.1.3 step 9, §7.2 step 13). An IP address cannot be a relying party ID (§5.1.3
step 7: an RP ID is a domain), so a node reached by address has no passkeys.

A **challenge** is 32 random bytes made for one ceremony, kept by the node for
:data:`CHALLENGE_LIFETIME` seconds, bound to the browser that asked (its session, or its
pre-sign-in cookie) and used at most once. It is looked up by a hash, so a copy of the
database holds no challenge still to be answered.

The ceremonies themselves (options and verification, with py_webauthn) are in
:mod:`exchange.auth.passkey_ceremony`.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import urlsplit

from exchange.auth.errors import PasskeyRefusedError

#: What a passkey's name may hold: a few words the person will recognise in a list.
MAX_NAME_LEN: Final = 50
#: Random bytes in a challenge: WebAuthn §13.4.3 asks for at least 16.
CHALLENGE_LEN: Final = 32
#: How long a challenge may be answered, in seconds: the browser's own prompt times out after
#: two minutes (:data:`CEREMONY_TIMEOUT_MS`), and a person may read the page first.
CHALLENGE_LIFETIME: Final = 5 * 60
#: The browser's prompt timeout the options ask for, in milliseconds.
CEREMONY_TIMEOUT_MS: Final = 120_000
#: The relying party's name the authenticator shows beside the account.
RP_NAME: Final = "Secure exchange"

_CHALLENGE_LABEL: Final = b"exchange/v1/passkey-challenge\x00"
_HANDLE_LABEL: Final = b"exchange/v1/passkey-user\x00"
_BINDING_LABEL: Final = b"exchange/v1/passkey-binding\x00"

#: What a challenge was made for: adding a passkey, or signing in (or confirming) with one.
Purpose = Literal["register", "sign-in"]


@dataclass(frozen=True)
class RelyingParty:
    """The node as WebAuthn names it: RP ID (its host) and the origin pages come from."""

    id: str
    origin: str
    name: str = RP_NAME

    @classmethod
    def from_public_url(cls, url: str) -> RelyingParty | None:
        """Return the relying party of a node's public URL, or None if it cannot be one.

        None for an IP address (not a domain, so no RP ID) and for plain ``http`` anywhere
        but ``localhost`` (browsers offer WebAuthn only to secure contexts).
        """
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        host = (parts.hostname or "").rstrip(".")
        if not host or parts.scheme not in {"https", "http"} or _is_address(host):
            return None
        if parts.scheme == "http" and host != "localhost" and not host.endswith(".localhost"):
            return None
        default = 443 if parts.scheme == "https" else 80
        netloc = host if port in {None, default} else f"{host}:{port}"
        return cls(id=host, origin=f"{parts.scheme}://{netloc}")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class NewPasskey:
    """A credential the authenticator made and the node verified, to be stored."""

    credential_id: bytes = field(repr=False)
    public_key: bytes = field(repr=False)
    sign_count: int
    transports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Passkey:
    """A stored passkey of an account: the credential and what the person sees of it."""

    id: int
    account_id: int
    user_id: str
    credential_id: bytes = field(repr=False)
    public_key: bytes = field(repr=False)
    #: The authenticator's signature counter when it was last used (0: it keeps none).
    sign_count: int
    transports: tuple[str, ...]
    name: str
    created: float
    last_used: float | None = None


@dataclass(frozen=True)
class PasskeyChallenge:
    """A challenge the node issued: for what, to which browser and person, until when."""

    key: bytes = field(repr=False)
    binding: bytes = field(repr=False)
    purpose: Purpose
    #: The person it was issued to (adding a passkey, or confirming it is them), or None for
    #: a sign-in, where any passkey of this node may answer.
    user_id: str | None
    expires: float

    def check(self, *, binding: bytes, purpose: Purpose, now: float) -> None:
        """Refuse the challenge unless it was issued to this browser, for this, and is live."""
        if self.binding != binding or self.purpose != purpose or now >= self.expires:
            raise PasskeyRefusedError("challenge")


def new_challenge(random: Callable[[int], bytes]) -> bytes:
    """Return a new challenge from the injected randomness."""
    challenge = random(CHALLENGE_LEN)
    if len(challenge) != CHALLENGE_LEN:
        raise ValueError(f"random must return {CHALLENGE_LEN} bytes")
    return challenge


def challenge_key(challenge: bytes) -> bytes:
    """Return what the store keeps a challenge under: its hash, never the challenge."""
    return hashlib.sha256(_CHALLENGE_LABEL + challenge).digest()


def browser_binding(secret: bytes) -> bytes:
    """Return what binds a challenge to a browser, from that browser's per-session secret."""
    return hashlib.sha256(_BINDING_LABEL + secret).digest()


def user_handle(user_id: str) -> bytes:
    """Return the WebAuthn user handle of an account: opaque, never the id or the address.

    WebAuthn §14.6.1: the handle must not hold personal data, as the authenticator may show
    or store it; a hash of the user id keeps every passkey of one account under one handle.
    """
    return hashlib.sha256(_HANDLE_LABEL + user_id.encode("utf-8")).digest()


def check_passkey_name(name: str) -> str:
    """Return the name with its spaces tidied, or refuse an empty or over-long one."""
    tidy = " ".join(name.split())
    if not tidy:
        raise ValueError("Enter a name for your passkey, like Work laptop")
    if len(tidy) > MAX_NAME_LEN:
        raise ValueError(f"The name of your passkey must be {MAX_NAME_LEN} characters or fewer")
    return tidy


def check_sign_count(stored: int, new: int) -> None:
    """Refuse a signature counter that did not move forward (WebAuthn §7.2 step 21).

    An authenticator that keeps no counter reports 0 every time, and that is accepted; once
    either count is above 0, the new one must be greater than the stored one, or the
    credential may have been copied to a second authenticator.
    """
    if (stored > 0 or new > 0) and new <= stored:
        raise PasskeyRefusedError("sign-count")
