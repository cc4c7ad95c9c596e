"""Authentication of node-to-node HTTP requests: RFC 9421 signatures with Ed25519.

A sending node signs each request with its organisation's Ed25519 signing key over the
method, the target URI, the Content-Type and a Content-Digest (RFC 9530) of the body, with a
created time, a random nonce and a protocol tag (:func:`sign_request`). The receiving node
checks the digest, the profile's rules, the key's validity in the signed directory and the
signature, then records the nonce so the request cannot be replayed (:func:`verify_request`).
A receiver checks the headers first (:func:`verify_headers`), then hashes the body as it
reads it (:class:`BodyHasher`), so an unsigned request costs nothing beyond its headers;
:class:`UploadLimits` bounds the uploads in flight. The profile is docs/protocol.md. This
package is sans-I/O except :mod:`.aiohttp_glue`.
"""

from __future__ import annotations

from exchange.peerauth.digest import (
    BodyDigest,
    BodyHasher,
    ContentDigest,
    check_content_digest,
    content_digest,
    parse_content_digest,
)
from exchange.peerauth.errors import (
    CLOCK_PROBLEM,
    BodyTooLargeError,
    ClockSkewError,
    MalformedRequestError,
    NotAuthenticatedError,
    PeerAuthError,
    ReplayCacheFullError,
    ReplayError,
    UnknownSignerError,
    UploadsBusyError,
)
from exchange.peerauth.replay import MemoryReplayCache, ReplayCache
from exchange.peerauth.signatures import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_SKEW,
    LABEL,
    MAX_CONTENT_DIGEST_HEADER_LEN,
    MAX_FIELD_LEN,
    MAX_HEADER_COUNT,
    MAX_SIGNATURE_HEADER_LEN,
    MAX_SIGNATURE_INPUT_LEN,
    MAX_URL_LEN,
    REQUIRED_COMPONENTS,
    TAG,
    SignedHeaders,
    VerifiedPeer,
    keyid_text,
    sign_request,
    signed_post_headers,
    verify_headers,
    verify_request,
)
from exchange.peerauth.uploads import UploadLimits

__all__ = [
    "CLOCK_PROBLEM",
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_SKEW",
    "LABEL",
    "MAX_CONTENT_DIGEST_HEADER_LEN",
    "MAX_FIELD_LEN",
    "MAX_HEADER_COUNT",
    "MAX_SIGNATURE_HEADER_LEN",
    "MAX_SIGNATURE_INPUT_LEN",
    "MAX_URL_LEN",
    "REQUIRED_COMPONENTS",
    "TAG",
    "BodyDigest",
    "BodyHasher",
    "BodyTooLargeError",
    "ClockSkewError",
    "ContentDigest",
    "MalformedRequestError",
    "MemoryReplayCache",
    "NotAuthenticatedError",
    "PeerAuthError",
    "ReplayCache",
    "ReplayCacheFullError",
    "ReplayError",
    "SignedHeaders",
    "UnknownSignerError",
    "UploadLimits",
    "UploadsBusyError",
    "VerifiedPeer",
    "check_content_digest",
    "content_digest",
    "keyid_text",
    "parse_content_digest",
    "sign_request",
    "signed_post_headers",
    "verify_headers",
    "verify_request",
]
