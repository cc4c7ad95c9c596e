"""``exchange config check``: whether a configuration can serve, without starting a node.

Each check returns the problems it finds as sentences naming the setting; none needs the
network. :func:`check_config` runs them all: the directory verifies against the trust key;
every tenant's key files exist, decrypt with the passphrase from the environment and are
keys the directory lists for that organisation; the ledger key likewise decrypts;
``public_url`` is the address of a route the directory lists for one of the node's
tenants; the ``[tls]`` certificate and key load and are a pair; the data folder can be
made, or is a folder of mode 0700.
"""

from __future__ import annotations

import os
import ssl
import stat
from dataclasses import dataclass, field

from exchange.config import ConfigError, NodeConfig
from exchange.keys.directory import Directory
from exchange.node.runtime import load_trusted_directory
from exchange.service.tenants import read_key_pair, read_passphrase


@dataclass
class CheckReport:
    """The problems found, and what was checked (for the summary line)."""

    problems: list[str] = field(default_factory=list)
    directory: Directory | None = None
    key_files: int = 0

    def summary(self, config: NodeConfig) -> str:
        """Return the line printed when every check passes."""
        version = "?" if self.directory is None else str(self.directory.version)
        tls = "TLS" if config.tls is not None else "plain HTTP (no [tls])"
        return (
            f"configuration is ready: {len(config.tenants)} organisations, "
            f"{self.key_files} key files, directory version {version}, {tls}, "
            f"public_url {config.public_url}"
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
        report.directory = load_trusted_directory(config)
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
            if entry is None:
                report.problems.append(f"{where}: the directory does not list {tenant.org}")
        for path in tenant.key_files:
            try:
                pair = read_key_pair(path, passphrase, where)
            except ConfigError as exc:
                report.problems.append(str(exc))
                continue
            report.key_files += 1
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


def check_ledger_key(config: NodeConfig, report: CheckReport) -> None:
    """Check the ledger key file decrypts with its passphrase."""
    try:
        read_key_pair(
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
    for tenant in config.tenants:
        entry = directory.organisations.get(tenant.org)
        if entry is not None:
            addresses |= {r.address.rstrip("/") for r in entry.routes if r.kind == "https"}
    if config.public_url not in addresses:
        listed = ", ".join(sorted(addresses)) or "none"
        report.problems.append(
            f"node.public_url {config.public_url} is not the address of any https route the "
            f"directory lists for this node's organisations (listed: {listed})"
        )


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


def check_config(config: NodeConfig) -> CheckReport:
    """Run every check; the report lists each problem found."""
    report = CheckReport()
    check_directory(config, report)
    check_tenant_keys(config, report)
    check_ledger_key(config, report)
    check_public_url(config, report)
    report.problems += check_tls(config)
    report.problems += check_data_dir(config)
    return report
