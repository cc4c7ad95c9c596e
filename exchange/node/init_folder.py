"""Making a node folder (``exchange init``): keys, configuration, TLS, data, first administrator.

What :func:`build_node_folder` writes (paths inside the node folder)::

    node.toml              0644  the node's configuration, paths relative to it
    ORG.pub.json           0644  each organisation's public entry, for the directory authority
    keys/                  0700  ORG.key for each organisation, ledger.key (each 0600)
    tls/                   0700  server.key (0600); server.crt, or server.csr to be signed;
                                 ca.pem (a test CA) and peers-ca.pem (trusted for peers), 0644
    directory/             0755  authority.vkey; directory.note once the authority sends it
    data/                  0700  the store, holding the first administrator's account

``ORG`` is the organisation id with ``:`` as ``-`` (``urn-106123``). The folder is built in a
temporary sibling and renamed into place at the end (into an existing empty folder, its
entries are moved in), so a failure part-way leaves nothing behind; a folder that exists and
is not empty is refused before anything is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

from exchange.auth.api_token import token_hash
from exchange.auth.passwords import DEFAULT_PARAMS, PasswordParams
from exchange.files import rename_durably, write_new_file
from exchange.keys.directory import OrgKind, Route
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams, encode_key_file
from exchange.keys.keypairs import OrgKeyPair
from exchange.keys.new_keys import DEFAULT_VALID_DAYS, new_org_keys
from exchange.model import User
from exchange.node.tls_material import (
    TlsMaterialError,
    check_pair,
    load_bundle,
    make_request,
    make_test_ca,
)
from exchange.service.accounts import Accounts, StoreClock
from exchange.service.errors import ServiceError
from exchange.store import SqliteStore

TlsMode = Literal["files", "csr", "test-ca", "proxy"]

CONFIG_NAME: Final = "node.toml"
DIRECTORY_FILE: Final = "directory/directory.note"
TRUST_FILE: Final = "directory/authority.vkey"
LEDGER_KEY: Final = "keys/ledger.key"
DATA_DIR: Final = "data"
SERVER_CERT: Final = "tls/server.crt"
SERVER_KEY: Final = "tls/server.key"
SERVER_CSR: Final = "tls/server.csr"
TEST_CA: Final = "tls/ca.pem"
PEERS_CA: Final = "tls/peers-ca.pem"
#: The CA certificate(s) trusted for the authority's publishing address (``[directory] ca``).
DIRECTORY_CA: Final = "directory/ca.pem"
#: The user id of the first administrator.
ADMIN_ID: Final = "admin"
#: Where the operations endpoints listen when ``[ops]`` is left out.
DEFAULT_OPS_LISTEN: Final = "127.0.0.1:9180"

_FOLDER_MODES: Final = {"keys": 0o700, "tls": 0o700, "directory": 0o755, DATA_DIR: 0o700}


class InitError(Exception):
    """The node folder cannot be made; the message says why in one sentence."""


def stem(org: OrgId) -> str:
    """Return the file name stem of an organisation's files: ``urn:106123`` is ``urn-106123``."""
    return org.replace(":", "-")


def public_entry_name(org: OrgId) -> str:
    """Return the name of an organisation's public entry file in the node folder."""
    return f"{stem(org)}.pub.json"


@dataclass(frozen=True)
class TenantPlan:
    """An organisation the node will serve."""

    org: OrgId
    name: str
    kind: OrgKind


@dataclass(frozen=True)
class AdminPlan:
    """The first administrator: their account's email address, name, organisation, password."""

    email: str
    name: str
    org: OrgId
    password: str = field(repr=False)


@dataclass(frozen=True)
class TlsPlan:
    """How TLS is set up, and the files (path, bytes, mode) it puts under ``tls/``."""

    mode: TlsMode
    files: tuple[tuple[str, bytes, int], ...] = field(default=(), repr=False)

    @property
    def trusts_peers_ca(self) -> bool:
        """Whether ``tls/peers-ca.pem`` is written (else peers are checked by the system)."""
        return any(path == PEERS_CA for path, _, _ in self.files)


def plan_tls(
    mode: TlsMode,
    host: str,
    now: datetime,
    *,
    cert: bytes | None = None,
    key: bytes | None = None,
    peers_ca: bytes | None = None,
) -> TlsPlan:
    """Check or make the TLS files of ``mode`` for ``host``; ``peers_ca`` is trusted for peers."""
    peers = [] if peers_ca is None else [peers_ca]
    if peers_ca is not None:
        if mode == "proxy":
            raise TlsMaterialError("--peers-ca goes in the [tls] table, which a proxy leaves out")
        load_bundle(peers_ca, "--peers-ca")
    files: list[tuple[str, bytes, int]] = []
    if mode == "files":
        assert cert is not None  # the command line gives both
        assert key is not None
        check_pair(cert, key, host, now)
        files += [(SERVER_CERT, cert, 0o644), (SERVER_KEY, key, 0o600)]
    elif mode == "csr":
        request_key, request = make_request(host)
        files += [(SERVER_KEY, request_key, 0o600), (SERVER_CSR, request, 0o644)]
    elif mode == "test-ca":
        made = make_test_ca(host, now)
        assert made.ca_pem is not None  # a test CA always comes with its certificate
        files += [(SERVER_CERT, made.cert_pem, 0o644), (SERVER_KEY, made.key_pem, 0o600)]
        files.append((TEST_CA, made.ca_pem, 0o644))
        peers.insert(0, made.ca_pem)
    if peers:
        files.append((PEERS_CA, b"".join(peers), 0o644))
    return TlsPlan(mode, tuple(files))


@dataclass(frozen=True)
class Secrets:
    """The passphrases of the key files; never shown."""

    tenants: bytes = field(repr=False)
    ledger: bytes = field(repr=False)


@dataclass(frozen=True)
class InitPlan:
    """Everything ``exchange init`` was told or asked, checked: what the folder will hold."""

    folder: Path
    public_url: str
    listen: str
    node_name: str
    ledger_origin: str
    tenants: tuple[TenantPlan, ...]
    trust: str
    tls: TlsPlan
    admin: AdminPlan
    passphrase_env: str
    ledger_passphrase_env: str
    secrets: Secrets
    now: int
    kdf: KdfParams = field(default_factory=KdfParams.default)
    password_params: PasswordParams = DEFAULT_PARAMS
    valid_days: int = DEFAULT_VALID_DAYS
    ops_listen: str | None = None
    #: Where the authority publishes the signed directory, and the CA (PEM) trusted for it.
    directory_url: str | None = None
    directory_ca: bytes | None = None


def check_target(folder: Path) -> None:
    """Refuse a target that exists and is not an empty folder, or whose parent is missing."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise InitError(f"{folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise InitError(f"{folder} is not empty; init writes only into a new or empty folder")
    if not folder.absolute().parent.is_dir():
        raise InitError(f"the folder {folder.absolute().parent} does not exist")


def _toml(value: str) -> str:
    # TOML basic strings share JSON's escapes for everything a path, URL or name holds.
    return json.dumps(value)


def render_config(plan: InitPlan) -> str:
    """Return ``node.toml``: the settings init chose, each with a short comment."""
    lines = [
        "# Made by `exchange init`. Paths are relative to this file's folder. No secret is",
        "# written here: key-file passphrases come from the environment variables named by",
        "# passphrase_env. Every setting is described in docs/node.md.",
        "",
        "[node]",
        f"name = {_toml(plan.node_name)}",
        f"listen = {_toml(plan.listen)}",
        f"public_url = {_toml(plan.public_url)}",
        f"data_dir = {_toml(DATA_DIR)}",
        "",
        "[directory]",
        "# The signed directory of organisations: the authority sends it (put it here),",
        "# or the node fetches each new version from url and keeps the newest here.",
        f"file = {_toml(DIRECTORY_FILE)}",
        f"trust = {_toml(TRUST_FILE)}",
        *([f"url = {_toml(plan.directory_url)}"] if plan.directory_url else []),
        *([f"ca = {_toml(DIRECTORY_CA)}"] if plan.directory_ca is not None else []),
        "",
        "[ledger]",
        f"key = {_toml(LEDGER_KEY)}",
        f"passphrase_env = {_toml(plan.ledger_passphrase_env)}",
        f"origin = {_toml(plan.ledger_origin)}",
        "",
    ]
    if plan.tls.mode == "proxy":
        lines += ["[server]", "behind_proxy = true  # TLS ends at a proxy in front", ""]
    else:
        lines += ["[tls]", f"cert = {_toml(SERVER_CERT)}", f"key = {_toml(SERVER_KEY)}"]
        if plan.tls.trusts_peers_ca:
            lines.append(f"ca = {_toml(PEERS_CA)}  # trusted when calling peers")
        lines.append("")
    ops = plan.ops_listen
    lines += ["# /healthz, /readyz and /metrics on their own listener."]
    if ops is None:
        lines += ["# [ops]", f"# listen = {_toml(DEFAULT_OPS_LISTEN)}", ""]
    else:
        lines += ["[ops]", f"listen = {_toml(ops)}", ""]
    for tenant in plan.tenants:
        lines += [
            "[[tenants]]",
            f"org = {_toml(tenant.org)}  # {tenant.name}",
            f"keys = [{_toml(f'keys/{stem(tenant.org)}.key')}]",
            f"passphrase_env = {_toml(plan.passphrase_env)}",
            "",
        ]
    return "\n".join(lines)


def _write(root: Path, relative: str, data: bytes, mode: int) -> None:
    write_new_file(root / relative, data, mode=mode)


async def _add_admin(data_dir: Path, plan: InitPlan) -> None:
    admin = plan.admin
    store = await SqliteStore.open(data_dir)
    try:
        accounts = Accounts(StoreClock(store), password_params=plan.password_params)
        # The administrator works in the web pages; nobody holds this API token (staff
        # tokens are given out with `exchange users add`).
        unheld = token_hash(secrets.token_urlsafe(32))
        user = User(ADMIN_ID, admin.org, admin.name, "admin")
        await accounts.create_user(user, unheld, email=admin.email, password=admin.password)
    except ServiceError as exc:
        raise InitError(f"the administrator's account: {exc}") from None
    finally:
        await store.close()


def _fill(root: Path, plan: InitPlan) -> None:
    """Write everything into ``root`` (the temporary folder)."""
    for name, mode in _FOLDER_MODES.items():
        (root / name).mkdir(mode=mode)
        (root / name).chmod(mode)
    route = Route("https", plan.public_url)
    for tenant in plan.tenants:
        keys = new_org_keys(
            tenant.org, tenant.name, tenant.kind, not_before=plan.now,
            valid_days=plan.valid_days, routes=(route,),
        )  # fmt: skip
        _write(
            root,
            f"keys/{stem(tenant.org)}.key",
            keys.key_file(plan.secrets.tenants, plan.kdf),
            0o600,
        )
        _write(root, public_entry_name(tenant.org), keys.public_entry(), 0o644)
    ledger = OrgKeyPair.generate(OrgId(f"node:{plan.node_name}"))
    _write(root, LEDGER_KEY, encode_key_file(ledger, plan.secrets.ledger, params=plan.kdf), 0o600)
    _write(root, TRUST_FILE, plan.trust.encode("ascii"), 0o644)
    if plan.directory_ca is not None:
        _write(root, DIRECTORY_CA, plan.directory_ca, 0o644)
    for relative, data, mode in plan.tls.files:
        _write(root, relative, data, mode)
    asyncio.run(_add_admin(root / DATA_DIR, plan))
    _write(root, CONFIG_NAME, render_config(plan).encode("utf-8"), 0o644)


def _move_into(temp: Path, target: Path) -> None:
    """Move the entries of ``temp`` into the empty folder ``target``, all or none."""
    moved: list[Path] = []
    try:
        for entry in sorted(temp.iterdir()):
            rename_durably(entry, target / entry.name)
            moved.append(entry)
    except BaseException:
        for entry in moved:
            with contextlib.suppress(OSError):
                (target / entry.name).rename(entry)
        raise
    temp.rmdir()


def build_node_folder(plan: InitPlan) -> None:
    """Make the node folder ``plan.folder`` (see the module's docstring), or nothing."""
    target = plan.folder
    check_target(target)
    parent = target.absolute().parent
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.init-", dir=parent))
    try:
        _fill(temp, plan)
        if target.is_dir():
            _move_into(temp, target)
        else:
            rename_durably(temp, target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _steps_for_tls(plan: InitPlan, folder: str) -> list[str]:
    mode = plan.tls.mode
    if mode == "csr":
        return [
            (
                f"Have {folder}/{SERVER_CSR} signed by your certificate authority for the host "
                f"of {plan.public_url}, and put the certificate (with its chain) at "
                f"{folder}/{SERVER_CERT}."
            )
        ]
    if mode == "test-ca":
        return [
            (
                f"Give {folder}/{TEST_CA}, this test deployment's certificate authority, to "
                "the staff who use this node and to the other nodes, which add it to their "
                f"{PEERS_CA}; add each other node's CA file to {folder}/{PEERS_CA}."
            )
        ]
    if mode == "proxy":
        return [
            (
                f"Set up the proxy in front to end TLS for {plan.public_url} and pass "
                f"requests to {plan.listen}."
            )
        ]
    return []


def next_steps(plan: InitPlan, *, config: Path, shown_folder: str) -> list[str]:
    """Return the sentences printed after the folder is made, in the order to follow them."""
    names = {t.org: t.name for t in plan.tenants}
    steps = [
        f"Send {shown_folder}/{public_entry_name(t.org)}, the public entry of {t.name}, to "
        "the directory authority."
        for t in plan.tenants
    ]
    steps.append(
        f"When the signed directory arrives, put it at {shown_folder}/{DIRECTORY_FILE} (or set "
        "[directory] url to the address where the authority publishes it)."
    )
    steps += _steps_for_tls(plan, shown_folder)
    envs = sorted({plan.passphrase_env, plan.ledger_passphrase_env})
    steps.append(
        f"Set {' and '.join(envs)} to the key files' passphrases wherever the node runs: "
        "the node reads them from the environment."
    )
    steps.append(f"Run `exchange config check --config {config}`.")
    steps.append(f"Run `exchange serve --config {config}`.")
    steps.append(
        f"{plan.admin.name} can then sign in at {plan.public_url}/ with {plan.admin.email} and "
        f"the initial password, as the administrator of {names[plan.admin.org]}, and invite "
        "staff; `exchange users add` gives out API tokens for scripts."
    )
    return steps


def tenant_stems_clash(tenants: Sequence[TenantPlan]) -> bool:
    """Whether two organisations would share file names (or one is named twice)."""
    return len({stem(t.org) for t in tenants}) != len(tenants)
