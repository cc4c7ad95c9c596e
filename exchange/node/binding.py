"""Binding the node's listeners, and saying in one sentence why an address cannot be bound.

``exchange config check`` reads the configuration without touching the network, so an
address another program holds, or one that is not this machine's, is found only when the
node starts. :func:`bind_listener` starts one listener and turns the operating system's
refusal into :class:`ListenRefusedError`, whose message names the setting and the address
(``node.listen 127.0.0.1:8443 is already in use by another program``) and never the
operating system's own wording, which differs from one system to the next.
"""

from __future__ import annotations

import errno
import socket
import ssl

from aiohttp import web

from exchange.http.listener import GuardedSite, Timeouts, start_listener

#: Ports below this need privileges on Unix systems (a dedicated user cannot bind them).
PRIVILEGED_BELOW = 1024


class ListenRefusedError(Exception):
    """A listener's address cannot be bound; the message names the setting and the address."""

    def __init__(self, setting: str, host: str, port: int, reason: str) -> None:
        self.setting = setting
        super().__init__(f"{setting} {host}:{port} {reason}")


def refusal_reason(exc: OSError, port: int) -> str:
    """Return why an address could not be bound, as the end of a sentence."""
    if isinstance(exc, socket.gaierror):
        # getaddrinfo's own errors: the host is not a name or address this machine knows.
        return "names a host that cannot be resolved"
    if exc.errno == errno.EADDRINUSE:
        return "is already in use by another program"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "is not an address of this machine"
    if exc.errno == errno.EACCES:
        if 0 < port < PRIVILEGED_BELOW:
            return "is a privileged port (below 1024) this user may not bind"
        return "may not be bound by this user"
    reason = (exc.strerror or type(exc).__name__).rstrip(".").lower()
    return f"cannot be bound: {reason}"


async def bind_listener(
    setting: str,
    app: web.Application,
    host: str,
    port: int,
    *,
    timeouts: Timeouts,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[web.AppRunner, GuardedSite]:
    """Serve ``app`` on ``host:port``; raise :class:`ListenRefusedError` naming ``setting``."""
    try:
        return await start_listener(app, host, port, timeouts=timeouts, ssl_context=ssl_context)
    except OSError as exc:
        raise ListenRefusedError(setting, host, port, refusal_reason(exc, port)) from None
