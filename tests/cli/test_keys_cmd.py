"""``exchange authority create`` and ``exchange keys create``."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from exchange.keys.keyfile import decode_key_file
from exchange.keys.notes import parse_verifier_key
from tests.cli.conftest import (
    AUTHORITY_PASSPHRASE,
    PASSPHRASE,
    assert_refused,
    make_authority,
    make_keys,
    run,
)


def test_authority_create_prints_and_writes_the_verifier_key() -> None:
    """The verifier key is printed and written to FILE.vkey; the key file is 0600."""
    vkey = make_authority("directory.example-la.gov.uk")
    verifier = parse_verifier_key(vkey)
    assert verifier.name == "directory.example-la.gov.uk"
    assert Path("authority.key.vkey").read_text() == vkey + "\n"
    assert stat.S_IMODE(Path("authority.key").stat().st_mode) == 0o600
    pair = decode_key_file(Path("authority.key").read_bytes(), AUTHORITY_PASSPHRASE.encode())
    assert pair.org_id == "authority:directory.example-la.gov.uk"
    assert pair.signing.public == verifier.public


def test_authority_create_refuses_a_bad_name() -> None:
    """A name that cannot be a signed-note key name and org-id code is a usage error."""
    assert_refused(run("authority", "create", "--name", "a b", "--out", "a.key"), 2, "name")
    assert not Path("a.key").exists()


def test_authority_create_never_overwrites() -> None:
    """An existing key file or .vkey file is left alone and the command refuses."""
    Path("authority.key.vkey").write_text("precious\n")
    result = run("authority", "create", "--name", "x", "--out", "authority.key")
    assert_refused(result, 1, "authority.key.vkey already exists")
    assert Path("authority.key.vkey").read_text() == "precious\n"
    assert not Path("authority.key").exists()


def test_keys_create_writes_key_file_and_public_entry() -> None:
    """The key file opens with the passphrase and the entry lists its public keys."""
    entry = make_keys("ods:X26ABC", "nhs.key", "nhs", "--valid-days", "10")
    pair = decode_key_file(Path("nhs.key").read_bytes(), PASSPHRASE.encode())
    assert stat.S_IMODE(Path("nhs.key").stat().st_mode) == 0o600
    assert entry["id"] == "ods:X26ABC"
    assert entry["kind"] == "nhs"
    assert entry["name"] == "Test ods:X26ABC"
    keys = entry["keys"]
    assert isinstance(keys, list)
    assert len(keys) == 1
    assert keys[0]["signing_key_id"] == pair.signing.public.key_id.hex()
    assert keys[0]["encryption_key_id"] == pair.encryption.public.key_id.hex()
    assert keys[0]["not_before"] == "2026-01-01T00:00:00Z"
    assert keys[0]["not_after"] == "2026-01-11T00:00:00Z"
    assert keys[0]["revoked_at"] is None


def test_keys_create_valid_from() -> None:
    """--valid-from sets the start of the validity window (UTC when no zone is given)."""
    entry = make_keys("la:356", "la.key", "la", "--valid-from", "2026-09-01")
    keys = entry["keys"]
    assert isinstance(keys, list)
    assert keys[0]["not_before"] == "2026-09-01T00:00:00Z"
    assert keys[0]["not_after"] == "2028-08-31T00:00:00Z"


def test_keys_create_never_overwrites() -> None:
    """A second create to the same file refuses with a clear message and changes nothing."""
    make_keys("la:356", "la.key", "la")
    before = Path("la.key").read_bytes()
    result = run("keys", "create", "--org", "la:356", "--name", "LA", "--kind", "la",
                 "--out", "la.key")  # fmt: skip
    assert_refused(result, 1, "la.key already exists; refusing to overwrite it")
    assert Path("la.key").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--org", "LA356"], "organisation id"),
        (["--org", "la:356", "--kind", "hospital"], "invalid choice"),
        (["--org", "la:356", "--valid-days", "0"], "validity"),
        (["--org", "la:356", "--valid-from", "next tuesday"], "ISO 8601"),
        (["--org", "la:356", "--name", "bad\nname"], "control characters"),
    ],
)
def test_keys_create_usage_errors(args: list[str], fragment: str) -> None:
    """Malformed options are usage errors (status 2) on one line, and write nothing."""
    base = {"--org": "la:356", "--name": "LA", "--kind": "la", "--out": "k.key"}
    options = dict(base)
    it = iter(args)
    for name in it:
        options[name] = next(it)
    argv = [part for pair in options.items() for part in pair]
    assert_refused(run("keys", "create", *argv), 2, fragment)
    assert not list(Path().iterdir())


def test_keys_create_without_passphrase_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No EXCHANGE_PASSPHRASE and no terminal: refuse, naming the variable."""
    monkeypatch.delenv("EXCHANGE_PASSPHRASE")
    result = run("keys", "create", "--org", "la:356", "--name", "LA", "--kind", "la",
                 "--out", "la.key")  # fmt: skip
    assert_refused(result, 2, "EXCHANGE_PASSPHRASE")
    assert not Path("la.key").exists()


def test_empty_passphrase_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty passphrase variable is refused rather than used."""
    monkeypatch.setenv("EXCHANGE_AUTHORITY_PASSPHRASE", "")
    result = run("authority", "create", "--name", "x", "--out", "a.key")
    assert_refused(result, 2, "empty")


def test_public_entry_is_plain_json() -> None:
    """The public entry holds no secret: only the fields of a directory entry."""
    make_keys("urn:106123", "school.key")
    entry = json.loads(Path("school.key.pub.json").read_text())
    assert set(entry) == {"id", "name", "kind", "keys", "routes"}
