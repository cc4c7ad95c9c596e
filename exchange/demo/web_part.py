"""After the story, when ``exchange demo`` runs in a terminal: the demo nodes, serving pages.

Three nodes start on loopback as in the story: Hillside Primary School's, Stockport's (the
children's front door and the school nursing team, and a relay) and Moorside Primary's
(which collects from its relay mailbox). Every organisation gets a demo account for each
role, all with one password made for this run, and the school sends two synthetic records
(a referral to the front door, a CP-file transfer to Moorside), so that each inbox has
something to open. The demo prints each node's address and the accounts, then serves until
Ctrl-C, when it stops the nodes and removes its temporary folder.

Every account and record is synthetic and marked "(demo)". A first sign-in asks for an
authenticator app, as a real one does: the set-up page shows a QR code and the key as text.
Without a terminal (tests, CI) ``exchange demo`` never reaches this part.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import signal
import ssl
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import aiohttp

from exchange.config import DeliveryConfig, RelayConfig
from exchange.demo import records as demo_records
from exchange.demo.loopback import Deployment, OrgSpec, start_deployment
from exchange.demo.node_part import Staff
from exchange.keys.ids import OrgId
from exchange.model import Role, User

SCHOOL: Final = OrgId("urn:106123")
FRONT_DOOR: Final = OrgId("la:356")
NURSES: Final = OrgId("ods:X26ABC")
MOORSIDE: Final = OrgId("urn:106124")
ORGS: Final = (
    OrgSpec(SCHOOL, "Hillside Primary School (demo)", "school", "school"),
    OrgSpec(FRONT_DOOR, "Stockport children's front door (demo)", "la", "la"),
    OrgSpec(NURSES, "Stockport school nursing team (demo)", "nhs", "la"),
    OrgSpec(MOORSIDE, "Moorside Primary School (demo)", "school", "moorside"),
)
#: The part of each demo account's email address before the role: ``dsl@hillside.demo``.
DOMAINS: Final = {
    SCHOOL: "hillside.demo",
    FRONT_DOOR: "frontdoor.demo",
    NURSES: "nurses.demo",
    MOORSIDE: "moorside.demo",
}
ROLES: Final[dict[Role, str]] = {
    "dsl": "designated safeguarding lead: sends, receives and acts on records",
    "staff": "member of staff: receives and acts on records",
    "dpo": "data protection officer: the sharing register, subject access, retention",
    "admin": "administrator: accounts and the node's state",
}
_DELIVERY: Final = DeliveryConfig(
    backoff_base=0.2, backoff_max=2.0, poll_interval=0.05, collect_interval=0.25
)


@dataclass(frozen=True)
class DemoAccount:
    """A synthetic account: its organisation, role and email address."""

    org: OrgId
    role: Role
    email: str


def should_serve() -> bool:
    """Whether ``exchange demo`` runs in a terminal (and so keeps the nodes serving)."""
    if os.environ.get("CI"):
        return False
    return sys.stdin.isatty() and sys.stdout.isatty()


async def start_web_demo(folder: Path, password: str) -> tuple[Deployment, list[DemoAccount]]:
    """Start the nodes, make the demo accounts and send the two synthetic records."""
    world = await start_deployment(
        folder,
        ORGS,
        users={SCHOOL: ["dsl"]},
        delivery=_DELIVERY,
        routes={MOORSIDE: (("mailbox", "la"),)},
        relays={"la": RelayConfig()},
    )
    accounts = []
    for spec in ORGS:
        service = world.node_of(spec.org).service
        for role in ROLES:
            email = f"{role}@{DOMAINS[spec.org]}"
            user = User(f"{spec.org}/web-{role}", spec.org, f"Demo {role}", role)
            unused_token = hashlib.sha256(secrets.token_bytes(32)).digest()
            await service.accounts.create_user(user, unused_token, email=email, password=password)
            accounts.append(DemoAccount(spec.org, role, email))
    await _send_examples(world)
    return world, accounts


async def _send_examples(world: Deployment) -> None:
    """Send a referral to the front door and a CP file to Moorside, through the staff API."""
    if world.ca_file is None:
        raise RuntimeError("the deployment has no certificate authority file")
    tls = ssl.create_default_context(cafile=str(world.ca_file))
    confirmed = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as http:
        dsl = Staff(http, world.url("school"), world.tokens[(SCHOOL, "dsl")])
        await dsl.call("POST", "/api/v1/envelopes", demo_records.referral(FRONT_DOOR))
        cp_file = demo_records.cp_file(MOORSIDE, MOORSIDE.split(":", 1)[1], confirmed)
        await dsl.call("POST", "/api/v1/envelopes", cp_file)


def describe(world: Deployment, accounts: list[DemoAccount], password: str) -> list[str]:
    """Return the lines that tell a person where the pages are and how to sign in."""
    names = {spec.org: spec.name for spec in ORGS}
    lines = [
        "== The web pages: the demo nodes keep serving until you press Ctrl-C ==",
        "Every account and record below is synthetic, made for this demo only.",
        "",
    ]
    for spec in ORGS:
        lines.append(f"{names[spec.org]}: {world.url(spec.node)}/sign-in")
        lines.extend(
            f"  {account.email:<24} {ROLES[account.role]}"
            for account in accounts
            if account.org == spec.org
        )
    lines += [
        "",
        f"Every demo account's password: {password}",
        "",
        "How to sign in:",
        "1. Open an address above. Your browser warns that the certificate is not trusted:",
        "   the demo made its own certificate authority for 127.0.0.1. Continue to the site.",
        "2. Enter an email address and the password.",
        "3. The first time, set up an authenticator app (any app that shows 6-digit codes:",
        "   scan the QR code, or type the key shown under it), then keep the recovery codes.",
        "",
        "Hillside's DSL can send records; the front door's DSL has a referral to open, and",
        "Moorside's DSL a child protection file (Moorside collects it from its relay mailbox).",
    ]
    return lines


async def serve_until_stopped(say: Callable[[str], None], stop: asyncio.Event) -> None:
    """Start the demo nodes, say how to use them, and serve until ``stop`` is set."""
    password = "-".join(secrets.token_hex(2) for _ in range(4))
    with tempfile.TemporaryDirectory(prefix="exchange-demo-web-") as tmp:
        world, accounts = await start_web_demo(Path(tmp), password)
        try:
            for line in describe(world, accounts, password):
                say(line)
            await stop.wait()
        finally:
            await world.stop()
    say("the demo nodes stopped; the temporary folder was removed")


def serve_web_demo(say: Callable[[str], None]) -> int:
    """Serve the demo nodes until Ctrl-C (or SIGTERM); return the exit status."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await serve_until_stopped(say, stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(ValueError, RuntimeError):
                    loop.remove_signal_handler(signum)

    asyncio.run(main())
    return 0
