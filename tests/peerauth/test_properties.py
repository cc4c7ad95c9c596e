"""Property tests: whatever a peer sends in the headers, only PeerAuthError comes out."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.peerauth import PeerAuthError
from exchange.peerauth.signatures import _library_signature, _plain_signature, keyid_text
from exchange.peerauth.structured import parse_dictionary
from tests.peerauth import BODY, CONTENT_TYPE, LA, LA_KEY, NOW, URL, sign, verify

SIGNED = sign()
NAMES = ["Signature-Input", "Signature", "Content-Digest", "Content-Type", "X-Other"]

header_values = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from('exch=():;,"@ -/*?1aZ\t'), max_size=300),
    st.sampled_from(list(SIGNED.values())),
)


@given(st.dictionaries(st.sampled_from(NAMES), header_values, max_size=5))
@settings(max_examples=400, deadline=None)
def test_arbitrary_headers_raise_only_peer_auth_errors(headers: dict[str, str]) -> None:
    """Random header sets never make verify_request raise anything but PeerAuthError."""
    try:
        verify(headers)
    except PeerAuthError:
        return
    # Only the untouched signed headers can verify.
    assert headers == SIGNED


@given(
    st.sampled_from(["Signature-Input", "Signature", "Content-Digest"]),
    st.integers(min_value=0, max_value=400),
    st.text(min_size=1, max_size=3),
)
@settings(max_examples=400, deadline=None)
def test_edited_signed_headers_are_refused(name: str, position: int, insert: str) -> None:
    """Inserting characters anywhere in a signed header is refused with a PeerAuthError."""
    value = SIGNED[name]
    position %= len(value) + 1
    edited = value[:position] + insert + value[position:]
    headers = {**SIGNED, name: edited}
    try:
        peer = verify(headers)
    except PeerAuthError:
        return
    # Only an edit that leaves the parsed structured field unchanged may pass: whitespace
    # around members, or a leading zero in an integer ("created=01702592000"). RFC 9421
    # §2.3 signs the parameters as re-serialised (RFC 8941), so such an edit is no change.
    assert parse_dictionary(edited) == parse_dictionary(value)
    assert peer.created == verify(SIGNED).created


@given(st.binary(max_size=200), st.text(alphabet="abcXYZ019-._~/?=&", max_size=30))
@settings(max_examples=100, deadline=None)
def test_round_trip_for_any_body_and_path(body: bytes, path: str) -> None:
    """Any body and any path of unreserved characters round-trips."""
    url = "https://node.example.org/" + path
    headers = sign(url=url, body=body)
    assert verify(headers, url=url, body=body).org_id == "la:356"


_PATH_CHARS = "abcXYZ019._~-/:@"


@given(
    host=st.from_regex(r"[a-z0-9](?:[a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True),
    port=st.one_of(st.none(), st.integers(min_value=1, max_value=65535)),
    path=st.lists(
        st.one_of(
            st.sampled_from(list(_PATH_CHARS)), st.from_regex(r"%[0-9A-F]{2}", fullmatch=True)
        ),
        max_size=40,
    ).map("".join),
    content_type=st.one_of(
        st.none(), st.from_regex(r"[\x21-\x7e](?:[\x20-\x7e]{0,40}[\x21-\x7e])?", fullmatch=True)
    ),
    body=st.binary(max_size=200),
    now=st.integers(min_value=0, max_value=253_402_300_799),
    nonce=st.binary(min_size=16, max_size=48),
)
@settings(max_examples=300, deadline=None)
def test_plain_requests_are_signed_with_the_librarys_bytes(
    host: str, port: int | None, path: str, content_type: str | None, body: bytes, now: int,
    nonce: bytes,
) -> None:  # fmt: skip
    """The signature written out for a plain request is the library's, byte for byte."""
    url = f"https://{host}{'' if port is None else f':{port}'}/{path}"
    headers = {} if content_type is None else {"Content-Type": content_type}
    request: dict[str, Any] = {
        "method": "POST", "url": url, "headers": headers, "body": body, "key": LA_KEY,
        "keyid": keyid_text(LA, LA_KEY.public.key_id), "now": now,
        "nonce": base64.urlsafe_b64encode(nonce).decode().rstrip("="),
    }  # fmt: skip
    plain = _plain_signature(**request)
    assert plain is not None
    assert plain == _library_signature(**request)


@given(
    host=st.from_regex(r"[a-z0-9](?:[a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True),
    path=st.text(alphabet=_PATH_CHARS, max_size=40),
    content_type=st.one_of(
        st.none(), st.from_regex(r"[\x21-\x7e](?:[\x20-\x7e]{0,40}[\x21-\x7e])?", fullmatch=True)
    ),
    body=st.binary(max_size=200),
    nonce=st.binary(min_size=16, max_size=48),
    flip=st.integers(min_value=0, max_value=1000),
)
@settings(max_examples=200, deadline=None)
def test_plain_requests_signed_by_the_library_verify_on_the_written_out_base(
    host: str, path: str, content_type: str | None, body: bytes, nonce: bytes, flip: int
) -> None:
    """The base written out for verifying is the library's: its signatures verify on it."""
    url = f"https://{host}/{path}"
    headers = {} if content_type is None else {"Content-Type": content_type}
    signed = _library_signature(
        method="POST", url=url, headers=headers, body=body, key=LA_KEY,
        keyid=keyid_text(LA, LA_KEY.public.key_id), now=NOW,
        nonce=base64.urlsafe_b64encode(nonce).decode().rstrip("="),
    )  # fmt: skip
    assert verify({**headers, **signed}, url=url, body=body).org_id == LA
    # A URL changed by one character no longer verifies.
    changed = url[: 8 + flip % (len(url) - 8)] + "0" + url[8 + flip % (len(url) - 8) :]
    with pytest.raises(PeerAuthError):
        verify({**headers, **signed}, url=changed, body=body)


def test_a_request_that_is_not_plain_is_signed_by_the_library() -> None:
    """A query, a user or an escaped parameter is left to the library's serialiser."""
    for url in (URL, "https://user@node.example.org/peer", "https://node.example.org"):
        request: dict[str, Any] = {
            "method": "POST", "url": url, "headers": CONTENT_TYPE, "body": BODY,
            "key": LA_KEY, "keyid": keyid_text(LA, LA_KEY.public.key_id), "now": NOW,
            "nonce": "A" * 22,
        }  # fmt: skip
        assert _plain_signature(**request) is None
    plain_url = {"url": "https://a.example/p"}
    assert _plain_signature(**(request | plain_url | {"keyid": 'a"b'})) is None
    assert _plain_signature(**(request | plain_url | {"now": 253_402_300_800})) is None
    assert _plain_signature(**(request | plain_url | {"headers": {"Content-Type": " x"}})) is None
    # sign_request still signs it, and the signature verifies.
    assert verify(sign(url=URL)).org_id == LA
