"""Subject access: found by UPN or NHS number, and the number never shown, kept or logged.

The searches only read: the module's tests share nodes, and the log captured from their
start (every test checks the whole module's log so far).
"""

from __future__ import annotations

import io
import logging

import pytest
import pytest_asyncio

from exchange.web.dpo.subject_access import UPN_FORMAT
from tests.web.pages import parse
from tests.web.synthetic import (
    BAD_NHS,
    BAD_UPN,
    UPN,
    not_shared,
    referral_to_front_door,
)
from tests.web.synthetic import NHS as NHS_DIGITS
from tests.web.synthetic import NHS_PRINTED as NHS
from tests.web.world import FRONT_DOOR, NURSES, SCHOOL, World, actor

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

#: The child's identifiers, and wrong ones: never on a page or in a log.
NEEDLES = (UPN, UPN.lower(), NHS, NHS_DIGITS, BAD_UPN, BAD_NHS)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def searched(structured_log: io.StringIO, world: World) -> World:  # noqa: ARG001 - the log is captured from the start
    """Hillside sent a referral about the child and decided not to share once."""
    await world.submit(actor(SCHOOL, "dsl"), referral_to_front_door(upn=UPN, nhs=NHS_DIGITS))
    await not_shared(world.service(SCHOOL), SCHOOL, upn=UPN)
    return world


def _assert_clean(where: str, text: str) -> None:
    for needle in NEEDLES:
        assert needle not in text, f"{needle!r} found in {where}"


def _text(page: str) -> str:
    """Return the words of the page's main content, white space collapsed."""
    return " ".join(parse(page).all("main")[0].text.split())


def _errors(page: str) -> list[tuple[str, str]]:
    """Return the error summary's links: (href, text)."""
    parsed = parse(page)
    return [
        (str(e.attrs["href"]), " ".join(e.text.split()))
        for e in parsed.all("a")
        if str(e.attrs.get("href", "")).startswith("#") and e.attrs.get("href") != "#main-content"
    ]


async def test_a_search_by_upn_finds_the_referral_and_the_decision(
    searched: World, structured_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """The results list the sent referral and the decision not to share, by name and kind."""
    caplog.set_level(logging.DEBUG)
    client = await searched.person(SCHOOL, "dpo")
    status, form, _ = await client.get("/subject-access")
    assert status == 200
    assert parse(form).title == "Subject access – Secure exchange"
    status, page, headers = await client.post("/subject-access", {"upn": UPN}, page=form)
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert parse(page).title == "Subject access results – Secure exchange"
    text = _text(page)
    assert "Searched by UPN" in text
    assert "Sent Referral Stockport children's front door Shared" in text
    assert "Referral Stockport children's front door Sharing would not be proportionate" in text
    _assert_clean("the results page", page)
    _assert_clean("the response's address", client.last_url)
    _assert_clean("the structured log", structured_log.getvalue())
    _assert_clean("the standard log", caplog.text)


async def test_a_search_by_nhs_number_typed_with_spaces_finds_the_referral(
    searched: World, structured_log: io.StringIO
) -> None:
    """An NHS number typed in groups, as it is printed, is searched without its spaces."""
    client = await searched.person(SCHOOL, "dpo")
    _, form, _ = await client.get("/subject-access")
    status, page, _ = await client.post("/subject-access", {"nhs_number": NHS}, page=form)
    assert status == 200
    text = _text(page)
    assert "Searched by NHS number" in text
    assert "Sent Referral Stockport children's front door Shared" in text
    # The decision not to share named only the UPN.
    assert "recorded no decision not to share" in text
    _assert_clean("the results page", page)
    _assert_clean("the structured log", structured_log.getvalue())


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({}, [("#upn", "Enter the child's UPN, NHS number or both")]),
        ({"nhs_number": " "}, [("#upn", "Enter the child's UPN, NHS number or both")]),
        ({"upn": BAD_UPN},
         [("#upn", "Enter a real UPN: the first letter does not match the digits")]),
        ({"upn": NHS_DIGITS}, [("#upn", UPN_FORMAT)]),
        ({"nhs_number": BAD_NHS},
         [("#nhs_number", "Enter a real NHS number: the last digit does not match the others")]),
        ({"nhs_number": UPN},
         [("#nhs_number", "Enter an NHS number in the right format: 10 digits")]),
        ({"upn": BAD_UPN, "nhs_number": NHS},
         [("#upn", "Enter a real UPN: the first letter does not match the digits")]),
    ],
)  # fmt: skip
async def test_a_wrong_identifier_says_what_is_wrong_and_never_shows_it(
    searched: World,
    structured_log: io.StringIO,
    form: dict[str, str],
    expected: list[tuple[str, str]],
) -> None:
    """Each refusal names the rule in plain words; the value is not in the page or the log."""
    client = await searched.person(SCHOOL, "dpo")
    _, page, _ = await client.get("/subject-access")
    status, answer, _ = await client.post("/subject-access", form, page=page)
    assert status == 400
    assert parse(answer).title == "Error: Subject access – Secure exchange"
    assert _errors(answer) == expected
    inputs = [e for e in parse(answer).all("input") if e.attrs.get("name") in {"upn", "nhs_number"}]
    assert len(inputs) == 2
    assert "value" not in inputs[0].attrs
    _assert_clean("the error page", answer)
    _assert_clean("the structured log", structured_log.getvalue())


async def test_the_identifier_is_never_taken_from_the_address(searched: World) -> None:
    """The form posts; a search in the query string is not a search."""
    client = await searched.person(SCHOOL, "dpo")
    status, page, _ = await client.get(f"/subject-access?kind=upn&identifier={UPN}")
    assert status == 200
    assert "Subject access results" not in page
    _, form, _ = await client.get("/subject-access")
    assert parse(form).all("form")[-1].attrs["method"] == "post"


async def test_a_search_without_the_form_token_is_refused(searched: World) -> None:
    """A POST without its CSRF token gets the 403 page and searches nothing."""
    client = await searched.person(SCHOOL, "dpo")
    status, page, _ = await client.post_without_token("/subject-access", {"upn": UPN})
    assert status == 403
    assert "This form has expired" in page
    _assert_clean("the refusal", page)


@pytest.mark.parametrize("role", ["dsl", "admin"])
async def test_only_the_dpo_may_search(searched: World, role: str) -> None:
    """A DSL or an administrator of the same organisation gets the 403 page, form or search."""
    client = await searched.person(SCHOOL, role)  # type: ignore[arg-type]
    status, page, _ = await client.get("/subject-access")
    assert status == 403
    _, inbox, _ = await client.get("/inbox" if role == "dsl" else "/")
    status, page, _ = await client.post("/subject-access", {"upn": UPN}, page=inbox)
    assert status == 403
    assert parse(page).title == "You cannot see this page – Secure exchange"
    _assert_clean("the refusal", page)


async def test_another_organisation_finds_nothing_of_hillsides(searched: World) -> None:
    """The nurses' DPO (on the LA node) finds no exchange of Hillside's about the child."""
    client = await searched.person(NURSES, "dpo")
    _, form, _ = await client.get("/subject-access")
    status, page, _ = await client.post("/subject-access", {"upn": UPN}, page=form)
    assert status == 200
    assert "Hillside" not in page
    assert "recorded no decision not to share" in _text(page)
    assert FRONT_DOOR not in page
