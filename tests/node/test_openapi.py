"""docs/openapi.yaml is valid, names exactly the app's routes, and describes what they answer.

The round trip runs against the two loopback nodes of ``conftest.world`` over TLS; every
response is checked against the document: its status must be documented for the operation,
its media type must be one the operation lists, and a JSON body must validate against the
documented schema (JSON Schema 2020-12, ``$ref`` resolved within the document).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import yaml
import yarl
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from exchange.demo.loopback import Deployment
from exchange.http.app import READY
from exchange.keys.ids import OrgId
from exchange.peerauth import signed_post_headers
from exchange.web.security import is_page_path
from tests.stored_bodies import body_bytes

from .conftest import LA, NURSES, SCHOOL
from .records import NHS, UPN, lac_submission, opened_note, referral_submission

SPEC_FILE = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
BASE = "urn:exchange:openapi"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ERROR_SCHEMAS = {"#/components/schemas/Error", "#/components/schemas/PeerError"}
SIGNATURE_HEADERS = {"Signature-Input", "Signature", "Content-Digest"}
PEER_MEDIA = {
    "envelopes": "application/vnd.exchange.envelope",
    "receipts": "application/vnd.exchange.receipt",
    "recalls": "application/json",
}

# --- reading the document -------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """Parse the OpenAPI document."""
    doc = yaml.safe_load(SPEC_FILE.read_text("utf-8"))
    assert isinstance(doc, dict)
    return doc


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _at(spec: dict[str, Any], pointer: str) -> Any:
    node: Any = spec
    for raw in pointer.lstrip("/").split("/"):
        segment = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(segment)] if isinstance(node, list) else node[segment]
    return node


def _deref(spec: dict[str, Any], node: Any, pointer: str) -> tuple[Any, str]:
    """Follow ``$ref`` (responses, parameters) to the object; return it and its pointer."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        pointer = ref[1:]
        node = _at(spec, pointer)
    return node, pointer


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], str]]:
    """Yield (method, path template, operation, pointer) for every operation."""
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method, path, item[method], f"/paths/{_escape(path)}/{method}"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _media_types(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """Yield (media type, media type object, pointer) for every request and response body."""
    for _, _, op, pointer in _operations(spec):
        if "requestBody" in op:
            body, at = _deref(spec, op["requestBody"], pointer + "/requestBody")
            for media, obj in body["content"].items():
                yield media, obj, f"{at}/content/{_escape(media)}"
        for status, response in op["responses"].items():
            resolved, at = _deref(spec, response, f"{pointer}/responses/{status}")
            for media, obj in resolved.get("content", {}).items():
                yield media, obj, f"{at}/content/{_escape(media)}"


def _validator(spec: dict[str, Any], pointer: str) -> Draft202012Validator:
    """Return a validator for the schema at ``pointer``, resolving ``$ref`` in the document."""
    registry: Registry[Any] = Registry().with_resource(
        BASE, Resource(contents=spec, specification=DRAFT202012)
    )
    return Draft202012Validator({"$ref": f"{BASE}#{quote(pointer, safe='/~')}"}, registry=registry)


def _error_schema_refs(schema: dict[str, Any]) -> set[str]:
    if "$ref" in schema:
        return {schema["$ref"]}
    return {s["$ref"] for s in schema.get("oneOf", []) if "$ref" in s}


# --- the document on its own ----------------------------------------------------------------


def test_document_is_openapi_31_with_resolvable_refs(spec: dict[str, Any]) -> None:
    """The document is OpenAPI 3.1 with valid 2020-12 component schemas and no dangling $ref."""
    assert re.fullmatch(r"3\.1\.\d+", spec["openapi"])
    assert spec["info"]["title"]
    assert spec["info"]["version"]
    bearer = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    for schema in spec["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    for ref in set(_refs(spec)):
        assert ref.startswith("#/components/"), ref
        _at(spec, ref[1:])
    operation_ids = [op["operationId"] for _, _, op, _ in _operations(spec)]
    assert len(operation_ids) == len(set(operation_ids))
    for method, path, op, _ in _operations(spec):
        declared = {
            p["name"]
            for p in (_deref(spec, raw, "")[0] for raw in op.get("parameters", []))
            if p["in"] == "path" and p["required"] is True
        }
        assert declared == set(re.findall(r"\{([^}]+)\}", path)), (method, path)


def test_every_operation_declares_tag_security_and_error_schema(spec: dict[str, Any]) -> None:
    """Each operation has its tag and security, and every 4xx/5xx answers with an error schema."""
    for method, path, op, _ in _operations(spec):
        where = f"{method.upper()} {path}"
        if path.startswith("/api/v1/"):
            assert op["tags"] == ["staff"], where
            assert op["security"] == [{"bearerAuth": []}], where
            assert "401" in op["responses"], where
        elif path.startswith("/peer/v1/"):
            assert op["tags"] == ["peer"], where
            assert op["security"] == [], where
        else:
            assert op["tags"] == ["operations"], where
            assert op["security"] == [], where
        assert "500" in op["responses"], where
        for status, response in op["responses"].items():
            assert re.fullmatch(r"[1-5]\d\d", status), where
            resolved, _ = _deref(spec, response, "")
            assert resolved["description"], (where, status)
            if int(status) >= 400:
                schema = resolved["content"]["application/json"]["schema"]
                assert _error_schema_refs(schema) <= ERROR_SCHEMAS, (where, status)
                assert _error_schema_refs(schema), (where, status)


def test_json_request_bodies_are_closed_objects(spec: dict[str, Any]) -> None:
    """Every JSON request body schema is an object with ``additionalProperties: false``."""
    seen = 0
    for _, _, op, pointer in _operations(spec):
        if "requestBody" not in op or "application/json" not in op["requestBody"]["content"]:
            continue
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        resolved, _ = _deref(spec, schema, pointer)
        assert resolved["type"] == "object", pointer
        assert resolved["additionalProperties"] is False, pointer
        seen += 1
    assert seen == 10


def test_peer_operations_name_media_types_and_signature_headers(spec: dict[str, Any]) -> None:
    """Peer operations require the RFC 9421 headers and use the exchange media types."""
    peer = [(p, op) for _, p, op, _ in _operations(spec) if p.startswith("/peer/v1/orgs/")]
    assert {p for p, _ in peer} == {
        "/peer/v1/orgs/{org}/envelopes",
        "/peer/v1/orgs/{org}/receipts",
        "/peer/v1/orgs/{org}/recalls",
    }
    for path, op in peer:
        headers = {
            p["name"]: p
            for p in (_deref(spec, raw, "")[0] for raw in op["parameters"])
            if p["in"] == "header"
        }
        assert set(headers) == SIGNATURE_HEADERS, path
        assert all(h["required"] is True for h in headers.values()), path
        assert list(op["requestBody"]["content"]) == [PEER_MEDIA[path.rsplit("/", 1)[1]]]
        assert "docs/protocol.md" in op["description"], path
        assert op["externalDocs"]["url"] == "protocol.md", path
    envelopes = dict(peer)["/peer/v1/orgs/{org}/envelopes"]
    assert list(envelopes["responses"]["200"]["content"]) == [PEER_MEDIA["receipts"]]
    # The ledger's consistency bundles are the one unsigned peer operation (for witnesses).
    unsigned = [p for _, p, _, _ in _operations(spec) if p.startswith("/peer/v1/ledger/")]
    assert unsigned == ["/peer/v1/ledger/consistency"]


def test_examples_validate_against_their_schemas(spec: dict[str, Any]) -> None:
    """Every JSON example in the document is valid against the schema beside it."""
    checked = 0
    for media, obj, pointer in _media_types(spec):
        if media == "application/json" and "example" in obj:
            errors = list(_validator(spec, pointer + "/schema").iter_errors(obj["example"]))
            assert not errors, (pointer, [e.message for e in errors])
            checked += 1
    assert checked >= 20


# --- the document against the running app ---------------------------------------------------


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _app_routes(world: Deployment, node: str) -> set[tuple[str, str]]:
    # The built applications are what is compared: the main one and the operations one.
    apps = (world.nodes[node].app, world.nodes[node].ops_app)
    routes: set[tuple[str, str]] = set()
    for route in (r for app in apps for r in app.router.routes()):
        assert route.resource is not None
        if is_page_path(route.resource.canonical):
            continue  # the staff web pages are HTML for people, not operations of the API
        routes.add((route.method.lower(), _normalise(route.resource.canonical)))
    # aiohttp registers HEAD beside every GET (allow_head); HEAD is not documented.
    heads = {(m, p) for m, p in routes if m == "head"}
    assert {("get", p) for _, p in heads} <= routes
    return routes - heads


async def test_documented_operations_equal_the_app_routes(
    world: Deployment, spec: dict[str, Any]
) -> None:
    """The (method, path) pairs of the document are exactly the routes the app registers."""
    documented = {(m, _normalise(p)) for m, p, _, _ in _operations(spec)}
    for node in world.nodes:
        assert _app_routes(world, node) == documented, node


class SpecCheck:
    """Checks live responses against the document and remembers what was exercised."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.templates = [
            (re.compile("^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(p)) + "$"), p)
            for p in spec["paths"]
        ]
        self.seen: set[tuple[str, str, int]] = set()

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any], str]:
        """Return the operation ``path`` matches: its template, object and pointer."""
        matches = [t for regex, t in self.templates if regex.match(path)]
        assert len(matches) == 1, (method, path, matches)
        template = matches[0]
        op = self.spec["paths"][template][method]
        return template, op, f"/paths/{_escape(template)}/{method}"

    async def check(self, resp: aiohttp.ClientResponse) -> Any:
        """Check one response; return its JSON body, or its bytes if it is not JSON."""
        method = resp.method.lower()
        template, op, pointer = self.operation(method, resp.url.path)
        status = str(resp.status)
        where = f"{resp.method} {template} -> {status}"
        assert status in op["responses"], f"undocumented status: {where}"
        self.seen.add((method, template, resp.status))
        response, at = _deref(self.spec, op["responses"][status], f"{pointer}/responses/{status}")
        content = response.get("content", {})
        assert resp.content_type in content, (where, resp.content_type, list(content))
        if "Cache-Control" in response.get("headers", {}):
            assert resp.headers.get("Cache-Control") == "no-store", where
        if resp.content_type != "application/json":
            return await resp.read()
        body = await resp.json()
        schema_at = f"{at}/content/{_escape('application/json')}/schema"
        errors = list(_validator(self.spec, schema_at).iter_errors(body))
        assert not errors, (where, [e.message for e in errors])
        return body

    def request_is_valid(self, method: str, path: str, body: Any) -> bool:
        """Return whether ``body`` validates against the operation's JSON request schema."""
        _, op, pointer = self.operation(method, path)
        at = f"{pointer}/requestBody/content/{_escape('application/json')}/schema"
        assert "application/json" in op["requestBody"]["content"]
        return _validator(self.spec, at).is_valid(body)


def _client(world: Deployment) -> aiohttp.ClientSession:
    assert world.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.ca_file))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))


def _auth(world: Deployment, org: OrgId, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[(org, role)]}"}


async def _call(
    http: aiohttp.ClientSession, checker: SpecCheck, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as resp:
        return resp.status, await checker.check(resp)


async def _until_delivered(
    http: aiohttp.ClientSession, checker: SpecCheck, world: Deployment, digest: str
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 10.0
    while True:
        status, sent = await _call(
            http,
            checker,
            "GET",
            world.url("school") + f"/api/v1/sent/{digest}",
            headers=_auth(world, SCHOOL, "dsl"),
        )
        assert status == 200
        if all(r["delivery_state"] == "delivered" for r in sent["recipients"]):
            return dict(sent)
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _submit(
    http: aiohttp.ClientSession, checker: SpecCheck, world: Deployment, to: list[str]
) -> str:
    doc = lac_submission("synthetic test record", to)
    assert checker.request_is_valid("post", "/api/v1/envelopes", doc)
    status, body = await _call(
        http,
        checker,
        "POST",
        world.url("school") + "/api/v1/envelopes",
        json=doc,
        headers=_auth(world, SCHOOL, "dsl"),
    )
    assert status == 202
    return str(body["digest"])


async def _signed_peer_post(
    http: aiohttp.ClientSession,
    checker: SpecCheck,
    world: Deployment,
    *,
    signer: OrgId,
    to_node: str,
    path: str,
    body: bytes,
    media: str,
) -> tuple[int, Any]:
    """POST to a peer endpoint signed with ``signer``'s key, as a peer node would."""
    service = world.node_of(signer).service
    now = service.now()
    pair = service.tenant(signer).signing_pair(service.directory, now)
    url = world.url(to_node) + path
    headers = signed_post_headers(url=url, body=body, content_type=media, pair=pair, now=now)
    async with http.post(yarl.URL(url, encoded=True), data=body, headers=headers) as resp:
        return resp.status, await checker.check(resp)


async def _staff_round_trip(
    http: aiohttp.ClientSession, checker: SpecCheck, world: Deployment
) -> tuple[str, str, str]:
    """Submit two items, open and acknowledge one, reject the other; return their names."""
    la, la_staff, la_dsl = world.url("la"), _auth(world, LA, "staff"), _auth(world, LA, "dsl")
    first = await _submit(http, checker, world, [LA, NURSES])
    second = await _submit(http, checker, world, [LA])
    await _until_delivered(http, checker, world, first)
    await _until_delivered(http, checker, world, second)

    status, sent = await _call(
        http,
        checker,
        "GET",
        world.url("school") + "/api/v1/sent",
        headers=_auth(world, SCHOOL, "dsl"),
    )
    assert status == 200
    assert {i["digest"] for i in sent["items"]} == {first, second}
    status, inbox = await _call(http, checker, "GET", la + "/api/v1/inbox", headers=la_staff)
    assert status == 200
    assert {i["digest"] for i in inbox["items"]} == {first, second}
    status, listed = await _call(
        http, checker, "GET", la + "/api/v1/organisations", headers=la_staff
    )
    assert (status, {o["id"] for o in listed["organisations"]}) == (200, {SCHOOL, LA, NURSES})

    status, content = await _call(
        http, checker, "POST", la + f"/api/v1/inbox/{first}/open", headers=la_staff
    )
    assert status == 200
    assert opened_note(content) == "synthetic test record"
    status, listed_files = await _call(
        http, checker, "POST", la + f"/api/v1/inbox/{first}/open",
        headers={**la_staff, "Accept": "application/json"},
    )  # fmt: skip
    assert (status, listed_files["digest"], listed_files["attachments"]) == (200, first, [])
    status, _ = await _call(
        http, checker, "GET", la + f"/api/v1/inbox/{first}/attachments/1", headers=la_staff
    )
    assert status == 404  # the first record carries no file
    status, _ = await _call(
        http, checker, "GET", la + f"/api/v1/inbox/{second}/attachments/1", headers=la_staff
    )
    assert status == 409  # not opened yet: a download is never the first opening
    ack = {"disposition": "accepted-for-assessment"}
    assert checker.request_is_valid("post", f"/api/v1/inbox/{first}/acknowledge", ack)
    status, acknowledged = await _call(
        http, checker, "POST", la + f"/api/v1/inbox/{first}/acknowledge", json=ack, headers=la_dsl
    )
    assert (status, acknowledged["status"]) == (200, "acknowledged")
    status, _ = await _call(
        http, checker, "POST", la + f"/api/v1/inbox/{first}/acknowledge", json=ack, headers=la_dsl
    )
    assert status == 409
    reason = {"reason": "not-for-us"}
    assert checker.request_is_valid("post", f"/api/v1/inbox/{second}/reject", reason)
    status, rejected = await _call(
        http, checker, "POST", la + f"/api/v1/inbox/{second}/reject", json=reason, headers=la_dsl
    )
    assert (status, rejected["status"]) == (200, "rejected")
    return first, second, str(acknowledged["receipt_digest"])


async def _staff_refusals(
    http: aiohttp.ClientSession, checker: SpecCheck, world: Deployment, first: str, second: str
) -> None:
    """Meet the refusals a client can meet: 400, 401, 403, and 404 for foreign items."""
    school, la = world.url("school"), world.url("la")
    unknown_field = {**lac_submission("synthetic", [LA]), "note": "synthetic"}
    assert not checker.request_is_valid("post", "/api/v1/envelopes", unknown_field)
    status, error = await _call(
        http,
        checker,
        "POST",
        school + "/api/v1/envelopes",
        json=unknown_field,
        headers=_auth(world, SCHOOL, "dsl"),
    )
    assert (status, error["error"]["message"]) == (400, "unknown field 'note'")
    status, _ = await _call(http, checker, "GET", la + "/api/v1/inbox")
    assert status == 401
    status, _ = await _call(http, checker, "GET", la + "/api/v1/organisations")
    assert status == 401
    status, _ = await _call(
        http,
        checker,
        "GET",
        school + "/api/v1/sent/NOT-A-DIGEST",
        headers=_auth(world, SCHOOL, "dsl"),
    )
    assert status == 400
    # The nurses share the LA's node but were not sent the second item: it is not theirs.
    status, _ = await _call(
        http,
        checker,
        "POST",
        la + f"/api/v1/inbox/{second}/open",
        headers=_auth(world, NURSES, "staff"),
    )
    assert status == 404
    status, _ = await _call(
        http, checker, "GET", la + f"/api/v1/sent/{first}", headers=_auth(world, LA, "staff")
    )
    assert status == 404
    status, _ = await _call(
        http,
        checker,
        "GET",
        la + f"/api/v1/envelopes/{first}/receipts",
        headers=_auth(world, NURSES, "staff"),
    )
    assert status == 200  # the nurses were sent the first item
    status, _ = await _call(
        http,
        checker,
        "POST",
        school + f"/api/v1/inbox/{first}/open",
        headers=_auth(world, SCHOOL, "dpo"),
    )
    assert status == 403
    # What the school sent, read back from its own copy; a DPO does not read records.
    for role, expected in (("dsl", 200), ("dpo", 403)):
        status, _ = await _call(
            http,
            checker,
            "POST",
            school + f"/api/v1/sent/{first}/copy",
            headers=_auth(world, SCHOOL, role),
        )
        assert status == expected


async def _receipts_timeline(
    http: aiohttp.ClientSession, checker: SpecCheck, world: Deployment, first: str
) -> None:
    """Wait until the sender holds delivered, opened and acknowledged from the LA."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while True:
        status, held = await _call(
            http,
            checker,
            "GET",
            world.url("school") + f"/api/v1/envelopes/{first}/receipts",
            headers=_auth(world, SCHOOL, "dsl"),
        )
        assert status == 200
        from_la = [r["status"] for r in held["receipts"] if r["organisation"] == LA]
        if from_la == ["delivered", "opened", "acknowledged"]:
            break
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
    assert held["ledger"]["proofs"]


async def _peer_calls(
    http: aiohttp.ClientSession,
    checker: SpecCheck,
    world: Deployment,
    first: str,
    acknowledged: str,
) -> None:
    """Repeat a delivery and a receipt as peers would; send unsigned and misaddressed ones."""
    school_store = world.nodes["school"].service.store
    envelope = await body_bytes(school_store, bytes.fromhex(first))
    status, receipt = await _signed_peer_post(
        http,
        checker,
        world,
        signer=SCHOOL,
        to_node="la",
        path=f"/peer/v1/orgs/{LA}/envelopes",
        body=envelope,
        media=PEER_MEDIA["envelopes"],
    )
    assert status == 200
    assert isinstance(receipt, bytes)
    held = await world.nodes["la"].service.store.receipt(bytes.fromhex(acknowledged))
    assert held is not None
    status, recorded = await _signed_peer_post(
        http,
        checker,
        world,
        signer=LA,
        to_node="school",
        path=f"/peer/v1/orgs/{SCHOOL}/receipts",
        body=held.signed,
        media=PEER_MEDIA["receipts"],
    )
    assert (status, recorded) == (200, {"status": "recorded"})
    la = world.url("la")
    media = {"Content-Type": PEER_MEDIA["envelopes"]}
    # The same envelope imported by hand (as from a mail attachment): already held.
    status, imported = await _call(
        http, checker, "POST", la + "/api/v1/inbox/import", data=envelope,
        headers={**media, **_auth(world, LA, "staff")},
    )  # fmt: skip
    assert (status, imported) == (200, {"digest": first, "new": False})
    # Not addressed to the school: refused.
    status, _ = await _call(
        http, checker, "POST", world.url("school") + "/api/v1/inbox/import", data=envelope,
        headers={**media, **_auth(world, SCHOOL, "dsl")},
    )  # fmt: skip
    assert status == 403
    status, refused = await _call(
        http, checker, "POST", la + f"/peer/v1/orgs/{LA}/envelopes", data=envelope, headers=media
    )
    assert (status, refused["error"]) == (401, "signature-input.missing")
    # The organisation in the path is looked at only after authentication, so an unsigned
    # request learns nothing about which organisations the node serves.
    status, _ = await _call(
        http, checker, "POST", la + "/peer/v1/orgs/la:999/receipts", data=b"x", headers=media
    )
    assert status == 401
    status, _ = await _call(
        http, checker, "POST", la + "/peer/v1/orgs/NOT-AN-ORG/envelopes", data=b"x", headers=media
    )
    assert status == 401
    await world.nodes["la"].ledger.checkpoint()
    status, bundle = await _call(http, checker, "GET", la + "/peer/v1/ledger/consistency?from=1")
    assert status == 200
    assert bundle.startswith(b"exchange/v1/consistency-proof\nold 1\n")
    status, refused = await _call(http, checker, "GET", la + "/peer/v1/ledger/consistency?from=0x1")
    assert (status, refused["message"]) == (
        400,
        "from must be a tree size: a decimal from 1, of at most 19 digits",
    )


async def _records_calls(
    http: aiohttp.ClientSession, checker: SpecCheck, world: Deployment
) -> None:
    """Meet a policy refusal, a decision not to share, the overdue list, register, SAR."""
    school = world.url("school")
    dsl, dpo = _auth(world, SCHOOL, "dsl"), _auth(world, SCHOOL, "dpo")
    refused = referral_submission([NURSES])
    assert checker.request_is_valid("post", "/api/v1/envelopes", refused)
    status, error = await _call(
        http, checker, "POST", school + "/api/v1/envelopes", json=refused, headers=dsl
    )
    assert (status, error["error"]["rule"]) == (
        422,
        "purposes.safeguarding-referral.recipient_kinds",
    )
    decision = {
        "purpose": "information-request-reply",
        "recipients": [LA],
        "reason_code": "information-not-held",
        "reason": "The pupil joined this month; we hold no records from before.",
        "upn": UPN,
    }
    assert checker.request_is_valid("post", "/api/v1/decisions/not-shared", decision)
    status, made = await _call(
        http, checker, "POST", school + "/api/v1/decisions/not-shared", json=decision, headers=dsl
    )
    assert (status, made["rule"]) == (201, "not-to-share.information-not-held")
    bad = {**decision, "upn": UPN[:-1] + "9"}
    status, error = await _call(
        http, checker, "POST", school + "/api/v1/decisions/not-shared", json=bad, headers=dsl
    )
    assert (status, error["error"]["rule"]) == (422, "upn.check-letter")
    status, overdue = await _call(http, checker, "GET", school + "/api/v1/overdue", headers=dsl)
    assert (status, overdue) == (200, {"items": []})
    status, rows = await _call(http, checker, "GET", school + "/api/v1/register", headers=dpo)
    assert status == 200
    assert [r["decision"] for r in rows] == ["shared", "shared", "not-shared"]
    status, text = await _call(
        http, checker, "GET", school + "/api/v1/register?format=csv&from=2020-01-01", headers=dpo
    )
    assert status == 200
    assert text.splitlines()[0].startswith(b"id,decision,decided_at")
    status, _ = await _call(http, checker, "GET", school + "/api/v1/register", headers=dsl)
    assert status == 403
    status, _ = await _call(
        http, checker, "GET", school + "/api/v1/register?format=xml", headers=dpo
    )
    assert status == 400
    search = {"nhs_number": NHS}
    assert checker.request_is_valid("post", "/api/v1/subject-access", search)
    status, report = await _call(
        http, checker, "POST", school + "/api/v1/subject-access", json=search, headers=dpo
    )
    assert status == 200
    assert [i["direction"] for i in report["items"]] == ["sent", "sent"]
    status, error = await _call(
        http,
        checker,
        "POST",
        school + "/api/v1/subject-access",
        json={"nhs_number": NHS[:-1] + "9"},
        headers=dpo,
    )
    assert (status, error["error"]["rule"]) == (422, "nhs-number.check-digit")
    status, _ = await _call(
        http, checker, "POST", school + "/api/v1/subject-access", json={}, headers=dpo
    )
    assert status == 400


async def _retention_calls(
    http: aiohttp.ClientSession, checker: SpecCheck, world: Deployment, first: str, second: str
) -> None:
    """Meet the review queue, a hold blocking destruction, its lifting and the destruction.

    The school's copies of the LAC records are reviewed at the date of birth + 25 years; the
    school node's clock is moved there for the DPO's calls.
    """
    school = world.url("school")
    dsl, dpo = _auth(world, SCHOOL, "dsl"), _auth(world, SCHOOL, "dpo")
    due_url = school + "/api/v1/retention/due"
    status, due = await _call(http, checker, "GET", due_url, headers=dpo)
    assert (status, due["items"], due["unscheduled"]) == (200, [], [])
    status, _ = await _call(http, checker, "GET", due_url, headers=dsl)
    assert status == 403
    status, _ = await _call(http, checker, "GET", due_url + "?before=soon", headers=dpo)
    assert status == 400
    service = world.nodes["school"].service
    original = service.clock
    offset = datetime(2040, 3, 20, 10, 0, tzinfo=UTC).timestamp() - time.time()
    service.clock = lambda: time.time() + offset
    try:
        status, due = await _call(http, checker, "GET", due_url, headers=dpo)
        assert status == 200
        assert {(i["digest"], i["state"]) for i in due["items"]} == {
            (first, "review-due"),
            (second, "review-due"),
        }
        hold = {"digest": first, "reason": "Inquiry: keep these records", "reference": "INQ-17"}
        assert checker.request_is_valid("post", "/api/v1/retention/holds", hold)
        holds_url = school + "/api/v1/retention/holds"
        status, placed = await _call(http, checker, "POST", holds_url, json=hold, headers=dpo)
        assert (status, placed["rule"]) == (201, f"holds.{placed['id']}")
        reviewed = {"reason": "Reviewed: the retention period has ended."}
        assert checker.request_is_valid("post", f"/api/v1/retention/{first}/destroy", reviewed)
        destroy_url = school + f"/api/v1/retention/{first}/destroy"
        status, refused = await _call(
            http, checker, "POST", destroy_url, json=reviewed, headers=dpo
        )
        assert (status, refused["error"]["rule"]) == (409, placed["rule"])
        status, listed = await _call(http, checker, "GET", holds_url, headers=dpo)
        assert (status, [h["id"] for h in listed["holds"]]) == (200, [placed["id"]])
        status, lifted = await _call(
            http, checker, "DELETE", f"{holds_url}/{placed['id']}", headers=dpo
        )
        assert (status, lifted["lifted_by"]) == (200, f"{SCHOOL}/dpo")
        status, _ = await _call(http, checker, "DELETE", f"{holds_url}/999", headers=dpo)
        assert status == 404
        status, done = await _call(http, checker, "POST", destroy_url, json=reviewed, headers=dpo)
        assert (status, done["state"]) == (200, "destroyed")
        status, again = await _call(http, checker, "POST", destroy_url, json=reviewed, headers=dpo)
        assert (status, again["error"]["rule"]) == (409, "retention.destroyed")
        status, _ = await _call(
            http, checker, "POST", school + f"/api/v1/retention/{second}/destroy",
            json=reviewed, headers=dsl,
        )  # fmt: skip
        assert status == 403
        status, error = await _call(
            http, checker, "POST", holds_url, headers=dpo,
            json={**hold, "reason": f"About {UPN}"},
        )  # fmt: skip
        assert (status, error["error"]["rule"]) == (422, "reason.identifier")
        status, view = await _call(
            http, checker, "GET", school + f"/api/v1/sent/{first}", headers=dsl
        )
        assert (status, view["retention"]["state"]) == (200, "destroyed")
    finally:
        service.clock = original


async def _recall_calls(http: aiohttp.ClientSession, checker: SpecCheck, world: Deployment) -> None:
    """Recall (withdrawn at one node, too late at another), rectify, the thread, notices."""
    school, la = world.url("school"), world.url("la")
    dsl, la_dsl = _auth(world, SCHOOL, "dsl"), _auth(world, LA, "dsl")
    third = await _submit(http, checker, world, [LA, NURSES])
    await _until_delivered(http, checker, world, third)
    status, _ = await _call(
        http, checker, "POST", la + f"/api/v1/inbox/{third}/open",
        headers=_auth(world, NURSES, "staff"),
    )  # fmt: skip
    assert status == 200
    recall = {"reason": "Sent to the front door by mistake.", "reason_code": "wrong-recipient"}
    assert checker.request_is_valid("post", f"/api/v1/sent/{third}/recall", recall)
    url = school + f"/api/v1/sent/{third}/recall"
    status, answer = await _call(http, checker, "POST", url, json=recall, headers=dsl)
    assert status == 200
    assert {r["organisation"]: r["outcome"] for r in answer["recipients"]} == {
        LA: "recalled",
        NURSES: "too-late",
    }
    status, _ = await _call(
        http, checker, "POST", la + f"/api/v1/inbox/{third}/open", headers=la_dsl
    )
    assert status == 410
    status, inbox = await _call(http, checker, "GET", la + "/api/v1/inbox", headers=la_dsl)
    assert status == 200
    assert [i["state"] for i in inbox["items"] if i["digest"] == third] == ["recalled"]
    status, _ = await _call(
        http, checker, "POST", la + f"/api/v1/sent/{third}/recall", json=recall,
        headers=_auth(world, LA, "staff"),
    )  # fmt: skip
    assert status == 403
    status, _ = await _call(
        http, checker, "POST", la + f"/api/v1/sent/{third}/recall", json=recall, headers=la_dsl
    )
    assert status == 404
    status, _ = await _call(
        http, checker, "POST", url, json={**recall, "reason_code": "Not a code"}, headers=dsl
    )
    assert status == 400
    status, error = await _call(
        http, checker, "POST", url, json={"reason": f"UPN {UPN}"}, headers=dsl
    )
    assert (status, error["error"]["rule"]) == (422, "reason.identifier")
    await _rectify_and_notice_calls(http, checker, world, third)


async def _rectify_and_notice_calls(
    http: aiohttp.ClientSession, checker: SpecCheck, world: Deployment, third: str
) -> None:
    """Rectify a partly recalled item, follow the thread, and send notices as a node would."""
    school, la, dsl = world.url("school"), world.url("la"), _auth(world, SCHOOL, "dsl")
    # A correction goes to the nurses only: the LA's copy was recalled.
    corrected = lac_submission("corrected synthetic test record", [NURSES])["record"]
    rectify = {"record": corrected, "reason": "The PEP target was recorded wrongly."}
    assert checker.request_is_valid("post", f"/api/v1/sent/{third}/rectify", rectify)
    url = school + f"/api/v1/sent/{third}/rectify"
    status, made = await _call(http, checker, "POST", url, json=rectify, headers=dsl)
    assert (status, made["recipients"], made["corrects"]) == (202, [NURSES], third)
    wrong = {**rectify, "record": referral_submission([LA])["record"]}
    status, error = await _call(http, checker, "POST", url, json=wrong, headers=dsl)
    assert (status, error["error"]["rule"]) == (422, "record_kind")
    status, _ = await _call(http, checker, "POST", url, json={**rectify, "x": 1}, headers=dsl)
    assert status == 400
    status, view = await _call(
        http, checker, "GET", school + f"/api/v1/threads/{made['digest']}", headers=dsl
    )
    assert status == 200
    assert [i["digest"] for i in view["items"]] == [third, made["digest"]]
    status, _ = await _call(
        http, checker, "GET", school + f"/api/v1/threads/{'0' * 64}", headers=dsl
    )
    assert status == 404

    # The notice itself, as the school's node sends it: repeated, forged, malformed.
    envelope = await world.nodes["school"].service.store.envelope(bytes.fromhex(third))
    assert envelope is not None
    notice = {
        "envelope_digest": third,
        "envelope_id": envelope.envelope_id.hex(),
        "reason_code": "wrong-recipient",
        "time": int(time.time()),
    }
    assert checker.request_is_valid("post", f"/peer/v1/orgs/{LA}/recalls", notice)
    path = f"/peer/v1/orgs/{LA}/recalls"
    for signer, body, media, expected in [
        (SCHOOL, notice, PEER_MEDIA["recalls"], 200),
        (NURSES, notice, PEER_MEDIA["recalls"], 404),
        (SCHOOL, {**notice, "envelope_id": "0" * 32}, PEER_MEDIA["recalls"], 422),
        (SCHOOL, notice, "text/plain", 415),
    ]:
        status, answer = await _signed_peer_post(
            http, checker, world, signer=signer, to_node="la", path=path,
            body=json.dumps(body).encode(), media=media,
        )  # fmt: skip
        assert status == expected, answer
    status, _ = await _call(http, checker, "POST", la + path, json=notice)
    assert status == 401
    await _register_after_recall(http, checker, world, third, made["digest"])


async def _register_after_recall(
    http: aiohttp.ClientSession, checker: SpecCheck, world: Deployment, third: str, fixed: str
) -> None:
    """Export the register again: a destroyed item, a recall and a correction, as documented."""
    dpo = _auth(world, SCHOOL, "dpo")
    status, rows = await _call(
        http, checker, "GET", world.url("school") + "/api/v1/register", headers=dpo
    )
    assert status == 200
    by_digest = {r["digest"]: r for r in rows if r["digest"] is not None}
    assert any(r["destroyed_at"] is not None for r in rows)
    recalls = {r["organisation"]: r["recall"] for r in by_digest[third]["recipients"]}
    assert {org: recall["outcome"] for org, recall in recalls.items()} == {
        LA: "recalled",
        NURSES: "too-late",
    }
    assert (by_digest[fixed]["in_reply_to"], by_digest[fixed]["corrects"]) == (third, third)


async def _operations_calls(
    http: aiohttp.ClientSession, checker: SpecCheck, world: Deployment
) -> None:
    """Ask for health, readiness (ready, then shutting down) and metrics (their listener)."""
    school = world.ops_url("school")
    for path in ("/healthz", "/readyz", "/metrics"):
        status, _ = await _call(http, checker, "GET", school + path)
        assert status == 200
    ready = world.nodes["school"]._app[READY]  # as Node.stop() does
    ready["accepting"] = False
    try:
        status, _ = await _call(http, checker, "GET", school + "/readyz")
    finally:
        ready["accepting"] = True
    assert status == 503


async def test_round_trip_responses_match_the_document(
    world: Deployment, spec: dict[str, Any]
) -> None:
    """Every status and JSON body of a full round trip and its refusals is as documented."""
    checker = SpecCheck(spec)
    async with _client(world) as http:
        first, second, acknowledged = await _staff_round_trip(http, checker, world)
        await _staff_refusals(http, checker, world, first, second)
        await _receipts_timeline(http, checker, world, first)
        await _peer_calls(http, checker, world, first, acknowledged)
        await _records_calls(http, checker, world)
        await _retention_calls(http, checker, world, first, second)
        await _recall_calls(http, checker, world)
        await _operations_calls(http, checker, world)
    exercised = {(m, p) for m, p, _ in checker.seen}
    assert exercised == {(m, p) for m, p, _, _ in _operations(spec)}
    statuses = {s for _, _, s in checker.seen}
    assert {200, 201, 202, 400, 401, 403, 404, 409, 422, 503} <= statuses
