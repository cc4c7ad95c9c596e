"""Content-Digest (RFC 9530 §2): the body's hash, which the request signature covers.

The field is a Structured Field Dictionary (RFC 8941) mapping a hash algorithm to a Byte
Sequence, for example ``sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:``. The sender
writes exactly one ``sha-256`` member; the receiver accepts ``sha-256`` and ``sha-512``,
requires ``sha-256``, refuses every other algorithm (RFC 9530 §5 lists insecure ones), and
checks every member it received against the body in constant time. The header is parsed on
its own (:func:`parse_content_digest`) so that the body can be hashed as it streams in, after
the signature over the headers has been checked (:class:`BodyHasher`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from exchange.peerauth.errors import MalformedRequestError, NotAuthenticatedError
from exchange.peerauth.structured import parse_dictionary

#: The header's longest accepted value. Both accepted members together serialize to about
#: 160 characters; the rest is room for whitespace, not for more members.
MAX_CONTENT_DIGEST_LEN: Final = 256

#: Accepted algorithms (RFC 9530 §7.2 registry names) and their hashlib names.
_HASHES: Final = {"sha-256": "sha256", "sha-512": "sha512"}
_REQUIRED: Final = "sha-256"


def content_digest(body: bytes) -> str:
    """Return the Content-Digest value the sender writes: ``sha-256=:<base64>:``."""
    if not isinstance(body, bytes):
        raise TypeError("body must be bytes")
    return BodyDigest(hashlib.sha256(body).digest()).header()


@dataclass(frozen=True, slots=True)
class BodyDigest:
    """The SHA-256 of a body too large to hand over whole, computed as it was read.

    A sender signs with it instead of the bytes (:func:`~exchange.peerauth.sign_request`),
    and streams the body afterwards; the Content-Digest written is the same.
    """

    sha256: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.sha256, bytes) or len(self.sha256) != 32:
            raise ValueError("sha256 must be the 32-byte SHA-256 of the body")

    def header(self) -> str:
        """Return the Content-Digest value: ``sha-256=:<base64>:``."""
        encoded = base64.b64encode(self.sha256).decode("ascii")
        return f"{_REQUIRED}=:{encoded}:"


@dataclass(frozen=True, slots=True)
class ContentDigest:
    """A well-formed Content-Digest: the digest of the body the sender claims, by algorithm.

    Parsing needs only the header, so a receiver can check the request's signature (which
    covers this header) before it reads a byte of the body, then hash the body as it streams
    in (:meth:`hasher`) and compare at the end.
    """

    members: Mapping[str, bytes]

    def hasher(self) -> BodyHasher:
        """Return a hasher that checks a body, fed piece by piece, against this digest."""
        return BodyHasher(self)


class BodyHasher:
    """Hashes a body as it arrives and checks it against a :class:`ContentDigest`."""

    def __init__(self, digest: ContentDigest) -> None:
        self._expected = dict(digest.members)
        self._hashes = {algorithm: hashlib.new(_HASHES[algorithm]) for algorithm in digest.members}

    def update(self, piece: bytes) -> None:
        """Hash the next ``piece`` of the body."""
        for running in self._hashes.values():
            running.update(piece)

    def check(self) -> None:
        """Raise :class:`NotAuthenticatedError` unless the body fed so far matches every member.

        A mismatch means the body is not the one the signature covers (401).
        """
        for algorithm, expected in self._expected.items():
            if not hmac.compare_digest(expected, self._hashes[algorithm].digest()):
                raise NotAuthenticatedError(
                    "content-digest.mismatch",
                    f"the Content-Digest {algorithm} member does not match the request body",
                )


def parse_content_digest(value: str) -> ContentDigest:
    """Return the digests a Content-Digest header claims; raise if it is malformed.

    A malformed value or one without ``sha-256`` raises :class:`MalformedRequestError` (400).
    """
    if len(value) > MAX_CONTENT_DIGEST_LEN:
        raise MalformedRequestError(
            "content-digest.too-long",
            f"the Content-Digest header is longer than {MAX_CONTENT_DIGEST_LEN} characters",
        )
    try:
        parsed = parse_dictionary(value)
    except ValueError:
        raise MalformedRequestError(
            "content-digest.syntax",
            "the Content-Digest header is not a Structured Field Dictionary (RFC 9530 §2)",
        ) from None
    if not parsed:
        raise MalformedRequestError(
            "content-digest.syntax", "the Content-Digest header has no digest"
        )
    digests: dict[str, bytes] = {}
    for algorithm, member in parsed.items():
        name = _HASHES.get(algorithm)
        if name is None:
            raise MalformedRequestError(
                "content-digest.algorithm",
                "the Content-Digest header uses an algorithm other than sha-256 or sha-512",
            )
        raw = member[0] if isinstance(member, tuple) else None
        if not isinstance(raw, bytes) or len(raw) != hashlib.new(name).digest_size:
            raise MalformedRequestError(
                "content-digest.syntax",
                f"the Content-Digest {algorithm} member is not a byte sequence of the "
                "digest's length",
            )
        digests[algorithm] = raw
    if _REQUIRED not in digests:
        raise MalformedRequestError(
            "content-digest.sha-256", "the Content-Digest header has no sha-256 member"
        )
    return ContentDigest(digests)


def check_content_digest(value: str, body: bytes) -> None:
    """Raise unless ``value`` is a well-formed Content-Digest that matches ``body``.

    A malformed value or one without ``sha-256`` raises :class:`MalformedRequestError`
    (400); a digest that does not match the body raises :class:`NotAuthenticatedError`
    (401), because the body is then not the one the signature covers.
    """
    hasher = parse_content_digest(value).hasher()
    hasher.update(body)
    hasher.check()
