"""Signing and verifying node-to-node HTTP requests (RFC 9421 with Ed25519; docs/protocol.md).

This is the sans-I/O core: it takes a method, a URL, a header mapping and the body bytes, and
returns headers to add (:func:`sign_request`) or the authenticated sender
(:func:`verify_request`; :func:`verify_headers` checks everything but the body, so that a
receiver verifies the signature before it reads a byte of the body). The RFC 9421
signature base is built by the ``http-message-signatures`` library, so the bytes are the
standard ones, not only self-consistent; the Ed25519 operations stay with
:mod:`exchange.keys.keypairs` (libsodium's strict verification). Everything the profile adds
on top of the RFC is checked here, before the library sees the request: header sizes, the
Content-Digest, the label, the parameters, the covered components, the clock skew and the
key's validity in the directory. The nonce is recorded only after the signature verified,
so a forger cannot fill the replay cache.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureAlgorithm,
    HTTPSignatureKeyResolver,
)

from exchange.keys.directory import Directory
from exchange.keys.errors import KeyLookupError
from exchange.keys.ids import KEY_ID_LEN, KeyId, OrgId, parse_org_id
from exchange.keys.keypairs import BadSignatureError, OrgKeyPair, SigningKey, SigningPublicKey
from exchange.peerauth.digest import (
    MAX_CONTENT_DIGEST_LEN,
    BodyDigest,
    ContentDigest,
    content_digest,
    parse_content_digest,
)
from exchange.peerauth.errors import (
    OPAQUE_SIGNATURE_FAILURE,
    BodyTooLargeError,
    ClockSkewError,
    MalformedRequestError,
    NotAuthenticatedError,
    ReplayError,
    UnknownSignerError,
)
from exchange.peerauth.replay import ReplayCache
from exchange.peerauth.structured import parse_dictionary

# --- the profile (docs/protocol.md) ---------------------------------------------------------

#: The Signature-Input / Signature dictionary label of the profile's signature [label].
LABEL: Final = "exch"
#: The signed ``tag`` parameter: domain separation from every other use of RFC 9421 with the
#: same key (RFC 9421 §2.3, §7.2.6) [params.tag].
TAG: Final = "exchange/v1/peer-request"
#: The only signature algorithm (RFC 9421 §3.3.6) [params.alg].
ALG: Final = "ed25519"
#: Components every signature must cover [components.required].
REQUIRED_COMPONENTS: Final = ("@method", "@target-uri", "content-digest")
#: Covered whenever the request has the header, so the body's meaning cannot be changed.
CONDITIONAL_COMPONENTS: Final = ("content-type",)
_ALLOWED_PARAMS: Final = frozenset({"created", "keyid", "nonce", "tag", "alg"})
_REQUIRED_PARAMS: Final = ("created", "keyid", "nonce", "tag")

# --- limits ---------------------------------------------------------------------------------

#: Default clock skew accepted on ``created``, in seconds, as for envelopes
#: (exchange.envelope.format.MAX_CLOCK_SKEW).
DEFAULT_MAX_SKEW: Final = 300
#: Default largest body. A sealed envelope is the largest thing peers send; 64 MiB covers a
#: child-protection file with scanned attachments. Receivers may pass their own limit.
DEFAULT_MAX_BODY: Final = 64 * 1024 * 1024
#: Our own Signature-Input is about 250 characters; 2 KiB leaves room for a second label an
#: intermediary may add, and no more.
MAX_SIGNATURE_INPUT_LEN: Final = 2048
#: One Ed25519 signature serializes to 94 characters with its label; 1 KiB allows a few.
MAX_SIGNATURE_HEADER_LEN: Final = 1024
MAX_CONTENT_DIGEST_HEADER_LEN: Final = MAX_CONTENT_DIGEST_LEN
#: Any other header value, and the URL: aiohttp's own default line limit is 8190 bytes.
MAX_FIELD_LEN: Final = 8190
MAX_URL_LEN: Final = 8190
#: aiohttp refuses more than 128 header lines by default; we refuse the same.
MAX_HEADER_COUNT: Final = 128
#: Labels in one Signature-Input or Signature dictionary.
MAX_LABELS: Final = 4
#: Components covered by one signature: the profile needs 4, the RFC examples use up to 10.
MAX_COVERED_COMPONENTS: Final = 16
#: Nonce bytes: at least 128 bits of randomness (RFC 9421 §7.2.2 leaves this to the
#: profile), at most 48 bytes so the encoded form stays short.
MIN_NONCE_BYTES: Final = 16
MAX_NONCE_BYTES: Final = 48
DEFAULT_NONCE_BYTES: Final = 24
_SIGNATURE_LEN: Final = 64

_NONCE_RE: Final = re.compile(r"[A-Za-z0-9_-]{22,64}")
_KEYID_RE: Final = re.compile(r"(?P<org>[^/]{1,64})/(?P<kid>[0-9a-f]{64})")
_METHOD_RE: Final = re.compile(r"[A-Z]{1,20}")
_SAFE_TOKEN_RE: Final = re.compile(r"[a-z0-9@*_.-]{1,32}")
# Visible ASCII, space and tab: what an HTTP field value that we parse may contain.
_FIELD_VALUE_RE: Final = re.compile(r"[\t\x20-\x7e]*")
_SIGNED_HEADERS: Final = ("content-digest", "signature-input", "signature")
#: What :func:`_plain_signature` writes out itself: an http(s) URL with a lower-case host,
#: a port without a leading zero, a path of unreserved characters, ``:``, ``@`` and ``%XX``, no
#: user, query or fragment; a string parameter without ``"`` or ``\``; a header value of
#: visible ASCII with inner spaces.
_PLAIN_URL_RE: Final = re.compile(
    r"https?://[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?(?::[1-9][0-9]{0,4})?"
    r"/(?:[A-Za-z0-9._~/:@-]|%[0-9A-F]{2})*"
)
#: 9999-12-31T23:59:59Z, the last second :class:`datetime.datetime` holds.
_LAST_DATETIME: Final = 253_402_300_799
_PLAIN_SF_STRING_RE: Final = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
#: The header fields a plain request's signature may cover.
_PLAIN_FIELDS: Final = frozenset({"content-type", "content-digest"})
_PLAIN_FIELD_RE: Final = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


@dataclass(frozen=True, slots=True)
class VerifiedPeer:
    """The authenticated sender of a request: its organisation, key, and signed metadata."""

    org_id: OrgId
    key_id: KeyId
    created: int
    nonce: str


def keyid_text(org_id: OrgId, key_id: bytes) -> str:
    """Return the ``keyid`` parameter for a key: ``<org id>/<64 lower-case hex digits>``."""
    if len(key_id) != KEY_ID_LEN:
        raise ValueError(f"key_id must be {KEY_ID_LEN} bytes")
    return f"{parse_org_id(org_id, field='key_org')}/{key_id.hex()}"


def _safe(value: object) -> str:
    """Return ``value`` for an error message if it is a short plain token, else a marker."""
    if isinstance(value, str) and _SAFE_TOKEN_RE.fullmatch(value):
        return repr(value)
    return "(a value not shown)"


# --- the library adapters -------------------------------------------------------------------


class _Ed25519(HTTPSignatureAlgorithm):
    """RFC 9421 ``ed25519`` done by :mod:`exchange.keys.keypairs`: keys never leave that module."""

    algorithm_id = ALG

    def __init__(self, public_key: Any = None, private_key: Any = None) -> None:
        if not isinstance(public_key, SigningPublicKey) or private_key is not None:
            # The signer side uses prepare/apply and never asks for an algorithm object.
            raise HTTPMessageSignaturesException("only verification with a SigningPublicKey")
        self._public = public_key

    def sign(self, message: bytes) -> bytes:  # noqa: ARG002 - the library's interface
        raise HTTPMessageSignaturesException(
            "signing is done with exchange.keys.keypairs.SigningKey"
        )

    def verify(self, signature: bytes, message: bytes) -> None:
        self._public.verify(message, signature)


class _OneKey(HTTPSignatureKeyResolver):
    """Resolves exactly the keyid already looked up in the directory, and nothing else."""

    def __init__(self, keyid: str, public: SigningPublicKey) -> None:
        self._keyid = keyid
        self._public = public

    def resolve_public_key(self, key_id: str) -> SigningPublicKey | None:
        return self._public if key_id == self._keyid else None

    def resolve_private_key(self, key_id: str) -> None:  # noqa: ARG002 - the interface
        raise HTTPMessageSignaturesException("no private keys are resolved")


class _Verifier(HTTPMessageVerifier):
    """The library's verifier, with its wall-clock checks replaced by ours (injected clock)."""

    def validate_created_and_expires(
        self,
        sig_input: Any,  # noqa: ARG002 - the library's interface
        max_age: Any = None,  # noqa: ARG002 - the library's interface
    ) -> None:
        # created is checked against the caller's ``now`` before the library runs, and the
        # profile refuses ``expires``; the library's own check would read the system clock.
        return


@dataclass
class _Message:
    """The request shape the library reads: method, absolute URL and a header mapping."""

    method: str
    url: str
    headers: dict[str, str]


# --- signing --------------------------------------------------------------------------------


def _check_common(
    method: str, url: str, headers: Mapping[str, str], body: bytes | BodyDigest
) -> None:
    if not isinstance(method, str) or _METHOD_RE.fullmatch(method) is None:
        raise ValueError("method must be an upper-case HTTP method such as 'POST'")
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL_LEN:
        raise ValueError(f"url must be an absolute URL of at most {MAX_URL_LEN} characters")
    if not isinstance(body, bytes | BodyDigest):
        raise TypeError("body must be bytes or a BodyDigest")
    if not isinstance(headers, Mapping):
        raise TypeError("headers must be a mapping of header names to values")


def sign_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | BodyDigest,
    key: SigningKey,
    key_org: OrgId,
    now: int,
    nonce: bytes | None = None,
) -> dict[str, str]:
    """Sign a request; return the headers to add: Content-Digest, Signature-Input, Signature.

    ``url`` is the absolute, already percent-encoded URL the request is sent to, exactly as
    it goes on the wire; ``headers`` are the other headers the request will carry (a
    ``Content-Type`` among them is covered). ``body`` is the body's bytes, or the
    :class:`~exchange.peerauth.digest.BodyDigest` of a body streamed afterwards (the same
    headers result). ``now`` (unix seconds) becomes ``created``; ``nonce`` defaults to fresh
    random bytes and must be 16 to 48 bytes if given.
    """
    _check_common(method, url, headers, body)
    if not isinstance(key, SigningKey):
        raise TypeError("key must be an exchange.keys.keypairs.SigningKey")
    if type(now) is not int or now < 0:
        raise ValueError("now must be a non-negative integer (unix seconds)")
    if nonce is None:
        nonce = secrets.token_bytes(DEFAULT_NONCE_BYTES)
    if not isinstance(nonce, bytes) or not MIN_NONCE_BYTES <= len(nonce) <= MAX_NONCE_BYTES:
        raise ValueError(f"nonce must be {MIN_NONCE_BYTES} to {MAX_NONCE_BYTES} random bytes")
    keyid = keyid_text(key_org, key.public.key_id)
    lowered = [name.lower() for name in headers]
    if len(set(lowered)) != len(lowered):
        raise ValueError("headers must not repeat a name in different cases")
    for name in _SIGNED_HEADERS:
        if name in lowered:
            raise ValueError(f"headers must not already contain {name} (sign_request adds it)")
    nonce_text = base64.urlsafe_b64encode(nonce).decode("ascii").rstrip("=")
    request: dict[str, Any] = {
        "method": method, "url": url, "headers": headers, "body": body, "key": key,
        "keyid": keyid, "now": now, "nonce": nonce_text,
    }  # fmt: skip
    return _plain_signature(**request) or _library_signature(**request)


def _library_signature(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | BodyDigest,
    key: SigningKey,
    keyid: str,
    now: int,
    nonce: str,
) -> dict[str, str]:
    """Sign with the library building the signature base: any request it can carry."""
    lowered = {name.lower() for name in headers}
    covered = [REQUIRED_COMPONENTS[0], REQUIRED_COMPONENTS[1]]
    covered += [name for name in CONDITIONAL_COMPONENTS if name in lowered]
    covered.append("content-digest")
    fields = dict(headers)
    if isinstance(body, BodyDigest):
        fields["Content-Digest"] = body.header()
    message = _Message(method, url, fields)
    signer = HTTPMessageSigner(signature_algorithm=_Ed25519)
    try:
        prepared = signer.prepare(
            message,
            key_id=keyid,
            created=datetime.fromtimestamp(now, tz=UTC),
            nonce=nonce,
            label=LABEL,
            tag=TAG,
            include_alg=True,
            covered_component_ids=covered,
            body=body if isinstance(body, bytes) else None,
            use_existing_digest=isinstance(body, BodyDigest),
        )
        signer.apply(message, prepared, key.sign(prepared.signature_base))
    except HTTPMessageSignaturesException as exc:
        # Raised for a URL or a covered header value the signature base cannot carry.
        raise ValueError(f"the request cannot be signed: {exc}") from None
    added = {name.lower(): value for name, value in message.headers.items()}
    return {
        "Content-Digest": added["content-digest"],
        "Signature-Input": added["signature-input"],
        "Signature": added["signature"],
    }


def _plain_signature(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | BodyDigest,
    key: SigningKey,
    keyid: str,
    now: int,
    nonce: str,
) -> dict[str, str] | None:
    """Sign a plain request with the signature base written out here; None if not plain.

    The profile's own requests (a POST of an envelope or receipt to a peer's URL) are plain:
    an absolute URL with a path and no user, query or fragment, string parameters that need
    no escaping, and a Content-Type, if any, of visible ASCII. For those the RFC 9421 base
    is fixed text (§2.5), and writing it out costs a fraction of the library's general
    serialiser, which checks and escapes character by character. The bytes are the same:
    tests/peerauth compares the two for generated requests. Anything else goes to the
    library (:func:`_library_signature`).
    """
    if _PLAIN_URL_RE.fullmatch(url) is None or _PLAIN_SF_STRING_RE.fullmatch(keyid) is None:
        return None
    if now > _LAST_DATETIME:
        return None  # the library's way with a time Python's datetime cannot hold
    content_type: str | None = None
    for name, value in headers.items():
        if name.lower() != "content-type":
            continue
        if _PLAIN_FIELD_RE.fullmatch(value) is None:
            return None
        content_type = value
    digest = body.header() if isinstance(body, BodyDigest) else content_digest(body)
    lines = [f'"@method": {method}', f'"@target-uri": {url}']
    components = '"@method" "@target-uri"'
    if content_type is not None:
        lines.append(f'"content-type": {content_type}')
        components += ' "content-type"'
    lines.append(f'"content-digest": {digest}')
    params = (
        f'({components} "content-digest");created={now};keyid="{keyid}";alg="{ALG}";'
        f'nonce="{nonce}";tag="{TAG}"'
    )
    lines.append(f'"@signature-params": {params}')
    signature = key.sign("\n".join(lines).encode("ascii"))
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{LABEL}={params}",
        "Signature": f"{LABEL}=:{base64.b64encode(signature).decode('ascii')}:",
    }


# --- verifying ------------------------------------------------------------------------------


def _collect_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return the headers by lower-case name, refusing too many, repeats and long values."""
    if len(headers) > MAX_HEADER_COUNT:
        raise MalformedRequestError(
            "headers.count", f"the request has more than {MAX_HEADER_COUNT} headers"
        )
    limits = {
        "signature-input": MAX_SIGNATURE_INPUT_LEN,
        "signature": MAX_SIGNATURE_HEADER_LEN,
        "content-digest": MAX_CONTENT_DIGEST_HEADER_LEN,
    }
    collected: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("headers must map strings to strings")
        lower = name.lower()
        if lower in collected:
            raise MalformedRequestError(
                "headers.repeated", f"the request repeats the header {_safe(lower)}"
            )
        limit = limits.get(lower, MAX_FIELD_LEN)
        if len(value) > limit:
            title = lower.title() if lower in limits else _safe(lower)
            raise MalformedRequestError(
                f"{lower if lower in limits else 'header'}.too-long",
                f"the header {title} is longer than {limit} characters",
            )
        collected[lower] = value
    for lower in limits:
        if lower in collected and _FIELD_VALUE_RE.fullmatch(collected[lower]) is None:
            raise MalformedRequestError(
                f"{lower}.syntax",
                f"the {lower.title()} header contains characters other than visible ASCII",
            )
    return collected


def _parse_dictionary(value: str, header: str) -> dict[str, Any]:
    try:
        parsed = parse_dictionary(value)
    except ValueError:
        raise MalformedRequestError(
            f"{header.lower()}.syntax",
            f"the {header} header is not a Structured Field Dictionary (RFC 8941 §3.2)",
        ) from None
    if len(parsed) > MAX_LABELS:
        raise MalformedRequestError(
            f"{header.lower()}.labels", f"the {header} header has more than {MAX_LABELS} labels"
        )
    return parsed


@dataclass(frozen=True)
class _Params:
    components: tuple[str, ...]
    created: int
    keyid: str
    nonce: str
    signature: bytes
    #: Every parameter of the signature, in the order the Signature-Input gave them.
    params: dict[str, Any]


def _read_signature(fields: Mapping[str, str]) -> _Params:
    """Parse the profile's signature out of Signature-Input and Signature, or raise."""
    for header in ("Signature-Input", "Signature"):
        if header.lower() not in fields:
            raise NotAuthenticatedError(
                f"{header.lower()}.missing",
                f"the request has no {header} header: it is not signed",
                hint="the sender must sign node-to-node requests (docs/protocol.md)",
            )
    inputs = _parse_dictionary(fields["signature-input"], "Signature-Input")
    signatures = _parse_dictionary(fields["signature"], "Signature")
    if LABEL not in inputs or LABEL not in signatures:
        raise NotAuthenticatedError(
            "label.missing",
            f"the Signature-Input and Signature headers have no signature labelled {LABEL!r}",
        )
    members, params = inputs[LABEL]
    if not isinstance(members, list):
        raise MalformedRequestError(
            "signature-input.syntax", f"the Signature-Input member {LABEL!r} is not an inner list"
        )
    raw_signature, signature_params = signatures[LABEL]
    if not isinstance(raw_signature, bytes) or signature_params:
        raise MalformedRequestError(
            "signature.syntax",
            f"the Signature member {LABEL!r} is not a byte sequence without parameters",
        )
    components = _read_components(members)
    _check_params(params)
    return _Params(
        components, params["created"], params["keyid"], params["nonce"], raw_signature, params
    )


def _read_components(members: list[Any]) -> tuple[str, ...]:
    if len(members) > MAX_COVERED_COMPONENTS:
        raise MalformedRequestError(
            "components.count",
            f"the Signature-Input covers more than {MAX_COVERED_COMPONENTS} components",
        )
    components: list[str] = []
    for item, item_params in members:
        # Component parameters (sf, key, bs, req, tr) select other values than the plain
        # field; the profile needs none, and refusing them keeps one meaning per name.
        if not isinstance(item, str) or item_params:
            raise MalformedRequestError(
                "components.syntax",
                "the Signature-Input covers a component that is not a plain string "
                "without parameters",
            )
        if item in components:
            raise MalformedRequestError(
                "components.repeated",
                f"the Signature-Input covers the component {_safe(item)} twice",
            )
        components.append(item)
    return tuple(components)


def _check_params(params: dict[str, Any]) -> None:
    for name in params:
        if name not in _ALLOWED_PARAMS:
            raise MalformedRequestError(
                "params.unknown",
                f"the Signature-Input parameter {_safe(name)} is not allowed by the profile "
                "(allowed: created, keyid, nonce, tag, alg)",
            )
    for name in _REQUIRED_PARAMS:
        if name not in params:
            raise MalformedRequestError(
                f"params.{name}", f"the Signature-Input has no {name} parameter"
            )
    if type(params["created"]) is not int or params["created"] < 0:
        raise MalformedRequestError(
            "params.created", "the Signature-Input created parameter is not a non-negative integer"
        )
    for name in ("keyid", "nonce", "tag", "alg"):
        if name in params and not isinstance(params[name], str):
            raise MalformedRequestError(
                f"params.{name}", f"the Signature-Input {name} parameter is not a string"
            )
    if "alg" in params and params["alg"] != ALG:
        raise MalformedRequestError(
            "params.alg", f"the Signature-Input alg parameter must be {ALG!r}"
        )
    if params["tag"] != TAG:
        raise NotAuthenticatedError(
            "params.tag",
            f"the Signature-Input tag parameter is not {TAG!r}: the signature is not for "
            "this protocol",
        )
    if _NONCE_RE.fullmatch(params["nonce"]) is None:
        raise MalformedRequestError(
            "params.nonce",
            "the Signature-Input nonce parameter must be 22 to 64 base64url characters "
            f"(at least {MIN_NONCE_BYTES} random bytes)",
        )


def _check_coverage(components: tuple[str, ...], fields: Mapping[str, str]) -> None:
    required = REQUIRED_COMPONENTS + tuple(n for n in CONDITIONAL_COMPONENTS if n in fields)
    for name in required:
        if name not in components:
            raise NotAuthenticatedError(
                "components.required",
                f"the signature does not cover {name!r}, which the profile requires",
            )


def _parse_keyid(keyid: str) -> tuple[OrgId, KeyId]:
    refusal = MalformedRequestError(
        "params.keyid",
        "the Signature-Input keyid parameter must be '<organisation id>/<64 lower-case hex "
        "digits>'",
    )
    match = _KEYID_RE.fullmatch(keyid)
    if match is None:
        raise refusal
    try:
        org_id = parse_org_id(match["org"])
    except ValueError:
        raise refusal from None
    return org_id, KeyId(bytes.fromhex(match["kid"]))


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """A request whose headers verified: its sender, and the body digest the signature covers.

    The body is still to be read: feed it to ``digest.hasher()`` as it arrives and call
    ``check()`` at the end, before anything in it is trusted.
    """

    peer: VerifiedPeer
    digest: ContentDigest


def verify_headers(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    directory: Directory,
    now: int,
    replay: ReplayCache,
    content_length: int | None,
    max_skew: int = DEFAULT_MAX_SKEW,
    max_body: int = DEFAULT_MAX_BODY,
) -> SignedHeaders:
    """Authenticate a request from its headers alone, before any of its body is read.

    Every check of :func:`verify_request` is made except the comparison of the body with
    its Content-Digest: the signature covers the Content-Digest header, so once it verifies,
    the digest is the sender's, and the body can be streamed to a temporary file while it is
    hashed (docs/protocol.md §3). ``content_length`` is the request's Content-Length, or
    None for a chunked body; a declared length over ``max_body`` is refused (413) first. The
    nonce is recorded in ``replay`` here, once the signature has verified, so a replay is
    refused before its body is read. Arguments are as for :func:`verify_request`.
    """
    _check_common(method, url, headers, b"")
    _check_limits(now, max_skew, max_body)
    if content_length is not None and content_length > max_body:
        raise BodyTooLargeError(
            "body.too-large", f"the request body is longer than {max_body} bytes"
        )
    return _verify(
        method=method,
        url=url,
        headers=headers,
        body=None,
        directory=directory,
        now=now,
        replay=replay,
        max_skew=max_skew,
    )


def verify_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    directory: Directory,
    now: int,
    replay: ReplayCache,
    max_skew: int = DEFAULT_MAX_SKEW,
    max_body: int = DEFAULT_MAX_BODY,
) -> VerifiedPeer:
    """Authenticate a received request and return its sender; raise a ``PeerAuthError``.

    ``url`` is the absolute URL of the request as this receiver is addressed: its own
    configured public origin followed by the request target exactly as received, never a
    scheme or host taken from the request's headers (docs/protocol.md §4). ``headers`` has
    one entry per header name (repeated lines joined with ``", "``). ``now`` is unix
    seconds. ``replay`` records the nonce once the signature has verified; its window must
    be at least ``max_skew``. A receiver that has not read the body yet uses
    :func:`verify_headers` instead.
    """
    _check_common(method, url, headers, body)
    _check_limits(now, max_skew, max_body)
    if len(body) > max_body:
        raise BodyTooLargeError(
            "body.too-large", f"the request body is longer than {max_body} bytes"
        )
    signed = _verify(
        method=method,
        url=url,
        headers=headers,
        body=body,
        directory=directory,
        now=now,
        replay=replay,
        max_skew=max_skew,
    )
    return signed.peer


def _check_limits(now: int, max_skew: int, max_body: int) -> None:
    if type(now) is not int or type(max_skew) is not int or max_skew < 0:
        raise ValueError("now and max_skew must be integers, max_skew not negative")
    if type(max_body) is not int or max_body < 0:
        raise ValueError("max_body must be a non-negative integer")


def _verify(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    directory: Directory,
    now: int,
    replay: ReplayCache,
    max_skew: int,
) -> SignedHeaders:
    """Make the checks of docs/protocol.md §3; compare the body's digest if it is given."""
    fields = _collect_headers(headers)
    sig = _read_signature(fields)
    if "content-digest" not in fields:
        raise MalformedRequestError(
            "content-digest.missing", "the request has no Content-Digest header"
        )
    digest = parse_content_digest(fields["content-digest"])
    if body is not None:
        hasher = digest.hasher()
        hasher.update(body)
        hasher.check()
    _check_coverage(sig.components, fields)
    if sig.created < now - max_skew:
        raise ClockSkewError(
            "created.too-old",
            f"the Signature-Input created time is more than {max_skew} seconds in the past",
            hint="check the sender's clock, or the request was held back and replayed",
        )
    if sig.created > now + max_skew:
        raise ClockSkewError(
            "created.in-future",
            f"the Signature-Input created time is more than {max_skew} seconds in the future",
            hint="check the sender's and the receiver's clocks",
        )
    if len(sig.signature) != _SIGNATURE_LEN:
        raise NotAuthenticatedError("signature.invalid", OPAQUE_SIGNATURE_FAILURE)
    org_id, key_id = _parse_keyid(sig.keyid)
    try:
        public = directory.signing_key_for(org_id, key_id, sig.created)
    except KeyLookupError as exc:
        raise UnknownSignerError(exc.reason, f"the keyid is not accepted: {exc}") from None
    _verify_signature(method, url, fields, sig, public)
    if replay.seen_or_record(sig.keyid, sig.nonce, sig.created, now):
        raise ReplayError
    return SignedHeaders(VerifiedPeer(org_id, key_id, sig.created, sig.nonce), digest)


def _verify_signature(
    method: str, url: str, fields: dict[str, str], sig: _Params, public: SigningPublicKey
) -> None:
    """Check the signature with ``public`` over the base of a plain request, or the library's.

    A plain request (see :func:`_plain_base`) has its base written out here from the
    parameters already parsed and checked; anything else has the library rebuild it.
    """
    base = _plain_base(method, url, fields, sig)
    if base is None:
        _library_verify(method, url, fields, sig, public)
        return
    try:
        public.verify(base, sig.signature)
    except BadSignatureError:
        raise NotAuthenticatedError("signature.invalid", OPAQUE_SIGNATURE_FAILURE) from None


def _plain_base(method: str, url: str, fields: dict[str, str], sig: _Params) -> bytes | None:
    """Return the RFC 9421 base of a plain signed request, or None if it is not plain.

    Plain: the URL and every covered header value as :func:`_plain_signature` writes them,
    components among the profile's own, and parameters that are integers or strings
    needing no escapes; the base is then fixed text (RFC 9421 §2.5), the same bytes the
    library builds (tests/peerauth compares them).
    """
    if _PLAIN_URL_RE.fullmatch(url) is None:
        return None
    lines = []
    for name in sig.components:
        if name == "@method":
            value = method
        elif name == "@target-uri":
            value = url
        elif name in _PLAIN_FIELDS and name in fields:
            value = fields[name]
            if _PLAIN_FIELD_RE.fullmatch(value) is None:
                return None
        else:
            return None
        lines.append(f'"{name}": {value}')
    params = "(" + " ".join(f'"{name}"' for name in sig.components) + ")"
    for name, value in sig.params.items():
        if type(value) is int and value >= 0:
            params += f";{name}={value}"
        elif isinstance(value, str) and _PLAIN_SF_STRING_RE.fullmatch(value) is not None:
            params += f';{name}="{value}"'
        else:
            return None
    lines.append(f'"@signature-params": {params}')
    return "\n".join(lines).encode("ascii")


def _library_verify(
    method: str, url: str, fields: dict[str, str], sig: _Params, public: SigningPublicKey
) -> None:
    """Have the library rebuild the signature base and check the signature with ``public``."""
    verifier = _Verifier(signature_algorithm=_Ed25519, key_resolver=_OneKey(sig.keyid, public))
    try:
        results = verifier.verify(
            _Message(method, url, dict(fields)),
            max_age=None,
            expect_tag=TAG,
            expect_label=LABEL,
            require_components=REQUIRED_COMPONENTS,
        )
    except (HTTPMessageSignaturesException, BadSignatureError, ValueError, TypeError):
        # Every failure here is the signature base not matching (a changed method, URL or
        # covered header) or the signature not verifying; one opaque message for all.
        raise NotAuthenticatedError("signature.invalid", OPAQUE_SIGNATURE_FAILURE) from None
    # The library parsed the headers again; it must have verified the same signature whose
    # parameters were checked above, or a parser difference could split the two views.
    verified = results[0].parameters if len(results) == 1 else {}
    if (
        verified.get("created") != sig.created
        or verified.get("keyid") != sig.keyid
        or verified.get("nonce") != sig.nonce
    ):
        raise NotAuthenticatedError("signature.invalid", OPAQUE_SIGNATURE_FAILURE)


def signed_post_headers(
    *, url: str, body: bytes | BodyDigest, content_type: str, pair: OrgKeyPair, now: int
) -> dict[str, str]:
    """Return every header of a signed POST of ``body`` to ``url`` as ``pair``'s organisation.

    The Content-Type is part of what is signed (docs/protocol.md §2), so it is set here
    rather than left to the HTTP client.
    """
    headers = {"Content-Type": content_type}
    headers.update(
        sign_request(
            method="POST",
            url=url,
            headers=headers,
            body=body,
            key=pair.signing,
            key_org=pair.org_id,
            now=now,
        )
    )
    return headers
