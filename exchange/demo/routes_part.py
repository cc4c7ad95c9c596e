"""Part 3 of ``exchange demo``: the same sealed envelopes over a relay mailbox and NHS MESH.

Four organisations on three nodes over TLS: Hillside (the sending school), the LA node
(Stockport's front door, the school nursing team, and a relay that keeps mailboxes), and
Moorside, a receiving school with no public endpoint that collects from its mailbox at the
relay. The demo also runs a loopback SMTP server (STARTTLS and AUTH) as the staff mail sink.

1. Hillside's DSL transfers a CP file to Moorside. The envelope waits, sealed, in Moorside's
   relay mailbox; Moorside's node collects it and signs ``delivered``, which comes back
   through the relay. Moorside's DSL gets an email with no personal data, opens and
   acknowledges.
2. Hillside shares a LAC health record with the school nursing team, whose route is its
   NHS MESH mailbox: it goes through NHS England's MESH sandbox, and the ``delivered``
   receipt comes back over MESH on the ``_ACK`` workflow. The sandbox runs in its own
   virtual environment: given one (``exchange demo --mesh-sandbox DIR``, which ``make demo``
   passes), the demo installs the sandbox there first if needed, saying so. When there is
   none, or the package index cannot be reached, the demo says in one line that it skipped
   this leg, and why; the other legs run all the same.

Every receipt is verified by Hillside's node against the digest it sealed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from exchange.config import DeliveryConfig, MeshTenantConfig, RelayConfig, SmtpSettings
from exchange.demo import records as demo_records
from exchange.demo.loopback import (
    Deployment,
    OrgSpec,
    certificate_authority,
    server_certificate,
    start_deployment,
)
from exchange.demo.node_part import Staff, wait_until
from exchange.demo.services import (
    MESH_PASSWORD,
    MESH_SHARED_KEY,
    SMTP_USER,
    SandboxUnavailableError,
    SmtpSink,
    build_sandbox_env,
    mesh_sandbox,
    sandbox_env_ready,
    sandbox_python,
)
from exchange.keys.ids import OrgId

SCHOOL = OrgId("urn:106123")
FRONT_DOOR = OrgId("la:356")
NURSES = OrgId("ods:X26ABC")
RECEIVING = OrgId("urn:106124")
ORGS = (
    OrgSpec(SCHOOL, "Hillside Primary School (demo)", "school", "school"),
    OrgSpec(FRONT_DOOR, "Stockport children's front door (demo)", "la", "la"),
    OrgSpec(NURSES, "Stockport school nursing team (demo)", "nhs", "la"),
    OrgSpec(RECEIVING, "Moorside Primary School (demo)", "school", "moorside"),
)
_DELIVERY = DeliveryConfig(
    backoff_base=0.2, backoff_max=2.0, poll_interval=0.05, collect_interval=0.25
)
_SECRET_ENVS = {
    "EXCHANGE_DEMO_MESH_PASSWORD": MESH_PASSWORD,
    "EXCHANGE_DEMO_MESH_KEY": MESH_SHARED_KEY,
}


async def _timeline(dsl: Staff, digest: str) -> tuple[dict[str, Any], list[str]]:
    item = await dsl.call("GET", f"/api/v1/sent/{digest}")
    recipient = item["recipients"][0]
    return recipient, [entry["status"] for entry in recipient["timeline"]]


async def _follow(
    dsl: Staff, reader: Staff, digest: str, disposition: str, say: Callable[[str], None]
) -> bool:
    """Wait for ``delivered``, open and acknowledge as ``reader``, wait for every receipt."""

    async def delivered() -> bool:
        return "delivered" in (await _timeline(dsl, digest))[1]

    await wait_until(delivered, "the 'delivered' receipt came back")
    recipient, _ = await _timeline(dsl, digest)
    say(f"  'delivered' came back to Hillside and verified (route: {recipient['route']})")
    await reader.call("POST", f"/api/v1/inbox/{digest}/open")
    await reader.call("POST", f"/api/v1/inbox/{digest}/acknowledge", {"disposition": disposition})

    async def complete() -> bool:
        return (await _timeline(dsl, digest))[1] == ["delivered", "opened", "acknowledged"]

    await wait_until(complete, "the 'opened' and 'acknowledged' receipts came back")
    say("  opened and acknowledged; Hillside verified: delivered, opened, acknowledged")
    return True


async def _story(
    world: Deployment, sink: SmtpSink, no_mesh: str | None, say: Callable[[str], None]
) -> bool:
    assert world.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.ca_file))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
        dsl = Staff(http, world.url("school"), world.tokens[(SCHOOL, "dsl")])
        moorside = Staff(http, world.url("moorside"), world.tokens[(RECEIVING, "dsl")])
        nurses = Staff(http, world.url("la"), world.tokens[(NURSES, "staff")])

        say("CP file transfer, Hillside -> Moorside, through the relay mailbox on the LA node:")
        confirmed = dt.datetime.now(dt.UTC).date().isoformat()
        submitted = await dsl.call(
            "POST", "/api/v1/envelopes", demo_records.cp_file(RECEIVING, "106124", confirmed)
        )
        digest = submitted["digest"]
        say("  sealed and deposited; the relay holds ciphertext and routing ids only")
        ok = await _follow(dsl, moorside, digest, "accepted-for-assessment", say)
        mails = [m for rcpt, m in sink.messages if "dsl@moorside.example" in rcpt]
        if not mails:
            say("  no notification reached the mail sink")
            return False
        message = email.message_from_bytes(mails[0], policy=email.policy.default)
        clean = demo_records.CHILD_NAME["family_name"].encode() not in mails[0]
        say(
            f'  Moorside\'s DSL was emailed: "{message["Subject"]}" '
            f"(no personal data in it: {clean})"
        )
        ok = ok and clean

        if no_mesh is not None:
            say(f"LAC health record over NHS MESH: skipped ({no_mesh})")
            return ok
        say("LAC health record, Hillside -> school nursing team, through NHS MESH (sandbox):")
        submitted = await dsl.call("POST", "/api/v1/envelopes", demo_records.lac_health(NURSES))
        say("  sealed and sent from MESH mailbox X26ABC1 to X26ABC2; mex-* headers hold ids only")
        return ok and await _follow(
            dsl, nurses, submitted["digest"], "accepted-for-assessment", say
        )


@contextlib.contextmanager
def _secrets() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in _SECRET_ENVS}
    os.environ.update(_SECRET_ENVS)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _mesh(url: str, mailbox: str) -> MeshTenantConfig:
    return MeshTenantConfig(
        url=url,
        mailbox=mailbox,
        password_env="EXCHANGE_DEMO_MESH_PASSWORD",  # noqa: S106 - a variable's name
        shared_key_env="EXCHANGE_DEMO_MESH_KEY",
        workflow="EXCHANGE_DEMO",
        allow_http=True,
    )


async def _run(
    folder: Path, mesh_url: str | None, no_mesh: str | None, say: Callable[[str], None]
) -> bool:
    (folder / "smtp").mkdir()
    ca_key, ca = certificate_authority(folder / "smtp")
    tls = server_certificate(folder / "smtp", "smtp", ca_key, ca)
    password = os.urandom(12).hex()
    sink = SmtpSink(tls.cert, tls.key, password)
    await sink.start()
    os.environ["EXCHANGE_DEMO_SMTP_PASSWORD"] = password
    routes: dict[OrgId, tuple[tuple[str, str], ...]] = {RECEIVING: (("mailbox", "la"),)}
    mesh: dict[OrgId, MeshTenantConfig] = {}
    if mesh_url is not None:
        routes[NURSES] = (("mesh", "X26ABC2"), ("https", "la"))
        routes[SCHOOL] = (("https", "school"), ("mesh", "X26ABC1"))
        mesh = {SCHOOL: _mesh(mesh_url, "X26ABC1"), NURSES: _mesh(mesh_url, "X26ABC2")}
    try:
        world = await start_deployment(
            folder / "nodes",
            ORGS,
            users={SCHOOL: ["dsl"], RECEIVING: ["dsl"], NURSES: ["staff"]},
            delivery=_DELIVERY,
            routes=routes,
            mesh=mesh,
            notify={RECEIVING: ("dsl@moorside.example",)},
            smtp=SmtpSettings(
                host="127.0.0.1",
                port=sink.port,
                from_address="exchange@stockport.example",
                message_id_domain="exchange.stockport.example",
                username=SMTP_USER,
                password_env="EXCHANGE_DEMO_SMTP_PASSWORD",  # noqa: S106 - a variable's name
                ca=tls.ca,
                link_template="https://exchange.moorside.example/inbox/{envelope_id}",
            ),
            relays={"la": RelayConfig()},
        )
        try:
            say(
                f"nodes: Hillside {world.url('school')}, LA + relay {world.url('la')}, "
                f"Moorside {world.url('moorside')} (collects; no public endpoint needed)"
            )
            return await _story(world, sink, no_mesh, say)
        finally:
            await world.stop()
    finally:
        await sink.stop()
        os.environ.pop("EXCHANGE_DEMO_SMTP_PASSWORD", None)


#: Why the MESH leg is skipped when no sandbox environment is named or found.
NO_SANDBOX = (
    "no MESH sandbox environment: `make demo` installs one, "
    "as `exchange demo --mesh-sandbox DIR` does"
)


def _sandbox(venv: Path | None, say: Callable[[str], None]) -> Path | str:
    """Return the sandbox's Python, installing it into ``venv`` if needed; or why not."""
    if venv is None:
        return sandbox_python() or NO_SANDBOX
    if not sandbox_env_ready(venv):
        say(
            f"installing NHS England's MESH sandbox into {venv} from the package index "
            "(the first time only; it takes a minute or so) ..."
        )
    try:
        return build_sandbox_env(venv)
    except SandboxUnavailableError as exc:
        return str(exc)


async def _main(python: Path | str, say: Callable[[str], None]) -> bool:
    with tempfile.TemporaryDirectory(prefix="exchange-routes-demo-") as tmp, _secrets():
        folder = Path(tmp)
        if isinstance(python, str):
            return await _run(folder, None, python, say)
        with mesh_sandbox(python, folder / "mesh-sandbox.log", MESH_SHARED_KEY) as url:
            return await _run(folder, url, None, say)


def run_routes_demo(say: Callable[[str], None], mesh_venv: Path | None = None) -> bool:
    """Run the relay, MESH and mail legs; return whether every step checked out.

    ``mesh_venv`` names the virtual environment of the MESH sandbox, installed there first
    if needed; without it, an environment already in the current folder is used if any.
    """
    return asyncio.run(_main(_sandbox(mesh_venv, say), say))
