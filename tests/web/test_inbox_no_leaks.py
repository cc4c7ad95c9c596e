"""The child's details are on the opened record's page, and nowhere else: no URL, title or log."""

from __future__ import annotations

import io
import logging
import re

import pytest

from tests.web.pages import parse
from tests.web.synthetic import DOB_WORDS, FAMILY, GIVEN, NEEDLES, NHS, UPN, referral
from tests.web.world import FRONT_DOOR, SCHOOL, World

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

HREF_RE = re.compile(r'(?:href|action)="([^"]+)"')


def _clean(where: str, text: str) -> None:
    for needle in NEEDLES:
        assert needle not in text, f"{needle!r} found in {where}"


async def test_the_childs_details_never_leave_the_opened_page(
    world: World, structured_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """Every page of the journey: URLs, links, redirects, titles and log lines stay clean."""
    caplog.set_level(logging.DEBUG)
    school_dsl = await world.person(SCHOOL, "dsl")
    worker = await world.person(FRONT_DOOR, "dsl")
    digest = await world.send(school_dsl.user, referral())
    path = f"/inbox/{digest.hex()}"
    item = await world.service(FRONT_DOOR).store.inbox_item(FRONT_DOOR, digest)
    assert item is not None
    visited: list[str] = []
    pages: list[str] = []

    async def get(where: str) -> str:
        visited.append(where)
        status, text, headers = await worker.get(where)
        assert status in {200, 303}, where
        visited.append(headers.get("Location", ""))
        if status == 200:
            pages.append(text)
        return text

    await get("/inbox")
    await get(f"/inbox/{item.envelope.envelope_id.hex()}")  # the notice's link
    before = await get(path)
    visited.append(f"{path}/open")
    status, opened, _ = await worker.post(f"{path}/open", {}, before)
    assert status == 200
    for needle in (f"{GIVEN} {FAMILY}", DOB_WORDS, UPN, NHS):
        assert needle in opened  # the record is shown: that is the page's purpose
    await get(path)
    status, _, headers = await worker.get_bytes(f"{path}/attachments/1")
    assert status == 200
    visited.append(f"{path}/attachments/1")
    _clean("the download's headers", str(dict(headers)))
    form = await get(f"{path}/acknowledge")
    visited.append(f"{path}/acknowledge")
    status, error, _ = await worker.post(f"{path}/acknowledge", {"outcome": UPN}, form)
    assert status == 400
    _clean("the form's error page", error)
    status, _, headers = await worker.post(f"{path}/acknowledge", {"outcome": "query"}, form)
    visited.append(headers["Location"])
    await get(f"{path}/decided")

    for page in [*pages, opened, error]:
        _clean("a page title", parse(page).title)
        for link in HREF_RE.findall(page):
            _clean("a link", link)
    for where in visited:
        _clean("a URL", where)
    _clean("the structured log", structured_log.getvalue())
    _clean("the standard log", "\n".join(r.getMessage() for r in caplog.records))
    assert "envelope.opened" in structured_log.getvalue()  # the log was captured
