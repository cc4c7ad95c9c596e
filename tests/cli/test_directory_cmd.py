"""``exchange directory sign`` and ``exchange directory show``, and rollback protection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exchange.keys.directory import load_directory
from exchange.keys.notes import parse_verifier_key
from tests.cli.conftest import World, assert_refused, key_ids, make_authority, make_keys, run, sign


def test_sign_builds_a_directory_the_authority_key_verifies(world: World) -> None:
    """The signed directory lists every entry and verifies against the printed vkey."""
    directory = load_directory(
        Path("directory.note").read_bytes(), [parse_verifier_key(world.vkey)]
    )
    assert directory.version == 1
    assert directory.authority == "test-authority"
    assert sorted(directory.organisations) == ["la:356", "ods:X26ABC", "urn:106123"]


def test_show_prints_a_summary(world: World) -> None:
    """Show names the version, each organisation, its kind, key ids and status."""
    result = run("directory", "show")
    assert result.status == 0, result
    text = result.text
    assert "directory version 1" in text
    assert "signature verified" in text
    assert "urn:106123  Test urn:106123  (school)" in text
    assert "la:356  Test la:356  (la)" in text
    signing, encryption = key_ids(world.la)
    assert signing in text
    assert encryption in text
    assert "valid, current" in text


def test_show_with_options_instead_of_environment(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--directory and --trust (a key string) work without the environment variables."""
    monkeypatch.delenv("EXCHANGE_DIRECTORY")
    monkeypatch.delenv("EXCHANGE_TRUST")
    result = run("directory", "show", "--directory", "directory.note", "--trust", world.vkey)
    assert result.status == 0, result


@pytest.mark.usefixtures("world")
def test_show_without_directory_or_trust_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Missing settings are named in one line with status 2."""
    monkeypatch.delenv("EXCHANGE_DIRECTORY")
    assert_refused(run("directory", "show"), 2, "EXCHANGE_DIRECTORY")
    monkeypatch.setenv("EXCHANGE_DIRECTORY", "directory.note")
    monkeypatch.delenv("EXCHANGE_TRUST")
    assert_refused(run("directory", "show"), 2, "EXCHANGE_TRUST")


@pytest.mark.usefixtures("world")
def test_bad_trust_value_is_a_usage_error() -> None:
    """A --trust that is neither a file nor a verifier key is refused."""
    result = run("directory", "show", "--trust", "no-such-file-or-key")
    assert_refused(result, 2, "--trust")


@pytest.mark.usefixtures("world")
def test_directory_signed_by_another_authority_is_refused() -> None:
    """A directory signed by an untrusted key is refused."""
    make_authority("impostor", "impostor.key")
    make_keys("urn:999999", "evil.key")
    result = run("directory", "sign", "--authority", "impostor.key", "--version", "5",
                 "--out", "evil.note", "evil.key.pub.json")  # fmt: skip
    assert result.status == 0, result
    assert_refused(
        run("directory", "show", "--directory", "evil.note"), 1, "not signed by a trusted"
    )


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "not signed"),
        (b"\x89garbage\x00\x01", "UTF-8"),
        (b"just some text\n", "not signed"),
    ],
)
@pytest.mark.usefixtures("world")
def test_garbage_directory_is_refused(content: bytes, fragment: str) -> None:
    """An empty, binary or unsigned directory file is refused with one line."""
    Path("bad.note").write_bytes(content)
    assert_refused(run("directory", "show", "--directory", "bad.note"), 1, "bad.note", fragment)


@pytest.mark.usefixtures("world")
def test_altered_directory_is_refused() -> None:
    """Changing one character of the signed text breaks the signature."""
    note = Path("directory.note").read_text()
    Path("altered.note").write_text(note.replace("Test la:356", "Test la:357", 1))
    assert_refused(run("directory", "show", "--directory", "altered.note"), 1, "does not verify")


@pytest.mark.usefixtures("world")
def test_missing_directory_file() -> None:
    """A directory path that does not exist is named."""
    assert_refused(
        run("directory", "show", "--directory", "nope.note"), 1, "nope.note", "no such file"
    )


@pytest.mark.usefixtures("world")
def test_oversized_directory_is_refused_without_reading_it_all() -> None:
    """A directory over 32 MiB is refused by size."""
    with Path("huge.note").open("wb") as handle:
        handle.truncate(32 * 1024 * 1024 + 1)
    assert_refused(run("directory", "show", "--directory", "huge.note"), 1, "limit")


@pytest.mark.usefixtures("world")
def test_rollback_to_an_older_version_is_refused() -> None:
    """After version 2 is accepted, version 1 is refused."""
    make_keys("urn:200000", "second.key")
    signed = sign(2, "directory-v2.note", "second.key.pub.json",
                  extra=("--previous", "directory.note"))  # fmt: skip
    assert signed.status == 0, signed
    assert run("directory", "show", "--directory", "directory-v2.note").status == 0
    assert_refused(run("directory", "show"), 1, "rollback")


@pytest.mark.usefixtures("world")
def test_a_different_directory_under_an_accepted_version_is_refused() -> None:
    """Two different documents with one version number mean the authority forked: refuse."""
    assert run("directory", "show").status == 0
    assert sign(1, "fork.note", "school.key.pub.json").status == 0
    assert_refused(run("directory", "show", "--directory", "fork.note"), 1, "different directory")


@pytest.mark.usefixtures("world")
def test_damaged_state_file_is_reported(tmp_path: Path) -> None:
    """A corrupt rollback state file stops the command and says what to do."""
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    (state / "directory-versions.json").write_text("{not json")
    assert_refused(run("directory", "show"), 1, "state file", "damaged")


@pytest.mark.usefixtures("world")
def test_sign_requires_a_greater_version() -> None:
    """Signing over --previous with a version that is not greater is refused."""
    result = sign(1, "again.note", extra=("--previous", "directory.note"))
    assert_refused(result, 1, "greater than the previous version 1")
    assert not Path("again.note").exists()


@pytest.mark.usefixtures("world")
def test_sign_with_nothing_is_a_usage_error() -> None:
    """No entries and no previous directory: nothing to sign."""
    assert_refused(sign(1, "empty.note"), 2, "nothing to sign")


@pytest.mark.usefixtures("world")
def test_sign_with_wrong_authority_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong passphrase names the key file and writes nothing."""
    monkeypatch.setenv("EXCHANGE_AUTHORITY_PASSPHRASE", "wrong passphrase")
    result = sign(2, "v2.note", "school.key.pub.json", extra=("--previous", "directory.note"))
    line = assert_refused(result, 1, "key file authority.key", "passphrase")
    assert "wrong passphrase" not in line
    assert not Path("v2.note").exists()


@pytest.mark.usefixtures("world")
def test_sign_with_an_organisation_key_is_refused() -> None:
    """Only an authority key can sign the directory."""
    result = run("directory", "sign", "--authority", "school.key", "--version", "1",
                 "--out", "x.note", "school.key.pub.json")  # fmt: skip
    assert_refused(result, 1, "not of a directory authority")


@pytest.mark.usefixtures("world")
def test_sign_refuses_a_malformed_entry() -> None:
    """A public entry that is not JSON, or not an entry, is named."""
    Path("broken.json").write_text("{")
    assert_refused(sign(2, "v2.note", "broken.json"), 1, "public entry broken.json", "JSON")
    Path("wrong.json").write_text(json.dumps({"id": "la:1"}))
    assert_refused(sign(2, "v2.note", "wrong.json"), 1, "public entry wrong.json", "missing")


@pytest.mark.usefixtures("world")
def test_sign_refuses_an_existing_output() -> None:
    """The output directory file is never overwritten."""
    assert_refused(sign(1, "directory.note", "school.key.pub.json"), 1, "already exists")


def test_revoke_marks_the_generation_revoked(world: World) -> None:
    """--revoke KEY_ID revokes that key generation in the next version."""
    signing, _ = key_ids(world.school)
    result = sign(2, "v2.note", extra=("--previous", "directory.note", "--revoke", signing))
    assert result.status == 0, result
    shown = run("directory", "show", "--directory", "v2.note")
    assert shown.status == 0, shown
    assert "REVOKED at 2026-01-01T00:00:00Z" in shown.text
    assert "no key is valid now" in shown.text


@pytest.mark.usefixtures("world")
def test_revoke_of_an_unknown_key_is_refused() -> None:
    """Revoking a key id that no organisation holds is refused."""
    result = sign(2, "v2.note", extra=("--previous", "directory.note", "--revoke", "ab" * 32))
    assert_refused(result, 1, "no key generation")


@pytest.mark.usefixtures("world")
def test_revoke_with_a_malformed_key_id_is_a_usage_error() -> None:
    """A key id must be 64 hex digits."""
    result = sign(2, "v2.note", extra=("--previous", "directory.note", "--revoke", "abc"))
    assert_refused(result, 2, "hexadecimal")
