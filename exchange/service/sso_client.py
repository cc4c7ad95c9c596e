"""One single sign-on provider as the node talks to it: discovery, keys, the code exchange.

:class:`ProviderClient` reads the provider's discovery document
(``<issuer>/.well-known/openid-configuration``) and its published keys (JWKS), keeping each
for an hour; exchanges an authorization code (with its PKCE verifier and the client secret)
for an ID token; and verifies that token with the pure checks of :mod:`exchange.auth.oidc`.
A signature that does not verify against the keys held makes it fetch the keys once more
(a provider rotating its keys), at most once a minute.

The HTTP itself is a port (:class:`OidcHttp`): this module opens no socket. Its
implementation (``exchange.workers.oidc_http``) puts a deadline and a size limit on every
answer and never follows a redirect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from exchange.auth.oidc import (
    IdToken,
    OidcError,
    ProviderMetadata,
    token_request,
    verify_id_token,
)
from exchange.auth.sso_rules import ClientSecret, SsoProvider

#: How long a discovery document and a key set are kept before they are fetched again.
CACHE_FOR: Final = 3600.0
#: The shortest time between two fetches of the keys for a signature that does not verify.
KEYS_REFETCH_AFTER: Final = 60.0
DISCOVERY_PATH: Final = "/.well-known/openid-configuration"


class OidcHttp(Protocol):
    """The HTTP a provider client needs; every failure is an :class:`OidcError`."""

    async def get_json(self, url: str) -> Any:
        """GET ``url``; return its JSON (a 200 answer only)."""
        ...

    async def post_form(
        self, url: str, form: Mapping[str, str], *, basic: tuple[str, str] | None
    ) -> tuple[int, Any]:
        """POST ``form`` (with HTTP Basic credentials if given); return status and JSON."""
        ...


@dataclass
class ProviderClient:
    """One configured provider, its secret, and what was fetched from it."""

    provider: SsoProvider
    secret: ClientSecret = field(repr=False)
    http: OidcHttp
    clock: Callable[[], float]
    _metadata: tuple[float, ProviderMetadata] | None = field(default=None, repr=False)
    _keys: tuple[float, Any] | None = field(default=None, repr=False)

    async def metadata(self) -> ProviderMetadata:
        """Return the provider's discovery document, fetched at most once an hour."""
        now = self.clock()
        if self._metadata is None or now - self._metadata[0] >= CACHE_FOR:
            issuer = self.provider.issuer
            doc = await self.http.get_json(issuer.rstrip("/") + DISCOVERY_PATH)
            self._metadata = (now, ProviderMetadata.parse(doc, issuer))
        return self._metadata[1]

    async def _jwks(self, *, again: bool = False) -> Any:
        now = self.clock()
        stale = self._keys is None or now - self._keys[0] >= CACHE_FOR
        if stale or (
            again and self._keys is not None and now - self._keys[0] >= KEYS_REFETCH_AFTER
        ):
            keys = await self.http.get_json((await self.metadata()).jwks_uri)
            if not isinstance(keys, dict):
                raise OidcError("keys", "the provider's published keys are not a key set")
            self._keys = (now, keys)
        assert self._keys is not None
        return self._keys[1]

    async def exchange_code(self, *, code: str, verifier: str, redirect_uri: str) -> str:
        """Return the ID token the provider gives for ``code`` (refused: :class:`OidcError`)."""
        metadata = await self.metadata()
        client_id = self.provider.client_id
        form = token_request(
            code=code, redirect_uri=redirect_uri, verifier=verifier, client_id=client_id
        )
        basic: tuple[str, str] | None = (client_id, self.secret.value)
        if metadata.secret_in_body:
            form["client_secret"] = self.secret.value
            basic = None
        status, doc = await self.http.post_form(metadata.token_endpoint, form, basic=basic)
        if status != 200:
            # A used, expired or unknown code: the provider's error text is not repeated.
            raise OidcError("code-refused", "the provider refused the authorization code")
        token = doc.get("id_token") if isinstance(doc, dict) else None
        if not isinstance(token, str):
            raise OidcError("malformed", "the provider's token answer holds no ID token")
        return token

    async def verify(self, id_token: str, *, nonce: str, now: float) -> IdToken:
        """Verify ``id_token`` for this client and ``nonce`` (keys fetched again once)."""
        metadata = await self.metadata()
        provider = self.provider

        def check(keys: Any) -> IdToken:
            return verify_id_token(
                id_token, keys, issuer=provider.issuer, client_id=provider.client_id,
                nonce=nonce, now=now, leeway=provider.clock_skew, algorithms=metadata.algorithms,
            )  # fmt: skip

        try:
            return check(await self._jwks())
        except OidcError as exc:
            if exc.reason != "signature":
                raise
            return check(await self._jwks(again=True))
