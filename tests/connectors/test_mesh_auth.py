"""The NHSMESH authorisation header: known answers, format, and single use."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from exchange.connectors.mesh.auth import TokenSource, auth_header, parse_token, timestamp

NONCE = "2c001608-5f09-4840-9611-bea43e666a30"
WHEN = datetime(2020, 6, 4, 17, 18, 33, tzinfo=UTC)

# Produced by NHS England's mesh-client 5.0.2 (mesh_client.AuthTokenGenerator with key
# b"TestKey", mailbox X26ABC1, password "password", the nonce above and its clock fixed at
# WHEN), so our header is checked against theirs, not against itself.
MESH_CLIENT_ANSWERS = {
    0: "NHSMESH X26ABC1:2c001608-5f09-4840-9611-bea43e666a30:0:202006041718:"
    "38eb4a7528e85d2c857cdf20bad892304cbf9ba104fed3d6e4e69b1cf7636cfa",
    1: "NHSMESH X26ABC1:2c001608-5f09-4840-9611-bea43e666a30:1:202006041718:"
    "f7209f88bf14b62205c02db0c067dd5056832a8c172a2800a4278fa8d6f1d3b7",
}


@pytest.mark.parametrize("count", sorted(MESH_CLIENT_ANSWERS))
def test_known_answer_from_mesh_client(count: int) -> None:
    header = auth_header(
        "X26ABC1", "password", b"TestKey", nonce=NONCE, nonce_count=count, now=WHEN
    )
    assert header == MESH_CLIENT_ANSWERS[count]


def test_hash_is_the_documented_hmac() -> None:
    header = auth_header("X26ABC1", "pw", b"key", nonce=NONCE, nonce_count=0, now=WHEN)
    expected = hmac.new(
        b"key", f"X26ABC1:{NONCE}:0:pw:202006041718".encode(), hashlib.sha256
    ).hexdigest()
    assert header == f"NHSMESH X26ABC1:{NONCE}:0:202006041718:{expected}"


def test_timestamp_is_utc_minutes() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert timestamp(datetime(2020, 6, 4, 19, 18, 59, tzinfo=plus_two)) == "202006041718"
    with pytest.raises(ValueError, match="timezone-aware"):
        timestamp(datetime(2020, 6, 4, 17, 18))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("mailbox", "nonce", "count"),
    [
        ("x26abc1", NONCE, 0),
        ("X26:ABC1", NONCE, 0),
        ("X26ABC1", "a:b", 0),
        ("X26ABC1", "", 0),
        ("X26ABC1", NONCE, -1),
    ],
)
def test_bad_parts_are_refused(mailbox: str, nonce: str, count: int) -> None:
    with pytest.raises(ValueError, match=r"mailbox|nonce"):
        auth_header(mailbox, "pw", b"key", nonce=nonce, nonce_count=count, now=WHEN)


def test_every_token_has_a_fresh_nonce_and_count_zero() -> None:
    tokens = TokenSource("X26ABC1", "password", b"key", clock=lambda: WHEN)
    values = [tokens() for _ in range(2000)]
    assert len(set(values)) == len(values)
    parsed = [parse_token(v) for v in values]
    assert len({nonce for _, nonce, _, _, _ in parsed}) == len(values)
    assert {count for _, _, count, _, _ in parsed} == {0}
    uuid4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    assert all(uuid4.fullmatch(nonce) for _, nonce, _, _, _ in parsed)


def test_a_repeated_nonce_is_never_sent() -> None:
    nonces = itertools.cycle(["n1", "n2"])
    tokens = TokenSource("X26ABC1", "pw", b"key", clock=lambda: WHEN, nonces=lambda: next(nonces))
    tokens()
    tokens()
    with pytest.raises(ValueError, match="repeated"):
        tokens()


def test_token_uses_the_clock_each_time() -> None:
    times = iter([WHEN, WHEN + timedelta(minutes=1)])
    tokens = TokenSource("X26ABC1", "pw", b"key", clock=lambda: next(times))
    assert parse_token(tokens())[3] == "202006041718"
    assert parse_token(tokens())[3] == "202006041719"


def test_parse_token_refuses_other_schemes() -> None:
    with pytest.raises(ValueError, match="NHSMESH"):
        parse_token("Bearer abc")
