"""The data protection officer's pages: the sharing register, subject access, retention."""

from __future__ import annotations

from aiohttp import web

from exchange.web.dpo.register import add_register_routes
from exchange.web.dpo.retention import add_retention_routes
from exchange.web.dpo.subject_access import add_subject_access_routes


def add_dpo_routes(app: web.Application) -> None:
    """Add the DPO's pages (the service lets only the DPO use them)."""
    add_register_routes(app)
    add_subject_access_routes(app)
    add_retention_routes(app)
