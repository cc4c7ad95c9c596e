"""NHS MESH: the ``mesh`` route kind (docs/mesh.md).

:class:`MeshConnector` sends sealed envelopes and receipts to MESH mailboxes and collects
what waits in the node's own mailbox; :mod:`exchange.connectors.mesh.auth` builds the NHSMESH
authorisation header.
"""

from exchange.connectors.mesh.auth import TokenSource, auth_header
from exchange.connectors.mesh.client import RETRY_STATUSES, MeshConfig, MeshConnector

__all__ = ["RETRY_STATUSES", "MeshConfig", "MeshConnector", "TokenSource", "auth_header"]
