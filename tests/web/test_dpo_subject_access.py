"""Subject access: found by UPN or NHS number, and the number never shown, kept or logged."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import structlog

from exchange import logs
from exchange.web.dpo.subject_access import UPN_FORMAT
from tests.web.dpo_world import (
    FRONT_DOOR,
    NURSES,
    SCHOOL,
    World,
    dpo_world,
    record_not_shared,
    send_referral,
)
from tests.web.pages import parse

pytestmark = pytest.mark.network

#: A sentinel child's identifiers (valid check characters): never on a page or in a log.
UPN = "T356201412345"
NHS = "943 476 5919"
NHS_DIGITS = NHS.replace(" ", "")
#: Wrong check characters: refused, and never echoed either.
BAD_UPN = "T356201412346"
BAD_NHS = "9434765918"
NEEDLES = (UPN, UPN.lower(), NHS, NHS_DIGITS, BAD_UPN, BAD_NHS)


@pytest.fixture
def structured_log() -> Iterator[io.StringIO]:
    """Send every structlog event, as production JSON, to a buffer."""
    buffer = io.StringIO()
    logs.configure(json=True, level=logging.DEBUG, stream=buffer)
    yield buffer
    structlog.reset_defaults()


@pytest.fixture
async def world(tmp_path: Path, structured_log: io.StringIO) -> AsyncIterator[World]:  # noqa: ARG001 - the log is captured from the start
    """Hillside sent a referral about the sentinel child and decided not to share once."""
    async with dpo_world(tmp_path / "world") as running:
        await send_referral(running, upn=UPN, nhs=NHS_DIGITS)
        await record_not_shared(running, upn=UPN)
        yield running


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
    world: World, structured_log: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """The results list the sent referral and the decision not to share, by name and kind."""
    caplog.set_level(logging.DEBUG)
    client = await world.client(SCHOOL, "dpo")
    status, form, _ = await client.get("/subject-access")
    assert status == 200
    assert parse(form).title == "Subject access – Secure exchange"
    status, page, response = await client.post(
        "/subject-access", {"kind": "upn", "identifier": UPN}, page=form
    )
    assert status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert parse(page).title == "Subject access results – Secure exchange"
    text = _text(page)
    assert "Searched by UPN" in text
    assert "Sent Referral Stockport children's front door Shared" in text
    assert "Referral Stockport children's front door Sharing would not be proportionate" in text
    _assert_clean("the results page", page)
    _assert_clean("the response's address", str(response.url))
    _assert_clean("the structured log", structured_log.getvalue())
    _assert_clean("the standard log", caplog.text)


async def test_a_search_by_nhs_number_typed_with_spaces_finds_the_referral(
    world: World, structured_log: io.StringIO
) -> None:
    """An NHS number typed in groups, as it is printed, is searched without its spaces."""
    client = await world.client(SCHOOL, "dpo")
    _, form, _ = await client.get("/subject-access")
    status, page, _ = await client.post(
        "/subject-access", {"kind": "nhs-number", "identifier": NHS}, page=form
    )
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
        ({}, [("#kind", "Select whether you have a UPN or an NHS number"),
              ("#identifier", "Enter a UPN or NHS number")]),
        ({"kind": "upn"}, [("#identifier", "Enter a UPN")]),
        ({"kind": "nhs-number", "identifier": " "}, [("#identifier", "Enter an NHS number")]),
        ({"kind": "upn", "identifier": BAD_UPN},
         [("#identifier", "Enter a real UPN: the first letter does not match the digits")]),
        ({"kind": "upn", "identifier": NHS_DIGITS},
         [("#identifier", UPN_FORMAT)]),
        ({"kind": "nhs-number", "identifier": BAD_NHS},
         [("#identifier", "Enter a real NHS number: the last digit does not match the others")]),
        ({"kind": "nhs-number", "identifier": UPN},
         [("#identifier", "Enter an NHS number in the right format: 10 digits")]),
        ({"kind": UPN, "identifier": UPN},
         [("#kind", "Select whether you have a UPN or an NHS number")]),
    ],
)  # fmt: skip
async def test_a_wrong_identifier_says_what_is_wrong_and_never_shows_it(
    world: World, structured_log: io.StringIO, form: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    """Each refusal names the rule in plain words; the value is not in the page or the log."""
    client = await world.client(SCHOOL, "dpo")
    _, page, _ = await client.get("/subject-access")
    status, answer, _ = await client.post("/subject-access", form, page=page)
    assert status == 400
    assert parse(answer).title == "Error: Subject access – Secure exchange"
    assert _errors(answer) == expected
    inputs = [e for e in parse(answer).all("input") if e.attrs.get("name") == "identifier"]
    assert len(inputs) == 1
    assert "value" not in inputs[0].attrs
    _assert_clean("the error page", answer)
    _assert_clean("the structured log", structured_log.getvalue())


async def test_the_identifier_is_never_taken_from_the_address(world: World) -> None:
    """The form posts; a search in the query string is not a search."""
    client = await world.client(SCHOOL, "dpo")
    status, page, _ = await client.get(f"/subject-access?kind=upn&identifier={UPN}")
    assert status == 200
    assert "Subject access results" not in page
    _, form, _ = await client.get("/subject-access")
    assert parse(form).all("form")[-1].attrs["method"] == "post"


async def test_a_search_without_the_form_token_is_refused(world: World) -> None:
    """A POST without its CSRF token gets the 403 page and searches nothing."""
    client = await world.client(SCHOOL, "dpo")
    async with client.http.post(
        client.base + "/subject-access", data={"kind": "upn", "identifier": UPN}
    ) as response:
        assert response.status == 403
        page = await response.text()
    assert "This form has expired" in page
    _assert_clean("the refusal", page)


@pytest.mark.parametrize("role", ["dsl", "admin"])
async def test_only_the_dpo_may_search(world: World, role: str) -> None:
    """A DSL or an administrator of the same organisation gets the 403 page, form or search."""
    client = await world.client(SCHOOL, role)  # type: ignore[arg-type]
    status, page, _ = await client.get("/subject-access")
    assert status == 403
    _, inbox, _ = await client.get("/inbox" if role == "dsl" else "/")
    status, page, _ = await client.post(
        "/subject-access", {"kind": "upn", "identifier": UPN}, page=inbox
    )
    assert status == 403
    assert parse(page).title == "You cannot see this page – Secure exchange"
    _assert_clean("the refusal", page)


async def test_another_organisation_finds_nothing_of_hillsides(world: World) -> None:
    """The nurses' DPO (on the LA node) finds no exchange of Hillside's about the child."""
    client = await world.client(NURSES, "dpo")
    _, form, _ = await client.get("/subject-access")
    status, page, _ = await client.post(
        "/subject-access", {"kind": "upn", "identifier": UPN}, page=form
    )
    assert status == 200
    assert "Hillside" not in page
    assert "recorded no decision not to share" in _text(page)
    assert FRONT_DOOR not in page
