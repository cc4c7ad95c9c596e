"""Every process of a node hashes pupil identifiers under one register key.

The first start records the key's check value in the store; a start with another
``register.key`` (a second machine given a fresh one, a restore with the wrong file) is
refused in a sentence, before anything is served, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exchange.config import ConfigError, load_config
from exchange.node.runtime import Node
from exchange.service.register_reports import KEY_FILE, KEY_LEN
from tests.node.conftest import deployed

pytestmark = pytest.mark.network


async def test_a_start_with_another_register_key_is_refused(tmp_path: Path) -> None:
    """Same key: starts. Another key: refused, naming the file and what to do."""
    async with deployed(tmp_path / "world", {}) as world:
        config = load_config(world.folder / "node-la.toml")
        await world.nodes["la"].stop()
        again = Node(config, match_public_url=False)
        await again.start()  # the same key: accepted
        await again.stop()
        key_file = config.data_dir / KEY_FILE
        original = key_file.read_bytes()
        key_file.write_bytes(os.urandom(KEY_LEN))
        other = Node(config, match_public_url=False)
        with pytest.raises(ConfigError) as refused:
            await other.start()
        assert str(refused.value).startswith(f"{key_file} is not the register key")
        assert "copy register.key" in str(refused.value)
        assert original.hex() not in str(refused.value)
        key_file.write_bytes(original)
        world.nodes["la"] = Node(config, match_public_url=False)
        await world.nodes["la"].start()
