"""Hostile input from an authenticated client is refused with a 400 naming the rule, never a 500.

Each case is one the fault runs of issue 11 turned into a 500: a list cursor whose exponent
overflows a float, a ``limit`` of a Unicode digit, an integer longer than Python will convert,
a record nested hundreds of levels deep, and a lone surrogate in a free-text field. They are
sent over real HTTP to the loopback nodes of ``conftest.world``.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
import yarl

from exchange.demo.loopback import Deployment

from .conftest import LA, SCHOOL
from .helpers import auth, client, submit
from .records import UPN, lac_submission

pytestmark = pytest.mark.network

_DIGEST = "ab" * 32


async def _get(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    async with http.get(yarl.URL(url, encoded=True), headers=headers) as resp:
        assert resp.content_type == "application/json", url
        return resp.status, await resp.json()


async def _post(
    http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    headers = {**headers, "Content-Type": "application/json"}
    async with http.post(url, data=body, headers=headers) as resp:
        assert resp.content_type == "application/json", url
        return resp.status, await resp.json()


def _message(answer: dict[str, Any]) -> str:
    return str(answer["error"]["message"])


async def test_list_queries_accept_only_ascii_digits_and_exact_cursors(world: Deployment) -> None:
    """A cursor that overflows a float, a Unicode digit or a cursor not as issued: 400."""
    dsl = auth(world, SCHOOL, "dsl")
    cases = {
        f"before=0x1.0p9999:{_DIGEST}": "before must be the next cursor of an earlier page",
        f"before=0x1.0p-9999:{_DIGEST}": "before must be the next cursor of an earlier page",
        # Well formed by the pattern, but not as next_cursor writes it (13 hex digits).
        f"before=0x1.8p30:{_DIGEST}": "before must be the next cursor of an earlier page",
        "limit=%C2%B2": "limit must be a whole number from 1 to 200",  # a superscript two
        "limit=%D9%A3": "limit must be a whole number from 1 to 200",  # an Arabic-Indic three
        "limit=" + "0" * 5000 + "1": "limit must be a whole number from 1 to 200",
        "limit=+5": "limit must be a whole number from 1 to 200",
        "limit=%205": "limit must be a whole number from 1 to 200",
    }
    async with client(world) as http:
        for base in ("/api/v1/sent", "/api/v1/inbox"):
            for query, message in cases.items():
                status, answer = await _get(http, f"{world.url('school')}{base}?{query}", dsl)
                assert (status, _message(answer)) == (400, message), (base, query)


async def test_a_cursor_as_issued_still_pages(world: Deployment) -> None:
    """The exact-format check accepts every cursor the node hands out."""
    async with client(world) as http:
        for i in range(3):
            await submit(http, world, f"synthetic {i}".encode(), [LA])
        url = world.url("school") + "/api/v1/sent?limit=1"
        seen = []
        status, page = await _get(http, url, auth(world, SCHOOL, "dsl"))
        while True:
            assert status == 200
            seen.extend(i["digest"] for i in page["items"])
            if page["next"] is None:
                break
            status, page = await _get(
                http, f"{url}&before={page['next']}", auth(world, SCHOOL, "dsl")
            )
    assert len(seen) == len(set(seen)) == 3


async def test_an_unknown_query_parameter_is_refused_without_its_name(world: Deployment) -> None:
    """The answer lists the parameters the address takes and never repeats the one sent."""
    name = "Tallulah-Sentinel"
    async with client(world) as http:
        for base, role, expected in [
            ("/api/v1/sent", "dsl", "this address takes only the parameters limit, before"),
            ("/api/v1/inbox", "dsl", "this address takes only the parameters limit, before"),
            (
                "/api/v1/register",
                "dpo",
                "this address takes only the parameters format, from, to",
            ),
            ("/api/v1/retention/due", "dpo", "this address takes only the parameter before"),
        ]:
            url = f"{world.url('school')}{base}?{name}=1"
            status, answer = await _get(http, url, auth(world, SCHOOL, role))
            assert (status, _message(answer)) == (400, expected), base
            assert name.lower() not in json.dumps(answer).lower()


def _nested(depth: int) -> Any:
    value: Any = "synthetic"
    for _ in range(depth):
        value = [value]
    return value


def _with_reason(reason_json: str) -> bytes:
    """Return a submission whose ``reason`` is the raw JSON text ``reason_json``."""
    doc = lac_submission("synthetic", [LA])
    text = json.dumps(doc)
    quoted = json.dumps(doc["reason"])
    assert text.count(quoted) == 1
    return text.replace(quoted, reason_json).encode()


async def test_json_bodies_refuse_huge_integers_deep_nesting_and_lone_surrogates(
    world: Deployment,
) -> None:
    """Each body is refused with a 400 naming the rule and where it broke, on every endpoint."""
    school = world.url("school")
    dsl = auth(world, SCHOOL, "dsl")
    huge = "9" * 4301
    deep_record = lac_submission("synthetic", [LA])
    deep_record["record"]["pep"] = {"targets": _nested(600)}
    surrogate = "holds a lone surrogate (an unpaired \\uD800-\\uDFFF escape); text must be"
    cases: list[tuple[str, bytes, str]] = [
        (
            "/api/v1/envelopes",
            _with_reason(huge),
            "reason is an integer outside the signed 64-bit range",
        ),
        (
            "/api/v1/envelopes",
            _with_reason("-9223372036854775809"),
            "reason is an integer outside the signed 64-bit range",
        ),
        (
            "/api/v1/envelopes",
            json.dumps(deep_record).encode(),
            "record.pep.targets[0][0][0]",
        ),
        (
            "/api/v1/envelopes",
            b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "the request body is nested more than 32 levels deep",
        ),
        ("/api/v1/envelopes", _with_reason('"why \\ud800 now"'), f"reason {surrogate}"),
        ("/api/v1/envelopes", _with_reason('"\\ufffe"'), "reason holds a Unicode non-character"),
        ("/api/v1/envelopes", _with_reason("1e999"), "reason is a number too large to be finite"),
        (
            "/api/v1/envelopes",
            _with_reason("NaN"),
            "reason is NaN or Infinity, which JSON does not allow",
        ),
        (
            "/api/v1/decisions/not-shared",
            json.dumps({"reason": "\udfff", "purpose": "x"}).encode(),
            f"reason {surrogate}",
        ),
        (
            "/api/v1/retention/holds",
            json.dumps({"reason": "x", "reference": "\ud83d"}).encode(),
            f"reference {surrogate}",
        ),
        (
            f"/api/v1/sent/{_DIGEST}/recall",
            f'{{"reason": "x", "reason_code": {huge}}}'.encode(),
            "reason_code is an integer outside the signed 64-bit range",
        ),
    ]
    async with client(world) as http:
        for path, body, message in cases:
            role = "dpo" if "retention" in path else "dsl"
            status, answer = await _post(http, school + path, body, auth(world, SCHOOL, role))
            assert status == 400, (path, message, answer)
            assert _message(answer).startswith(message), (path, answer)
            if message.endswith("[0]"):
                assert _message(answer).endswith("… is nested more than 32 levels deep")
        # A nested record inside the bound still reaches the record checks (422, not 400).
        shallow = lac_submission("synthetic", [LA])
        shallow["record"]["pep"] = {"targets": _nested(28)}
        body = json.dumps(shallow).encode()
        status, answer = await _post(http, school + "/api/v1/envelopes", body, dsl)
        assert status == 422, answer


async def test_a_lone_surrogate_in_free_text_is_refused(world: Deployment) -> None:
    """Free text with a lone surrogate reached the store and the log (a 500): now a 400."""
    school = world.url("school")
    dsl, dpo = auth(world, SCHOOL, "dsl"), auth(world, SCHOOL, "dpo")
    async with client(world) as http:
        digest = (await submit(http, world, b"synthetic", [LA]))["digest"]
        decision = {
            "purpose": "information-request-reply",
            "recipients": [LA],
            "reason_code": "information-not-held",
            "reason": "The pupil joined this month \ud800 we hold nothing.",
            "upn": UPN,
        }
        cases = [
            ("/api/v1/envelopes", _with_reason('"needed \\udc00 for review"'), dsl),
            ("/api/v1/decisions/not-shared", json.dumps(decision).encode(), dsl),
            (
                "/api/v1/retention/holds",
                json.dumps({"reason": "litigation \udfff", "reference": "case 1"}).encode(),
                dpo,
            ),
            (
                f"/api/v1/sent/{digest}/recall",
                json.dumps({"reason": "sent \ud83d in error"}).encode(),
                dsl,
            ),
        ]
        for path, body, headers in cases:
            status, answer = await _post(http, school + path, body, headers)
            assert (status, _message(answer).split(";")[0]) == (
                400,
                "reason holds a lone surrogate (an unpaired \\uD800-\\uDFFF escape)",
            ), path


async def test_the_first_and_last_dates_a_date_field_takes_are_no_fault(world: Deployment) -> None:
    """0001-01-01 and 9999-12-31 pass the date format: the node answers them, never a 500."""
    school = world.url("school")
    dsl, dpo = auth(world, SCHOOL, "dsl"), auth(world, SCHOOL, "dpo")
    async with client(world) as http:
        for day in ("0001-01-01", "9999-12-31"):
            for url in (
                f"{school}/api/v1/register?from={day}",
                f"{school}/api/v1/register?to={day}",
                f"{school}/api/v1/retention/due?before={day}",
            ):
                status, _ = await _get(http, url, dpo)
                assert status == 200, url
            doc = lac_submission("synthetic", [LA])
            for field in ("due", "new_school_confirmed"):
                body = json.dumps({**doc, field: day}).encode()
                status, answer = await _post(http, school + "/api/v1/envelopes", body, dsl)
                assert status in (202, 422), (field, day, answer)
