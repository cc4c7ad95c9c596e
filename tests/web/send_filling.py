"""Filling in the send journey's pages as a person would: used by the send tests."""

from __future__ import annotations

import re
from typing import Final

from tests.web.page_client import Form, PageClient
from tests.web.synthetic import PDF, REFERRAL_ANSWERS, REFERRAL_REASON
from tests.web.world import FRONT_DOOR


async def start(client: PageClient, kind: str = "referral") -> str:
    """Start a draft of ``kind``; return its first question's path."""
    _, page, _ = await client.get("/send")
    status, _, headers = await client.post("/send", {"kind": kind}, page)
    assert status == 303, status
    return headers["Location"]


async def answer(client: PageClient, path: str, form: Form) -> str:
    """Answer the page at ``path``; return where it went on to (fails with the errors)."""
    _, page, _ = await client.get(path)
    status, answered, headers = await client.post(path, form, page)
    assert status == 303, re.findall(r'<a href="#[^"]*">([^<]*)</a>', answered)
    return headers["Location"]


async def fill_to_reason(client: PageClient) -> str:
    """Fill a referral to the front door with a PDF up to its reason; return the reason path."""
    where = await start(client)
    for form in REFERRAL_ANSWERS.values():
        where = await answer(client, where, form)
    assert where.endswith("/files")
    _, page, _ = await client.get(where)
    status, _, _ = await client.upload(
        where, page, name="chronology.pdf", data=PDF, fields={"title": "Chronology"}
    )
    assert status == 303
    where = await answer(client, where + "/done", {})
    _, page, _ = await client.get(where + "?q=front+door")
    await client.post(where, {"action": "add", "recipient": str(FRONT_DOOR)}, page)
    where = await answer(client, where, {"action": "continue"})
    return await answer(client, where, {"purpose": "safeguarding-referral"})


#: The reason page's answers other than the reason.
REASON_CHOICES: Final = [
    ("categories", "identity"),
    ("categories", "family"),
    ("categories", "safeguarding-concerns"),
    ("lawful_basis", "art6.1.e+art9.2.g+dpa2018.sch1.para18"),
]


async def fill_referral(client: PageClient, *, reason: str = REFERRAL_REASON) -> str:
    """Fill a referral to the front door with a PDF; return the "Check your answers" path."""
    where = await fill_to_reason(client)
    return await answer(client, where, [*REASON_CHOICES, ("reason", reason)])
