"""The format is standard RFC 9421, not only self-consistent.

Three kinds of evidence: RFC 9421's own Ed25519 example (Appendix B.2.6, key
"test-key-ed25519") reproduced byte for byte; the profile's signature base written out by
hand from RFC 9421 §2.5 and checked against what sign_request signs; and requests crossing
between this code and the http-message-signatures library's stock signer and verifier
(which use pyca/cryptography for Ed25519, not libsodium).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import HTTPMessageSigner, HTTPMessageVerifier, MappingKeyResolver
from http_message_signatures.algorithms import ED25519

from exchange.peerauth import TAG, keyid_text
from tests.peerauth import BODY, CONTENT_TYPE, LA, LA_KEY, NOW, RFC_KEY, URL, sign, verify


@dataclass
class Message:
    """The minimal request shape the library reads."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


# RFC 9421 Appendix B.2: the test-request message.
RFC_URL = "https://example.com/foo?param=Value&Pet=dog"
RFC_HEADERS = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Digest": (
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTH"
        "WXvJwew==:"
    ),
    "Content-Length": "18",
}
RFC_COMPONENTS = ("date", "@method", "@path", "@authority", "content-type", "content-length")
RFC_CREATED = 1618884473
# Appendix B.2.6 (line wrapping of RFC 8792 undone).
RFC_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"'
)
RFC_SIGNATURE_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
RFC_SIGNATURE = (
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpB"
    "KRCw==:"
)
#: Appendix B.1.4's public key, SubjectPublicKeyInfo DER in base64.
RFC_PUBLIC_SPKI = "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs="


def _library_signer(seed: bytes, keyid: str) -> HTTPMessageSigner:
    private = Ed25519PrivateKey.from_private_bytes(seed)
    resolver = MappingKeyResolver(public_keys={}, private_keys={keyid: private})
    return HTTPMessageSigner(signature_algorithm=ED25519, key_resolver=resolver)


def test_rfc_test_key_is_the_published_one() -> None:
    """The seed taken from Appendix B.1.4's private key gives its published public key."""
    assert base64.b64decode(RFC_PUBLIC_SPKI)[12:] == RFC_KEY.public.raw


def test_rfc_b26_signature_base_and_signature() -> None:
    """The library builds Appendix B.2.6's base and our key signs it to the RFC's bytes."""
    message = Message("POST", RFC_URL, dict(RFC_HEADERS))
    signer = _library_signer(RFC_KEY.secret_bytes_for_storage(), "test-key-ed25519")
    prepared = signer.prepare(
        message,
        key_id="test-key-ed25519",
        created=datetime.fromtimestamp(RFC_CREATED, tz=UTC),
        label="sig-b26",
        include_alg=False,
        covered_component_ids=RFC_COMPONENTS,
        use_existing_digest=True,
    )
    assert prepared.signature_base == RFC_BASE.encode()
    signature = RFC_KEY.sign(prepared.signature_base)
    assert f"sig-b26=:{base64.b64encode(signature).decode()}:" == RFC_SIGNATURE
    signer.apply(message, prepared, signature)
    assert message.headers["Signature-Input"] == RFC_SIGNATURE_INPUT
    assert message.headers["Signature"] == RFC_SIGNATURE


def test_profile_signature_base_written_by_hand() -> None:
    """sign_request signs exactly the RFC 9421 §2.5 base the profile describes."""
    headers = sign(key=RFC_KEY, nonce=bytes(16))
    keyid = keyid_text(LA, RFC_KEY.public.key_id)
    params = (
        '("@method" "@target-uri" "content-type" "content-digest")'
        f';created={NOW};keyid="{keyid}";alg="ed25519";nonce="AAAAAAAAAAAAAAAAAAAAAA"'
        f';tag="{TAG}"'
    )
    base = (
        '"@method": POST\n'
        f'"@target-uri": {URL}\n'
        '"content-type": application/json\n'
        f'"content-digest": {headers["Content-Digest"]}\n'
        f'"@signature-params": {params}'
    )
    assert headers["Signature-Input"] == f"exch={params}"
    signature = base64.b64decode(headers["Signature"].removeprefix("exch=:").removesuffix(":"))
    assert signature == RFC_KEY.sign(base.encode())


def test_our_signature_verifies_with_the_library_stock_verifier() -> None:
    """The library's own verifier (pyca/cryptography Ed25519) accepts what we sign."""
    headers = sign()
    keyid = keyid_text(LA, LA_KEY.public.key_id)
    public = Ed25519PublicKey.from_public_bytes(LA_KEY.public.raw)
    resolver = MappingKeyResolver(public_keys={keyid: public}, private_keys={})
    verifier = HTTPMessageVerifier(signature_algorithm=ED25519, key_resolver=resolver)
    results = verifier.verify(
        Message("POST", URL, headers),
        max_age=None,
        expect_tag=TAG,
        require_components=("@method", "@target-uri", "content-digest"),
        body=BODY,
    )
    assert results[0].parameters["keyid"] == keyid
    assert results[0].body == BODY


def test_library_signature_verifies_with_ours() -> None:
    """A request signed by the library's stock signer with the profile's parameters verifies."""
    keyid = keyid_text(LA, LA_KEY.public.key_id)
    message = Message("POST", URL, dict(CONTENT_TYPE))
    _library_signer(LA_KEY.secret_bytes_for_storage(), keyid).sign(
        message,
        key_id=keyid,
        created=datetime.fromtimestamp(NOW, tz=UTC),
        nonce="bGlicmFyeS1ub25jZS0xMjM0NTY",
        label="exch",
        tag=TAG,
        covered_component_ids=("@method", "@target-uri", "content-type", "content-digest"),
        body=BODY,
    )
    peer = verify(message.headers)
    assert (peer.org_id, peer.key_id, peer.nonce) == (
        LA,
        LA_KEY.public.key_id,
        "bGlicmFyeS1ub25jZS0xMjM0NTY",
    )
