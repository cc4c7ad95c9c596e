"""``exchange recall|rectify|thread|sent`` as real processes against real nodes over TLS.

The nodes are the node tests' deployment (a school node, and an LA node serving the front
door and the school nurses) on loopback with a test CA; each command runs as a separate
``python -m exchange.cli.main`` process while the nodes keep serving in the test's event
loop. Checked: the outcome lines of a recall, a thread after an outcome reply, a
rectification reaching the original's recipient (organisations by name and times in
Europe/London in the lines, as the web pages show them; ``--json`` as the node answers),
the node's refusals as one line with the rule, the token taken only from the environment
and never printed, HTTPS required, and a misbehaving server (too large, redirect, not JSON,
slow) refused in a plain sentence. No run ever prints a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exchange.cli.staff_cmd import recall_lines, sent_item_lines
from exchange.cli.staff_words import Names
from exchange.demo.loopback import PASSPHRASE_ENV, Deployment
from exchange.keys.ids import OrgId
from exchange.records import decode_container
from exchange.words import london_time
from tests.cli.conftest import assert_refused, run
from tests.cli.processes import Ran, base_env, exchange, refused
from tests.node.conftest import LA, NURSES, SCHOOL, deployed
from tests.node.helpers import auth, client, get_json, sent, submit, until
from tests.node.records import SOCIAL_WORKER, lac_record, referral, referral_submission

REASON = "Sent to the wrong team by mistake."
#: How people read the deployment's organisations: the directory's name, then the id.
LA_NAME = "Stockport front door (la:356)"
NURSES_NAME = "School nursing team (ods:X26ABC)"


def cells(line: str) -> list[str]:
    """Return the columns of a line of output (separated by two spaces or more)."""
    return re.split(r"\s{2,}", line.strip())


@pytest.fixture
async def nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Deployment]:
    """Start the school and LA nodes over TLS; the school also has a member of staff."""
    # start_deployment puts the key passphrase in the environment; this restores it after.
    monkeypatch.setenv(PASSPHRASE_ENV, "replaced by start_deployment")
    users = {SCHOOL: ["dsl", "dpo", "staff"], LA: ["staff", "dsl"], NURSES: ["staff"]}
    async with deployed(tmp_path / "nodes", users) as deployment:
        yield deployment


def as_user(world: Deployment, org: OrgId, role: str, node: str | None = None) -> dict[str, str]:
    """Return the environment of a member of staff: the node's address and their token."""
    name = node or ("school" if org == SCHOOL else "la")
    return {
        **base_env(),
        "EXCHANGE_NODE": world.url(name),
        "EXCHANGE_TOKEN": world.tokens[(org, role)],
    }


def ca(world: Deployment) -> tuple[str, str]:
    """Return the ``--ca`` option for the deployment's test CA."""
    assert world.ca_file is not None
    return "--ca", str(world.ca_file)


async def _delivered(world: Deployment, digest: str) -> None:
    async with client(world) as http:

        async def done() -> bool:
            item = await sent(http, world, digest)
            return all(r["delivery_state"] == "delivered" for r in item["recipients"])

        await until(done, what="delivery")


async def _send_referral(world: Deployment) -> str:
    """Send a referral from the school to the LA and wait until it is delivered."""
    async with (
        client(world) as http,
        http.post(
            world.url("school") + "/api/v1/envelopes",
            json=referral_submission([LA]),
            headers=auth(world, SCHOOL, "dsl"),
        ) as resp,
    ):
        assert resp.status == 202, await resp.text()
        digest = str((await resp.json())["digest"])
    await _delivered(world, digest)
    return digest


async def _open(world: Deployment, node: str, org: OrgId, digest: str) -> bytes:
    async with (
        client(world) as http,
        http.post(
            world.url(node) + f"/api/v1/inbox/{digest}/open", headers=auth(world, org, "dsl")
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.read()


async def _arrived(world: Deployment, node: str, org: OrgId, digest: str) -> dict[str, Any]:
    """Wait until ``digest`` is in ``org``'s inbox; return its inbox entry."""
    found: dict[str, Any] = {}
    async with client(world) as http:

        async def there() -> bool:
            inbox = await get_json(http, world.url(node) + "/api/v1/inbox", auth(world, org, "dsl"))
            found.update(next((i for i in inbox["items"] if i["digest"] == digest), {}))
            return bool(found)

        await until(there, what="arrival")
    return found


# --- recall ----------------------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.subprocess
async def test_recall_of_a_delivered_unopened_item_prints_recalled(nodes: Deployment) -> None:
    async with client(nodes) as http:
        digest = (await submit(http, nodes, b"synthetic target", [LA]))["digest"]
    await _delivered(nodes, digest)
    env = as_user(nodes, SCHOOL, "dsl")

    ran = await exchange("recall", digest, "--reason", REASON, "--reason-code",
                         "wrong-recipient", *ca(nodes), env=env)  # fmt: skip
    assert ran.status == 0, ran
    [line] = ran.lines
    assert cells(line)[:3] == [LA_NAME, "recalled", "https"]
    assert "withdrew it before anyone opened it" in line
    assert f"recall of {digest}: 1 recalled" in ran.err

    # Asking again is safe and answers the same; --json prints the node's answer.
    ran = await exchange("recall", digest.upper(), "--reason", REASON, "--json", *ca(nodes),
                         env=env)  # fmt: skip
    assert ran.status == 0, ran
    answer = json.loads(ran.out)
    assert answer["digest"] == digest
    assert [(r["organisation"], r["outcome"]) for r in answer["recipients"]] == [(LA, "recalled")]
    assert answer["recipients"][0]["reason_code"] == "wrong-recipient"
    # The lines said when in Europe/London; the JSON keeps the node's unix seconds.
    assert line.endswith(f"opened it, on {london_time(answer['recipients'][0]['at'])}")

    # The LA's staff can no longer open it.
    async with (
        client(nodes) as http,
        http.post(
            nodes.url("la") + f"/api/v1/inbox/{digest}/open", headers=auth(nodes, LA, "dsl")
        ) as resp,
    ):
        assert resp.status == 410

    # The sent view shows the recall, the route and the ledger events; the list shows it too.
    ran = await exchange("sent", "show", digest, *ca(nodes), env=env)
    assert ran.status == 0, ran
    shown = json.loads((await exchange("sent", "show", digest, "--json", *ca(nodes), env=env)).out)
    assert f"digest        {digest}" in ran.lines
    assert f"created       {london_time(shown['created'])} by {shown['submitted_by']}" in ran.lines
    assert "kind          Looked-after child record" in ran.lines
    assert f"to {LA_NAME}" in ran.lines
    assert any(line.startswith("  delivery    delivered via https") for line in ran.lines)
    assert any(line.startswith("  recall      recalled: ") for line in ran.lines)
    events = [cells(e) for e in ran.out.split("events\n", 1)[1].splitlines()]
    assert events[0][:2] == ["submitted", london_time(shown["events"][0]["time"])]
    assert any(e[0] == "recalled" and e[2] == LA_NAME for e in events)
    ran = await exchange("sent", "--limit", "5", *ca(nodes), env=env)
    assert ran.status == 0, ran
    [line] = [line for line in ran.lines if digest in line]
    assert cells(line)[:3] == [london_time(shown["created"]), "Looked-after child record", digest]
    assert f"{LA_NAME} delivered (delivered)" in line
    assert "recall recalled" in line
    ran = await exchange("sent", "--json", *ca(nodes), env=env)
    assert [i["digest"] for i in json.loads(ran.out)["items"]] == [digest]


@pytest.mark.network
@pytest.mark.subprocess
async def test_recall_after_opening_is_too_late_with_the_role(nodes: Deployment) -> None:
    digest = await _send_referral(nodes)
    await _open(nodes, "la", LA, digest)
    # The token may come from any variable named with --token-env, and the node from --node.
    env = {**base_env(), "MY_EXCHANGE_TOKEN": nodes.tokens[(SCHOOL, "dpo")]}
    ran = await exchange("recall", digest, "--reason", REASON, "--node", nodes.url("school"),
                         "--token-env", "MY_EXCHANGE_TOKEN", *ca(nodes), env=env,
                         secrets=(nodes.tokens[(SCHOOL, "dpo")],))  # fmt: skip
    assert ran.status == 0, ran
    [line] = ran.lines
    assert cells(line)[:3] == [LA_NAME, "too-late", "https"]
    assert line.endswith("opened by dsl")


# --- threads ---------------------------------------------------------------------------------


def _outcome(referral_digest: str) -> dict[str, Any]:
    return {
        "recipients": [SCHOOL],
        "purpose": "outcome-feedback",
        "record_kind": "outcome",
        "in_reply_to": referral_digest,
        "record": {
            "kind": "outcome",
            "version": 1,
            "decision": "no-further-action",
            "decision_date": "2026-11-27",
            "feedback": "Synthetic feedback: no further action at this time.",
            "contact": dict(SOCIAL_WORKER),
        },
        "categories": ["identity", "safeguarding-concerns"],
        "reason": "The referrer is told the outcome of the referral.",
    }


@pytest.mark.network
@pytest.mark.subprocess
async def test_thread_after_an_outcome_reply_shows_both(nodes: Deployment) -> None:
    ref = await _send_referral(nodes)
    await _open(nodes, "la", LA, ref)
    async with (
        client(nodes) as http,
        http.post(
            nodes.url("la") + "/api/v1/envelopes",
            json=_outcome(ref),
            headers=auth(nodes, LA, "dsl"),
        ) as resp,
    ):
        assert resp.status == 202, await resp.text()
        outcome = str((await resp.json())["digest"])
    await _arrived(nodes, "school", SCHOOL, outcome)
    await _open(nodes, "school", SCHOOL, outcome)

    # At the school, asked about the referral: the referral sent, then the outcome received.
    school = as_user(nodes, SCHOOL, "dsl")
    ran = await exchange("thread", ref, *ca(nodes), env=school)
    assert ran.status == 0, ran
    first, second = ran.lines
    view = json.loads((await exchange("thread", ref, "--json", *ca(nodes), env=school)).out)
    sent_at, received_at = (london_time(item["time"]) for item in view["items"])
    assert first.startswith("* ")
    assert cells(first[2:])[:5] == [sent_at, "sent to", LA_NAME, "Referral", ref]
    assert "delivered" in first.split(ref)[1]
    assert "opened" in first.split(ref)[1]
    assert second.startswith("  ")
    assert cells(second)[:5] == [received_at, "from", LA_NAME, "Outcome (reply)", outcome]
    assert "opened here" in second

    # At the LA, asked about the outcome, by a member of staff: the same conversation.
    ran = await exchange("thread", outcome, "--json", *ca(nodes), env=as_user(nodes, LA, "dsl"))
    assert ran.status == 0, ran
    view = json.loads(ran.out)
    assert view["root"] == ref
    assert [(i["digest"], i["direction"], i["relation"]) for i in view["items"]] == [
        (ref, "received", None),
        (outcome, "sent", "reply"),
    ]
    ran = await exchange("thread", outcome, *ca(nodes), env=as_user(nodes, LA, "dsl"))
    assert [line[0] for line in ran.lines] == [" ", "*"]


# --- rectification ---------------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.subprocess
async def test_rectify_sends_a_correction_to_the_original_recipient(nodes: Deployment) -> None:
    original = await _send_referral(nodes)
    corrected = referral(description="Synthetic referral, corrected: the incident was Tuesday.")
    corrected["attachments"] = [{"title": "Letter from the class teacher"}]
    Path("corrected.json").write_text(json.dumps(corrected))
    Path("letter.pdf").write_bytes(b"%PDF-1.4\n% synthetic letter\n%%EOF\n")
    env = as_user(nodes, SCHOOL, "dsl")

    ran = await exchange("rectify", original, "--record", "corrected.json", "--reason",
                         "The date of the incident was wrong.", "--attach", "letter.pdf",
                         *ca(nodes), env=env)  # fmt: skip
    assert ran.status == 0, ran
    head, corrects, *rest = ran.lines
    assert head.startswith("correction ")
    correction = head.split()[1]
    assert len(correction) == 64
    assert correction != original
    assert re.search(r"\(reference [0-9A-F]{4}-[0-9A-F]{4}\)$", head)
    assert corrects == f"corrects   {original}"
    sent_to, due = rest
    assert sent_to == f"sent to    {LA_NAME}"
    # A corrected referral has a deadline of its own, like any referral, in words.
    assert re.fullmatch(
        r"deadline   by 5pm on [A-Z][a-z]+day \d{1,2} [A-Z][a-z]+ \d{4} \(deadlines.referral\)",
        due,
    )

    # The LA receives it, and sees what it corrects and the attachment when it opens it.
    await _arrived(nodes, "la", LA, correction)
    container = decode_container(await _open(nodes, "la", LA, correction))
    assert container.record.data["corrects"] == original
    assert container.record.data["description"].endswith("the incident was Tuesday.")
    assert [(a.name, a.content_type) for a in container.attachments] == [
        ("letter.pdf", "application/pdf")
    ]

    # The sender's views: the original is corrected by it; it corrects the original.
    ran = await exchange("sent", "show", original, *ca(nodes), env=env)
    assert f"corrected by  {correction}" in ran.lines
    ran = await exchange("sent", "show", correction, *ca(nodes), env=env)
    assert f"corrects      {original}" in ran.lines
    ran = await exchange("thread", original, "--json", *ca(nodes), env=env)
    assert [i["relation"] for i in json.loads(ran.out)["items"]] == [None, "correction"]


@pytest.mark.network
@pytest.mark.subprocess
async def test_rectify_names_who_was_left_out(nodes: Deployment) -> None:
    # Sent to the LA and the nurses, recalled from the nurses only (both on one node; the
    # recall is of the whole envelope, so the nurses' copy is recalled via their own node).
    async with client(nodes) as http:
        digest = (await submit(http, nodes, b"synthetic target", [LA, NURSES]))["digest"]
    await _delivered(nodes, digest)
    await _open(nodes, "la", LA, digest)
    env = as_user(nodes, SCHOOL, "dsl")
    ran = await exchange("recall", digest, "--reason", REASON, *ca(nodes), env=env)
    outcomes = dict(cells(line)[:2] for line in ran.lines)
    assert outcomes == {LA_NAME: "too-late", NURSES_NAME: "recalled"}
    assert "1 too-late" in ran.err
    assert "1 recalled" in ran.err

    Path("lac.json").write_text(json.dumps(lac_record("Synthetic target, corrected")))
    ran = await exchange("rectify", digest, "--record", "lac.json", "--reason",
                         "The target was wrong.", *ca(nodes), env=env)  # fmt: skip
    assert ran.status == 0, ran
    assert f"sent to    {LA_NAME}" in ran.lines
    [left_out] = [line for line in ran.lines if line.startswith("not sent")]
    assert left_out.startswith(f"not sent   {NURSES_NAME}: ")
    assert "recalled" in left_out


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.subprocess
async def test_the_nodes_refusals_are_one_line_with_the_rule(nodes: Deployment) -> None:
    digest = await _send_referral(nodes)
    school = as_user(nodes, SCHOOL, "dsl")

    # A role that may not recall, and a digest nobody holds: the node's own sentence.
    ran = await exchange("recall", digest, "--reason", REASON, *ca(nodes),
                         env=as_user(nodes, SCHOOL, "staff"))  # fmt: skip
    refused(ran, 1, "exchange: the node refused: the role staff may not recall records")
    ran = await exchange("recall", "0" * 64, "--reason", REASON, *ca(nodes), env=school)
    line = refused(ran, 1, "exchange: the node refused: ")
    assert "no such" in line
    for argv in (["thread", "ab" * 32], ["sent", "show", "ab" * 32]):
        refused(await exchange(*argv, *ca(nodes), env=school), 1, "the node refused: ")

    # A refusal by a rule names it; an invalid record names each field and rule broken.
    Path("outcome.json").write_text(json.dumps(_outcome(digest)["record"]))
    ran = await exchange("rectify", digest, "--record", "outcome.json", "--reason", "Wrong.",
                         *ca(nodes), env=school)  # fmt: skip
    refused(ran, 1, "the node refused: ", "[record_kind]")
    broken = referral()
    del broken["description"]
    broken["child"]["upn"] = "W356200124009"
    Path("broken.json").write_text(json.dumps(broken))
    ran = await exchange("rectify", digest, "--record", "broken.json", "--reason", "Wrong.",
                         *ca(nodes), env=school)  # fmt: skip
    line = refused(ran, 1, "the node refused: ", "[record]", "record.description (required)")
    assert "W356200124009" not in line
    # A reason holding something shaped like a UPN is refused by the node's rule.
    ran = await exchange("recall", digest, "--reason", "Pupil W356200124001 was wrong.",
                         *ca(nodes), env=school)  # fmt: skip
    line = refused(ran, 1, "the node refused: ", "[reason.")
    assert "W356200124001" not in line

    # A token the node does not know.
    wrong = {**school, "EXCHANGE_TOKEN": "not-a-real-token-" + "x" * 30}
    ran = await exchange("thread", digest, *ca(nodes), env=wrong)
    refused(ran, 1, "exchange: the node refused: ")


@pytest.mark.network
@pytest.mark.subprocess
async def test_the_node_is_reached_only_with_its_ca(nodes: Deployment) -> None:
    digest = await _send_referral(nodes)
    env = as_user(nodes, SCHOOL, "dsl")
    ran = await exchange("thread", digest, env=env)
    refused(ran, 1, "could not verify the TLS certificate of https://127.0.0.1:", "--cacert FILE")
    Path("not-a-ca.pem").write_text("not a certificate\n")
    ran = await exchange("thread", digest, "--ca", "not-a-ca.pem", env=env)
    refused(ran, 1, "--cacert not-a-ca.pem: not a PEM certificate file")
    ran = await exchange("thread", digest, "--ca", "missing.pem", env=env)
    refused(ran, 1, "--cacert missing.pem: no such file")
    # Plain HTTP to a TLS node: refused before any request unless asked for, then it fails.
    http_url = nodes.url("school").replace("https://", "http://")
    ran = await exchange("thread", digest, "--node", http_url, env=env)
    refused(ran, 2, "must be an https:// address")
    ran = await exchange("thread", digest, "--node", http_url, "--allow-http", env=env)
    refused(ran, 1, http_url)


# --- the token, the address and the command line (no node needed) ---------------------------

DIGEST = "c0" * 32
TOKEN = "synthetic-token-for-tests-0123456789abcdef"  # noqa: S105 - a test value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_token_comes_only_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXCHANGE_TOKEN", raising=False)
    monkeypatch.setenv("EXCHANGE_NODE", "https://127.0.0.1:1")
    line = assert_refused(run("thread", DIGEST), 2, "no API token", "EXCHANGE_TOKEN")
    assert "never taken on the command line" in line
    for argv in (["--token", TOKEN], [f"--token={TOKEN}"], ["--token"]):
        result = run("recall", DIGEST, "--reason", REASON, *argv)
        line = assert_refused(result, 2, "never given on the command line")
        assert TOKEN not in result.err
    # A variable name that is really a token is not repeated either.
    result = run("thread", DIGEST, "--token-env", "WRONGLY_GIVEN_TOKEN_ABC")
    assert_refused(result, 2, "no API token", "--token-env")
    assert "WRONGLY_GIVEN_TOKEN_ABC" not in result.err
    result = run("thread", DIGEST, "--token-env", TOKEN)
    assert_refused(result, 2, "--token-env")
    assert TOKEN not in result.err
    # A token that could split the header is refused without being shown.
    monkeypatch.setenv("EXCHANGE_TOKEN", "abc\r\nX-Injected: 1")
    result = assert_refused(run("thread", DIGEST), 1, "EXCHANGE_TOKEN does not hold a token")
    assert "Injected" not in result


@pytest.mark.network
def test_plain_http_is_refused_without_allow_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCHANGE_TOKEN", TOKEN)
    port = _free_port()
    for argv in (["thread", DIGEST], ["sent"], ["sent", "show", DIGEST],
                 ["recall", DIGEST, "--reason", REASON]):  # fmt: skip
        result = run(*argv, "--node", f"http://127.0.0.1:{port}")
        assert_refused(result, 2, "--node must be an https:// address", "--allow-http")
    # Allowed, it is tried (nothing listens there), and the token is not shown.
    result = run("thread", DIGEST, "--node", f"http://127.0.0.1:{port}", "--allow-http")
    line = assert_refused(result, 1, f"could not connect to http://127.0.0.1:{port}")
    assert TOKEN not in line
    # Other addresses that are not a node's.
    for node, fragment in (
        ("ftp://127.0.0.1/", "is not an https:// URL"),
        ("https://", "is not an https:// URL"),
        ("https://127.0.0.1:port/", "is not a URL"),
        ("https://user:secret-pw@127.0.0.1/", "must not hold a user name or password"),
        ("https://127.0.0.1/?q=1", "must not have a query"),
    ):
        result = run("thread", DIGEST, "--node", node)
        assert_refused(result, 2, fragment)
        assert "secret-pw" not in result.err
    monkeypatch.delenv("EXCHANGE_NODE", raising=False)
    assert_refused(run("thread", DIGEST), 2, "no node: give --node URL or set EXCHANGE_NODE")


@pytest.mark.network
def test_command_line_mistakes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXCHANGE_TOKEN", TOKEN)
    monkeypatch.setenv("EXCHANGE_NODE", f"https://127.0.0.1:{_free_port()}")
    assert_refused(run("thread", "not-a-digest"), 2, "64 hexadecimal characters")
    assert_refused(run("recall", DIGEST), 2, "--reason")
    assert_refused(run("rectify", DIGEST, "--reason", "x"), 2, "--record")
    assert_refused(run("sent", "--limit", "201"), 2, "1 to 200")
    assert_refused(run("sent", "--timeout", "0"), 2, "timeout")
    # Inputs of a rectification are checked before the node is asked.
    Path("r.json").write_text("{not json")
    assert_refused(run("rectify", DIGEST, "--record", "r.json", "--reason", "x"), 1,
                   "record r.json: is not valid JSON")  # fmt: skip
    Path("r.json").write_text("[1, 2]")
    assert_refused(run("rectify", DIGEST, "--record", "r.json", "--reason", "x"), 1,
                   "record r.json: must hold one JSON object")  # fmt: skip
    Path("big.json").write_bytes(b" " * (256 * 1024 + 1))
    assert_refused(run("rectify", DIGEST, "--record", "big.json", "--reason", "x"), 1,
                   "larger than the limit")  # fmt: skip
    assert_refused(run("rectify", DIGEST, "--record", "missing.json", "--reason", "x"), 1,
                   "no such file")  # fmt: skip
    Path("r.json").write_text("{}")
    Path("tool.exe").write_bytes(b"MZ")
    result = run("rectify", DIGEST, "--record", "r.json", "--reason", "x", "--attach", "tool.exe")
    assert_refused(result, 1, "attachment tool.exe: only ", ".pdf")
    Path("empty.pdf").write_bytes(b"")
    result = run("rectify", DIGEST, "--record", "r.json", "--reason", "x", "--attach", "empty.pdf")
    assert_refused(result, 1, "attachment empty.pdf: is empty")


@pytest.mark.parametrize(
    "command", [["recall"], ["rectify"], ["thread"], ["sent"], ["sent", "show"]], ids=" ".join
)
def test_every_staff_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.status == 0
    assert "usage: exchange" in result.text
    assert "--node URL" in result.text
    assert "--token-env NAME" in result.text
    assert "EXCHANGE_TOKEN" in result.text
    assert "--token " not in result.text.replace("--token-env", "")


# --- a server that is not a good node --------------------------------------------------------


@pytest.fixture
async def impostor() -> AsyncIterator[tuple[str, list[str]]]:
    """Run a plain-HTTP server answering in every wrong way; yield its URL and the paths hit."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        behaviour = request.match_info["behaviour"]
        if behaviour == "huge":
            response = web.StreamResponse()
            await response.prepare(request)
            with contextlib.suppress(ConnectionError):  # the client stops reading
                for _ in range(17):
                    await response.write(b" " * (1024 * 1024))
            return response
        if behaviour == "redirect":
            raise web.HTTPFound(f"/elsewhere{request.path_qs}")
        if behaviour == "html":
            return web.Response(
                status=502, text="<html>Bad gateway</html>", content_type="text/html"
            )
        if behaviour == "notjson":
            return web.Response(text="hello")
        if behaviour == "odd":
            return web.json_response({"items": 5})
        if behaviour == "control":
            message = "bad\x1b[31m thing\nexchange: forged second line"
            return web.json_response({"error": {"status": 400, "message": message}}, status=400)
        if behaviour == "slow":
            await asyncio.sleep(5)
        return web.json_response({"error": {"status": 404, "message": "nothing here"}}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{behaviour}/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", hits
    await runner.cleanup()


@pytest.mark.network
@pytest.mark.subprocess
async def test_a_server_that_is_not_a_good_node(impostor: tuple[str, list[str]]) -> None:
    base, hits = impostor
    env = {**base_env(), "EXCHANGE_TOKEN": TOKEN}

    async def thread(behaviour: str, *extra: str) -> Ran:
        return await exchange("thread", DIGEST, "--node", f"{base}/{behaviour}", "--allow-http",
                              *extra, env=env)  # fmt: skip

    refused(await thread("huge"), 1, "larger than the limit of 16,777,216 bytes")
    refused(await thread("redirect"), 1, "redirect (HTTP 302)", "not followed")
    assert not [hit for hit in hits if hit.startswith("/elsewhere")]
    refused(await thread("html"), 1, "the node refused the request (HTTP 502) without saying why")
    refused(await thread("notjson"), 1, "is not JSON")
    refused(await thread("odd"), 1, "not in the expected form (print it with --json)")
    odd = await thread("odd", "--json")
    assert odd.status == 0
    assert json.loads(odd.out) == {"items": 5}
    line = refused(await thread("control"), 1, "the node refused: bad?[31m thing")
    assert "\x1b" not in line
    refused(await thread("slow", "--timeout", "0.5"), 1, "did not answer in time")
    refused(await thread("missing"), 1, "exchange: the node refused: nothing here")
    assert hits[0] == f"/huge/api/v1/threads/{DIGEST}"


# --- the lines people read (no node needed) --------------------------------------------------

#: 1 June 2026, 16:04 UTC: 5:04pm in London (British Summer Time).
SUMMER = 1_780_329_840


def test_the_lines_show_london_time_and_names_in_summer() -> None:
    """In summer a time is shown an hour ahead of UTC, and organisations by their names."""
    names = Names({LA: "Stockport front door"})
    recall = {"recipients": [{"organisation": LA, "outcome": "too-late", "route": "https",
                              "detail": "opened", "at": SUMMER}]}  # fmt: skip
    assert recall_lines(recall, names) == [
        f"{LA_NAME}  too-late  https  opened, on 1 June 2026 at 5:04pm"
    ]
    item = {
        "digest": DIGEST, "envelope_id": "c0" * 16, "record_kind": "referral",
        "created": SUMMER, "submitted_by": "urn:106123/dsl",
        "recipients": [{"organisation": LA, "delivery_state": "delivered", "route": "https",
                        "attempts": 1, "timeline": [{"status": "delivered", "time": SUMMER + 60}]}],
        "events": [{"type": "submitted", "time": SUMMER, "counterparty": "ods:X26ABC",
                    "index": 0}],
    }  # fmt: skip
    lines = sent_item_lines(item, names)
    assert "created       1 June 2026 at 5:04pm by urn:106123/dsl" in lines
    assert f"to {LA_NAME}" in lines
    assert "  delivered   1 June 2026 at 5:05pm" in lines
    # An organisation the directory does not name is shown by its id alone.
    assert lines[-1] == "  submitted  1 June 2026 at 5:04pm  ods:X26ABC  (ledger #0)"
    assert not re.search(r"\d{4}-\d\d-\d\dT", "\n".join(lines))
