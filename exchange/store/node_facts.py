"""Facts every process of a node must agree on, kept once in the store (migration 24).

A node run as several processes (docs/scaling.md) reads some things from its own machine
that must be the same on every machine: the register key (``register.key``) above all, since
a process hashing pupil identifiers under another key would file them where subject access
never looks. The first process to start records a check value of each such thing
(:meth:`NodeFactTables.settle_fact`); every later start compares its own with it. A check
value is a keyed hash that reveals nothing of the secret.
"""

from __future__ import annotations

from exchange.store.rows import Tables
from exchange.store.sql import Db


class NodeFactTables(Tables):
    """The ``node_facts`` table: one value per name, written once."""

    async def settle_fact(self, name: str, value: bytes) -> bytes:
        """Record ``value`` under ``name`` unless one is recorded; return the one recorded."""

        def tx(db: Db) -> bytes:
            db.execute(
                "INSERT INTO node_facts (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (name, value),
            )
            row = db.execute("SELECT value FROM node_facts WHERE name = ?", (name,)).fetchone()
            return bytes(row[0])

        return await self._tx(tx)
