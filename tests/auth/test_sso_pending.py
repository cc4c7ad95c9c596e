"""A sign-in under way, sealed into a cookie: only this node's, whole and young opens."""

from __future__ import annotations

import secrets

from exchange.auth.sso_pending import (
    PENDING_LIFETIME,
    PendingLogin,
    open_pending,
    seal_pending,
)

KEY = secrets.token_bytes(32)
PENDING = PendingLogin(
    provider="entra", state="st", nonce="no", verifier="v" * 43, created=1000.0,
    return_to="/inbox", step_up=True, session_token="t" * 43,
)  # fmt: skip


def test_a_sealed_login_opens_with_its_key_while_young() -> None:
    sealed = seal_pending(KEY, PENDING, secrets.token_bytes)
    assert open_pending(KEY, sealed, now=1000.0 + PENDING_LIFETIME - 1) == PENDING
    for hidden in ("v" * 43, "t" * 43, "/inbox"):
        assert hidden not in sealed
    assert "v" * 43 not in repr(PENDING)


def test_an_old_a_future_a_foreign_or_a_changed_seal_does_not_open() -> None:
    sealed = seal_pending(KEY, PENDING, secrets.token_bytes)
    assert open_pending(KEY, sealed, now=1000.0 + PENDING_LIFETIME) is None
    assert open_pending(KEY, sealed, now=999.0) is None
    assert open_pending(secrets.token_bytes(32), sealed, now=1000.0) is None
    flipped = sealed[:20] + ("A" if sealed[20] != "A" else "B") + sealed[21:]
    assert open_pending(KEY, flipped, now=1000.0) is None
    for junk in ("", "not base64 !", "A" * 5000, "AAAA"):
        assert open_pending(KEY, junk, now=1000.0) is None
