"""The directory file a node starts from, verified against the authority key it trusts."""

from __future__ import annotations

from pathlib import Path

from exchange.config import ConfigError, NodeConfig
from exchange.keys.directory import Directory, load_directory
from exchange.keys.errors import KeysError
from exchange.keys.notes import parse_verifier_key

MAX_DIRECTORY_LEN = 32 * 1024 * 1024


def trust_text(config: NodeConfig) -> str:
    """Return the authority verifier key(s): the setting itself or the file it names."""
    trust = config.trust
    if "+" in trust:
        return trust
    try:
        return Path(trust).read_text("utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"directory.trust cannot be read: {exc.strerror}") from None


def load_trusted_directory(config: NodeConfig) -> Directory:
    """Read the directory and verify it against the configured authority key."""
    trust = trust_text(config)
    try:
        verifiers = [parse_verifier_key(line) for line in trust.splitlines() if line.strip()]
        data = config.directory_file.read_bytes()
        if len(data) > MAX_DIRECTORY_LEN:
            raise ConfigError("directory.file is larger than 32 MiB")
        return load_directory(data, verifiers)
    except OSError as exc:
        raise ConfigError(f"directory.file cannot be read: {exc.strerror}") from None
    except KeysError as exc:
        raise ConfigError(f"directory: {exc}") from None
