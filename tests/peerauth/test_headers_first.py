"""verify_headers, the streamed digest check and the upload limits: the sans-I/O parts."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.peerauth import (
    BodyTooLargeError,
    MalformedRequestError,
    MemoryReplayCache,
    NotAuthenticatedError,
    ReplayError,
    UploadLimits,
    UploadsBusyError,
    content_digest,
    parse_content_digest,
    verify_headers,
)
from exchange.peerauth.signatures import SignedHeaders
from tests.peerauth import BODY, DIRECTORY, LA, NOW, SCHOOL, SCHOOL_KEY, URL, sign, verify


def _headers_only(
    headers: dict[str, str],
    *,
    replay: MemoryReplayCache | None = None,
    content_length: int | None = len(BODY),
    max_body: int = 1024,
) -> SignedHeaders:
    return verify_headers(
        method="POST",
        url=URL,
        headers=headers,
        directory=DIRECTORY,
        now=NOW,
        replay=replay if replay is not None else MemoryReplayCache(600),
        content_length=content_length,
        max_body=max_body,
    )


def test_headers_verify_without_the_body_and_the_body_is_checked_after() -> None:
    """The sender and the signed digest come from the headers; the body is checked later."""
    signed = _headers_only(sign())
    assert signed.peer.org_id == LA
    hasher = signed.digest.hasher()
    hasher.update(BODY[:7])
    hasher.update(BODY[7:])
    hasher.check()
    other = signed.digest.hasher()
    other.update(BODY + b" ")
    with pytest.raises(NotAuthenticatedError) as info:
        other.check()
    assert info.value.rule == "content-digest.mismatch"


def test_headers_record_the_nonce_before_the_body() -> None:
    """A replay is refused from its headers: the nonce is recorded when they verify."""
    cache = MemoryReplayCache(600)
    headers = sign()
    _headers_only(headers, replay=cache)
    assert len(cache) == 1
    with pytest.raises(ReplayError):
        _headers_only(headers, replay=cache)


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"Signature": "exch=:AAAA:"}, "signature.invalid"),
        ({"Signature-Input": None}, "signature-input.missing"),
        ({"Content-Digest": None}, "content-digest.missing"),
        ({"Content-Digest": "md5=:AAAA:"}, "content-digest.algorithm"),
    ],
)
def test_bad_headers_are_refused_without_a_body(change: dict[str, str | None], rule: str) -> None:
    """Every refusal that needs only the headers is made by verify_headers."""
    headers = {k: v for k, v in {**sign(), **change}.items() if v is not None}
    with pytest.raises((NotAuthenticatedError, MalformedRequestError)) as info:
        _headers_only(headers)
    assert info.value.rule == rule


def test_a_failed_header_check_records_no_nonce() -> None:
    """A request whose signature does not verify cannot burn a nonce."""
    cache = MemoryReplayCache(600)
    with pytest.raises(NotAuthenticatedError):
        _headers_only(sign(key=SCHOOL_KEY, org=LA), replay=cache)
    assert len(cache) == 0


def test_declared_length_over_the_limit_is_413_before_anything_else() -> None:
    """A Content-Length over max_body is refused first, even on an unsigned request."""
    with pytest.raises(BodyTooLargeError):
        _headers_only({"Content-Type": "application/json"}, content_length=1025)
    _headers_only(sign(), content_length=None)  # chunked: the limit applies while reading


@given(st.binary(max_size=4096), st.lists(st.integers(min_value=0, max_value=4096), max_size=8))
@settings(max_examples=200, deadline=None)
def test_a_body_in_any_pieces_hashes_as_the_whole(body: bytes, cuts: list[int]) -> None:
    """However the body is split as it arrives, the streamed check agrees with the whole one."""
    digest = parse_content_digest(content_digest(body))
    hasher = digest.hasher()
    points = sorted({0, len(body), *(min(c, len(body)) for c in cuts)})
    for start, end in itertools.pairwise(points):
        hasher.update(body[start:end])
    hasher.check()
    if body:
        wrong = digest.hasher()
        wrong.update(body[:-1])
        with pytest.raises(NotAuthenticatedError):
            wrong.check()


def test_verify_request_still_checks_the_digest_before_recording() -> None:
    """The all-in-one check refuses a changed body and records nothing for it."""
    cache = MemoryReplayCache(600)
    with pytest.raises(NotAuthenticatedError):
        verify(sign(), body=BODY + b"!", replay=cache)
    assert len(cache) == 0


def test_upload_limits_per_peer_and_in_total() -> None:
    """Places are taken and given back; over a limit the refusal is 503 with its scope."""
    limits = UploadLimits(per_peer=1, total=2, retry_after=7)
    with limits.any_upload(), limits.upload_from(LA):
        with pytest.raises(UploadsBusyError) as info, limits.upload_from(LA):
            pass
        assert (info.value.status, info.value.rule, info.value.retry_after) == (
            503,
            "uploads.busy-peer",
            7,
        )
        with limits.any_upload(), limits.upload_from(SCHOOL):
            assert (limits.in_flight, limits.from_peer(SCHOOL)) == (2, 1)
            with pytest.raises(UploadsBusyError) as info, limits.any_upload():
                pass
            assert info.value.rule == "uploads.busy-total"
    assert (limits.in_flight, limits.from_peer(LA), limits.from_peer(SCHOOL)) == (0, 0, 0)


@pytest.mark.parametrize(("per_peer", "total"), [(0, 1), (1, 0), (True, 1)])
def test_upload_limits_must_be_positive_integers(per_peer: int, total: int) -> None:
    """A limit of zero would refuse everything; it is the caller's mistake."""
    with pytest.raises(ValueError, match="positive integer"):
        UploadLimits(per_peer, total)
