"""Which connector carries an outbox item, and over which of the destination's routes.

The directory lists an organisation's routes in order of preference (docs/architecture.md
§4). A node has one connector per route kind it can use, except NHS MESH, where each of its
organisations sends from its own mailbox: :class:`Routes` keeps both kinds of connector and
answers :meth:`Routes.legs` for one item: the routes to try, in order, each paired with the
connector that carries it for the item's origin. An item may name a route to try first
(``via``): a receipt goes back the way its envelope came (through the relay it was collected
from, or over MESH on the ``_ACK`` workflow).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exchange.connectors.base import Connector, PullConnector
from exchange.keys.directory import Directory, Route
from exchange.keys.errors import KeyLookupError
from exchange.keys.ids import OrgId


@dataclass(frozen=True)
class Leg:
    """One route an attempt can take, and the connector that carries it."""

    index: int
    count: int
    route: Route
    connector: Connector


class NoRouteError(Exception):
    """No route of the destination can be used by this node; the message is a sentence."""


def via_text(route: Route) -> str:
    """Return the ``via`` text stored with an outbox item for ``route``."""
    return f"{route.kind} {route.address}"


def parse_via(via: str) -> Route | None:
    """Return the route a ``via`` text names, or ``None`` if it is not one."""
    kind, _, address = via.partition(" ")
    try:
        return Route(kind, address)
    except ValueError:
        return None


class Routes:
    """The node's connectors: shared ones by route kind, MESH ones by sending organisation."""

    def __init__(
        self,
        shared: Mapping[str, Connector],
        per_org: Mapping[tuple[str, OrgId], Connector] | None = None,
    ) -> None:
        self.shared = dict(shared)
        self.per_org = dict(per_org or {})

    def connector(self, kind: str, origin: OrgId) -> Connector | None:
        """Return the connector for ``kind`` routes when sending as ``origin``."""
        return self.per_org.get((kind, origin)) or self.shared.get(kind)

    def pull(self) -> list[PullConnector]:
        """Return every connector the node collects from, each once."""
        seen: dict[int, PullConnector] = {}
        for connector in [*self.shared.values(), *self.per_org.values()]:
            if isinstance(connector, PullConnector):
                seen.setdefault(id(connector), connector)
        return list(seen.values())

    def all(self) -> Iterable[Connector]:
        """Return every connector, each once."""
        seen: dict[int, Connector] = {}
        for connector in [*self.shared.values(), *self.per_org.values()]:
            seen.setdefault(id(connector), connector)
        return seen.values()

    def legs(
        self, directory: Directory, origin: OrgId, destination: OrgId, via: str | None
    ) -> list[Leg]:
        """Return the usable routes to ``destination``, ``via`` first, in order.

        Routes of a kind this node has no connector for are skipped. Raises
        :class:`NoRouteError` when none is left.
        """
        candidates: list[Route] = []
        first = parse_via(via) if via else None
        if first is not None:
            candidates.append(first)
        try:
            org_routes = directory.organisation(destination).routes
        except KeyLookupError as exc:
            if not candidates:
                raise NoRouteError(str(exc)) from None
            org_routes = ()
        taken = {(r.kind, r.address) for r in candidates}
        candidates += [r for r in org_routes if (r.kind, r.address) not in taken]
        usable = [
            (route, connector)
            for route in candidates
            if (connector := self.connector(route.kind, origin)) is not None
        ]
        if not usable:
            raise NoRouteError(f"the directory lists no route this node can use for {destination}")
        return [Leg(i, len(usable), r, c) for i, (r, c) in enumerate(usable)]

    async def close(self) -> None:
        """Close every connector."""
        for connector in self.all():
            await connector.close()
