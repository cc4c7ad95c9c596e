"""The front door's administrator, signed in through the pages of a test's own nodes.

The fixture :func:`admin` is offered to every test here by tests/web/conftest.py; test
modules import :class:`Admin` for its type.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.web.page_client import PageClient
from tests.web.world import Account, World


@dataclass
class Admin:
    """The test's nodes and the front door's administrator, signed in through the pages."""

    world: World
    account: Account
    browser: PageClient
