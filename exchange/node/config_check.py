"""Whether a configuration can serve: ``exchange config check``, and every node's start.

Each check returns the problems it finds as sentences naming the setting; none needs the
network. :func:`check_config` runs them all: the directory verifies against the trust key;
every tenant's key files exist, decrypt with the passphrase from the environment and are
keys the directory lists for that organisation; the ledger key likewise decrypts;
``public_url`` is the address of a route the directory lists for one of the node's
tenants; the node serves HTTPS (``[tls]``) or says TLS ends at a proxy in front
(``server.behind_proxy``), not both, not neither; the ``[tls]`` certificate and key load
and are a pair; the operations listener does not take the main listener's address, and
its token (``ops.token_env``) is set and long enough; each single sign-on provider's client
secret is in its environment variable or file; the data folder can be made, or is a
folder of mode 0700.

:meth:`exchange.node.runtime.Node.start` runs the same checks before it opens or binds
anything, and starts from what they read (:class:`CheckReport` keeps the decrypted keys,
so the slow key derivation runs once per key file).
"""

from __future__ import annotations

import os
import ssl
import stat
from dataclasses import dataclass, field

from exchange.auth.sso_rules import ClientSecret
from exchange.config import ConfigError, NodeConfig
from exchange.config_sso import SsoConfigError, read_client_secret
from exchange.keys.directory import Directory
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import OrgKeyPair
from exchange.node.trusted_directory import load_directory_note
from exchange.service.tenants import Tenant, read_key_pair, read_passphrase

#: The shortest operations token accepted (``ops.token_env``).
MIN_OPS_TOKEN_LEN = 32

#: Hosts that listen on every address: a port there is taken on every host too.
_ANY_HOST = frozenset({"0.0.0.0", "::", "*", ""})  # noqa: S104 - compared, never bound


class ConfigRefusedError(ConfigError):
    """The configuration cannot serve: the node refuses to start, one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")


@dataclass
class CheckReport:
    """The problems found, what was checked (for the summary line), and what was read.

    A node starts from ``directory``, ``tenants``, ``ledger_pair`` and ``ops_token`` when
    there is no problem; none of them is ever shown (``repr`` leaves them out).
    """

    problems: list[str] = field(default_factory=list)
    #: What is worth saying but does not stop the node (shown before the summary).
    notes: list[str] = field(default_factory=list)
    directory: Directory | None = None
    #: The directory file's bytes, as verified (the node records their digest).
    directory_note: bytes = b""
    key_files: int = 0
    #: Whether ``public_url`` was compared with the directory (not for a listen port 0).
    public_url_checked: bool = False
    tenants: dict[OrgId, Tenant] = field(default_factory=dict, repr=False)
    ledger_pair: OrgKeyPair | None = field(default=None, repr=False)
    ops_token: str | None = field(default=None, repr=False)
    #: Each single sign-on provider's client secret, by provider id.
    sso_secrets: dict[str, ClientSecret] = field(default_factory=dict, repr=False)

    def summary(self, config: NodeConfig) -> str:
        """Return the line printed when every check passes."""
        version = "?" if self.directory is None else str(self.directory.version)
        tls = "TLS" if config.tls is not None else "plain HTTP behind a TLS proxy"
        checked = "" if self.public_url_checked else " (not compared: listen port 0)"
        ops = f"operations on {config.ops.host}:{config.ops.port}"
        if config.ops.token_env is not None:
            ops += " and, with the token, on the main listener"
        return (
            f"configuration is ready: {len(config.tenants)} organisations, "
            f"{self.key_files} key files, directory version {version}, {tls}, "
            f"public_url {config.public_url}{checked}, {ops}"
        )


def check_directory(config: NodeConfig, report: CheckReport) -> None:
    """Check the directory file reads and verifies against the trust key."""
    if not config.directory_file.exists() and not config.directory_file.is_symlink():
        # The usual state of a node just made by `exchange init`: one line says what to do.
        report.problems.append(
            f"directory.file {config.directory_file} does not exist yet: the directory "
            "authority signs the directory from the organisations' public entries; put the "
            "signed directory it sends there"
        )
        return
    try:
        report.directory, report.directory_note = load_directory_note(config)
    except ConfigError as exc:
        report.problems.append(str(exc))


def check_tenant_keys(config: NodeConfig, report: CheckReport) -> None:
    """Check each tenant's key files decrypt and are keys the directory lists for it."""
    directory = report.directory
    for i, tenant in enumerate(config.tenants):
        where = f"tenants[{i}] ({tenant.org})"
        try:
            passphrase = read_passphrase(tenant.passphrase_env, where)
        except ConfigError as exc:
            report.problems.append(str(exc))
            continue
        entry = None
        if directory is not None:
            entry = directory.organisations.get(tenant.org)
            if entry is None and config.directory_url is not None:
                # A new organisation: the authority lists it in a version still to come.
                report.notes.append(
                    f"{where}: directory version {directory.version} does not list "
                    f"{tenant.org} yet; the node picks up the version that does from "
                    "directory.url"
                )
            elif entry is None:
                report.problems.append(f"{where}: the directory does not list {tenant.org}")
        pairs = []
        for path in tenant.key_files:
            try:
                pair = read_key_pair(path, passphrase, where)
            except ConfigError as exc:
                report.problems.append(str(exc))
                continue
            report.key_files += 1
            pairs.append(pair)
            if pair.org_id != tenant.org:
                report.problems.append(
                    f"{where}: key file {path} belongs to {pair.org_id}, not {tenant.org}"
                )
            elif entry is not None and pair.signing.public.key_id not in {
                gen.signing.key_id for gen in entry.keys
            }:
                report.problems.append(
                    f"{where}: key file {path} is not one of the keys the directory lists "
                    f"for {tenant.org}"
                )
        if len(pairs) == len(tenant.key_files):
            report.tenants[tenant.org] = Tenant(tenant.org, tuple(pairs))


def check_ledger_key(config: NodeConfig, report: CheckReport) -> None:
    """Check the ledger key file decrypts with its passphrase."""
    try:
        report.ledger_pair = read_key_pair(
            config.ledger_key, read_passphrase(config.ledger_passphrase_env, "ledger"), "ledger"
        )
    except ConfigError as exc:
        report.problems.append(str(exc))


def check_public_url(config: NodeConfig, report: CheckReport) -> None:
    """Check ``public_url`` is the address of an https route of one of the tenants."""
    directory = report.directory
    if directory is None:
        return
    addresses = set()
    tenants_listed = 0
    for tenant in config.tenants:
        entry = directory.organisations.get(tenant.org)
        if entry is not None:
            tenants_listed += 1
            addresses |= {r.address.rstrip("/") for r in entry.routes if r.kind == "https"}
    if not tenants_listed and config.directory_url is not None:
        return  # none listed yet: said once per organisation, as a note (check_tenant_keys)
    if tenants_listed and not addresses:
        # Reached only through relay mailboxes or MESH, which it collects from: no peer
        # signs a request against its address, so there is nothing to compare.
        report.notes.append(
            "node.public_url is not compared: the directory lists no https route for this "
            "node's organisations (they collect from relay mailboxes or MESH)"
        )
        return
    if config.public_url not in addresses:
        listed = ", ".join(sorted(addresses)) or "none"
        report.problems.append(
            f"node.public_url {config.public_url} is not the address of any https route the "
            f"directory lists for this node's organisations (listed: {listed})"
        )


def check_transport(config: NodeConfig) -> list[str]:
    """Return the problem of serving plain HTTP by accident, or of saying both at once."""
    behind_proxy = config.server.behind_proxy
    if config.tls is None and not behind_proxy:
        problem = (
            "there is no [tls] table and server.behind_proxy is not true: give [tls] cert "
            "and key to serve HTTPS, or set server.behind_proxy = true if TLS ends at a "
            "proxy in front of the node"
        )
        return [problem]
    if config.tls is not None and behind_proxy:
        problem = (
            "[tls] and server.behind_proxy = true contradict each other: a node behind a "
            "TLS proxy serves plain HTTP; remove one of them"
        )
        return [problem]
    return []


def check_ops(config: NodeConfig, report: CheckReport) -> None:
    """Check the operations listener's address, and read its token from the environment."""
    ops = config.ops
    hosts = {ops.host, config.host}
    if ops.port != 0 and ops.port == config.port and (len(hosts) == 1 or hosts & _ANY_HOST):
        report.problems.append(
            f"ops.listen {ops.host}:{ops.port} takes the address of node.listen "
            f"{config.host}:{config.port}: give the operations listener its own port"
        )
    if ops.token_env is None:
        return
    token = os.environ.get(ops.token_env)
    if not token:
        report.problems.append(
            f"ops.token_env: the environment variable {ops.token_env} holding the "
            "operations token is not set"
        )
    elif len(token) < MIN_OPS_TOKEN_LEN:
        report.problems.append(
            f"ops.token_env: the operations token in {ops.token_env} is shorter than "
            f"{MIN_OPS_TOKEN_LEN} characters"
        )
    else:
        report.ops_token = token


def check_tls(config: NodeConfig) -> list[str]:  # noqa: PLR0911 - one return a problem
    """Return the problems of ``[tls]``: the certificate and key exist, load, are a pair."""
    tls = config.tls
    if tls is None:
        return []
    problems = [
        f"tls.{name}: {path} does not exist"
        for name, path in (("cert", tls.cert), ("key", tls.key), ("ca", tls.ca))
        if path is not None and not path.is_file()
    ]
    if problems:
        return problems
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(tls.cert), str(tls.key))
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            return [f"tls.cert {tls.cert} and tls.key {tls.key} are not a pair"]
        return [f"tls.cert {tls.cert} or tls.key {tls.key} cannot be loaded: {exc.reason}"]
    except OSError as exc:
        return [f"tls.cert or tls.key cannot be read: {exc.strerror}"]
    if tls.ca is not None:
        try:
            ssl.create_default_context(cafile=str(tls.ca))
        except (ssl.SSLError, OSError):
            return [f"tls.ca {tls.ca} cannot be loaded as a CA bundle"]
    return []


def check_data_dir(config: NodeConfig) -> list[str]:  # noqa: PLR0911 - one return a problem
    """Return the problems of the data folder: mode 0700, or made in a writable parent."""
    folder = config.data_dir
    if folder.exists():
        if not folder.is_dir():
            return [f"node.data_dir {folder} is not a folder"]
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & 0o077:
            return [f"node.data_dir {folder} has mode {mode:04o}; it must be 0700"]
        if not os.access(folder, os.W_OK | os.X_OK):
            return [f"node.data_dir {folder} is not writable"]
        return []
    parent = folder.parent
    if not parent.is_dir():
        return [f"node.data_dir: the folder {parent} does not exist"]
    if not os.access(parent, os.W_OK | os.X_OK):
        return [f"node.data_dir: the folder {parent} is not writable"]
    return []


def check_directory_ca(config: NodeConfig) -> list[str]:
    """Return the problem of a ``[directory] ca`` that cannot be read as certificates."""
    path = config.directory_ca
    if path is None:
        return []
    try:
        ssl.create_default_context(cafile=str(path))
    except FileNotFoundError:
        return [f"directory.ca {path} does not exist"]
    except ssl.SSLError:  # before OSError, which it is
        return [f"directory.ca {path} holds no PEM certificate"]
    except OSError as exc:
        return [f"directory.ca {path} cannot be read: {exc.strerror}"]
    return []


def check_sso(config: NodeConfig, report: CheckReport) -> None:
    """Read each single sign-on provider's client secret (its variable or file must hold it)."""
    for provider in config.sso:
        try:
            report.sso_secrets[provider.id] = read_client_secret(provider)
        except SsoConfigError as exc:
            report.problems.append(str(exc))


def check_config(config: NodeConfig, *, match_public_url: bool = True) -> CheckReport:
    """Run every check; the report lists each problem found.

    ``public_url`` is compared with the directory unless ``match_public_url`` is false or
    the node listens on port 0: such a node (the loopback harness's, the tests') learns its
    address only once bound, and is given its URL then.
    """
    report = CheckReport()
    check_directory(config, report)
    check_tenant_keys(config, report)
    check_ledger_key(config, report)
    if match_public_url and config.port != 0:
        report.public_url_checked = True
        check_public_url(config, report)
    report.problems += check_transport(config)
    report.problems += check_tls(config)
    report.problems += check_directory_ca(config)
    check_ops(config, report)
    check_sso(config, report)
    report.problems += check_data_dir(config)
    return report
