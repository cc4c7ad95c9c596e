"""The edge's reading of a far side's clock and of a refusal for time (no sockets)."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.connectors.edge import Answer, ClockRefusedError, clock_refused, far_time, judge
from exchange.connectors.errors import PermanentError
from exchange.outbox.skew import skew_in_reason, skew_reason


def _answer(status: int, body: object, date: str | None = None) -> Answer:
    headers = {} if date is None else {"Date": date}
    return Answer(status, headers, json.dumps(body).encode())


@given(st.integers(min_value=0, max_value=253_402_300_799))
def test_far_time_reads_back_every_http_date(moment: int) -> None:
    """A Date written as HTTP-date reads back as the same second."""
    assert far_time({"Date": formatdate(moment, usegmt=True)}) == moment


@given(st.text(max_size=80))
def test_far_time_never_raises_on_junk(value: str) -> None:
    """Whatever a far side writes in Date is a time or None, never an exception."""
    result = far_time({"Date": value})
    assert result is None or isinstance(result, float)


def test_only_a_401_naming_the_time_problem_is_a_clock_refusal() -> None:
    """The problem code decides; a plain 401 stays a refusal for good."""
    date = formatdate(1_800_000_000, usegmt=True)
    timed = _answer(401, {"error": "created.too-old", "problem": "signature.time"}, date)
    assert clock_refused(timed)
    with pytest.raises(ClockRefusedError) as refused:
        judge(timed, far_side="the peer")
    outcome = refused.value.outcome()
    assert outcome.clock
    assert outcome.far_time == 1_800_000_000
    for other in (
        _answer(401, {"error": "signature.invalid", "message": "x"}),
        _answer(403, {"problem": "signature.time"}),
        Answer(401, {}, b"not json"),
        _answer(401, ["signature.time"]),
    ):
        assert not clock_refused(other)
    plain = _answer(401, {"error": "signature.invalid"})
    with pytest.raises(PermanentError) as final:
        judge(plain, far_side="the peer")
    assert final.value.reason == "the peer refused with 401"


@given(st.integers(min_value=-(10**12) + 1, max_value=10**12 - 1), st.booleans())
def test_the_skew_sentence_reads_back(skew: int, relay: bool) -> None:
    """The sent views read the skew back from the sentence the outbox wrote."""
    reason = skew_reason(skew, relay=relay)
    assert "clock is" in reason
    assert skew_in_reason(reason) == skew
    assert skew_in_reason("could not reach the peer: ClientConnectorError") is None
