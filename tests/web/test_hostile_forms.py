"""Page forms and page queries a browser would never send are refused with a page, never a 500.

Sent to running nodes over TLS: form bodies that are not UTF-8, in a character set that can
carry lone surrogates, multipart without its boundary, a form larger than any page form, and
list cursors and numbers that overflowed a float or that ``int`` could not read.
"""

from __future__ import annotations

import io
import re

import pytest
import yarl

from exchange.web.accounts import SESSION_COOKIE
from exchange.web.forms import MAX_FORM_BYTES
from exchange.web.security import SignedCookieCsrf
from tests.web.world import SCHOOL, World

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

_SERVICE_FAULT = "Sorry, there is a problem with the service"


async def test_unreadable_page_forms_are_refused_with_a_page(world: World) -> None:
    """Each form is refused before any handler with a 400 or 413 page, not a 500 page."""
    http, base = world.http, world.base(SCHOOL)
    async with http.get(base + "/sign-in") as resp:
        assert resp.status == 200
        found = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
        # The client keeps no cookie for an IP address: the CSRF cookie goes by hand.
        cookie = resp.cookies[SignedCookieCsrf.COOKIE].OutputString(attrs=[])
    assert found is not None
    token = found[1]
    form = "application/x-www-form-urlencoded"
    no_boundary = b"--x\r\ncontent-disposition: form-data\r\n\r\nx\r\n--x--\r\n"
    cases: list[tuple[bytes, str, int]] = [
        # Raw bytes that are not UTF-8 after a valid token.
        (f"csrf_token={token}&email=".encode() + b"\xff\xfe", form, 400),
        # UTF-7 can carry a lone surrogate (+2AA-); page forms are UTF-8 only.
        (f"csrf_token={token}&email=+2AA-".encode(), form + "; charset=utf-7", 400),
        (f"csrf_token={token}&email=x".encode(), form + "; charset=no-such-charset", 400),
        (no_boundary, "multipart/form-data", 400),
        (b"garbage", "multipart/form-data; boundary=x", 403),
        (f"csrf_token={token}&email=".encode() + b"a" * MAX_FORM_BYTES, form, 413),
    ]
    for body, content_type, status in cases:
        headers = {"Content-Type": content_type, "Cookie": cookie}
        data = io.BytesIO(body)  # aiohttp warns of a large body given as bytes
        async with http.post(base + "/sign-in", data=data, headers=headers) as resp:
            assert (resp.status, resp.content_type) == (status, "text/html"), content_type
            assert _SERVICE_FAULT not in await resp.text()
    # A readable form still reaches the page: a wrong password is its own refusal (401).
    body = f"csrf_token={token}&email=dsl%40school.example&password=wrong".encode()
    headers = {"Content-Type": form, "Cookie": cookie}
    async with http.post(base + "/sign-in", data=body, headers=headers) as resp:
        assert resp.status == 401
        assert "Enter a correct email address and password" in await resp.text()


async def test_page_queries_with_unicode_digits_or_overflowing_cursors_are_refused(
    world: World,
) -> None:
    """The list pages read cursors and numbers as the API does: exactly, ASCII digits only."""
    dsl = await world.person(SCHOOL, "dsl")
    admin = await world.person(SCHOOL, "admin")
    digest = "ab" * 32
    cases = [
        (dsl, f"/sent?before=0x1.0p9999:{digest}", 400),
        (dsl, f"/sent?after=0x1.0p-9999:{digest}", 400),
        (dsl, f"/inbox?after=0:0x1.0p9999:{digest}", 400),
        (dsl, f"/inbox?after=1:0x1.8p3:{digest}", 400),
        (dsl, f"/inbox/{digest}/attachments/%C2%B2", 404),  # a superscript two
        (admin, "/admin/node?requeued=%C2%B2", 200),  # not a count: no "put back" notice
        (admin, "/admin/node?requeued=" + "9" * 5000, 200),
    ]
    for person, path, status in cases:
        async with world.http.get(
            yarl.URL(person.base + path, encoded=True),
            headers={"Cookie": f"{SESSION_COOKIE}={person.session_token()}"},
            allow_redirects=False,
        ) as resp:
            text = await resp.text()
        assert resp.status == status, path
        assert _SERVICE_FAULT not in text, path
        assert "put back in the queue" not in text, path
