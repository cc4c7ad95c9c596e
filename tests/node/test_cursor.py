"""The list cursor (``next``/``before``) round-trips every time and digest exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from exchange.http.common import CURSOR_RE, next_cursor


@given(
    # Zero or a normal double: item times are seconds since 1970, never subnormal, and the
    # cursor's documented form (docs/openapi.yaml) leaves subnormals out.
    at=st.just(0.0)
    | st.floats(min_value=2.0**-1022, max_value=4_102_444_800, allow_infinity=False),
    digest=st.binary(min_size=32, max_size=32),
)
def test_cursor_round_trips(at: float, digest: bytes) -> None:
    cursor = next_cursor(at, digest)
    assert "+" not in cursor  # it goes into a query string as it is
    match = CURSOR_RE.fullmatch(cursor)
    assert match is not None
    assert (float.fromhex(match[1]), bytes.fromhex(match[2])) == (at, digest)
