"""A client of one node's pages, as a browser is: its own cookies, forms posted with their token.

Every request is sent without following redirects, so a test sees each ``303`` and where
it leads. A form is posted with the CSRF token of the page it came from (:func:`csrf_token`),
as a browser posts the form it shows; :meth:`PageClient.post_without_token` is the forged
request the pages must refuse.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

import aiohttp
from multidict import CIMultiDictProxy

from exchange.web.accounts import SESSION_COOKIE

CSRF_RE: Final = re.compile(r'name="csrf_token" value="([^"]+)"')
#: A form's fields: a mapping, or pairs where a name repeats (checkboxes).
Form: TypeAlias = Mapping[str, str] | Sequence[tuple[str, str]]
#: What a request answered: its status, its text and its headers.
Answer: TypeAlias = tuple[int, str, CIMultiDictProxy[str]]


def csrf_token(page: str) -> str:
    """Return the CSRF token of a page's forms."""
    match = CSRF_RE.search(page)
    assert match is not None, "the page has no form token"
    return html.unescape(match.group(1))


def _fields(form: Form) -> list[tuple[str, str]]:
    return list(form.items()) if isinstance(form, Mapping) else list(form)


@dataclass
class PageClient:
    """A client with its own cookie jar, talking to one node's pages."""

    http: aiohttp.ClientSession
    base: str
    #: Every path asked for, in order (a test may look through them for a child's details).
    visited: list[str] = field(default_factory=list)
    #: The address of the last request, as sent.
    last_url: str = ""

    async def get(self, path: str) -> Answer:
        """GET a path without following redirects: status, text and headers."""
        self.visited.append(path)
        async with self.http.get(self.base + path, allow_redirects=False) as response:
            self.last_url = str(response.url)
            return response.status, await response.text(), response.headers

    async def get_bytes(self, path: str) -> tuple[int, bytes, CIMultiDictProxy[str]]:
        """GET a download without following redirects: status, body and headers."""
        self.visited.append(path)
        async with self.http.get(self.base + path, allow_redirects=False) as response:
            self.last_url = str(response.url)
            return response.status, await response.read(), response.headers

    async def post(self, path: str, form: Form, page: str) -> Answer:
        """POST ``form`` with the CSRF token of ``page``: status, text and headers."""
        return await self.post_without_token(
            path, [("csrf_token", csrf_token(page)), *_fields(form)]
        )

    async def post_without_token(self, path: str, form: Form) -> Answer:
        """POST ``form`` as it is (no token added): status, text and headers."""
        status, body, headers = await self._post(path, _fields(form))
        return status, body.decode(), headers

    async def post_bytes(
        self, path: str, form: Form, page: str
    ) -> tuple[int, bytes, CIMultiDictProxy[str]]:
        """POST ``form`` with the CSRF token of ``page`` for a download: status, body, headers."""
        return await self._post(path, [("csrf_token", csrf_token(page)), *_fields(form)])

    async def _post(
        self, path: str, fields: list[tuple[str, str]]
    ) -> tuple[int, bytes, CIMultiDictProxy[str]]:
        self.visited.append(path)
        async with self.http.post(self.base + path, data=fields, allow_redirects=False) as response:
            self.last_url = str(response.url)
            return response.status, await response.read(), response.headers

    async def upload(
        self,
        path: str,
        page: str,
        *,
        name: str,
        data: bytes,
        fields: Mapping[str, str] | None = None,
    ) -> Answer:
        """POST a file upload form as a browser does: the token first, the fields, the file."""
        form = aiohttp.FormData()
        form.add_field("csrf_token", csrf_token(page))
        for key, value in (fields or {}).items():
            form.add_field(key, value)
        form.add_field(
            "file", io.BytesIO(data), filename=name, content_type="application/octet-stream"
        )
        self.visited.append(path)
        async with self.http.post(self.base + path, data=form, allow_redirects=False) as response:
            self.last_url = str(response.url)
            return response.status, await response.text(), response.headers

    def session_token(self) -> str | None:
        """Return the session cookie the client holds, if any."""
        for cookie in self.http.cookie_jar:
            if cookie.key == SESSION_COOKIE:
                return cookie.value
        return None
