"""The HTTP of single sign-on: discovery, keys and the token endpoint of a provider.

:class:`OidcHttpClient` is the :class:`~exchange.service.sso_client.OidcHttp` port: every
request has a deadline and every answer a size limit (through the shared edge,
:func:`exchange.connectors.edge.request`), redirects are never followed, and TLS is checked
against the system's trust store. Every failure becomes an
:class:`~exchange.auth.oidc.OidcError` naming the kind of failure, never what was sent or
answered (a token endpoint's answer holds tokens).
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote_plus, urlencode

import aiohttp

from exchange.auth.oidc import OidcError
from exchange.connectors.edge import request
from exchange.connectors.errors import TransientError

#: Seconds one request to a provider may take.
TIMEOUT: Final = 10.0
#: The largest answer read from a provider (a discovery document or key set is a few KiB).
MAX_ANSWER: Final = 512 * 1024


class OidcHttpClient:
    """Requests to OpenID providers over one client session of its own."""

    def __init__(self, *, timeout: float = TIMEOUT, limit: int = MAX_ANSWER) -> None:
        self.timeout = timeout
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            context = ssl.create_default_context()
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
        return self._session

    async def close(self) -> None:
        """Close the client session, if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, Any]:
        try:
            answer = await request(
                self._client(), method, url, far_side="the sign-in provider",
                whose="the sign-in provider's", timeout=self.timeout, limit=self.limit,
                headers={"Accept": "application/json", **(headers or {})}, data=data,
            )  # fmt: skip
        except TransientError as exc:
            raise OidcError("unreachable", str(exc)) from None
        if not 200 <= answer.status < 300:
            return answer.status, None
        try:
            return answer.status, json.loads(answer.body)
        except (UnicodeDecodeError, ValueError):
            raise OidcError("malformed", "the sign-in provider's answer is not JSON") from None

    async def get_json(self, url: str) -> Any:
        """GET ``url``; return its JSON, or raise :class:`OidcError` unless it answered 200."""
        status, doc = await self._call("GET", url)
        if status != 200:
            raise OidcError("unreachable", f"the sign-in provider answered HTTP {status}")
        return doc

    async def post_form(
        self, url: str, form: Mapping[str, str], *, basic: tuple[str, str] | None
    ) -> tuple[int, Any]:
        """POST ``form`` urlencoded, with HTTP Basic client credentials if given."""
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if basic is not None:
            # RFC 6749 §2.3.1: each part form-urlencoded before the Basic encoding.
            user, password = (quote_plus(part) for part in basic)
            pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {pair}"
        return await self._call("POST", url, headers=headers, data=urlencode(form).encode())
