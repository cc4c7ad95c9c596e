"""The organisations a node serves and the keys it holds for them.

Keys are read from their encrypted files once at start-up; the passphrase of each tenant
comes from the environment variable the configuration names. A tenant may hold several key
generations: the newest valid one signs and is sealed to; all of them open.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from exchange.config import ConfigError, TenantConfig
from exchange.keys.directory import Directory
from exchange.keys.errors import KeyLookupError, KeysError
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import decode_key_file
from exchange.keys.keypairs import OrgKeyPair

MAX_KEY_FILE_LEN = 64 * 1024


@dataclass(frozen=True)
class Tenant:
    """One organisation served by the node."""

    org: OrgId
    keys: tuple[OrgKeyPair, ...]

    def signing_pair(self, directory: Directory, at: int) -> OrgKeyPair:
        """Return the key pair of the directory's current generation for this tenant."""
        current = directory.current_keys(self.org, at)
        for pair in self.keys:
            if pair.signing.public.key_id == current.signing.key_id:
                return pair
        raise KeyLookupError(
            f"the node holds no key of {self.org}'s current generation in the directory",
            "unknown-key",
        )

    def __repr__(self) -> str:
        return f"Tenant(org={self.org}, generations={len(self.keys)})"


def read_passphrase(env: str, where: str) -> bytes:
    """Return the passphrase held in environment variable ``env``."""
    value = os.environ.get(env)
    if not value:
        raise ConfigError(
            f"{where}: the environment variable {env} holding the passphrase is not set"
        )
    return value.encode("utf-8")


def read_key_pair(path: os.PathLike[str], passphrase: bytes, where: str) -> OrgKeyPair:
    """Read and decrypt one key file, naming ``where`` in any error."""
    try:
        with open(path, "rb") as handle:  # noqa: PTH123 - bounded read of a small file
            data = handle.read(MAX_KEY_FILE_LEN + 1)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read key file {path}: {exc.strerror}") from None
    if len(data) > MAX_KEY_FILE_LEN:
        raise ConfigError(f"{where}: key file {path} is larger than {MAX_KEY_FILE_LEN} bytes")
    try:
        return decode_key_file(data, passphrase)
    except KeysError as exc:
        raise ConfigError(f"{where}: key file {path}: {exc}") from None


def load_tenants(configs: tuple[TenantConfig, ...]) -> Mapping[OrgId, Tenant]:
    """Decrypt every tenant's key files; every key must belong to its tenant."""
    tenants = {}
    for i, cfg in enumerate(configs):
        where = f"tenants[{i}]"
        passphrase = read_passphrase(cfg.passphrase_env, where)
        pairs = tuple(read_key_pair(p, passphrase, where) for p in cfg.key_files)
        for path, pair in zip(cfg.key_files, pairs, strict=True):
            if pair.org_id != cfg.org:
                raise ConfigError(
                    f"{where}: key file {path} belongs to {pair.org_id}, not {cfg.org}"
                )
        tenants[cfg.org] = Tenant(cfg.org, pairs)
    return tenants
