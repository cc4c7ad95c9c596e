"""Property tests: whatever a peer sends in the headers, only PeerAuthError comes out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.peerauth import PeerAuthError
from exchange.peerauth.structured import parse_dictionary
from tests.peerauth import sign, verify

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
