"""Content-Digest (RFC 9530): the value written and the checks on the value received."""

from __future__ import annotations

import base64
import hashlib

import pytest

from exchange.peerauth import (
    MalformedRequestError,
    NotAuthenticatedError,
    check_content_digest,
    content_digest,
)

#: RFC 9530 Appendix B.1 and RFC 9421 Appendix B.2: the body {"hello": "world"}.
HELLO = b'{"hello": "world"}'
HELLO_SHA256 = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
HELLO_SHA512 = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHW"
    "XvJwew==:"
)


def test_digest_matches_the_rfc_example() -> None:
    """The written value is RFC 9530's own example for the same body."""
    assert content_digest(HELLO) == HELLO_SHA256


@pytest.mark.parametrize(
    "value",
    [HELLO_SHA256, f"{HELLO_SHA256}, {HELLO_SHA512}", f"{HELLO_SHA512},{HELLO_SHA256}"],
)
def test_sha256_alone_or_with_sha512_is_accepted(value: str) -> None:
    """sha-256 is required; a sha-512 member beside it is checked too."""
    check_content_digest(value, HELLO)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (HELLO_SHA512, "content-digest.sha-256"),
        (f"{HELLO_SHA256}, md5=:AAAA:", "content-digest.algorithm"),
        ("sha=:AAAA:", "content-digest.algorithm"),
        ("sha-256=:AAAA:", "content-digest.syntax"),
        ("sha-256=1", "content-digest.syntax"),
        ("sha-256", "content-digest.syntax"),
        ("", "content-digest.syntax"),
        ("sha-256=:@@@@:", "content-digest.syntax"),
        (f"{HELLO_SHA256}, {HELLO_SHA256}", "content-digest.syntax"),
        ("x" * 300, "content-digest.too-long"),
        ("sha-256=:é:", "content-digest.syntax"),
    ],
)
def test_malformed_digests_are_refused(value: str, rule: str) -> None:
    """Other algorithms, bad syntax, wrong lengths and duplicates are 400s."""
    with pytest.raises(MalformedRequestError) as info:
        check_content_digest(value, HELLO)
    assert info.value.rule == rule


def test_mismatching_sha256_is_refused() -> None:
    """A digest of another body is a 401: the body is not the one signed."""
    with pytest.raises(NotAuthenticatedError) as info:
        check_content_digest(HELLO_SHA256, HELLO + b"\n")
    assert info.value.rule == "content-digest.mismatch"


def test_mismatching_sha512_beside_a_good_sha256_is_refused() -> None:
    """Every member received is checked, not only the first."""
    wrong = base64.b64encode(hashlib.sha512(b"other").digest()).decode()
    with pytest.raises(NotAuthenticatedError, match="sha-512"):
        check_content_digest(f"{HELLO_SHA256}, sha-512=:{wrong}:", HELLO)


def test_content_digest_refuses_str() -> None:
    """The body must be bytes."""
    with pytest.raises(TypeError):
        content_digest("text")  # type: ignore[arg-type]
