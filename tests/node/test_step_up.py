"""Step-up through the node service: the second factor again, later, in the same session.

The node and its clock are test_accounts.py's: a DSL with an authenticator app, signed in.
"""

from __future__ import annotations

import pytest

from exchange.auth.totp import code_at
from exchange.service.accounts import SessionEndedError, SignInRefusedError, SlowedDownError
from exchange.web.step_up import window_words
from tests.node.test_accounts import EMAIL, PASSWORD, Node, _enrolled, _signed_in, node

__all__ = ["node"]  # the fixture, shared with test_accounts.py

#: Past the 15-minute window, within the 15-minute idle timeout of a session used meanwhile.
MOVE = 600
#: A wrong code for sure: the app's codes have six digits.
WRONG = "1234567"


async def _stale(node: Node, token: str) -> None:
    """Move the clock past the window since the factor, using the session on the way."""
    node.tick(MOVE)
    assert await node.service.accounts.session_for(token) is not None
    node.tick(MOVE)


async def test_a_factor_is_recent_for_the_window_only(node: Node) -> None:
    """Just given: recent; 15 minutes on, no longer, even in a session still in use."""
    secret, _ = await _enrolled(node)
    token = await _signed_in(node, secret)
    accounts = node.service.accounts
    session = await accounts.session_for(token)
    assert session is not None
    assert session.factor_at == node.now[0]
    assert accounts.factor_is_recent(session)
    assert accounts.factor_is_recent(session, node.now[0] + 899)
    assert not accounts.factor_is_recent(session, node.now[0] + 900)


async def test_step_up_keeps_the_session_s_start_and_level(node: Node) -> None:
    """A new id, the same start, level and required level; the factor given now."""
    secret, _ = await _enrolled(node)
    token = await _signed_in(node, secret)
    accounts = node.service.accounts
    before = await accounts.session_for(token)
    assert before is not None
    await _stale(node, token)
    new_token, after = await accounts.step_up(token, code_at(secret, node.now[0]))
    assert new_token != token
    assert await accounts.session_for(token) is None
    assert (after.created, after.level, after.required, after.user) == (
        before.created, before.level, before.required, before.user,
    )  # fmt: skip
    assert after.factor_at == node.now[0]
    assert accounts.factor_is_recent(after)


async def test_a_wrong_step_up_code_is_refused_then_slowed(node: Node) -> None:
    """Counted with sign-in's failures: the fifth slows, and then even the right code waits."""
    secret, _ = await _enrolled(node)
    token = await _signed_in(node, secret)
    await _stale(node, token)
    accounts = node.service.accounts
    for _ in range(5):
        with pytest.raises(SignInRefusedError):
            await accounts.step_up(token, WRONG)
    with pytest.raises(SlowedDownError, match="Wait 1 minute"):
        await accounts.step_up(token, code_at(secret, node.now[0]))


async def test_step_up_needs_a_signed_in_session(node: Node) -> None:
    """A session at the password step, or none, is not stepped up: sign in first."""
    secret, _ = await _enrolled(node)
    step = await node.service.begin_sign_in(EMAIL, PASSWORD)
    token, _ = await node.service.start_session(step)
    accounts = node.service.accounts
    node.tick(30)
    with pytest.raises(SessionEndedError):
        await accounts.step_up(token, code_at(secret, node.now[0]))
    with pytest.raises(SessionEndedError):
        await accounts.step_up("not a token", code_at(secret, node.now[0]))


def test_the_window_in_words() -> None:
    """Minutes, or hours when whole."""
    assert window_words(900) == "15 minutes"
    assert window_words(60) == "1 minute"
    assert window_words(90) == "2 minutes"
    assert window_words(3600) == "1 hour"
    assert window_words(7200) == "2 hours"
