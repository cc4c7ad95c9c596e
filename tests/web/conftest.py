"""The web tests' nodes: shared by the tests of a module, or a test's own.

A module's tests share :func:`world` when each only reads, or makes its own items and
looks only at them; a test that counts or changes what its organisation holds as a whole
takes :func:`fresh_world`. Both run in the module's event loop, so every test module that
uses them is marked ``pytest.mark.asyncio(loop_scope="module")``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import structlog

from exchange import logs
from tests.web.signed_in_admin import Admin
from tests.web.world import FRONT_DOOR, World, running_world


@pytest.fixture(scope="module")
def structured_log() -> Iterator[io.StringIO]:
    """Send every structlog event of the module's tests, as production JSON, to a buffer."""
    buffer = io.StringIO()
    logs.configure(json=True, level=logging.DEBUG, stream=buffer)
    yield buffer
    structlog.reset_defaults()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory, structured_log: io.StringIO
) -> AsyncIterator[World]:
    """Start the school and LA nodes once for the module's tests, logging to the buffer."""
    del structured_log  # configured first, so the log holds the nodes' every line
    async with running_world(tmp_path_factory.mktemp("world")) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def fresh_world(tmp_path: Path) -> AsyncIterator[World]:
    """Start the school and LA nodes for one test."""
    async with running_world(tmp_path / "world") as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def admin(fresh_world: World) -> AsyncIterator[Admin]:
    """Start the test's own nodes; sign the front door's administrator in."""
    account = await fresh_world.account(FRONT_DOOR, "admin", app=False)
    browser = fresh_world.client(FRONT_DOOR)
    await fresh_world.sign_in(browser, account)
    yield Admin(fresh_world, account, browser)
