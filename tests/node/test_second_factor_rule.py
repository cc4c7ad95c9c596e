"""A node refuses to start while an account could read records without a second factor.

Accounts with no second factor yet (invited, or made with a password by ``users add``)
read nothing: sign-in makes them set one up first, so the node starts. What could read is
a session stored as signed in with the password alone for an account whose role now reads
records, here made by changing an administrator's role in the database by hand, as an
older node or an operator's SQL could; the node refuses, naming the account's number and
the command that ends its sessions, after which it starts.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys

import pytest

from exchange.cli.main import main
from exchange.config import load_config
from exchange.demo.loopback import Deployment
from exchange.model import User
from exchange.node.runtime import Node
from tests.store_engines import node_sql

from .conftest import LA

PASSWORD = "correct horse battery staple"  # noqa: S105 - a test account's password
EMAIL = "admin@frontdoor.example"


async def _restart(world: Deployment) -> None:
    """Stop the LA node and start it again from its configuration."""
    await world.nodes["la"].stop()
    world.nodes["la"] = Node(load_config(world.folder / "node-la.toml"))
    await world.nodes["la"].start()


async def test_readers_without_a_second_factor_yet_do_not_stop_the_node(
    world: Deployment,
) -> None:
    """An invited DSL and a DSL made with a password, neither with an app yet: it starts."""
    service = world.nodes["la"].service
    admin = User("la-admin", LA, "Admin", "admin")
    await service.accounts.create_user(
        admin, hashlib.sha256(b"unused").digest(), email=EMAIL, password=PASSWORD
    )
    await service.invite(admin, name="New Lead", email="lead@frontdoor.example", role="dsl")
    reader = User("la-reader", LA, "Reader", "dsl")
    await service.accounts.create_user(
        reader, hashlib.sha256(b"unused 2").digest(), email="r@frontdoor.example", password=PASSWORD
    )
    step = await service.accounts.begin_sign_in("r@frontdoor.example", PASSWORD)
    await service.accounts.start_session(step)  # at the password step: not signed in
    assert len(await service.accounts.readers_without_second_factor()) == 2
    assert await service.accounts.readers_signed_in_without_second_factor() == []
    await _restart(world)


@pytest.mark.subprocess
async def test_a_reader_signed_in_by_password_alone_stops_the_node_until_signed_out(
    world: Deployment,
) -> None:
    """The refusal names the account's number, not its address, and the command to run."""
    service = world.nodes["la"].service
    admin = User("la-admin", LA, "Admin", "admin")
    number = await service.accounts.create_user(
        admin, hashlib.sha256(b"unused").digest(), email=EMAIL, password=PASSWORD
    )
    step = await service.accounts.begin_sign_in(EMAIL, PASSWORD)
    _, session = await service.accounts.start_session(step)
    assert session.signed_in  # an administrator without an app signs in with a password
    await world.nodes["la"].stop()
    await node_sql(world, "la", "UPDATE users SET role = 'dsl' WHERE id = 'la-admin'")

    config = str(world.folder / "node-la.toml")
    # `serve` configures logging for its process, so it runs in its own.
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "exchange.cli.main", "serve", "--config", config],
        capture_output=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    lines = proc.stderr.decode().splitlines()
    last = lines[-1]
    assert last.startswith(f"exchange: the node will not start: account(s) {number} can read")
    assert f"exchange users sign-out --config {config} --account NUMBER" in last
    assert EMAIL not in proc.stderr.decode()

    argv = ["users", "sign-out", "--config", config, "--account", str(number)]
    assert await asyncio.to_thread(main, argv) == 0
    world.nodes["la"] = Node(load_config(world.folder / "node-la.toml"))
    await world.nodes["la"].start()
    # The next sign-in makes the account, a DSL now, set up an authenticator app.
    step = await world.nodes["la"].service.accounts.begin_sign_in(EMAIL, PASSWORD)
    assert step.next == "enrol-second-factor"


async def test_sign_out_of_an_unknown_account_is_refused(
    world: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    """A number that is no account gets one plain line."""
    argv = ["users", "sign-out", "--config", str(world.folder / "node-la.toml"), "--account", "99"]
    assert await asyncio.to_thread(main, argv) == 1
    assert capsys.readouterr().err == "exchange: there is no account 99 on this node\n"
