"""Secrets every process of a node shares, made once: the ``node_secrets`` table.

Several ``exchange serve`` processes serve one node behind a load balancer, so a value one
process seals or signs for a browser must open in any other: the key sealing a single
sign-on under way (exchange.auth.sso_pending) and the key signing the pre-sign-in CSRF
cookie (exchange.web.security). Each is a row named by its use. :meth:`node_secret` offers
a new random value and keeps whichever was stored first, so processes starting together
agree on one. A secret here only protects what a browser holds for minutes; keys that
protect records or the register stay out of the database.
"""

from __future__ import annotations

from exchange.store.rows import Tables
from exchange.store.sql import Db


class NodeSecretTables(Tables):
    """The node's shared secrets, by name."""

    async def node_secret(self, name: str, candidate: bytes, now: float) -> bytes:
        """Return the secret named ``name``, storing ``candidate`` as it if there is none yet."""

        def tx(db: Db) -> bytes:
            db.execute(
                "INSERT INTO node_secrets (name, secret, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, candidate, now),
            )
            row = db.execute("SELECT secret FROM node_secrets WHERE name = ?", (name,)).fetchone()
            assert row is not None  # inserted just now, or before by another process
            return bytes(row[0])

        return await self._tx(tx)
