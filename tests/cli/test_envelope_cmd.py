"""``exchange seal``, ``exchange open`` and ``exchange inspect``, including every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exchange.envelope import Recipient, seal
from exchange.keys.directory import org_entry_from_json
from exchange.keys.keyfile import decode_key_file
from tests.cli.conftest import (
    PASSPHRASE,
    RECORD,
    T0,
    World,
    assert_refused,
    key_ids,
    make_keys,
    run,
    seal_record,
    sign,
)

#: Offset of the recipient count in a header whose sender id is "urn:106123" and whose record
#: kind is "referral" (docs/envelope.md §4): prefix 11, id 16, created 8, sender 11,
#: sender key 32, kind 9, chunk size 4, commitment 32.
COUNT_OFFSET = 11 + 16 + 8 + 11 + 32 + 9 + 4 + 32


def _open(envelope: str = "record.env", out: str = "opened.txt", *keys: str) -> list[str]:
    argv = ["open"]
    for key in keys or ("la.key",):
        argv += ["--key", key]
    return [*argv, "--in", envelope, "--out", out]


@pytest.mark.usefixtures("world")
def test_seal_open_round_trip() -> None:
    """The recipient opens exactly what the sender sealed; both print one line."""
    sealed = seal_record()
    assert sealed.status == 0, sealed
    assert sealed.out == b""
    assert len(sealed.err_lines) == 1
    assert sealed.err.startswith("sealed envelope ")
    assert sealed.err.rstrip().endswith("for la:356")
    digest = sealed.err.split(" digest ")[1].split()[0]
    opened = run(*_open())
    assert opened.status == 0, opened
    assert Path("opened.txt").read_bytes() == RECORD
    assert opened.err_lines == [
        (
            f"opened envelope {sealed.err.split()[2]} from urn:106123, kind referral, "
            f"digest {digest} ({len(RECORD)} bytes)"
        )
    ]


@pytest.mark.usefixtures("world")
def test_seal_to_several_recipients() -> None:
    """Each recipient opens the same envelope with its own key."""
    assert seal_record("record.env", "la:356", "ods:X26ABC").status == 0
    assert run(*_open("record.env", "la.txt", "la.key")).status == 0
    assert run(*_open("record.env", "nhs.txt", "nhs.key")).status == 0
    assert Path("la.txt").read_bytes() == Path("nhs.txt").read_bytes() == RECORD


def test_inspect_prints_public_facts_only(world: World) -> None:
    """Inspect prints the documented JSON fields, never content."""
    sealed = seal_record("record.env", "la:356", "ods:X26ABC")
    result = run("inspect", "--in", "record.env")
    assert result.status == 0, result
    facts = json.loads(result.out)
    assert set(facts) == {
        "envelope_id", "sender", "sender_key_id", "recipients", "record_kind", "created",
        "chunk_size", "chunk_count", "envelope_length", "digest", "verified",
    }  # fmt: skip
    assert facts["sender"] == "urn:106123"
    assert facts["sender_key_id"] == key_ids(world.school)[0]
    assert facts["recipients"] == [
        {"id": "la:356", "key_id": key_ids(world.la)[1]},
        {"id": "ods:X26ABC", "key_id": key_ids(world.nhs)[1]},
    ]
    assert facts["record_kind"] == "referral"
    assert facts["created"] == "2026-01-01T00:00:00Z"
    assert facts["envelope_length"] == Path("record.env").stat().st_size
    assert facts["verified"] is True
    assert f"digest {facts['digest']}" in sealed.err
    assert f"envelope {facts['envelope_id']}" in sealed.err
    assert RECORD not in result.out


@pytest.mark.usefixtures("world")
def test_stdin_to_stdout() -> None:
    """Seal from stdin to stdout, and open from stdin to stdout."""
    sealed = run("seal", "--key", "school.key", "--to", "la:356", "--kind", "referral",
                 stdin=RECORD)  # fmt: skip
    assert sealed.status == 0, sealed
    envelope = sealed.out
    assert envelope.startswith(b"\x89EXCH")
    inspected = run("inspect", stdin=envelope)
    assert inspected.status == 0, inspected
    opened = run("open", "--key", "la.key", stdin=envelope)
    assert opened.status == 0, opened
    assert opened.out == RECORD


@pytest.mark.usefixtures("world")
def test_large_record_streams() -> None:
    """A record of several MiB (many chunks, several read pieces) round-trips."""
    big = bytes(range(256)) * (3 * 4096 + 7)
    Path("record.txt").write_bytes(big)
    assert seal_record().status == 0
    assert run(*_open()).status == 0
    assert Path("opened.txt").read_bytes() == big


@pytest.mark.usefixtures("world")
def test_open_to_stdout_writes_nothing_when_refused() -> None:
    """A failed open to stdout emits no byte of content."""
    assert seal_record().status == 0
    data = bytearray(Path("record.env").read_bytes())
    data[-1] ^= 1  # the last byte of the final signature
    result = run("open", "--key", "la.key", stdin=bytes(data))
    assert_refused(result, 1, "could not be opened")
    assert result.out == b""


def _no_new_files(world: World, before: set[str]) -> None:
    after = world.listing()
    assert after == before, after - before


@pytest.mark.parametrize(
    "damage",
    ["truncate", "truncate-at-chunk", "flip-ciphertext", "flip-final-signature", "append"],
)
def test_damaged_envelope_leaves_no_output(world: World, damage: str) -> None:
    """Truncated, altered or extended envelopes are refused and leave no file, not even .partial."""
    Path("record.txt").write_bytes(b"x" * 200_000)  # several chunks reach the quarantine
    assert seal_record().status == 0
    data = bytearray(Path("record.env").read_bytes())
    if damage == "truncate":
        data = data[:-10]
    elif damage == "truncate-at-chunk":
        data = data[: len(data) // 2]
    elif damage == "flip-ciphertext":
        data[len(data) // 2] ^= 0x40
    elif damage == "flip-final-signature":
        data[-1] ^= 0x01
    else:
        data += b"\x00"
    Path("damaged.env").write_bytes(bytes(data))
    before = world.listing()
    result = run(*_open("damaged.env", "opened.txt"))
    line = assert_refused(result, 1)
    assert "x" * 20 not in line
    _no_new_files(world, before)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "envelope.truncated"),
        (b"this is not an envelope at all, just some text\n" * 3, "header.magic"),
        (bytes(range(256)) * 4, "header.magic"),
    ],
)
def test_garbage_and_empty_envelopes(world: World, content: bytes, fragment: str) -> None:
    """Empty or garbage input is refused by open and inspect with the rule named."""
    Path("bad.env").write_bytes(content)
    before = world.listing()
    assert_refused(run(*_open("bad.env")), 1, fragment)
    assert_refused(run("inspect", "--in", "bad.env"), 1, fragment)
    _no_new_files(world, before)


@pytest.mark.usefixtures("world")
def test_hostile_recipient_count_is_refused() -> None:
    """An envelope claiming 200 recipients is refused before any cryptography."""
    assert seal_record().status == 0
    data = bytearray(Path("record.env").read_bytes())
    assert data[COUNT_OFFSET] == 1
    data[COUNT_OFFSET] = 200
    Path("hostile.env").write_bytes(bytes(data))
    line = assert_refused(run("inspect", "--in", "hostile.env"), 1)
    assert "header." in line


@pytest.mark.usefixtures("world")
def test_too_many_recipients_is_a_usage_error() -> None:
    """More than 16 --to options are refused before anything is read."""
    to = [f"urn:{100000 + i}" for i in range(17)]
    assert_refused(seal_record("big.env", *to), 2, "at most 16 recipients")
    assert not Path("big.env").exists()


def test_wrong_passphrase(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong passphrase is refused for seal and open, naming the key file only."""
    assert seal_record().status == 0
    monkeypatch.setenv("EXCHANGE_PASSPHRASE", "not the passphrase")
    before = world.listing()
    assert_refused(seal_record("again.env"), 1, "key file school.key", "passphrase")
    assert_refused(run(*_open()), 1, "key file la.key", "passphrase")
    _no_new_files(world, before)


def test_not_a_recipient(world: World) -> None:
    """A key not addressed by the envelope is told so, and nothing is written."""
    assert seal_record().status == 0
    before = world.listing()
    assert_refused(run(*_open("record.env", "o.txt", "nhs.key")), 1, "not addressed to ods:X26ABC")
    _no_new_files(world, before)


@pytest.mark.usefixtures("world")
def test_unknown_recipient() -> None:
    """Sealing to an organisation not in the directory is refused."""
    assert_refused(seal_record("r.env", "la:999"), 1, "la:999 is not in the directory")
    assert not Path("r.env").exists()


@pytest.mark.usefixtures("world")
def test_unknown_sender_cannot_seal() -> None:
    """A key that is not in the directory cannot seal."""
    make_keys("urn:555555", "stranger.key")
    result = seal_record("s.env", key="stranger.key")
    assert_refused(result, 1, "sender key stranger.key", "urn:555555 is not in the directory")
    assert not Path("s.env").exists()


def test_envelope_from_unknown_sender_is_refused(world: World) -> None:
    """An envelope signed by a key the directory does not list is refused by open and inspect."""
    make_keys("urn:555555", "stranger.key")
    stranger = decode_key_file(Path("stranger.key").read_bytes(), PASSPHRASE.encode())
    la = org_entry_from_json(world.la)
    envelope, _ = seal(
        RECORD, stranger, [Recipient(la.id, la.keys[0].encryption)],
        record_kind="referral", created=T0,
    )  # fmt: skip
    Path("stranger.env").write_bytes(envelope)
    before = world.listing()
    assert_refused(run(*_open("stranger.env")), 1, "sender.known", "urn:555555")
    assert_refused(run("inspect", "--in", "stranger.env"), 1, "sender.known")
    _no_new_files(world, before)


def test_revoked_sender_key(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the school's key is revoked it cannot seal, and its envelopes are refused."""
    assert seal_record().status == 0
    signing, _ = key_ids(world.school)
    result = sign(2, "v2.note", extra=("--previous", "directory.note", "--revoke", signing))
    assert result.status == 0, result
    monkeypatch.setenv("EXCHANGE_DIRECTORY", "v2.note")
    assert_refused(seal_record("new.env"), 1, "revoked")
    before = world.listing()
    assert_refused(run(*_open()), 1, "sender.key-revoked")
    _no_new_files(world, before)


@pytest.mark.usefixtures("world")
def test_expired_recipient_key() -> None:
    """A recipient with no key valid now cannot be sealed to."""
    later = str(T0 + 800 * 86_400)
    result = run("seal", "--now", later, "--key", "school.key", "--to", "la:356",
                 "--kind", "referral", "--in", "record.txt", "--out", "x.env")  # fmt: skip
    assert_refused(result, 1)
    assert not Path("x.env").exists()


@pytest.mark.usefixtures("world")
def test_missing_files() -> None:
    """Missing input, key and directory files are named."""
    assert_refused(seal_record("x.env", key="nope.key"), 1, "nope.key", "no such file")
    assert_refused(run(*_open("nope.env")), 1, "nope.env", "no such file")
    assert_refused(
        run("inspect", "--in", "x", "--directory", "none.note"), 1, "none.note", "no such file"
    )


@pytest.mark.usefixtures("world")
def test_existing_output_is_never_overwritten() -> None:
    """Seal and open refuse an existing --out and leave it untouched."""
    assert seal_record().status == 0
    Path("opened.txt").write_bytes(b"keep me")
    assert_refused(run(*_open()), 1, "opened.txt already exists")
    assert Path("opened.txt").read_bytes() == b"keep me"
    assert_refused(seal_record("opened.txt"), 1, "already exists")
    assert Path("opened.txt").read_bytes() == b"keep me"


@pytest.mark.usefixtures("world")
def test_bad_record_kind() -> None:
    """A record kind the format cannot carry is refused."""
    assert_refused(seal_record("k.env", kind="Referral!"), 1, "record kind")
    assert not Path("k.env").exists()


@pytest.mark.usefixtures("world")
def test_oversized_key_file() -> None:
    """A key file over 64 KiB is refused by size before parsing."""
    Path("huge.key").write_bytes(b" " * (64 * 1024 + 1))
    assert_refused(seal_record("h.env", key="huge.key"), 1, "huge.key", "limit")


@pytest.mark.usefixtures("world")
def test_authority_key_cannot_seal() -> None:
    """The directory authority's key is refused as a sender key."""
    assert_refused(seal_record("a.env", key="authority.key"), 1, "signs only the directory")


@pytest.mark.usefixtures("world")
def test_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    """With two LA keys, sealing uses the newest; an envelope to the old key still opens."""
    monkeypatch.setenv("EXCHANGE_NOW", str(T0 + 50))
    assert seal_record("old.env").status == 0
    monkeypatch.setenv("EXCHANGE_NOW", str(T0 + 100))
    new = make_keys("la:356", "la-2.key", "la")
    assert sign(2, "v2.note", "la-2.key.pub.json",
                extra=("--previous", "directory.note")).status == 0  # fmt: skip
    monkeypatch.setenv("EXCHANGE_DIRECTORY", "v2.note")
    monkeypatch.setenv("EXCHANGE_NOW", str(T0 + 200))
    assert seal_record("new.env").status == 0
    facts = json.loads(run("inspect", "--in", "new.env").out)
    assert facts["recipients"] == [{"id": "la:356", "key_id": key_ids(new)[1]}]
    # The new envelope needs the new key; the old key alone is not addressed.
    assert_refused(run(*_open("new.env", "a.txt", "la.key")), 1, "none of the given keys")
    assert run(*_open("new.env", "b.txt", "la.key", "la-2.key")).status == 0
    assert run(*_open("old.env", "c.txt", "la.key", "la-2.key")).status == 0
    assert Path("b.txt").read_bytes() == Path("c.txt").read_bytes() == RECORD
