"""sign_request and verify_request: round trip, tampering, freshness, keys, limits, misuse."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from exchange.peerauth import (
    LABEL,
    MAX_CONTENT_DIGEST_HEADER_LEN,
    MAX_FIELD_LEN,
    MAX_HEADER_COUNT,
    MAX_SIGNATURE_HEADER_LEN,
    MAX_SIGNATURE_INPUT_LEN,
    TAG,
    BodyDigest,
    BodyTooLargeError,
    MalformedRequestError,
    MemoryReplayCache,
    NotAuthenticatedError,
    PeerAuthError,
    ReplayError,
    UnknownSignerError,
    keyid_text,
    sign_request,
)
from exchange.peerauth.errors import OPAQUE_SIGNATURE_FAILURE
from tests.peerauth import (
    BODY,
    CONTENT_TYPE,
    LA,
    LA_EXPIRED_KEY,
    LA_KEY,
    LA_NEXT_KEY,
    LA_REVOKED_KEY,
    NONCE,
    NOW,
    SCHOOL,
    SCHOOL_KEY,
    T0,
    UNLISTED,
    UNLISTED_KEY,
    URL,
    YEAR,
    sign,
    verify,
)

NONCE_TEXT = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7"


def _with(headers: dict[str, str], **changes: str) -> dict[str, str]:
    """Return ``headers`` with the given headers (underscores for dashes) replaced."""
    out = dict(headers)
    for name, value in changes.items():
        out[name.replace("_", "-").title()] = value
    return out


def _edit_input(headers: dict[str, str], old: str, new: str) -> dict[str, str]:
    value = headers["Signature-Input"]
    assert old in value
    return _with(headers, signature_input=value.replace(old, new, 1))


def _refused(
    error: type[PeerAuthError], rule: str, headers: dict[str, str], **kwargs: object
) -> PeerAuthError:
    with pytest.raises(error) as info:
        verify(headers, **kwargs)  # type: ignore[arg-type]
    assert info.value.rule == rule
    return info.value


# --- round trip -----------------------------------------------------------------------------


def test_round_trip_returns_the_sender() -> None:
    """A signed request verifies and names the signing organisation, key, time and nonce."""
    peer = verify(sign())
    assert peer.org_id == LA
    assert peer.key_id == LA_KEY.public.key_id
    assert peer.created == NOW
    assert peer.nonce == NONCE_TEXT


def test_sign_returns_exactly_the_three_headers() -> None:
    """sign_request returns Content-Digest, Signature-Input and Signature, nothing else."""
    added = sign_request(
        method="POST", url=URL, headers={}, body=BODY, key=LA_KEY, key_org=LA, now=NOW
    )
    assert sorted(added) == ["Content-Digest", "Signature", "Signature-Input"]


def test_a_body_signed_by_its_digest_signs_exactly_as_its_bytes() -> None:
    """A body streamed from a file is signed by its SHA-256: the same three headers."""
    digest = BodyDigest(hashlib.sha256(BODY).digest())
    by_digest = sign_request(
        method="POST", url=URL, headers=CONTENT_TYPE, body=digest, key=LA_KEY, key_org=LA,
        now=NOW, nonce=NONCE,
    )  # fmt: skip
    assert {**CONTENT_TYPE, **by_digest} == sign()
    assert verify({**CONTENT_TYPE, **by_digest}).org_id == LA
    with pytest.raises(ValueError, match="32-byte"):
        BodyDigest(b"short")


def test_signature_input_has_the_profile_shape() -> None:
    """The Signature-Input covers the profile's components with all its parameters."""
    value = sign()["Signature-Input"]
    keyid = keyid_text(LA, LA_KEY.public.key_id)
    assert value == (
        f'{LABEL}=("@method" "@target-uri" "content-type" "content-digest");created={NOW}'
        f';keyid="{keyid}";alg="ed25519";nonce="ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7";tag="{TAG}"'
    )


def test_content_type_is_covered_only_when_present() -> None:
    """Without a Content-Type the signature covers only the required components."""
    headers = sign(headers={})
    assert '("@method" "@target-uri" "content-digest")' in headers["Signature-Input"]
    assert verify(headers).org_id == LA


def test_random_nonces_differ() -> None:
    """Without a given nonce each signature gets a fresh random one."""
    first = sign(nonce=None)["Signature-Input"]
    second = sign(nonce=None)["Signature-Input"]
    assert first != second


def test_empty_body_round_trips() -> None:
    """A GET with an empty body is signed and verified like any other request."""
    headers = sign(method="GET", headers={}, body=b"")
    assert verify(headers, method="GET", body=b"").org_id == LA


def test_header_names_are_case_insensitive() -> None:
    """Header names may arrive in any case."""
    headers = {name.lower(): value for name, value in sign().items()}
    assert verify(headers).org_id == LA


def test_a_second_key_of_the_organisation_verifies() -> None:
    """Any valid key generation of the organisation can sign (key rotation)."""
    assert verify(sign(key=LA_NEXT_KEY)).key_id == LA_NEXT_KEY.public.key_id


def test_other_labels_are_ignored() -> None:
    """A second signature under another label (an intermediary's) does not disturb ours."""
    headers = sign()
    headers["Signature-Input"] += ', proxy=("@method");created=1;keyid="p"'
    headers["Signature"] += ", proxy=:AAAA:"
    assert verify(headers).org_id == LA


# --- tampering --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("method", "PUT"),
        ("url", "https://node.example.org/v1/inbound/receipts?from=la%3A356&n=2"),
        ("url", "https://node.example.org/v1/inbound/envelopes?from=la%3A356&n=3"),
        ("url", "https://node.example.org/v1/inbound/envelopes"),
        ("url", "https://other-node.example.org/v1/inbound/envelopes?from=la%3A356&n=2"),
        ("url", "https://node.example.org:8443/v1/inbound/envelopes?from=la%3A356&n=2"),
        ("url", "http://node.example.org/v1/inbound/envelopes?from=la%3A356&n=2"),
    ],
)
def test_changed_request_line_is_refused(field: str, value: str) -> None:
    """Changing the method, path, query, authority or scheme breaks the signature."""
    error = _refused(NotAuthenticatedError, "signature.invalid", sign(), **{field: value})
    assert str(error) == f"{OPAQUE_SIGNATURE_FAILURE} [signature.invalid]"


def test_changed_body_is_refused_by_the_digest() -> None:
    """A different body no longer matches the Content-Digest."""
    _refused(NotAuthenticatedError, "content-digest.mismatch", sign(), body=BODY + b" ")


def test_replaced_body_and_digest_is_refused_by_the_signature() -> None:
    """A new body with its own correct digest breaks the signature, which covers the digest."""
    other = sign(body=b"other body")["Content-Digest"]
    headers = _with(sign(), content_digest=other)
    _refused(NotAuthenticatedError, "signature.invalid", headers, body=b"other body")


def test_changed_content_type_is_refused() -> None:
    """The Content-Type is covered, so changing it breaks the signature."""
    headers = _with(sign(), content_type="application/x-www-form-urlencoded")
    _refused(NotAuthenticatedError, "signature.invalid", headers)


def test_flipped_signature_bit_is_refused() -> None:
    """A signature with one bit changed does not verify."""
    headers = sign()
    value = headers["Signature"]
    raw = bytearray(base64.b64decode(value[len(LABEL) + 2 : -1]))
    raw[10] ^= 1
    encoded = base64.b64encode(bytes(raw)).decode()
    _refused(
        NotAuthenticatedError, "signature.invalid", _with(headers, signature=f"{LABEL}=:{encoded}:")
    )


def test_short_signature_is_refused() -> None:
    """A byte sequence that is not 64 bytes long is not a signature."""
    _refused(NotAuthenticatedError, "signature.invalid", _with(sign(), signature=f"{LABEL}=:AAAA:"))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (f"created={NOW}", f"created={NOW - 1}"),
        ('nonce="ZGVm', 'nonce="ZGVn'),
        (';alg="ed25519"', ""),
        ('"@target-uri" "content-type"', '"content-type" "@target-uri"'),
    ],
)
def test_changed_signature_parameters_are_refused(old: str, new: str) -> None:
    """Every parameter and the component order are in the signature base."""
    _refused(NotAuthenticatedError, "signature.invalid", _edit_input(sign(), old, new))


def test_keyid_of_another_key_is_refused() -> None:
    """Naming another valid key of the same organisation breaks the signature."""
    old = LA_KEY.public.key_id.hex()
    headers = _edit_input(sign(), old, LA_NEXT_KEY.public.key_id.hex())
    _refused(NotAuthenticatedError, "signature.invalid", headers)


def test_keyid_of_another_organisation_is_refused() -> None:
    """Claiming the signature for another organisation fails (the key is not theirs)."""
    headers = _edit_input(sign(), f'keyid="{LA}/', f'keyid="{SCHOOL}/')
    error = _refused(UnknownSignerError, "keyid.unknown-key", headers)
    assert error.reason == "unknown-key"


def test_changed_tag_is_refused() -> None:
    """A signature made for another protocol (another tag) is not accepted."""
    headers = _edit_input(sign(), f'tag="{TAG}"', 'tag="other/v1"')
    _refused(NotAuthenticatedError, "params.tag", headers)


def test_renamed_label_is_refused() -> None:
    """A signature under another label is not the profile's signature."""
    headers = sign()
    headers = _with(
        headers,
        signature_input=headers["Signature-Input"].replace(f"{LABEL}=", "sig1=", 1),
        signature=headers["Signature"].replace(f"{LABEL}=", "sig1=", 1),
    )
    _refused(NotAuthenticatedError, "label.missing", headers)


# --- coverage ------------------------------------------------------------------------------


@pytest.mark.parametrize("component", ['"@method" ', '"@target-uri" ', ' "content-digest"'])
def test_signature_not_covering_a_required_component_is_refused(component: str) -> None:
    """A signature must cover @method, @target-uri and content-digest."""
    headers = _edit_input(sign(), component, "")
    _refused(NotAuthenticatedError, "components.required", headers)


def test_uncovered_content_type_is_refused() -> None:
    """A Content-Type the signature does not cover could change the body's meaning."""
    headers = {**sign(headers={}), "Content-Type": "application/json"}
    _refused(NotAuthenticatedError, "components.required", headers)


def test_component_with_parameters_is_refused() -> None:
    """Component parameters (sf, key, bs, req) are not part of the profile."""
    headers = _edit_input(sign(), '"content-digest"', '"content-digest";sf')
    _refused(MalformedRequestError, "components.syntax", headers)


def test_repeated_component_is_refused() -> None:
    """A component covered twice is refused."""
    headers = _edit_input(sign(), '"@method"', '"@method" "@method"')
    _refused(MalformedRequestError, "components.repeated", headers)


# --- missing and malformed headers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error", "rule"),
    [
        ("Signature", NotAuthenticatedError, "signature.missing"),
        ("Signature-Input", NotAuthenticatedError, "signature-input.missing"),
        ("Content-Digest", MalformedRequestError, "content-digest.missing"),
    ],
)
def test_missing_header_is_refused(name: str, error: type[PeerAuthError], rule: str) -> None:
    """Each of the three signing headers is required."""
    headers = sign()
    del headers[name]
    assert _refused(error, rule, headers).status == (401 if error is NotAuthenticatedError else 400)


@pytest.mark.parametrize(
    ("header", "value", "rule"),
    [
        ("Signature-Input", "exch=(", "signature-input.syntax"),
        ("Signature", "exch=:not base64:", "signature.syntax"),
        ("Signature", 'exch=("a")', "signature.syntax"),
        ("Signature", "exch=:AAAA:;x=1", "signature.syntax"),
        ("Signature-Input", 'exch="@method"', "signature-input.syntax"),
        ("Signature-Input", "exch=(), exch=()", "signature-input.syntax"),
        ("Signature-Input", "a=(), b=(), c=(), d=(), e=()", "signature-input.labels"),
        ("Signature-Input", 'exch=("é")', "signature-input.syntax"),
    ],
)
def test_malformed_signature_headers_are_refused(header: str, value: str, rule: str) -> None:
    """Structured-field syntax errors, duplicates and too many labels are 400s."""
    headers = {**sign(), header: value}
    assert _refused(MalformedRequestError, rule, headers).status == 400


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        (f"created={NOW}", 'created="x"', "params.created"),
        (f"created={NOW}", "created=-1", "params.created"),
        (f";created={NOW}", "", "params.created"),
        (f'nonce="{NONCE_TEXT}"', 'nonce="short"', "params.nonce"),
        (f'nonce="{NONCE_TEXT}"', 'nonce="%s"' % ("!" * 22), "params.nonce"),
        (f'nonce="{NONCE_TEXT}"', "nonce=1", "params.nonce"),
        (f'nonce="{NONCE_TEXT}"', "nonce=?1", "params.nonce"),
        (f'tag="{TAG}"', "tag=1", "params.tag"),
        (f';tag="{TAG}"', "", "params.tag"),
        (f'keyid="{LA}', 'keyid=1;x="', "params.unknown"),
        (';alg="ed25519"', ';alg="rsa-pss-sha512"', "params.alg"),
        (';alg="ed25519"', ";expires=1", "params.unknown"),
        (';keyid="la:356/', ';keyid="la:356:', "params.keyid"),
        (';keyid="la:356/', ';keyid="LA/', "params.keyid"),
        (f";created={NOW}", f";created={NOW};created={NOW}", "signature-input.syntax"),
    ],
)
def test_malformed_parameters_are_refused(old: str, new: str, rule: str) -> None:
    """Each parameter must be present with its type and form; unknown ones are refused."""
    _refused(MalformedRequestError, rule, _edit_input(sign(), old, new))


def test_repeated_header_names_are_refused() -> None:
    """Two headers whose names differ only in case are ambiguous."""
    headers = {**sign(), "signature": sign()["Signature"]}
    _refused(MalformedRequestError, "headers.repeated", headers)


def test_messages_do_not_echo_values() -> None:
    """An error message names the parameter, not the value the peer sent."""
    headers = _edit_input(sign(), ';alg="ed25519"', ';alg="SECRET-VALUE"')
    assert "SECRET" not in str(_refused(MalformedRequestError, "params.alg", headers))
    headers = _edit_input(sign(), ';alg="ed25519"', ";secret-parameter-name-longer-than-a-token=1")
    assert "secret" not in str(_refused(MalformedRequestError, "params.unknown", headers))


# --- limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "limit", "rule"),
    [
        ("Signature-Input", MAX_SIGNATURE_INPUT_LEN, "signature-input.too-long"),
        ("Signature", MAX_SIGNATURE_HEADER_LEN, "signature.too-long"),
        ("Content-Digest", MAX_CONTENT_DIGEST_HEADER_LEN, "content-digest.too-long"),
        ("Content-Type", MAX_FIELD_LEN, "header.too-long"),
        ("X-Other", MAX_FIELD_LEN, "header.too-long"),
    ],
)
def test_oversized_header_is_refused(name: str, limit: int, rule: str) -> None:
    """Every header has a length limit, checked before it is parsed."""
    headers = {**sign(), name: "a" * (limit + 1)}
    error = _refused(MalformedRequestError, rule, headers)
    assert "aaaa" not in str(error)


def test_too_many_headers_are_refused() -> None:
    """A request with more headers than the limit is refused."""
    headers = {**sign(), **{f"X-H{i}": "1" for i in range(MAX_HEADER_COUNT)}}
    _refused(MalformedRequestError, "headers.count", headers)


def test_too_many_components_are_refused() -> None:
    """A signature covering more components than the limit is refused."""
    extra = " ".join(f'"x-{i}"' for i in range(20))
    headers = _edit_input(sign(), '"@method"', f'"@method" {extra}')
    _refused(MalformedRequestError, "components.count", headers)


def test_oversized_body_is_refused_with_413() -> None:
    """A body over max_body is refused before anything else is looked at."""
    error = _refused(BodyTooLargeError, "body.too-large", {}, max_body=len(BODY) - 1)
    assert error.status == 413


def test_body_at_the_limit_is_accepted() -> None:
    """A body exactly max_body long is accepted."""
    assert verify(sign(), max_body=len(BODY)).org_id == LA


# --- freshness and replay -------------------------------------------------------------------


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_created_within_skew_is_accepted(offset: int) -> None:
    """The created time may be up to max_skew seconds before or after the receiver's clock."""
    assert verify(sign(), now=NOW - offset).created == NOW


def test_created_too_old_is_refused() -> None:
    """A signature older than max_skew seconds is stale."""
    _refused(NotAuthenticatedError, "created.too-old", sign(), now=NOW + 301)


def test_created_in_the_future_is_refused() -> None:
    """A signature dated more than max_skew seconds ahead is refused."""
    _refused(NotAuthenticatedError, "created.in-future", sign(), now=NOW - 301)


def test_max_skew_is_configurable() -> None:
    """A smaller max_skew narrows the window."""
    _refused(NotAuthenticatedError, "created.too-old", sign(), now=NOW + 11, max_skew=10)


def test_replayed_request_is_refused() -> None:
    """The same request a second time is a replay, refused with 401."""
    cache = MemoryReplayCache(600)
    headers = sign()
    verify(headers, replay=cache)
    error = _refused(ReplayError, "nonce.replayed", headers, replay=cache, now=NOW + 5)
    assert error.status == 401


def test_failed_request_does_not_consume_its_nonce() -> None:
    """A request that fails verification records nothing, so a forger cannot burn nonces."""
    cache = MemoryReplayCache(600)
    headers = sign()
    with pytest.raises(NotAuthenticatedError):
        verify(headers, replay=cache, method="PUT")
    assert len(cache) == 0
    assert verify(headers, replay=cache).org_id == LA


def test_same_nonce_from_another_key_is_not_a_replay() -> None:
    """Nonces are remembered per keyid."""
    cache = MemoryReplayCache(600)
    verify(sign(), replay=cache)
    assert verify(sign(key=LA_NEXT_KEY), replay=cache).key_id == LA_NEXT_KEY.public.key_id


# --- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "org", "reason"),
    [
        (UNLISTED_KEY, UNLISTED, "unknown-organisation"),
        (UNLISTED_KEY, LA, "unknown-key"),
        (SCHOOL_KEY, LA, "unknown-key"),
        (LA_REVOKED_KEY, LA, "revoked"),
        (LA_EXPIRED_KEY, LA, "not-valid"),
    ],
)
def test_unusable_key_is_refused(key: object, org: str, reason: str) -> None:
    """Unknown organisations and keys, revoked and expired keys are refused with 401."""
    error = _refused(UnknownSignerError, f"keyid.{reason}", sign(key=key, org=org))  # type: ignore[arg-type]
    assert isinstance(error, UnknownSignerError)
    assert error.reason == reason
    assert error.status == 401


def test_key_validity_is_judged_at_created() -> None:
    """A key is judged at the signed created time (here the school key's last second)."""
    end = T0 + YEAR
    assert verify(sign(key=SCHOOL_KEY, org=SCHOOL, now=end - 1), now=end).org_id == SCHOOL
    _refused(
        UnknownSignerError, "keyid.not-valid", sign(key=SCHOOL_KEY, org=SCHOOL, now=end), now=end
    )


# --- caller misuse ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "post"}, "method"),
        ({"url": ""}, "url"),
        ({"key_org": "not an org"}, "key_org"),
        ({"nonce": b"short"}, "nonce"),
        ({"now": -1}, "now"),
        ({"headers": {"Signature": "x"}}, "signature"),
        ({"headers": {"content-type": "a", "Content-Type": "b"}}, "repeat"),
        ({"url": "not a url"}, "cannot be signed"),
    ],
)
def test_sign_request_misuse_raises_value_error(change: dict[str, object], message: str) -> None:
    """Bad arguments to sign_request raise ValueError naming the argument."""
    arguments: dict[str, object] = {
        "method": "POST",
        "url": URL,
        "headers": CONTENT_TYPE,
        "body": BODY,
        "key": LA_KEY,
        "key_org": LA,
        "now": NOW,
    }
    arguments.update(change)
    with pytest.raises(ValueError, match=re.escape(message)):
        sign_request(**arguments)  # type: ignore[arg-type]


def test_sign_request_refuses_a_str_body() -> None:
    """The body must be bytes."""
    with pytest.raises(TypeError, match="body"):
        sign_request(
            method="POST",
            url=URL,
            headers={},
            body="x",
            key=LA_KEY,
            key_org=LA,
            now=NOW,  # type: ignore[arg-type]
        )


def test_verify_request_misuse_raises_value_error() -> None:
    """A negative max_skew or max_body is the caller's mistake."""
    with pytest.raises(ValueError, match="max_skew"):
        verify(sign(), max_skew=-1)
    with pytest.raises(ValueError, match="max_body"):
        verify(sign(), max_body=-1)
