"""What keeps every staff web page safe to show: its headers, a per-response nonce, and CSRF.

Pages show personal data, so every page response says ``Cache-Control: no-store``, refuses
to be framed, sends no referrer and carries a Content Security Policy that allows scripts
only from the node itself or with the response's own nonce (the GOV.UK Frontend start-up
script), and styles only from the node: no inline style at all. The headers are set when
the response is prepared (:func:`secure_headers`), so streamed responses get them too.
Static assets under ``/assets/`` keep the same policy but may be cached.

The recipients page's accessible autocomplete needs nothing more: its script and ours load
from ``/assets/``, and it sets its styles through the DOM (``element.style``), which
``style-src`` does not govern. The one style attribute it writes as markup (an iOS-only
"1 of 5" suffix on each suggestion) is blocked, and ``recipients.css`` hides the suffix
instead, so the policy keeps no ``'unsafe-inline'`` or ``'unsafe-hashes'``.

Every POST to a page carries a CSRF token in the hidden field ``csrf_token``, checked before
the handler runs (:func:`csrf_middleware`); a missing or wrong token is refused with
:class:`CsrfRefusedError`, which the error pages turn into a 403 page. The token is an HMAC
of a per-browser secret, which comes from a :class:`CsrfSecrets`: until server-side sessions
exist, :class:`SignedCookieCsrf` keeps it in a signed double-submit cookie; a session store
replaces it by binding the secret to the session, with no change to the pages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Final, Protocol

from aiohttp import BodyPartReader, MultipartReader, hdrs, web

from exchange.logs import get_logger
from exchange.web.forms import read_form, read_multipart

log = get_logger("exchange.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The form field every page form carries the CSRF token in (first, for file uploads).
CSRF_FIELD: Final = "csrf_token"
#: Paths that belong to the machine interfaces (staff API, peer protocol, relay,
#: operations), which keep their own JSON errors and headers; every other path is a page.
MACHINE_PREFIXES: Final = ("/api/", "/peer/", "/relay/")
MACHINE_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
#: Where the static assets are served; they may be cached, unlike pages.
ASSETS_PREFIX: Final = "/assets/"
#: The methods that change nothing, and so need no CSRF token.
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

#: The longest CSRF field read from a multipart body (a token is 43 characters).
MAX_TOKEN_LEN: Final = 128
#: Random bytes in a CSP nonce and in a CSRF secret (128 and 256 bits).
NONCE_BYTES: Final = 16
SECRET_BYTES: Final = 32
#: Domain separation for the two uses of HMAC here.
_TOKEN_LABEL: Final = b"exchange web csrf form token v1"
_COOKIE_LABEL: Final = b"exchange web csrf cookie v1"

CSP_NONCE: Final = web.RequestKey("csp_nonce", str)
CSRF_TOKEN: Final = web.RequestKey("csrf_token", str)
#: A multipart page form's body, already past its first part (the CSRF token): the handler
#: reads the remaining parts from it, streaming, instead of calling ``request.multipart()``.
MULTIPART: Final = web.RequestKey("multipart", MultipartReader)


class CsrfSecrets(Protocol):
    """Where the per-browser CSRF secret lives: a signed cookie now, the session later."""

    async def csrf_secret(self, request: web.Request) -> bytes:
        """Return this browser's CSRF secret, making one if it has none yet."""
        ...

    def prepare_response(self, request: web.Request, response: web.StreamResponse) -> None:
        """Add to ``response`` what keeps the secret (a cookie), if anything is needed."""
        ...


CSRF_SECRETS: Final = web.AppKey("csrf_secrets", CsrfSecrets)


class CsrfRefusedError(web.HTTPForbidden):
    """A POST to a page without the right CSRF token: expired, or sent from elsewhere."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None


@dataclass(frozen=True)
class WebKeys:
    """The keys of what the pages give a browser to hold between two requests.

    ``csrf`` signs the pre-sign-in CSRF cookie (:class:`SignedCookieCsrf`) and
    ``sso_pending`` seals a single sign-on under way (exchange.auth.sso_pending). A node
    takes both from its store (``NodeService.shared_secret``), so that every ``exchange
    serve`` process of it opens what another gave out; :meth:`random` makes keys for one
    process alone (pages built without a node, in tests).
    """

    csrf: bytes = field(repr=False)
    sso_pending: bytes = field(repr=False)

    @classmethod
    def random(cls) -> WebKeys:
        """Return keys made now, known to this process only."""
        return cls(secrets.token_bytes(SECRET_BYTES), secrets.token_bytes(SECRET_BYTES))


def csrf_token(secret: bytes) -> str:
    """Return the form token for a CSRF secret (what the hidden field carries)."""
    return _b64(hmac.new(secret, _TOKEN_LABEL, hashlib.sha256).digest())


class SignedCookieCsrf:
    """The CSRF secret in a signed double-submit cookie, until sessions hold it.

    The cookie is ``__Host-`` prefixed (so no other host, not even a sibling subdomain, can
    set it), ``Secure``, ``HttpOnly`` and ``SameSite=Strict``, and is signed with a key
    only this node holds, so a cookie planted by anyone else is replaced, not trusted. The
    key is the node's (:class:`WebKeys`), so a form one process served may be posted to
    another.
    """

    COOKIE: Final = "__Host-exchange-csrf"
    _NEW: Final = web.RequestKey("csrf_new_cookie", str)

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("key must be at least 32 bytes")
        self._key = key

    @classmethod
    def with_random_key(cls) -> SignedCookieCsrf:
        """Return one signing with a key of this process alone (pages built without a node)."""
        return cls(WebKeys.random().csrf)

    def _signature(self, secret: bytes) -> bytes:
        return hmac.new(self._key, _COOKIE_LABEL + secret, hashlib.sha256).digest()

    def _read(self, request: web.Request) -> bytes | None:
        """Return the secret of the request's cookie, or None unless it is well signed."""
        secret_text, dot, signature_text = request.cookies.get(self.COOKIE, "").partition(".")
        secret = _unb64(secret_text)
        signature = _unb64(signature_text)
        if not dot or secret is None or signature is None or len(secret) != SECRET_BYTES:
            return None
        if not hmac.compare_digest(signature, self._signature(secret)):
            return None
        return secret

    async def csrf_secret(self, request: web.Request) -> bytes:
        """Return the cookie's secret, or a new one the response will set as the cookie."""
        secret = self._read(request)
        if secret is None:
            secret = secrets.token_bytes(SECRET_BYTES)
            request[self._NEW] = f"{_b64(secret)}.{_b64(self._signature(secret))}"
        return secret

    def prepare_response(self, request: web.Request, response: web.StreamResponse) -> None:
        """Set the cookie when this request made a new secret."""
        value = request.get(self._NEW)
        if value is not None:
            # Written as a header: aiohttp turns ``set_cookie`` into headers before the
            # prepare signal this runs in, so a cookie set here that way would be lost.
            cookie = SimpleCookie()
            cookie[self.COOKIE] = value
            morsel = cookie[self.COOKIE]
            morsel["path"] = "/"
            morsel["secure"] = True
            morsel["httponly"] = True
            morsel["samesite"] = "Strict"
            response.headers.add(hdrs.SET_COOKIE, morsel.OutputString())


def is_page_path(path: str) -> bool:
    """Say whether a path (or route template) is the web pages' or their assets'."""
    return not path.startswith(MACHINE_PREFIXES) and path not in MACHINE_PATHS


def is_page(request: web.Request) -> bool:
    """Say whether a request is for the web pages (or their assets), not a machine API."""
    return is_page_path(request.path)


def route_name(request: web.Request) -> str:
    """Return the matched route's template for logs, never the path as sent.

    The caller chooses the path, and it could hold anything, a child's name included.
    """
    resource = request.match_info.route.resource
    return "unmatched" if resource is None else resource.canonical


def csp_nonce(request: web.Request) -> str:
    """Return the request's Content Security Policy nonce, made on first use."""
    nonce = request.get(CSP_NONCE)
    if nonce is None:
        nonce = _b64(secrets.token_bytes(NONCE_BYTES))
        request[CSP_NONCE] = nonce
    return nonce


def content_security_policy(nonce: str) -> str:
    """Return the policy of a page whose one inline script carries ``nonce``."""
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self'",
            "img-src 'self' data:",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
        )
    )


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Add the security headers to every page and asset response (``on_response_prepare``)."""
    if not is_page(request):
        return
    headers = response.headers
    headers["Content-Security-Policy"] = content_security_policy(csp_nonce(request))
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    if not request.path.startswith(ASSETS_PREFIX) or response.status >= 400:
        # Pages show personal data: no copy may be kept by the browser or a proxy.
        headers["Cache-Control"] = "no-store"
    source = request.app.get(CSRF_SECRETS)
    if source is not None:
        source.prepare_response(request, response)


async def _multipart_token(request: web.Request) -> str | None:
    """Return the first part of a multipart form if it is the CSRF field, keeping the rest."""
    reader = await read_multipart(request)
    request[MULTIPART] = reader
    try:
        part = await reader.next()
    except ValueError:  # a body aiohttp cannot split into parts: not a page form
        return None
    if not isinstance(part, BodyPartReader) or part.name != CSRF_FIELD:
        return None
    data = b""
    while chunk := await part.read_chunk(MAX_TOKEN_LEN):
        data += chunk
        if len(data) > MAX_TOKEN_LEN:
            return None
    return data.decode("ascii", errors="replace")


async def _form_token(request: web.Request) -> str | None:
    """Return the CSRF field of a page form, or None when the body is not a page form."""
    if request.content_type == "application/x-www-form-urlencoded":
        value = (await read_form(request)).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    if request.content_type == "multipart/form-data":
        return await _multipart_token(request)
    return None


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each page its CSRF token, and refuse a POST without it before the handler runs."""
    source = request.app.get(CSRF_SECRETS)
    if source is None or not is_page(request) or request.path.startswith(ASSETS_PREFIX):
        return await handler(request)
    expected = csrf_token(await source.csrf_secret(request))
    request[CSRF_TOKEN] = expected
    if request.method not in SAFE_METHODS:
        sent = await _form_token(request)
        if sent is None or not hmac.compare_digest(sent.encode(), expected.encode()):
            log.warning("web.csrf-refused", path=route_name(request))
            raise CsrfRefusedError
    return await handler(request)
