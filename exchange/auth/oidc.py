"""OpenID Connect for the staff web pages' single sign-on: the checks, without any I/O.

The authorization code flow with PKCE (RFC 7636, ``S256``), ``state`` and ``nonce``
(OpenID Connect Core 1.0 §3.1). This module makes the per-login secrets
(:func:`new_login_secrets`), reads a provider's discovery document
(:meth:`ProviderMetadata.parse`), builds the address the browser is sent to
(:func:`authorization_url`) and checks an ID token (:func:`verify_id_token`): its signature
against the provider's published keys (JWKS), then ``iss``, ``aud``, ``exp``, ``iat``,
``nonce`` and, when present, ``azp``. The signature and claim checks are joserfc's; nothing
here parses or verifies JOSE by hand.

Every refusal is an :class:`OidcError` whose :attr:`~OidcError.reason` is a short code for
logs and tests (``audience``, ``expired``...) and whose message never quotes a token or a
claim's value.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import KeySet

#: Signature algorithms accepted for ID tokens: RSA and elliptic curves, never ``none`` or a
#: MAC keyed with the client secret.
ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
#: Random bytes in ``state``, ``nonce`` and the PKCE verifier (256 bits each).
SECRET_BYTES: Final = 32
#: The longest ID token read (a token with many group ids is a few kilobytes).
MAX_ID_TOKEN_LEN: Final = 64 * 1024
#: An ID token issued longer ago than this (plus the leeway) is refused: a sign-in takes
#: minutes, so an older token was not issued for it.
MAX_ID_TOKEN_AGE: Final = 10 * 60
#: Host names that count as this machine, for plain-HTTP providers in tests.
LOOPBACK_NAMES: Final = frozenset({"localhost"})


class OidcError(Exception):
    """A provider's answer or ID token was refused; ``reason`` is a short code for logs."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256(verifier: str) -> str:
    """Return the PKCE ``S256`` code challenge of ``verifier`` (RFC 7636 §4.2)."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True)
class LoginSecrets:
    """What one sign-in sends and later checks: ``state``, ``nonce`` and the PKCE verifier."""

    state: str = field(repr=False)
    nonce: str = field(repr=False)
    verifier: str = field(repr=False)

    @property
    def challenge(self) -> str:
        """The ``S256`` code challenge sent with the authorization request."""
        return s256(self.verifier)


def new_login_secrets(random: Callable[[int], bytes]) -> LoginSecrets:
    """Return fresh ``state``, ``nonce`` and verifier (43 characters each, base64url)."""
    return LoginSecrets(
        state=_b64(random(SECRET_BYTES)),
        nonce=_b64(random(SECRET_BYTES)),
        verifier=_b64(random(SECRET_BYTES)),
    )


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host is None:
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_allowed(url: str, *, allow_loopback_http: bool) -> bool:
    """Whether ``url`` is an https address with a host (or plain http to a loopback host)."""
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        return False
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return allow_loopback_http and parts.scheme == "http" and is_loopback_host(parts.hostname)


def _text(doc: Mapping[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise OidcError("discovery", f"the provider's discovery document has no {key}")
    return value


def _texts(doc: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OidcError("discovery", f"the provider's discovery document has a bad {key}")
    return tuple(value)


@dataclass(frozen=True)
class ProviderMetadata:
    """What this node uses of a provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    #: The ID token algorithms both sides accept.
    algorithms: tuple[str, ...]
    #: Whether the provider adds ``iss`` to its answers (RFC 9207): then it must match.
    iss_parameter: bool
    #: Whether the token endpoint takes the secret in the body rather than HTTP Basic.
    secret_in_body: bool

    @classmethod
    def parse(cls, doc: Any, issuer: str) -> ProviderMetadata:
        """Read ``<issuer>/.well-known/openid-configuration``; refuse one that does not fit.

        The document's ``issuer`` must be exactly the one configured (OpenID Connect
        Discovery §4.3), its endpoints https (plain http only for a loopback issuer), and
        it must support ``S256`` when it lists PKCE methods.
        """
        if not isinstance(doc, dict):
            raise OidcError("discovery", "the provider's discovery document is not an object")
        if _text(doc, "issuer") != issuer:
            raise OidcError("discovery", "the provider's discovery document names another issuer")
        loopback = urlsplit(issuer).scheme == "http"
        endpoints = {
            key: _text(doc, key) for key in ("authorization_endpoint", "token_endpoint", "jwks_uri")
        }
        for key, url in endpoints.items():
            if not url_allowed(url, allow_loopback_http=loopback):
                raise OidcError("discovery", f"the provider's {key} is not an https address")
        methods = _texts(doc, "code_challenge_methods_supported")
        if methods and "S256" not in methods:
            raise OidcError("discovery", "the provider does not support PKCE with S256")
        offered = _texts(doc, "id_token_signing_alg_values_supported") or ("RS256",)
        algorithms = tuple(a for a in ALGORITHMS if a in offered)
        if not algorithms:
            raise OidcError("discovery", "the provider signs ID tokens with no algorithm accepted")
        auth_methods = _texts(doc, "token_endpoint_auth_methods_supported")
        return cls(
            issuer=issuer,
            authorization_endpoint=endpoints["authorization_endpoint"],
            token_endpoint=endpoints["token_endpoint"],
            jwks_uri=endpoints["jwks_uri"],
            algorithms=algorithms,
            iss_parameter=doc.get("authorization_response_iss_parameter_supported") is True,
            secret_in_body=bool(auth_methods)
            and "client_secret_basic" not in auth_methods
            and "client_secret_post" in auth_methods,
        )


def authorization_url(
    metadata: ProviderMetadata,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: tuple[str, ...],
    secrets: LoginSecrets,
    step_up: bool,
) -> str:
    """Return the provider's address for this sign-in (a step-up asks to sign in afresh)."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": secrets.state,
        "nonce": secrets.nonce,
        "code_challenge": secrets.challenge,
        "code_challenge_method": "S256",
    }
    if step_up:
        params |= {"prompt": "login", "max_age": "0"}
    endpoint = metadata.authorization_endpoint
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)


def token_request(*, code: str, redirect_uri: str, verifier: str, client_id: str) -> dict[str, str]:
    """Return the token request's form (the client secret goes as the metadata says)."""
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
        "client_id": client_id,
    }


@dataclass(frozen=True)
class IdToken:
    """A verified ID token: who the provider says signed in, and how."""

    issuer: str
    subject: str = field(repr=False)
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def email(self) -> str | None:
        """The ``email`` claim, if it is text."""
        value = self.claims.get("email")
        return value if isinstance(value, str) else None

    @property
    def email_verified(self) -> bool | None:
        """The ``email_verified`` claim: None when the provider does not send it."""
        value = self.claims.get("email_verified")
        if isinstance(value, str):  # some providers send "true"
            return value.lower() == "true"
        return value if isinstance(value, bool) else None

    @property
    def amr(self) -> tuple[str, ...]:
        """The authentication methods the provider asserts (RFC 8176), if any."""
        value = self.claims.get("amr")
        if not isinstance(value, list):
            return ()
        return tuple(v for v in value if isinstance(v, str))

    @property
    def acr(self) -> str | None:
        """The authentication context class the provider asserts, if any."""
        value = self.claims.get("acr")
        return value if isinstance(value, str) else None

    @property
    def auth_time(self) -> float | None:
        """When the person last authenticated at the provider, if it says."""
        value = self.claims.get("auth_time")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    def texts(self, claim: str) -> tuple[str, ...]:
        """Return a claim holding a list of text (or one text) as a tuple; () otherwise."""
        value = self.claims.get(claim)
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list):
            return tuple(v for v in value if isinstance(v, str))
        return ()


def _decode(token: str, jwks: Any, algorithms: tuple[str, ...]) -> dict[str, Any]:
    if not token or len(token) > MAX_ID_TOKEN_LEN or not token.isascii():
        raise OidcError("malformed", "the provider sent no usable ID token")
    try:
        keys = KeySet.import_key_set(jwks)
    except (JoseError, ValueError, TypeError, KeyError):
        raise OidcError("keys", "the provider's published keys could not be read") from None
    try:
        decoded = jwt.decode(token, keys, algorithms=list(algorithms))
    except (JoseError, ValueError, TypeError, KeyError):
        raise OidcError("signature", "the ID token's signature does not verify") from None
    return decoded.claims


def _check_claims(
    claims: dict[str, Any], *, issuer: str, client_id: str, nonce: str, now: float, leeway: int
) -> None:
    registry = jwt.JWTClaimsRegistry(
        now=int(now),
        leeway=leeway,
        iss={"essential": True, "value": issuer},
        sub={"essential": True},
        aud={"essential": True, "value": client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise OidcError("expired", "the ID token has expired") from None
    except MissingClaimError:
        raise OidcError("claims", "the ID token lacks a claim it must have") from None
    except InvalidClaimError as exc:
        reason = {"aud": "audience", "nonce": "nonce", "iss": "issuer"}.get(exc.claim, "claims")
        raise OidcError(reason, "the ID token has a claim that is not right") from None
    if now - claims["iat"] > MAX_ID_TOKEN_AGE + leeway:
        raise OidcError("expired", "the ID token was issued too long ago")
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (len(audiences) > 1 and azp is None) or (azp is not None and azp != client_id):
        raise OidcError("audience", "the ID token was issued to another client")


def verify_id_token(
    token: str,
    jwks: Any,
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now: float,
    leeway: int,
    algorithms: tuple[str, ...] = ALGORITHMS,
) -> IdToken:
    """Check an ID token's signature against ``jwks`` and its claims; return it.

    ``leeway`` is the clock difference allowed, in seconds, on ``exp`` and ``iat``.
    Raises :class:`OidcError` naming the first check that failed.
    """
    claims = _decode(token, jwks, algorithms)
    _check_claims(claims, issuer=issuer, client_id=client_id, nonce=nonce, now=now, leeway=leeway)
    return IdToken(issuer=issuer, subject=str(claims["sub"]), claims=claims)
