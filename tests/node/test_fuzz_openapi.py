"""Generated requests from docs/openapi.yaml against a real node: no 5xx, no answer undocumented.

Schemathesis turns every operation of the document into a Hypothesis strategy, both of
requests that fit the document (positive) and of requests that break it (negative: wrong
types, missing fields, out-of-range numbers, bad formats). Each is sent over TLS to the
school node of ``conftest.world`` with a real bearer token, and each answer must be no 5xx,
have a status the operation documents, a documented media type and a body valid against the
documented schema; and the document must be as strict as the node, no more and no less.
The example counts are fixed and the generation derandomised, so the run is the same every
time and stays well inside the time ``make test`` allows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from exchange.demo.loopback import Deployment
from exchange.http.ops import OPS_ROUTES

from .conftest import SCHOOL

pytestmark = [pytest.mark.network, pytest.mark.slow]

SPEC_FILE = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
#: Examples per operation and mode: with 27 operations and two modes, about a minute.
EXAMPLES = 50
#: Operations whose requests are checked by more than this document can say, where a request
#: valid against it may still be malformed (400): a record against its kind's own schema
#: (docs/records.md), and a peer's signature headers under RFC 9421 (docs/protocol.md).
CHECKED_BEYOND_THE_DOCUMENT = frozenset(
    {
        "POST /api/v1/envelopes",
        "POST /api/v1/sent/{digest}/rectify",
        "POST /peer/v1/orgs/{org}/envelopes",
        "POST /peer/v1/orgs/{org}/receipts",
        "POST /peer/v1/orgs/{org}/recalls",
    }
)


def valid_data_is_not_malformed(_ctx: Any, response: Any, case: Any) -> bool | None:
    """Fail when a request valid against the document is refused as malformed (400).

    A 400 for such a request means the node is stricter than the document says: a limit,
    pattern or parameter it does not document. Refusals for rules the document names but
    cannot check (404 for an unknown item, 403 for a role, 422 for policy) stay allowed.
    """
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    beyond = case.operation.label in CHECKED_BEYOND_THE_DOCUMENT
    if positive and response.status_code == 400 and not beyond:
        raise AssertionError(f"a request valid against the document got 400: {response.text}")
    return None


def invalid_data_is_refused(ctx: Any, response: Any, case: Any) -> bool | None:
    """Fail when a request invalid against the document is taken (schemathesis's check).

    A 413 is a refusal too: a body over an endpoint's documented limit is answered so before
    anything else is read (the peer recalls endpoint takes 1 KiB, so a long generated body
    meets it first), and schemathesis does not count 413 among the refusals it expects.
    """
    if response.status_code == 413:
        return None
    result: bool | None = negative_data_rejection(ctx, response, case)
    return result


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    # The document is exactly as strict as the node: no looser (a request it calls invalid
    # is refused) and no stricter (a request it calls valid is not malformed).
    invalid_data_is_refused,
    valid_data_is_not_malformed,
]
#: The operations a data protection officer uses; every other staff one is a DSL's.
DPO_PATHS = ("/api/v1/register", "/api/v1/subject-access", "/api/v1/retention")

# Envelopes and receipts travel as bytes (docs/envelope.md, docs/receipts.md).
schemathesis.serializer.alias(
    ["application/vnd.exchange.envelope", "application/vnd.exchange.receipt"],
    "application/octet-stream",
)


def _token(world: Deployment, path: str) -> dict[str, str]:
    if not path.startswith("/api/"):
        return {}
    role = "dpo" if path.startswith(DPO_PATHS) else "dsl"
    return {"Authorization": f"Bearer {world.tokens[(SCHOOL, role)]}"}


def _fuzz(world: Deployment) -> list[str]:
    """Run every operation in both modes; return each failure found (one per operation)."""
    schema = schemathesis.openapi.from_dict(yaml.safe_load(SPEC_FILE.read_text("utf-8")))
    assert world.ca_file is not None
    verify = str(world.ca_file)
    failures: list[str] = []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            headers = _token(world, operation.path)
            # The operations endpoints have their own listener (docs/node.md §6).
            ops = operation.path in OPS_ROUTES
            base = world.ops_url("school") if ops else world.url("school")
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                test = _operation_test(operation.as_strategy(mode), base, session, headers, verify)
                try:
                    test()
                except Unsatisfiable:
                    # Nothing to break: an operation without parameters or body (/healthz).
                    assert mode == GenerationMode.NEGATIVE, operation.label
                except (AssertionError, BaseExceptionGroup) as exc:
                    failures.append(f"{operation.label} ({mode}): {exc}")
    return failures


def _operation_test(
    strategy: Any, base: str, session: requests.Session, headers: dict[str, str], verify: str
) -> Callable[[], None]:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def test(case: Any) -> None:
        case.call_and_validate(
            base_url=base,
            session=session,
            headers=headers,
            checks=CHECKS,
            verify=verify,
            timeout=10,
        )

    return test


async def test_generated_requests_get_documented_answers_and_no_5xx(world: Deployment) -> None:
    failures = await asyncio.to_thread(_fuzz, world)
    assert not failures, "\n\n".join(failures)
