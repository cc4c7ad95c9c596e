"""The pure OpenID Connect checks: PKCE, discovery, the authorization address, ID tokens.

ID tokens here are signed with keys made by joserfc in the test, so each claim can be
changed on its own; the tests against a real provider are in tests/web/test_sso.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

from exchange.auth.oidc import (
    LoginSecrets,
    OidcError,
    ProviderMetadata,
    authorization_url,
    new_login_secrets,
    s256,
    verify_id_token,
)

ISSUER = "https://login.example.org/tenant/v2.0"
CLIENT = "client-1"
NONCE = "n-0S6_WzA2Mj"
NOW = 1_800_000_000
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256", "use": "sig"})
JWKS = KeySet([KEY]).as_dict(private=False)
DISCOVERY = {
    "issuer": ISSUER,
    "authorization_endpoint": "https://login.example.org/authorize",
    "token_endpoint": "https://login.example.org/token",
    "jwks_uri": "https://login.example.org/keys",
    "code_challenge_methods_supported": ["S256"],
    "id_token_signing_alg_values_supported": ["RS256"],
}


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER, "sub": "person-1", "aud": CLIENT, "exp": NOW + 300, "iat": NOW - 5,
        "nonce": NONCE, "email": "a@school.example", "amr": ["pwd", "mfa"],
    }  # fmt: skip
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def token(key: Any = KEY, alg: str = "RS256", **changes: Any) -> str:
    return jwt.encode({"alg": alg, "kid": "k1"}, claims(**changes), key, algorithms=[alg])


def verify(value: str, **overrides: Any) -> Any:
    args: dict[str, Any] = {
        "issuer": ISSUER, "client_id": CLIENT, "nonce": NONCE, "now": NOW, "leeway": 60,
    }  # fmt: skip
    args.update(overrides)
    return verify_id_token(value, JWKS, **args)


def test_pkce_s256_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_login_secrets_are_fresh_and_never_shown() -> None:
    count = iter(range(256))
    secrets = new_login_secrets(lambda n: bytes([next(count)]) * n)
    assert len({secrets.state, secrets.nonce, secrets.verifier}) == 3
    assert len(secrets.verifier) == 43
    assert secrets.state not in repr(secrets)
    raw = base64.urlsafe_b64decode(secrets.verifier + "=")
    assert len(raw) == 32
    assert secrets.challenge == s256(secrets.verifier)
    assert hashlib.sha256(secrets.verifier.encode()).digest() == base64.urlsafe_b64decode(
        secrets.challenge + "="
    )


def test_the_authorization_address_carries_pkce_state_and_nonce() -> None:
    metadata = ProviderMetadata.parse(DISCOVERY, ISSUER)
    secrets = LoginSecrets("st", "no", "v" * 43)
    url = authorization_url(
        metadata, client_id=CLIENT, redirect_uri="https://node.example/sign-in/sso/callback",
        scopes=("openid", "email"), secrets=secrets, step_up=False,
    )  # fmt: skip
    query = parse_qs(urlsplit(url).query)
    assert url.startswith("https://login.example.org/authorize?")
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"] == [s256("v" * 43)]
    assert (query["state"], query["nonce"], query["scope"]) == (["st"], ["no"], ["openid email"])
    assert "prompt" not in query
    assert "v" * 43 not in url
    step_up = authorization_url(
        metadata, client_id=CLIENT, redirect_uri="https://node.example/cb", scopes=("openid",),
        secrets=secrets, step_up=True,
    )  # fmt: skip
    query = parse_qs(urlsplit(step_up).query)
    assert (query["prompt"], query["max_age"]) == (["login"], ["0"])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"issuer": "https://evil.example"}, "discovery"),
        ({"token_endpoint": "http://login.example.org/token"}, "discovery"),
        ({"jwks_uri": None}, "discovery"),
        ({"code_challenge_methods_supported": ["plain"]}, "discovery"),
        ({"id_token_signing_alg_values_supported": ["HS256", "none"]}, "discovery"),
    ],
)
def test_discovery_documents_that_do_not_fit_are_refused(
    change: dict[str, Any], reason: str
) -> None:
    doc = {k: v for k, v in (DISCOVERY | change).items() if v is not None}
    with pytest.raises(OidcError) as refused:
        ProviderMetadata.parse(doc, ISSUER)
    assert refused.value.reason == reason


def test_plain_http_endpoints_only_for_a_loopback_issuer() -> None:
    issuer = "http://127.0.0.1:4000"
    doc = {
        **DISCOVERY,
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
    }
    assert ProviderMetadata.parse(doc, issuer).token_endpoint == f"{issuer}/token"
    with pytest.raises(OidcError):
        ProviderMetadata.parse({**doc, "jwks_uri": "http://keys.example/jwks"}, issuer)


def test_a_good_id_token_is_accepted() -> None:
    verified = verify(token())
    assert (verified.issuer, verified.subject) == (ISSUER, "person-1")
    assert verified.amr == ("pwd", "mfa")
    assert verified.email == "a@school.example"
    assert "person-1" not in repr(verified)


def test_an_elliptic_curve_signature_is_accepted() -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    value = token(key, "ES256")
    keys = KeySet([key]).as_dict(private=False)
    assert (
        verify_id_token(
            value, keys, issuer=ISSUER, client_id=CLIENT, nonce=NONCE, now=NOW, leeway=0
        ).subject
        == "person-1"
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "another-client"}, "audience"),
        ({"aud": [CLIENT, "another-client"]}, "audience"),  # several audiences need azp
        ({"aud": [CLIENT, "another-client"], "azp": "another-client"}, "audience"),
        ({"azp": "another-client"}, "audience"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"nonce": "another-nonce"}, "nonce"),
        ({"nonce": None}, "claims"),
        ({"exp": NOW - 61}, "expired"),
        ({"iat": NOW + 120}, "claims"),
        ({"iat": NOW - 3600}, "expired"),
        ({"sub": None}, "claims"),
    ],
)
def test_claims_that_are_not_right_are_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(OidcError) as refused:
        verify(token(**changes))
    assert refused.value.reason == reason


def test_several_audiences_with_our_azp_are_accepted() -> None:
    assert verify(token(aud=[CLIENT, "api"], azp=CLIENT)).subject == "person-1"


def test_the_leeway_covers_a_small_clock_difference_only() -> None:
    value = token(exp=NOW - 30)
    assert verify(value).subject == "person-1"
    with pytest.raises(OidcError, match="expired"):
        verify(value, leeway=0)


def test_a_token_signed_by_another_key_is_refused() -> None:
    other = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(OidcError) as refused:
        verify(token(other))
    assert refused.value.reason == "signature"


def test_a_token_with_a_mac_or_no_signature_is_refused() -> None:
    secret = OctKey.generate_key(256)
    mac = jwt.encode({"alg": "HS256", "kid": "k1"}, claims(), secret, algorithms=["HS256"])
    unsigned = f"{_b64({'alg': 'none'})}.{_b64(claims())}."
    for value in (mac, unsigned, "not a token", ""):
        with pytest.raises(OidcError) as refused:
            verify(value)
        assert refused.value.reason in {"signature", "malformed"}


def test_a_token_whose_signature_was_kept_but_claims_changed_is_refused() -> None:
    head, _, signature = token().split(".")
    forged = _b64(claims(sub="someone-else"))
    with pytest.raises(OidcError, match="signature"):
        verify(f"{head}.{forged}.{signature}")


def test_unreadable_keys_are_refused() -> None:
    with pytest.raises(OidcError) as refused:
        verify_id_token(
            token(), {"keys": []}, issuer=ISSUER, client_id=CLIENT, nonce=NONCE, now=NOW, leeway=0
        )
    assert refused.value.reason == "keys"


def _b64(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
