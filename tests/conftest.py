"""Fixtures shared by several test packages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.connectors import mesh_sandbox
from tests.connectors.mesh_sandbox import Sandbox


@pytest.fixture(scope="session")
def mesh_sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Run the real NHS MESH sandbox once for the whole session."""
    yield from mesh_sandbox.sandbox_session(tmp_path_factory.mktemp("mesh"))
