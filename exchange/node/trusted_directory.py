"""The directory file a node starts from, verified against the authority key it trusts."""

from __future__ import annotations

from pathlib import Path

from exchange.config import ConfigError, NodeConfig
from exchange.files import InputTooLargeError, read_limited
from exchange.keys.directory import Directory, load_directory
from exchange.keys.errors import KeysError
from exchange.keys.notes import NoteVerifier, parse_verifier_key

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


def trusted_verifiers(config: NodeConfig) -> list[NoteVerifier]:
    """Return the authority verifier key(s) the configuration trusts, one per line."""
    lines = trust_text(config).splitlines()
    try:
        return [parse_verifier_key(line) for line in lines if line.strip()]
    except KeysError as exc:
        raise ConfigError(f"directory.trust: {exc}") from None


def load_directory_note(config: NodeConfig) -> tuple[Directory, bytes]:
    """Read ``[directory] file``, verify it against the trusted key; return it and its bytes."""
    verifiers = trusted_verifiers(config)
    try:
        data = read_limited(config.directory_file, MAX_DIRECTORY_LEN, what="directory.file")
        return load_directory(data, verifiers), data
    except InputTooLargeError:
        raise ConfigError("directory.file is larger than 32 MiB") from None
    except OSError as exc:
        raise ConfigError(f"directory.file cannot be read: {exc.strerror}") from None
    except KeysError as exc:
        raise ConfigError(f"directory: {exc}") from None


def load_trusted_directory(config: NodeConfig) -> Directory:
    """Read the directory and verify it against the configured authority key."""
    return load_directory_note(config)[0]
