"""A complete deployment on one machine: nodes on 127.0.0.1, a test CA, keys, a directory.

Used by ``exchange demo``, the integration tests and ``bench/node.py``. Everything lives in
one folder: a private certificate authority and a TLS certificate per node (so nodes talk
HTTPS exactly as in production), encrypted key files, the signed directory, node
configuration files and data folders. Nodes listen on port 0; once they are up the
directory authority signs a second directory version with their real addresses, and every
node reloads it, which is also how a live deployment learns of a new route. Each node's
operations listener (/healthz, /readyz, /metrics) is on a free loopback port too
(:meth:`Deployment.ops_url`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exchange.auth.api_token import token_hash
from exchange.auth.sso_rules import SsoProvider
from exchange.config import (
    DeliveryConfig,
    MeshTenantConfig,
    NodeConfig,
    OpsConfig,
    RelayConfig,
    SmtpSettings,
    TasksConfig,
    TenantConfig,
    TlsConfig,
    config_to_toml,
)
from exchange.config_database import DatabaseConfig
from exchange.files import write_new_file
from exchange.keys.directory import (
    Directory,
    KeyGeneration,
    Organisation,
    OrgKind,
    Route,
    merge_directory,
    sign_directory,
)
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams, encode_key_file
from exchange.keys.keypairs import OrgKeyPair, SigningKey
from exchange.keys.notes import NoteSigner
from exchange.model import User
from exchange.node.runtime import Node

_YEAR = 365 * 24 * 3600
PASSPHRASE_ENV = "EXCHANGE_LOOPBACK_PASSPHRASE"  # noqa: S105 - a variable name, not a secret


@dataclass(frozen=True)
class OrgSpec:
    """An organisation of the deployment and the node that serves it."""

    org: OrgId
    name: str
    kind: OrgKind
    node: str


@dataclass(frozen=True)
class DirectorySource:
    """Where every node fetches the directory from: ``[directory] url``, ``ca``, interval."""

    url: str
    ca: Path
    refresh_interval: float


@dataclass
class Deployment:
    """Nodes on loopback and what is needed to talk to them."""

    folder: Path
    orgs: tuple[OrgSpec, ...]
    nodes: dict[str, Node] = field(default_factory=dict)
    tokens: dict[tuple[OrgId, str], str] = field(default_factory=dict)
    ca_file: Path | None = None
    authority: NoteSigner | None = None
    entries: list[Organisation] = field(default_factory=list)
    directory: Directory | None = None
    #: Each organisation's routes, in order, as (kind, address); for ``https`` and
    #: ``mailbox`` the address is a node's name, replaced by its URL when published.
    #: Organisations not listed get their own node's HTTPS route.
    routes: dict[OrgId, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    #: Organisations served by a node but left out of the directories the harness signs
    #: (a test's later version brings them in).
    unlisted: frozenset[OrgId] = frozenset()

    def listed_entries(self) -> list[Organisation]:
        """Return the entries of the organisations the harness's directories list."""
        return [e for e in self.entries if e.id not in self.unlisted]

    def url(self, node: str) -> str:
        """Return the base URL of a running node."""
        return f"https://127.0.0.1:{self.nodes[node].port}"

    def ops_url(self, node: str) -> str:
        """Return the base URL of a running node's operations listener (/readyz, /metrics)."""
        return f"http://127.0.0.1:{self.nodes[node].ops_port}"

    def node_of(self, org: OrgId) -> Node:
        """Return the node serving ``org``."""
        spec = next(s for s in self.orgs if s.org == org)
        return self.nodes[spec.node]

    async def stop(self) -> None:
        """Stop every node gracefully."""
        for node in self.nodes.values():
            await node.stop()


def certificate_authority(folder: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Create a private test CA (valid two days) and write its certificate to ``ca.pem``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "exchange loopback test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_new_file(folder / "ca.pem", cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return key, cert


def server_certificate(
    folder: Path, name: str, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate
) -> TlsConfig:
    """Issue a certificate for IP 127.0.0.1 as ``name``; write ``name``.crt and .key.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file = folder / f"{name}.crt"
    key_file = folder / f"{name}.key.pem"
    write_new_file(cert_file, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    write_new_file(
        key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return TlsConfig(cert=cert_file, key=key_file, ca=folder / "ca.pem")


def _key_file(folder: Path, pair: OrgKeyPair, passphrase: bytes, params: KdfParams) -> Path:
    path = folder / f"{pair.org_id.replace(':', '-')}-{pair.signing.public.key_id.hex()[:8]}.key"
    write_new_file(path, encode_key_file(pair, passphrase, params=params))
    return path


async def start_deployment(
    folder: Path,
    orgs: Sequence[OrgSpec],
    *,
    users: Mapping[OrgId, Sequence[str]] | None = None,
    delivery: DeliveryConfig | None = None,
    kdf: KdfParams | None = None,
    passphrase: str | None = None,
    routes: Mapping[OrgId, Sequence[tuple[str, str]]] | None = None,
    mesh: Mapping[OrgId, MeshTenantConfig] | None = None,
    notify: Mapping[OrgId, Sequence[str]] | None = None,
    smtp: SmtpSettings | None = None,
    relays: Mapping[str, RelayConfig] | None = None,
    tasks: TasksConfig | None = None,
    unlisted: Sequence[OrgId] = (),
    directory_source: DirectorySource | None = None,
    max_envelope_bytes: int | None = None,
    sso: Sequence[SsoProvider] = (),
    databases: Mapping[str, DatabaseConfig] | None = None,
) -> Deployment:
    """Create everything in ``folder`` and start one node per distinct ``OrgSpec.node``.

    ``users`` maps an organisation to the roles to create a user for; their bearer tokens
    are in ``Deployment.tokens`` by (org, role). The key-file passphrase is put in the
    environment variable :data:`PASSPHRASE_ENV`, where the nodes read it. ``routes`` sets
    organisations' routes (see :attr:`Deployment.routes`); ``mesh`` gives organisations a
    MESH mailbox, ``notify`` staff mailboxes for notices, ``smtp`` every node's mail
    server, ``relays`` the nodes that keep relay mailboxes, and ``tasks`` how every node's
    background tasks back off. ``unlisted`` organisations are served but left out of the
    directories signed here; ``directory_source`` is where the nodes fetch new versions;
    ``max_envelope_bytes`` every node's ``[limits]`` setting of that name (default: its own);
    ``sso`` single sign-on providers, each on the node serving its organisation;
    ``databases`` the store of each node by name (default: SQLite in its data folder).
    """
    params = kdf or KdfParams.default()
    secret = passphrase or secrets.token_urlsafe(24)
    os.environ[PASSPHRASE_ENV] = secret
    folder.mkdir(parents=True, exist_ok=True)
    deployment = Deployment(folder=folder, orgs=tuple(orgs), unlisted=frozenset(unlisted))
    deployment.routes = {org: tuple(r) for org, r in (routes or {}).items()}
    ca_key, ca = certificate_authority(folder)
    deployment.ca_file = folder / "ca.pem"
    now = int(time.time())
    key_files: dict[OrgId, Path] = {}
    for spec in orgs:
        pair = OrgKeyPair.generate(spec.org)
        key_files[spec.org] = _key_file(folder, pair, secret.encode(), params)
        generation = KeyGeneration(
            pair.signing.public, pair.encryption.public, not_before=now - 60, not_after=now + _YEAR
        )
        deployment.entries.append(Organisation(spec.org, spec.name, spec.kind, (generation,)))
    authority = NoteSigner("directory.loopback.invalid", SigningKey.generate())
    deployment.authority = authority
    draft = merge_directory(
        None, deployment.listed_entries(), version=1, issued=now,
        authority=authority.verifier.name,
    )  # fmt: skip
    directory_file = folder / "directory-v1.note"
    write_new_file(directory_file, sign_directory(draft, authority), mode=0o644)
    (folder / "authority.vkey").write_text(authority.verifier.vkey() + "\n")

    for node_name in dict.fromkeys(s.node for s in orgs):
        ledger_pair = OrgKeyPair.generate(OrgId(f"node:{node_name}"))
        config = NodeConfig(
            name=node_name,
            host="127.0.0.1",
            port=0,
            public_url="https://127.0.0.1:0",
            data_dir=folder / f"data-{node_name}",
            directory_file=directory_file,
            trust=str(folder / "authority.vkey"),
            ledger_key=_key_file(folder, ledger_pair, secret.encode(), params),
            ledger_passphrase_env=PASSPHRASE_ENV,
            ledger_origin=f"exchange.loopback.invalid/{node_name}",
            tenants=tuple(
                TenantConfig(
                    s.org,
                    (key_files[s.org],),
                    PASSPHRASE_ENV,
                    notify=tuple((notify or {}).get(s.org, ())),
                    mesh=(mesh or {}).get(s.org),
                )
                for s in orgs
                if s.node == node_name
            ),
            delivery=delivery or DeliveryConfig(),
            tls=server_certificate(folder, node_name, ca_key, ca),
            smtp=smtp,
            relay=(relays or {}).get(node_name),
            tasks=tasks or TasksConfig(),
            # Each node's own operations listener, on a free port like the main one.
            ops=OpsConfig(port=0),
            sso=tuple(p for p in sso if any(s.org == p.org and s.node == node_name for s in orgs)),
            database=(databases or {}).get(node_name, DatabaseConfig()),
            **_directory_settings(directory_source),
        )
        if max_envelope_bytes is not None:
            config = replace(config, max_envelope_bytes=max_envelope_bytes)
        # The node learns its address only once bound (below): nothing to compare yet.
        node = Node(config, match_public_url=False)
        await node.start()
        # The real port is known only now; the public URL is what peers sign against.
        # The real port is fixed from now on, so a restart (`exchange serve --config`) of
        # this node binds the same address the directory gives.
        node.config = replace(config, port=node.port, public_url=f"https://127.0.0.1:{node.port}")
        node.set_public_url(node.config.public_url)
        (folder / f"node-{node_name}.toml").write_text(config_to_toml(node.config))
        deployment.nodes[node_name] = node

    await publish_routes(deployment, version=2)
    for spec in orgs:
        for role in (users or {}).get(spec.org, ()):
            token = secrets.token_urlsafe(32)
            user = User(f"{spec.org}/{role}", spec.org, f"{role} of {spec.org}", role)  # type: ignore[arg-type]
            await deployment.node_of(spec.org).service.store.add_user(
                user, token_hash(token), time.time()
            )
            deployment.tokens[(spec.org, role)] = token
    return deployment


def _directory_settings(source: DirectorySource | None) -> dict[str, Any]:
    if source is None:
        return {}
    return {
        "directory_url": source.url,
        "directory_ca": source.ca,
        "directory_refresh_interval": source.refresh_interval,
    }


def routes_of(deployment: Deployment, org: OrgId) -> tuple[Route, ...]:
    """Return ``org``'s routes with the running nodes' URLs (see ``Deployment.routes``)."""
    spec = deployment.routes.get(org)
    if spec is None:
        own = next(s.node for s in deployment.orgs if s.org == org)
        return (Route("https", deployment.url(own)),)
    return tuple(
        Route(kind, deployment.url(address) if kind in {"https", "mailbox"} else address)
        for kind, address in spec
    )


async def publish_routes(deployment: Deployment, *, version: int) -> None:
    """Sign a directory version with every organisation's routes (see ``Deployment.routes``)."""
    assert deployment.authority is not None
    entries = [
        Organisation(e.id, e.name, e.kind, e.keys, routes_of(deployment, e.id))
        for e in deployment.listed_entries()
    ]
    directory = merge_directory(
        None, entries, version=version, issued=int(time.time()),
        authority=deployment.authority.verifier.name,
    )  # fmt: skip
    note = sign_directory(directory, deployment.authority)
    path = deployment.folder / f"directory-v{version}.note"
    write_new_file(path, note, mode=0o644)
    for name, node in deployment.nodes.items():
        node.reload_directory(note)
        # A node restarted from its configuration file (`exchange serve --config`) must load
        # this version too, or it would come back with a directory that has no routes.
        node.config = replace(node.config, directory_file=path)
        (deployment.folder / f"node-{name}.toml").write_text(config_to_toml(node.config))
    deployment.directory = directory
