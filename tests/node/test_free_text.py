"""Children's details typed into free text are refused on real nodes, and stored nowhere.

A school node and an LA node over TLS. A referral about a synthetic child is sent and
delivered; then every free-text field a node keeps is given the child's UPN, NHS number,
date of birth or name, spelt as people spell them (lower case, spaces, dashes, zero-width
joiners, Arabic-Indic digits): the reason of a submission, a decision not to share, a
recall and a hold, a hold's reference, and the codes of a recall, a rejection and an
acknowledgement. Each is refused with 422 naming the rule and the kind of detail found;
afterwards the register export, both nodes' ledgers and every API answer are searched for
every spelling, and the store holds nothing from the refused requests.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl

from exchange.demo.loopback import Deployment
from exchange.peerauth import signed_post_headers
from exchange.records.free_text import normalise

from .conftest import LA, SCHOOL, deployed
from .helpers import auth, client, org_pair, sent, until
from .records import NHS, UPN, referral_submission

pytestmark = pytest.mark.network

#: The child's details as they were typed into free text in the findings (and more).
SPELLINGS = {
    "upn-lower-case": UPN.lower(),
    "upn-spaced": "W 3562 0012 4001",
    "upn-arabic-indic": "W" + "".join(chr(0x0660 + int(d)) for d in UPN[1:]),
    "upn-fullwidth-dashes": "Ｗ-３５６-２００-１２４-００１",
    "nhs-zero-width": "999\u200b000\u200d0018",
    "nhs-dashed": "999-000-0018",
    "dob-dotted": "14.3.15",
    "dob-words": "14th March 2015",
    "dob-iso": "2015-03-14",
}
#: The child's names, only refused where the record is at hand (a submission).
NAMES = {"name-lower-case": "jo testchild", "name-capitals": "TESTCHILD"}
FOUND = {"upn": "a UPN", "nhs": "an NHS number", "dob": "a date that could be a date of birth"}


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the school and the LA with DSLs, staff and DPOs."""
    users = {SCHOOL: ["dsl", "dpo"], LA: ["dsl", "staff", "dpo"]}
    async with deployed(tmp_path / "free-text", users) as deployment:
        yield deployment


class Calls:
    """Makes API calls and keeps every answer's body, to search them afterwards."""

    def __init__(self, http: aiohttp.ClientSession, world: Deployment) -> None:
        self.http = http
        self.world = world
        self.answers: list[bytes] = []

    async def post(
        self, node: str, path: str, org: str, role: str, body: dict[str, Any]
    ) -> tuple[int, Any]:
        """POST ``body`` to ``node`` as the user of ``org`` with ``role``; keep the answer."""
        async with self.http.post(
            self.world.url(node) + path, json=body, headers=auth(self.world, org, role)
        ) as resp:
            raw = await resp.read()
            self.answers.append(raw)
            return resp.status, json.loads(raw) if raw else None

    async def get(self, node: str, path: str, org: str, role: str) -> bytes:
        """GET ``path`` from ``node`` (200 expected); keep and return the answer's body."""
        async with self.http.get(
            self.world.url(node) + path, headers=auth(self.world, org, role)
        ) as resp:
            assert resp.status == 200, path
            raw = await resp.read()
            self.answers.append(raw)
            return raw


def _refused(status: int, answer: Any, rule: str, kind: str | None = None) -> None:
    assert status == 422, answer
    error = answer["error"]
    assert error["rule"] == rule
    if kind is not None:
        assert error["message"].endswith(f"(found: {FOUND[kind]})"), error["message"]
        assert error["message"].startswith(
            rule.split(".", maxsplit=1)[0] + " must not name the child"
        )


def _kind(label: str) -> str:
    return label.split("-", maxsplit=1)[0]


def _rule(field: str, label: str) -> str:
    return f"{field}." + {"upn": "identifier", "nhs": "identifier", "dob": "date-of-birth"}.get(
        _kind(label), "names-subject"
    )


def _traces(blob: bytes) -> list[str]:
    """Return which spellings (or the canonical identifiers) appear in ``blob``, normalised."""
    text = normalise(blob.decode("utf-8", errors="replace"))
    compact = "".join(text.split())
    raw = blob.decode("utf-8", errors="replace")
    found = [label for label, value in {**SPELLINGS, **NAMES}.items() if value in raw]
    found += [v for v in ("w356200124001", NHS) if v in compact]
    return found + (["testchild"] if "testchild" in text else [])


async def _delivered_referral(calls: Calls) -> str:
    status, answer = await calls.post(
        "school", "/api/v1/envelopes", SCHOOL, "dsl", referral_submission([LA])
    )
    assert status == 202, answer
    digest = str(answer["digest"])

    async def delivered() -> bool:
        item = await sent(calls.http, calls.world, digest)
        return all(r["delivery_state"] == "delivered" for r in item["recipients"])

    await until(delivered, what="delivery")
    return digest


async def test_children_s_details_in_free_text_are_refused_and_kept_nowhere(
    office: Deployment,
) -> None:
    """Every free-text field refuses every spelling; exports, ledgers and answers stay clean."""
    async with client(office) as http:
        calls = Calls(http, office)
        digest = await _delivered_referral(calls)
        for label, value in {**SPELLINGS, **NAMES}.items():
            body = referral_submission([LA], reason=f"Concerns about {value} at home.")
            status, answer = await calls.post("school", "/api/v1/envelopes", SCHOOL, "dsl", body)
            _refused(status, answer, _rule("reason", label))
        for label, value in SPELLINGS.items():
            kind = _kind(label)
            decision = {
                "purpose": "safeguarding-referral",
                "recipients": [LA],
                "reason_code": "not-proportionate",
                "reason": f"Not proportionate for {value}.",
            }
            status, answer = await calls.post(
                "school", "/api/v1/decisions/not-shared", SCHOOL, "dsl", decision
            )
            _refused(status, answer, _rule("reason", label), kind)
            status, answer = await calls.post(
                "school", f"/api/v1/sent/{digest}/recall", SCHOOL, "dsl",
                {"reason": f"Sent in error ({value}).", "reason_code": "wrong-child"},
            )  # fmt: skip
            _refused(status, answer, _rule("reason", label), kind)
            hold = {"reason": f"Inquiry about {value}.", "reference": "IICSA/2041/17"}
            status, answer = await calls.post(
                "school", "/api/v1/retention/holds", SCHOOL, "dpo", hold
            )
            _refused(status, answer, _rule("reason", label), kind)
            hold = {"reason": "Inquiry into the school's records.", "reference": value}
            status, answer = await calls.post(
                "school", "/api/v1/retention/holds", SCHOOL, "dpo", hold
            )
            _refused(status, answer, _rule("reference", label), kind)
        # Codes are closed lists: a lower-case UPN is a well-formed token, and still refused.
        token = UPN.lower()
        status, answer = await calls.post(
            "school", f"/api/v1/sent/{digest}/recall", SCHOOL, "dsl",
            {"reason": "Sent in error.", "reason_code": token},
        )  # fmt: skip
        _refused(status, answer, "reason_code")
        decision = {"purpose": "safeguarding-referral", "recipients": [LA],
                    "reason_code": token, "reason": "Not proportionate."}  # fmt: skip
        status, answer = await calls.post(
            "school", "/api/v1/decisions/not-shared", SCHOOL, "dsl", decision
        )
        _refused(status, answer, "reason_code")
        status, answer = await calls.post(
            "la", f"/api/v1/inbox/{digest}/reject", LA, "dsl", {"reason": token}
        )
        _refused(status, answer, "reason")
        status, answer = await calls.post(
            "la", f"/api/v1/inbox/{digest}/acknowledge", LA, "dsl", {"disposition": token}
        )
        _refused(status, answer, "disposition")

        # Nothing was stored from the refused requests.
        school = office.nodes["school"].service.store
        la = office.nodes["la"].service.store
        assert len(await school.register_rows(SCHOOL)) == 1
        assert await school.retention_holds(SCHOOL, active=False) == []
        recalls = await school.recalls_for(SCHOOL, [bytes.fromhex(digest)])
        assert recalls.get(bytes.fromhex(digest), []) == []
        held = await la.inbox_item(LA, bytes.fromhex(digest))
        assert held is not None
        assert held.state == "delivered"

        # And no trace anywhere: exports, ledgers, answers.
        for node, org in (("school", SCHOOL), ("la", LA)):
            for form in ("csv", "json"):
                export = await calls.get(node, f"/api/v1/register?format={form}", org, "dpo")
                assert _traces(export) == [], (node, form)
        for node in ("school", "la"):
            store = office.nodes[node].service.store
            events = await store.ledger_events(0, await store.ledger_size())
            assert events
            assert _traces(b"\n".join(events)) == [], node
        assert [_traces(a) for a in calls.answers if _traces(a)] == []


async def test_a_recall_notice_with_an_unlisted_code_is_honoured_and_not_written_down(
    office: Deployment,
) -> None:
    """A sender's notice whose code is a lower-case UPN recalls the item; the ledger says other."""
    async with client(office) as http:
        calls = Calls(http, office)
        digest = await _delivered_referral(calls)
        envelope = await office.nodes["school"].service.store.envelope(bytes.fromhex(digest))
        assert envelope is not None
        notice = {
            "envelope_digest": digest,
            "envelope_id": envelope.envelope_id.hex(),
            "reason_code": UPN.lower(),
            "time": int(time.time()),
        }
        data = json.dumps(notice).encode()
        url = office.url("la") + f"/peer/v1/orgs/{LA}/recalls"
        headers = signed_post_headers(
            url=url, body=data, content_type="application/json",
            pair=org_pair(office, SCHOOL), now=int(time.time()),
        )  # fmt: skip
        async with http.post(yarl.URL(url, encoded=True), data=data, headers=headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["outcome"] == "recalled"
        store = office.nodes["la"].service.store
        events = b"\n".join(await store.ledger_events(0, await store.ledger_size()))
        assert _traces(events) == []
        assert b"other" in events
        held = await store.inbox_item(LA, bytes.fromhex(digest))
        assert held is not None
        assert held.state == "recalled"
