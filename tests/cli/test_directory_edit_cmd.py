"""The authority's one-change commands and ``exchange directory publish``."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.keys.directory import Directory, load_directory
from exchange.keys.notes import parse_verifier_key
from tests.cli.conftest import T0, Result, World, assert_refused, key_ids, make_keys, run

AUTHORITY = ("--authority", "authority.key")


def read(world: World, path: str) -> Directory:
    """Verify and parse a directory file against the world's authority key."""
    return load_directory(Path(path).read_bytes(), [parse_verifier_key(world.vkey)])


def edit(action: str, *args: str, previous: str = "directory.note", out: str = "v2.note") -> Result:
    """Run one of the one-change commands from ``previous`` to ``out``."""
    return run("directory", action, *AUTHORITY, "--from", previous, "--out", out, *args)


def test_add_org_signs_the_next_version_with_the_new_organisation(world: World) -> None:
    """Version 1 plus a new school: version 2, issued now, every other entry unchanged."""
    make_keys("urn:200001", "new.key", "school")
    result = edit("add-org", "--entry", "new.key.pub.json")
    assert result.status == 0, result
    assert "signed directory version 2" in result.text
    before, after = read(world, "directory.note"), read(world, "v2.note")
    assert after.version == 2
    assert after.issued == T0
    assert sorted(after.organisations) == sorted([*before.organisations, "urn:200001"])
    assert after.organisations["la:356"] == before.organisations["la:356"]


def test_set_routes_replaces_an_organisations_routes_in_order(world: World) -> None:
    """The routes given, in the order given; nothing else changes."""
    result = edit(
        "set-routes", "--org", "urn:106123",
        "--route", "https=https://exchange.hillside.example",
        "--route", "mailbox=https://relay.example",
    )  # fmt: skip
    assert result.status == 0, result
    routes = read(world, "v2.note").organisations["urn:106123"].routes
    assert [(r.kind, r.address) for r in routes] == [
        ("https", "https://exchange.hillside.example"),
        ("mailbox", "https://relay.example"),
    ]
    # And again from version 2: version 3 with the last routes only.
    result = edit(
        "set-routes", "--org", "urn:106123", "--route", "smtp=dsl@hillside.example",
        previous="v2.note", out="v3.note",
    )  # fmt: skip
    assert result.status == 0, result
    third = read(world, "v3.note")
    assert third.version == 3
    assert [r.kind for r in third.organisations["urn:106123"].routes] == ["smtp"]


def test_add_key_keeps_the_old_generation_beside_the_new(world: World) -> None:
    """A rotation: both generations listed; the old one still valid until it expires."""
    make_keys("urn:106123", "school-2.key", "school", "--valid-from", "2026-02-01")
    result = edit("add-key", "--entry", "school-2.key.pub.json")
    assert result.status == 0, result
    keys = read(world, "v2.note").organisations["urn:106123"].keys
    assert len(keys) == 2
    assert keys[0].valid_at(T0)
    assert keys[0] == read(world, "directory.note").organisations["urn:106123"].keys[0]


def test_revoke_key_revokes_the_generation_from_now(world: World) -> None:
    """The generation holding the key id is revoked at the command's time."""
    signing, _ = key_ids(world.la)
    result = edit("revoke-key", "--key-id", signing)
    assert result.status == 0, result
    (generation,) = read(world, "v2.note").organisations["la:356"].keys
    assert generation.revoked_at == T0
    again = edit("revoke-key", "--key-id", signing, previous="v2.note", out="v3.note")
    assert_refused(again, 1, "already revoked")
    assert not Path("v3.note").exists()


@pytest.mark.parametrize(
    ("action", "args", "fragment", "status"),
    [
        ("add-org", ("--entry", "school.key.pub.json"), "already in the directory", 1),
        ("add-org", ("--entry", "missing.pub.json"), "missing.pub.json", 1),
        ("add-key", ("--entry", "school.key.pub.json"), "no key generation that is not", 1),
        ("set-routes", ("--org", "urn:999999", "--route", "https=https://x.example"),
         "not in the directory", 1),
        ("set-routes", ("--org", "urn:106123", "--route", "ftp=ftp://x.example"),
         "KIND=ADDRESS", 2),
        ("revoke-key", ("--key-id", "ab" * 32), "no organisation in the directory", 1),
        ("revoke-key", ("--key-id", "nothex"), "key id", 2),
    ],
)  # fmt: skip
@pytest.mark.usefixtures("world")
def test_a_refused_change_names_the_problem_and_writes_nothing(
    action: str, args: tuple[str, ...], fragment: str, status: int
) -> None:
    """Bad input: one line, status 1 (2 for the command line), no file written."""
    assert_refused(edit(action, *args), status, fragment)
    assert not Path("v2.note").exists()


@pytest.mark.usefixtures("world")
def test_a_new_org_entry_for_a_known_organisation_goes_through_add_key() -> None:
    """A second key of a known organisation is refused by add-org, with the way to do it."""
    make_keys("la:356", "la-2.key", "la")
    assert_refused(edit("add-org", "--entry", "la-2.key.pub.json"), 1, "add-key")


@pytest.mark.usefixtures("world")
def test_the_previous_directory_must_verify_against_the_authority() -> None:
    """A --from file that is not this authority's signed directory is refused."""
    Path("forged.note").write_text("not a note\n")
    result = edit("add-org", "--entry", "school.key.pub.json", previous="forged.note")
    assert_refused(result, 1, "directory forged.note")
    assert not Path("v2.note").exists()


@pytest.mark.usefixtures("world")
def test_an_existing_output_is_never_overwritten() -> None:
    """--out names an existing file: refused before anything is asked or signed."""
    Path("v2.note").write_text("keep me\n")
    make_keys("urn:200001", "new.key", "school")
    assert_refused(edit("add-org", "--entry", "new.key.pub.json"), 1, "already exists")
    assert Path("v2.note").read_text() == "keep me\n"


@pytest.mark.usefixtures("world")
def test_publish_writes_the_note_and_refuses_a_rollback_or_a_fork() -> None:
    """Publish v2 over v1; v1 again is a rollback and a different v2 a fork; both refused."""
    served = Path("served")
    served.mkdir()
    make_keys("urn:200001", "new.key", "school")
    make_keys("urn:200002", "other.key", "school")
    assert edit("add-org", "--entry", "new.key.pub.json").status == 0
    assert edit("add-org", "--entry", "other.key.pub.json", out="fork.note").status == 0

    result = run("directory", "publish", "--in", "directory.note", "--to", "served")
    assert result.status == 0, result
    result = run("directory", "publish", "--in", "v2.note", "--to", "served")
    assert result.status == 0, result
    assert "published directory version 2" in result.text
    published = served / "directory.note"
    assert published.read_bytes() == Path("v2.note").read_bytes()
    assert published.stat().st_mode & 0o777 == 0o644

    again = run("directory", "publish", "--in", "v2.note", "--to", "served")
    assert again.status == 0, again
    assert "already published" in again.text
    older = run("directory", "publish", "--in", "directory.note", "--to", "served")
    assert_refused(older, 1, "a rollback is refused")
    forked = run("directory", "publish", "--in", "fork.note", "--to", "served")
    assert_refused(forked, 1, "fork")
    assert published.read_bytes() == Path("v2.note").read_bytes()
    assert sorted(p.name for p in served.iterdir()) == ["directory.note"]


@pytest.mark.usefixtures("world")
def test_publish_refuses_an_unsigned_note_and_a_missing_folder() -> None:
    """Bad input to publish: one line each, nothing written."""
    Path("served").mkdir()
    Path("bad.note").write_text("not a note\n")
    assert_refused(run("directory", "publish", "--in", "bad.note", "--to", "served"), 1, "bad")
    assert_refused(
        run("directory", "publish", "--in", "directory.note", "--to", "nowhere"), 1, "nowhere"
    )
    assert list(Path("served").iterdir()) == []
