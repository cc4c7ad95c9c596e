"""A node folder made by ``exchange init``, and the directory the authority signs for it.

The tests of ``exchange init`` and the tests of commands that need a deployment which
really passes ``exchange config check`` (``exchange users add``) share these. Everything
runs in this process through ``exchange``'s ``main``, with the test key-file profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import AUTHORITY_PASSPHRASE, PASSPHRASE, Result, run

LEDGER_PASSPHRASE = "ledger passphrase for tests"  # noqa: S105 - a test fixture
ADMIN_PASSWORD = "an initial password for tests"  # noqa: S105 - a test fixture
ADMIN_EMAIL = "head@oak.example"
OAK = ("urn:106123", "Oak Primary School", "school")
LA = ("la:356", "Example Borough Council", "la")


def set_passphrases(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the passphrases init and the node read in the environment."""
    monkeypatch.setenv("EXCHANGE_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("EXCHANGE_AUTHORITY_PASSPHRASE", AUTHORITY_PASSPHRASE)
    monkeypatch.setenv("EXCHANGE_LEDGER_PASSPHRASE", LEDGER_PASSPHRASE)


def make_authority(folder: Path) -> Path:
    """Create the directory authority's key in ``folder``; return its verifier key file."""
    key = folder / "authority.key"
    made = run("authority", "create", "--name", "test-authority", "--out", str(key),
               "--kdf-profile", "test")  # fmt: skip
    assert made.status == 0, made
    return folder / "authority.key.vkey"


def init_argv(
    folder: Path,
    trust: Path,
    *extra: str,
    orgs: Sequence[tuple[str, str, str]] = (OAK,),
    tls: Sequence[str] = ("--tls", "test-ca"),
    public_url: str = "https://localhost:8443",
) -> list[str]:
    """Return the arguments of ``exchange init`` for ``folder`` (password on stdin)."""
    tenants = [
        arg for org, name, kind in orgs for arg in ("--org", org, "--name", name, "--kind", kind)
    ]
    return [
        "init", str(folder), "--public-url", public_url, *tenants, "--trust", str(trust),
        *tls, "--admin-email", ADMIN_EMAIL, "--admin-name", "Oak Administrator",
        "--admin-password-stdin", "--kdf-profile", "test", *extra,
    ]  # fmt: skip


def init(folder: Path, trust: Path, *extra: str, **options: object) -> Result:
    """Run ``exchange init`` with the administrator's password on standard input."""
    argv = init_argv(folder, trust, *extra, **options)  # type: ignore[arg-type]
    return run(*argv, stdin=f"{ADMIN_PASSWORD}\n".encode())


def sign_directory(authority_folder: Path, *entries: Path, version: int = 1) -> Path:
    """Sign a directory of ``entries`` with the authority in ``authority_folder``."""
    out = authority_folder / f"directory-v{version}.note"
    signed = run("directory", "sign", "--authority", str(authority_folder / "authority.key"),
                 "--version", str(version), "--out", str(out), *map(str, entries))  # fmt: skip
    assert signed.status == 0, signed
    return out


def place_directory(node: Path, note: Path) -> None:
    """Give the node the signed directory, where its configuration expects it."""
    (node / "directory" / "directory.note").write_bytes(note.read_bytes())


@dataclass(frozen=True)
class NodeFolder:
    """A node folder that passes ``exchange config check``."""

    folder: Path
    authority: Path

    @property
    def config(self) -> Path:
        """The node's configuration file."""
        return self.folder / "node.toml"


def ready_node_folder(
    parent: Path, monkeypatch: pytest.MonkeyPatch, *extra: str, **options: object
) -> NodeFolder:
    """Make a node folder with ``exchange init`` and put a directory signed for it in place."""
    set_passphrases(monkeypatch)
    authority = parent / "authority"
    authority.mkdir()
    trust = make_authority(authority)
    folder = parent / "node"
    made = init(folder, trust, *extra, **options)
    assert made.status == 0, made
    entries = sorted(folder.glob("*.pub.json"))
    place_directory(folder, sign_directory(authority, *entries))
    return NodeFolder(folder, authority)
