"""Page form bodies, read so that a body no browser would send is a refusal, never a fault.

The CSRF check reads every page form before its handler runs (:mod:`exchange.web.security`),
through :func:`read_form` for an urlencoded form and :func:`read_multipart` for a multipart
one. aiohttp keeps the form it read, so a handler's own ``await request.post()`` gets the
form checked here. A refusal is an ``HTTPException`` that the error pages turn into a page;
nothing of the body is repeated or logged.
"""

from __future__ import annotations

from typing import Final

from aiohttp import MultipartReader, web
from multidict import MultiDictProxy

from exchange.http.jsonbody import NOT_TEXT_RE

#: The largest urlencoded page form: a record typed into the send pages is at most 256 KiB
#: of JSON, which percent-encoding can make up to three times longer. Files are multipart,
#: streamed by their pages, and not bound by this.
MAX_FORM_BYTES: Final = 1024 * 1024
#: The character set names a page form may be sent in (the pages ask for UTF-8).
_UTF8: Final = frozenset({"utf-8", "utf8"})


def _check_charset(request: web.Request) -> None:
    # Another character set could carry what UTF-8 cannot (UTF-7 spells a lone surrogate),
    # and an unknown one would fail in the decoder.
    charset = request.charset
    if charset is not None and charset.lower() not in _UTF8:
        raise web.HTTPBadRequest


async def read_form(
    request: web.Request,
) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """Return the request's urlencoded form: UTF-8, at most :data:`MAX_FORM_BYTES`, text only.

    Refuses (400) another character set, bytes that are not UTF-8 and a value or name holding
    a character no text may hold; (413) a body larger than the bound or of unknown length.
    """
    _check_charset(request)
    length = request.content_length
    if length is None or length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_FORM_BYTES, length or 0)
    try:
        form = await request.post()
    except (UnicodeDecodeError, LookupError, ValueError):
        raise web.HTTPBadRequest from None
    for name, value in form.items():
        if NOT_TEXT_RE.search(name) is not None:
            raise web.HTTPBadRequest
        if isinstance(value, str) and NOT_TEXT_RE.search(value) is not None:
            raise web.HTTPBadRequest
    return form


async def read_multipart(request: web.Request) -> MultipartReader:
    """Return the reader of a multipart form, refusing (400) one aiohttp cannot read."""
    _check_charset(request)
    try:
        return await request.multipart()
    except (UnicodeDecodeError, LookupError, ValueError):
        raise web.HTTPBadRequest from None
