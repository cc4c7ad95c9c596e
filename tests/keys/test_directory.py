"""Tests for exchange.keys.directory: the signed directory of organisations, lookups and merging."""

from __future__ import annotations

import contextlib
import copy
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.keys.directory import (
    MAX_KEY_GENERATIONS,
    MAX_TIME,
    Directory,
    KeyGeneration,
    Organisation,
    Route,
    directory_text,
    format_time,
    load_directory,
    merge_directory,
    org_entry_from_json,
    org_entry_to_json,
    parse_time,
    sign_directory,
)
from exchange.keys.errors import DirectoryError, KeyLookupError
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import EncryptionKey, SigningKey
from exchange.keys.notes import NoteSigner

T0 = 1_700_000_000
YEAR = 365 * 24 * 3600
AUTHORITY = "directory.example/england"
SIGNER = NoteSigner(AUTHORITY, SigningKey(bytes(range(32))))
TRUSTED = [SIGNER.verifier]
SCHOOL = OrgId("urn:106123")
LA = OrgId("la:356")


def _gen(start: int, end: int, revoked_at: int | None = None) -> KeyGeneration:
    return KeyGeneration(
        SigningKey.generate().public,
        EncryptionKey.generate().public,
        not_before=start,
        not_after=end,
        revoked_at=revoked_at,
    )


OLD = _gen(T0, T0 + 2 * YEAR)
NEW = _gen(T0 + YEAR, T0 + 3 * YEAR)
REVOKED = _gen(T0, T0 + 3 * YEAR, revoked_at=T0 + YEAR)
ROUTE = Route("https", "https://node.example.org/inbound", {"tls": "required"})


def _directory(version: int = 2) -> Directory:
    school = Organisation(SCHOOL, "Example Primary School", "school", (OLD, NEW, REVOKED), (ROUTE,))
    la = Organisation(LA, "Example Council", "la", (_gen(T0, T0 + YEAR),))
    return Directory(version, T0, AUTHORITY, {SCHOOL: school, LA: la})


DIRECTORY = _directory()
NOTE = sign_directory(DIRECTORY, SIGNER)


def _doc() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(directory_text(DIRECTORY))
    return loaded


def _sign_doc(doc: Any) -> bytes:
    return SIGNER.sign(json.dumps(doc, sort_keys=True, indent=1) + "\n")


# --- round trip and encoding -----------------------------------------------------------


def test_signed_directory_round_trips() -> None:
    """A signed directory loads back equal to the original."""
    assert load_directory(NOTE, TRUSTED) == DIRECTORY


def test_directory_text_is_sorted_json_without_blank_lines() -> None:
    """The text is JSON with sorted keys, one-space indent, no blank line and a final newline."""
    text = directory_text(DIRECTORY)
    assert text.endswith("}\n")
    assert "\n\n" not in text
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=1) + "\n"


def test_times_are_iso_utc_in_the_document() -> None:
    """Times in the document are ISO 8601 UTC with a Z suffix."""
    doc = _doc()
    assert doc["issued"] == "2023-11-14T22:13:20Z"
    assert doc["organisations"][1]["keys"][2]["revoked_at"] == format_time(T0 + YEAR)


def test_organisations_are_written_in_id_order() -> None:
    """Organisations appear sorted by id, so equal directories give equal text."""
    ids = [org["id"] for org in _doc()["organisations"]]
    assert ids == sorted(ids)


def test_org_entry_round_trips() -> None:
    """A public entry written with org_entry_to_json parses back to the same organisation."""
    org = DIRECTORY.organisation(SCHOOL)
    assert org_entry_from_json(json.loads(json.dumps(org_entry_to_json(org)))) == org


@given(st.integers(min_value=0, max_value=MAX_TIME))
def test_time_format_round_trips(value: int) -> None:
    """Every supported unix time formats and parses back to itself."""
    assert parse_time(format_time(value)) == value


@pytest.mark.parametrize(
    "text",
    ["2023-02-30T00:00:00Z", "2023-01-01T24:00:00Z", "2023-01-01 00:00:00Z", "2023-01-01T00:00:00"],
)
def test_invalid_times_are_refused(text: str) -> None:
    """Impossible dates and other spellings of a time are refused."""
    with pytest.raises(ValueError, match="time"):
        parse_time(text)


def test_signing_with_a_key_not_named_for_the_authority_is_refused() -> None:
    """sign_directory refuses a signer whose key name is not the directory's authority."""
    with pytest.raises(ValueError, match="authority"):
        sign_directory(DIRECTORY, NoteSigner("other.example", SigningKey.generate()))


# --- loading: refusals -----------------------------------------------------------------


def test_unsigned_directory_is_refused() -> None:
    """The bare directory text is refused as not signed."""
    with pytest.raises(DirectoryError, match=r"^the directory is not signed$"):
        load_directory(directory_text(DIRECTORY).encode(), TRUSTED)


def test_badly_signed_directory_is_refused() -> None:
    """A directory whose text was changed after signing fails signature verification."""
    tampered = NOTE.replace(b"Example Council", b"Example Councij")
    with pytest.raises(DirectoryError, match="does not verify against the trusted authority key"):
        load_directory(tampered, TRUSTED)


def test_directory_from_another_authority_is_refused() -> None:
    """A directory signed by an untrusted key is refused."""
    impostor = NoteSigner(AUTHORITY, SigningKey.generate())
    with pytest.raises(DirectoryError, match="not signed by a trusted authority key"):
        load_directory(sign_directory(DIRECTORY, impostor), TRUSTED)


def test_directory_naming_another_authority_is_refused() -> None:
    """A directory whose authority field is not the name of the key that signed it is refused."""
    doc = _doc()
    doc["authority"] = "someone.else"
    with pytest.raises(DirectoryError, match="names the authority"):
        load_directory(_sign_doc(doc), TRUSTED)


def test_older_version_is_refused_as_rollback() -> None:
    """A directory older than the newest accepted version is refused with the rollback sentence."""
    note = sign_directory(_directory(version=3), SIGNER)
    with pytest.raises(
        DirectoryError,
        match=re.escape(
            "the directory is version 3, older than version 5 already accepted; "
            "a rollback is refused"
        ),
    ):
        load_directory(note, TRUSTED, min_version=5)


def test_same_version_as_accepted_loads() -> None:
    """Reloading the version already accepted is not a rollback."""
    assert load_directory(NOTE, TRUSTED, min_version=DIRECTORY.version).version == 2


def test_malformed_note_is_a_directory_error() -> None:
    """A note with a broken signature line is refused as a DirectoryError naming the line."""
    broken = NOTE.rstrip(b"\n")
    with pytest.raises(DirectoryError, match="line"):
        load_directory(broken, TRUSTED)


_GOOD_KEY = org_entry_to_json(DIRECTORY.organisation(LA))["keys"][0]
_SIGNING_KEY_B64 = _GOOD_KEY["signing"]


@pytest.mark.parametrize(
    ("location", "value", "path"),
    [
        (("format",), "exchange-directory/v2", "format"),
        (("authority",), "", "authority"),
        (("version",), 0, "version"),
        (("version",), "2", "version"),
        (("version",), True, "version"),
        (("version",), 2.0, "version"),
        (("issued",), "2023-11-14", "issued"),
        (("issued",), 1_700_000_000, "issued"),
        (("organisations",), {}, "organisations"),
        (("organisations", 1), [], "organisations[1]"),
        (("organisations", 1, "id"), "URN:1", "organisations[1].id"),
        (("organisations", 1, "id"), 5, "organisations[1].id"),
        (("organisations", 1, "name"), "", "organisations[1].name"),
        (("organisations", 1, "name"), "x" * 201, "organisations[1].name"),
        (("organisations", 1, "name"), "bell\u0007", "organisations[1].name"),
        (("organisations", 1, "kind"), "hospital", "organisations[1].kind"),
        (("organisations", 1, "keys"), [], "organisations[1].keys"),
        (("organisations", 1, "keys"), {}, "organisations[1].keys"),
        (("organisations", 1, "keys", 0, "signing"), "AAAA", "organisations[1].keys[0].signing"),
        (
            ("organisations", 1, "keys", 0, "signing"),
            "A" * 43 + "=",
            "organisations[1].keys[0].signing",
        ),
        (
            ("organisations", 1, "keys", 0, "encryption"),
            "A" * 43 + "=",
            "organisations[1].keys[0].encryption",
        ),
        (
            ("organisations", 1, "keys", 0, "encryption"),
            7,
            "organisations[1].keys[0].encryption",
        ),
        (
            ("organisations", 1, "keys", 0, "signing_key_id"),
            "00" * 32,
            "organisations[1].keys[0].signing_key_id",
        ),
        (
            ("organisations", 1, "keys", 0, "encryption_key_id"),
            "00" * 32,
            "organisations[1].keys[0].encryption_key_id",
        ),
        (
            ("organisations", 1, "keys", 0, "not_before"),
            "yesterday",
            "organisations[1].keys[0].not_before",
        ),
        (
            ("organisations", 1, "keys", 0, "not_after"),
            "2000-01-01T00:00:00Z",
            "organisations[1].keys[0].not_after",
        ),
        (
            ("organisations", 1, "keys", 0, "revoked_at"),
            "soon",
            "organisations[1].keys[0].revoked_at",
        ),
        (("organisations", 1, "keys", 0, "extra"), 1, "organisations[1].keys[0].extra"),
        (("organisations", 1, "routes"), None, "organisations[1].routes"),
        (("organisations", 1, "routes", 0, "kind"), "ftp", "organisations[1].routes[0].kind"),
        (("organisations", 1, "routes", 0, "address"), "", "organisations[1].routes[0].address"),
        (
            ("organisations", 1, "routes", 0, "options"),
            [],
            "organisations[1].routes[0].options",
        ),
        (
            ("organisations", 1, "routes", 0, "options", "tls"),
            1,
            "organisations[1].routes[0].options.tls",
        ),
    ],
)
def test_malformed_field_is_named_by_its_path(
    location: tuple[str | int, ...], value: Any, path: str
) -> None:
    """Every malformed field raises DirectoryError naming the field's path."""
    doc = _doc()
    target: Any = doc
    for step in location[:-1]:
        target = target[step]
    target[location[-1]] = value
    with pytest.raises(DirectoryError, match=f"^{re.escape(path)} "):
        load_directory(_sign_doc(doc), TRUSTED)


@pytest.mark.parametrize("name", ["id", "name", "kind", "keys", "routes"])
def test_missing_organisation_field_is_named(name: str) -> None:
    """A missing organisation field is named by its path."""
    doc = _doc()
    del doc["organisations"][0][name]
    with pytest.raises(DirectoryError, match=re.escape(f"organisations[0].{name} is missing")):
        load_directory(_sign_doc(doc), TRUSTED)


def test_duplicate_organisation_ids_are_refused() -> None:
    """Two entries with one organisation id are refused, naming the second."""
    doc = _doc()
    twin = copy.deepcopy(doc["organisations"][0])
    twin["keys"] = [org_entry_to_json(Organisation(LA, "x", "la", (_gen(T0, T0 + 1),)))["keys"][0]]
    doc["organisations"].append(twin)
    with pytest.raises(DirectoryError, match=re.escape("organisations[2].id repeats")):
        load_directory(_sign_doc(doc), TRUSTED)


def test_key_listed_for_two_organisations_is_refused() -> None:
    """One public key listed under two organisations is refused."""
    doc = _doc()
    doc["organisations"][1]["keys"].append(doc["organisations"][0]["keys"][0])
    with pytest.raises(DirectoryError, match="already listed for la:356"):
        load_directory(_sign_doc(doc), TRUSTED)


def test_repeated_key_within_an_organisation_is_refused() -> None:
    """The same key generation listed twice for one organisation is refused."""
    doc = _doc()
    doc["organisations"][0]["keys"].append(doc["organisations"][0]["keys"][0])
    with pytest.raises(DirectoryError, match=re.escape("organisations[0].keys[1].signing")):
        load_directory(_sign_doc(doc), TRUSTED)


def test_too_many_key_generations_are_refused() -> None:
    """More key generations than the limit are refused, naming the list."""
    doc = _doc()
    doc["organisations"][0]["keys"] = [
        org_entry_to_json(Organisation(LA, "x", "la", (_gen(T0, T0 + 1),)))["keys"][0]
        for _ in range(MAX_KEY_GENERATIONS + 1)
    ]
    with pytest.raises(DirectoryError, match=re.escape("organisations[0].keys has more than")):
        load_directory(_sign_doc(doc), TRUSTED)


def test_too_many_routes_are_refused() -> None:
    """More routes than the limit are refused, naming the list."""
    doc = _doc()
    doc["organisations"][1]["routes"] = doc["organisations"][1]["routes"] * 9
    with pytest.raises(DirectoryError, match=re.escape("organisations[1].routes has more than")):
        load_directory(_sign_doc(doc), TRUSTED)


def test_repeated_json_field_is_refused() -> None:
    """A JSON object repeating a field is refused rather than silently resolved."""
    text = directory_text(DIRECTORY).replace('"version": 2', '"version": 2,\n "version": 9')
    with pytest.raises(DirectoryError, match="repeats the field 'version'"):
        load_directory(SIGNER.sign(text), TRUSTED)


@pytest.mark.parametrize("text", ["{\n", "[]\n", "NaN\n", "[" * 100_000 + "\n", "1" * 5000 + "\n"])
def test_signed_non_directory_text_is_refused(text: str) -> None:
    """A correctly signed note whose text is not a directory object raises DirectoryError."""
    with pytest.raises(DirectoryError):
        load_directory(SIGNER.sign(text), TRUSTED)


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_directory_error(data: bytes) -> None:
    """load_directory on any bytes raises DirectoryError and nothing else."""
    with contextlib.suppress(DirectoryError):
        load_directory(data, TRUSTED)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@given(st.sampled_from(["organisations", "authority", "version", "issued", "format"]), _JSON)
def test_arbitrary_json_in_a_signed_directory_raises_only_directory_error(
    name: str, value: Any
) -> None:
    """Replacing a top-level field with any JSON value yields a directory or DirectoryError."""
    doc = _doc()
    doc[name] = value
    with contextlib.suppress(DirectoryError):
        load_directory(_sign_doc(doc), TRUSTED)


@given(st.integers(0, 1), _JSON)
def test_arbitrary_json_as_an_organisation_raises_only_directory_error(
    index: int, value: Any
) -> None:
    """Replacing an organisation entry with any JSON value raises DirectoryError."""
    doc = _doc()
    doc["organisations"][index] = value
    with pytest.raises(DirectoryError):
        load_directory(_sign_doc(doc), TRUSTED)


# --- lookups and rotation --------------------------------------------------------------


def test_current_keys_picks_the_newest_valid_generation() -> None:
    """While two generations overlap, sealing uses the one that started later."""
    assert DIRECTORY.current_keys(SCHOOL, T0 + YEAR + 1) == NEW


def test_current_keys_uses_the_old_generation_before_rotation() -> None:
    """Before the new generation starts, the old one is current."""
    assert DIRECTORY.current_keys(SCHOOL, T0 + 1) == OLD


def test_current_keys_never_returns_a_revoked_generation() -> None:
    """A revoked generation is skipped even when its window is the only match."""
    assert DIRECTORY.current_keys(SCHOOL, T0 + 2 * YEAR + 1) == NEW


def test_current_keys_with_nothing_valid_names_org_and_time() -> None:
    """Asking for keys when none is valid raises KeyLookupError naming org and time."""
    with pytest.raises(KeyLookupError, match="la:356 has no key valid at 2024-11-13T22:13:20Z"):
        DIRECTORY.current_keys(LA, T0 + YEAR)


def test_old_key_verifies_a_message_signed_while_it_was_valid() -> None:
    """A message signed with the old key at a time it was valid still finds that key."""
    key = SigningKey.generate()
    gen = KeyGeneration(key.public, EncryptionKey.generate().public, T0, T0 + YEAR)
    rotated = KeyGeneration(SigningKey.generate().public, OLD.encryption, T0 + YEAR, T0 + 9 * YEAR)
    org = Organisation(SCHOOL, "School", "school", (gen, rotated))
    d = Directory(1, T0, AUTHORITY, {SCHOOL: org})
    signature = key.sign(b"receipt")
    d.signing_key_for(SCHOOL, key.public.key_id, T0 + 10).verify(b"receipt", signature)


def test_old_key_is_refused_outside_its_window() -> None:
    """The old signing key is refused for a time after its window closed."""
    with pytest.raises(KeyLookupError, match="is not valid at"):
        DIRECTORY.signing_key_for(SCHOOL, OLD.signing.key_id, T0 + 2 * YEAR)


@pytest.mark.parametrize("at", [T0 - 1, T0, T0 + 1, T0 + YEAR + 1, T0 + 5 * YEAR])
def test_revoked_signing_key_is_refused_at_any_time(at: int) -> None:
    """A revoked key is refused for every time, before and after its revocation."""
    with pytest.raises(KeyLookupError, match="was revoked"):
        DIRECTORY.signing_key_for(SCHOOL, REVOKED.signing.key_id, at)


def test_revoked_encryption_key_is_refused() -> None:
    """The encryption key of a revoked generation is refused too."""
    with pytest.raises(KeyLookupError, match=r"encryption key .* was revoked"):
        DIRECTORY.encryption_key_for(SCHOOL, REVOKED.encryption.key_id, T0 + 1)


def test_encryption_key_for_returns_the_key_by_id() -> None:
    """encryption_key_for finds a valid encryption key by its id."""
    assert DIRECTORY.encryption_key_for(SCHOOL, NEW.encryption.key_id, T0 + YEAR) == NEW.encryption


def test_unknown_organisation_is_named() -> None:
    """Looking up an organisation not in the directory names the id."""
    with pytest.raises(KeyLookupError, match="the organisation urn:999999 is not in the directory"):
        DIRECTORY.signing_key_for(OrgId("urn:999999"), OLD.signing.key_id, T0)


def test_unknown_key_is_named_by_short_id() -> None:
    """Looking up a key the organisation does not have names the org and a short key id."""
    stranger = SigningKey.generate().public.key_id
    with pytest.raises(KeyLookupError, match=f"has no signing key {stranger.hex()[:16]}$"):
        DIRECTORY.signing_key_for(SCHOOL, stranger, T0)


def test_signing_key_id_is_not_accepted_as_encryption_key_id() -> None:
    """A signing key id does not find an encryption key."""
    with pytest.raises(KeyLookupError, match="has no encryption key"):
        DIRECTORY.encryption_key_for(SCHOOL, OLD.signing.key_id, T0)


def test_lookup_errors_never_contain_keys() -> None:
    """Lookup error messages hold no full key id and no public key."""
    with pytest.raises(KeyLookupError) as info:
        DIRECTORY.signing_key_for(SCHOOL, REVOKED.signing.key_id, T0)
    assert REVOKED.signing.key_id.hex() not in str(info.value)
    assert REVOKED.signing.raw.hex() not in str(info.value)


def test_valid_at_window_is_half_open() -> None:
    """A generation is valid from not_before inclusive to not_after exclusive."""
    assert OLD.valid_at(T0)
    assert not OLD.valid_at(T0 - 1)
    assert not OLD.valid_at(T0 + 2 * YEAR)


# --- construction and merging ----------------------------------------------------------


def test_key_generation_with_empty_window_is_refused() -> None:
    """A generation whose not_after is not after not_before is a ValueError."""
    with pytest.raises(ValueError, match="not_after"):
        _gen(T0, T0)


def test_route_kind_must_be_known() -> None:
    """A route of an unknown kind is a ValueError."""
    with pytest.raises(ValueError, match="kind"):
        Route("ftp", "ftp://x", {})


def test_route_options_are_read_only() -> None:
    """A route's options cannot be changed through the caller's dict."""
    options = {"mailbox": "X26ABC001"}
    route = Route("mesh", "mesh://X26ABC001", options)
    options["mailbox"] = "changed"
    assert route.options["mailbox"] == "X26ABC001"


def test_merge_adds_new_organisations_and_generations() -> None:
    """Merging adds new organisations and new key generations of known ones."""
    extra = _gen(T0 + 2 * YEAR, T0 + 4 * YEAR)
    newcomer = Organisation(OrgId("ods:X26ABC"), "LAC Nurses", "nhs", (_gen(T0, T0 + YEAR),))
    rotated = Organisation(LA, "Example Council", "la", (extra,))
    merged = merge_directory(
        DIRECTORY, [newcomer, rotated], version=3, issued=T0 + 5, authority=AUTHORITY
    )
    assert merged.organisation(OrgId("ods:X26ABC")) == newcomer
    assert merged.organisation(LA).keys[-1] == extra
    assert len(merged.organisation(LA).keys) == 2


def test_merge_deduplicates_generations_by_signing_key_id() -> None:
    """An entry repeating a known key generation does not add it twice."""
    school = DIRECTORY.organisation(SCHOOL)
    merged = merge_directory(DIRECTORY, [school], version=3, issued=T0, authority=AUTHORITY)
    assert merged.organisation(SCHOOL).keys == school.keys


def test_merge_keeps_routes_when_the_entry_has_none() -> None:
    """A rotation entry without routes keeps the organisation's known routes."""
    entry = Organisation(SCHOOL, "Example Primary School", "school", (_gen(T0, T0 + 9),))
    merged = merge_directory(DIRECTORY, [entry], version=3, issued=T0, authority=AUTHORITY)
    assert merged.organisation(SCHOOL).routes == (ROUTE,)


@pytest.mark.parametrize("use", ["signing", "encryption"])
def test_merge_revokes_by_either_key_id(use: str) -> None:
    """A revocation by signing or encryption key id marks that generation revoked."""
    kid = NEW.signing.key_id if use == "signing" else NEW.encryption.key_id
    merged = merge_directory(
        DIRECTORY, [], version=3, issued=T0, authority=AUTHORITY, revoke={kid: T0 + 7}
    )
    revoked = [g for g in merged.organisation(SCHOOL).keys if g.signing == NEW.signing]
    assert revoked[0].revoked_at == T0 + 7


def test_merge_keeps_the_earliest_revocation_time() -> None:
    """Revoking an already revoked key again keeps the earlier time."""
    merged = merge_directory(
        DIRECTORY,
        [],
        version=3,
        issued=T0,
        authority=AUTHORITY,
        revoke={REVOKED.signing.key_id: T0 + 9 * YEAR},
    )
    keys = merged.organisation(SCHOOL).keys
    assert [g.revoked_at for g in keys if g.signing == REVOKED.signing] == [T0 + YEAR]


def test_merge_refuses_revoking_an_unknown_key() -> None:
    """Revoking a key id that no generation has is a ValueError."""
    with pytest.raises(ValueError, match="revoke"):
        merge_directory(
            DIRECTORY, [], version=3, issued=T0, authority=AUTHORITY, revoke={b"\x00" * 32: T0}
        )


@pytest.mark.parametrize("version", [1, 2])
def test_merge_refuses_a_version_not_above_the_previous(version: int) -> None:
    """The merged version must be greater than the previous one."""
    with pytest.raises(ValueError, match="version"):
        merge_directory(DIRECTORY, [], version=version, issued=T0, authority=AUTHORITY)


def test_merge_from_nothing_builds_a_first_directory() -> None:
    """Merging into no previous directory builds version one from the entries."""
    org = DIRECTORY.organisation(LA)
    first = merge_directory(None, [org], version=1, issued=T0, authority=AUTHORITY)
    assert first.organisations == {LA: org}


def test_merged_directory_signs_and_loads() -> None:
    """A merged directory survives signing and loading with its revocations."""
    merged = merge_directory(
        DIRECTORY,
        [],
        version=3,
        issued=T0,
        authority=AUTHORITY,
        revoke={OLD.encryption.key_id: T0 + 3},
    )
    assert load_directory(sign_directory(merged, SIGNER), TRUSTED, min_version=2) == merged


@pytest.mark.parametrize(
    ("org", "key_id", "at", "reason"),
    [
        (OrgId("urn:999999"), OLD.signing.key_id, T0 + 10, "unknown-organisation"),
        (SCHOOL, bytes(32), T0 + 10, "unknown-key"),
        (SCHOOL, REVOKED.signing.key_id, T0 + 10, "revoked"),
        (SCHOOL, OLD.signing.key_id, T0 + 5 * YEAR, "not-valid"),
    ],
)
def test_lookup_failures_carry_a_machine_readable_reason(
    org: OrgId, key_id: bytes, at: int, reason: str
) -> None:
    """Each lookup failure says why in ``reason``, which envelope rules are mapped from."""
    with pytest.raises(KeyLookupError) as caught:
        DIRECTORY.signing_key_for(org, key_id, at)
    assert caught.value.reason == reason
