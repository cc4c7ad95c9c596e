"""Every staff web page a node serves, added to its application in one call."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from exchange.service.node_service import NodeService
from exchange.web.accounts import add_account_routes
from exchange.web.admin.accounts import add_admin_account_routes
from exchange.web.admin.activity import add_activity_routes
from exchange.web.admin.node_state import add_node_state_routes
from exchange.web.admin.tokens import add_token_routes
from exchange.web.app import add_web_routes
from exchange.web.dpo import add_dpo_routes
from exchange.web.inbox import add_inbox_routes
from exchange.web.invitation import add_invitation_routes
from exchange.web.overdue import add_overdue_routes
from exchange.web.passkeys import add_passkey_routes
from exchange.web.security import SignedCookieCsrf, WebKeys
from exchange.web.send import add_send_routes
from exchange.web.sent import add_sent_routes
from exchange.web.sso import add_sso_routes
from exchange.web.step_up import add_step_up_routes

#: The names of the web keys among the node's shared secrets (exchange.store.node_secrets).
CSRF_KEY_NAME: Final = "web-csrf-cookie"
SSO_KEY_NAME: Final = "sso-pending"


async def shared_web_keys(service: NodeService) -> WebKeys:
    """Return the node's web keys, the same in each of its processes (made on first use)."""
    return WebKeys(
        csrf=await service.shared_secret(CSRF_KEY_NAME),
        sso_pending=await service.shared_secret(SSO_KEY_NAME),
    )


def add_staff_pages(
    app: web.Application, service: NodeService, keys: WebKeys | None = None
) -> None:
    """Add the layout, assets and error pages, then sign-in and the signed-in pages.

    ``keys`` sign and seal what browsers hold between requests: a running node's come from
    :func:`shared_web_keys`, so any of its processes may answer the next request; without
    them the keys are this process's own.
    """
    keys = WebKeys.random() if keys is None else keys
    add_web_routes(app, service, csrf=SignedCookieCsrf(keys.csrf))
    add_account_routes(app)
    add_step_up_routes(app)
    add_sso_routes(app, keys.sso_pending)
    add_inbox_routes(app)
    add_sent_routes(app)
    add_overdue_routes(app)
    add_dpo_routes(app)
    add_invitation_routes(app)
    add_passkey_routes(app)
    add_admin_account_routes(app)
    add_activity_routes(app)
    add_token_routes(app)
    add_node_state_routes(app)
    add_send_routes(app)
