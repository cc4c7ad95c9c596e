"""exchange.files: no overwrites, no partial output, bounded reads, streaming seal and open."""

from __future__ import annotations

import io
import os
import stat
import sys
from pathlib import Path

import pytest

from exchange.envelope import OpenError, Recipient
from exchange.files import (
    InputTooLargeError,
    atomic_output,
    open_to_file,
    read_limited,
    read_small,
    seal_file,
    verify_file,
    write_new_file,
    write_new_files,
)
from exchange.keys.directory import Directory, KeyGeneration, Organisation
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import OrgKeyPair

NOW = 1_767_225_600


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_new_file_creates_with_mode(tmp_path: Path) -> None:
    """A new file gets the data and exactly the mode asked for."""
    target = tmp_path / "a.key"
    write_new_file(target, b"secret")
    assert target.read_bytes() == b"secret"
    assert _mode(target) == 0o600
    write_new_file(tmp_path / "b.pub", b"public", mode=0o644)
    assert _mode(tmp_path / "b.pub") == 0o644


def test_write_new_file_refuses_an_existing_file(tmp_path: Path) -> None:
    """An existing file is never replaced."""
    target = tmp_path / "a.key"
    target.write_bytes(b"old")
    with pytest.raises(FileExistsError):
        write_new_file(target, b"new")
    assert target.read_bytes() == b"old"


def test_write_new_files_writes_each_or_none(tmp_path: Path) -> None:
    """Every file is written with its data and mode; one that exists undoes the others."""
    write_new_files([(tmp_path / "a", b"one"), (tmp_path / "b", b"two")])
    assert (tmp_path / "a").read_bytes() == b"one"
    assert (tmp_path / "b").read_bytes() == b"two"
    assert _mode(tmp_path / "b") == 0o600
    with pytest.raises(FileExistsError):
        write_new_files([(tmp_path / "c", b"three"), (tmp_path / "a", b"new")])
    assert not (tmp_path / "c").exists()
    assert (tmp_path / "a").read_bytes() == b"one"


def test_read_small_reads_only_a_small_file(tmp_path: Path) -> None:
    """A file up to the limit is read whole; a larger one is not read at all."""
    target = tmp_path / "body"
    target.write_bytes(b"x" * 10)
    assert read_small(target, 10) == b"x" * 10
    assert read_small(target, 9) is None
    with pytest.raises(FileNotFoundError):
        read_small(tmp_path / "missing", 10)


def test_atomic_output_publishes_on_success(tmp_path: Path) -> None:
    """The file appears, complete and with its mode, only after the block."""
    target = tmp_path / "out.bin"
    with atomic_output(target, mode=0o640) as handle:
        handle.write(b"part one, ")
        assert not target.exists()
        partials = [p.name for p in tmp_path.iterdir()]
        assert len(partials) == 1
        assert partials[0].startswith(".out.bin.partial-")
        assert _mode(tmp_path / partials[0]) == 0o600
        handle.write(b"part two")
    assert target.read_bytes() == b"part one, part two"
    assert _mode(target) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_output_removes_the_temp_file_on_error(tmp_path: Path) -> None:
    """An exception in the block leaves no file at all."""
    target = tmp_path / "out.bin"

    def fail() -> None:
        with atomic_output(target) as handle:
            handle.write(b"half")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail()
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_removes_the_temp_file_on_interrupt(tmp_path: Path) -> None:
    """Ctrl-C in the block leaves no file either."""

    def interrupt() -> None:
        with atomic_output(tmp_path / "o") as handle:
            handle.write(b"half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupt()
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_refuses_an_existing_file(tmp_path: Path) -> None:
    """Without overwrite, an existing target is refused before anything is written."""
    target = tmp_path / "out.bin"
    target.write_bytes(b"keep")
    with pytest.raises(FileExistsError), atomic_output(target) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"keep"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_output_refuses_a_file_that_appears_meanwhile(tmp_path: Path) -> None:
    """A target created while writing is not replaced, and the temp file is removed."""
    target = tmp_path / "out.bin"

    def race() -> None:
        with atomic_output(target) as handle:
            handle.write(b"new")
            target.write_bytes(b"raced")

    with pytest.raises(FileExistsError):
        race()
    assert target.read_bytes() == b"raced"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_output_overwrite(tmp_path: Path) -> None:
    """With overwrite=True the target is replaced atomically."""
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    with atomic_output(target, overwrite=True) as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new"


def test_read_limited(tmp_path: Path) -> None:
    """Reads up to the limit; refuses one byte more, naming what it was."""
    target = tmp_path / "f"
    target.write_bytes(b"x" * 10)
    assert read_limited(target, 10) == b"x" * 10
    with pytest.raises(InputTooLargeError, match="the key file is larger than the limit of 9"):
        read_limited(target, 9, what="the key file")


def test_read_limited_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    """``-`` reads standard input."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"from stdin")))
    assert read_limited("-", 100) == b"from stdin"


def _world() -> tuple[Directory, OrgKeyPair, OrgKeyPair]:
    school = OrgKeyPair.generate(OrgId("urn:106123"))
    la = OrgKeyPair.generate(OrgId("la:356"))
    orgs = {
        pair.org_id: Organisation(
            pair.org_id,
            pair.org_id,
            "school",
            (KeyGeneration(pair.signing.public, pair.encryption.public, NOW - 10, NOW + 10**6),),
        )
        for pair in (school, la)
    }
    return Directory(1, NOW, "test", orgs), school, la


def _sealed(content: bytes) -> tuple[bytes, Directory, OrgKeyPair]:
    directory, school, la = _world()
    out = io.BytesIO()
    recipient = Recipient(la.org_id, la.encryption.public)
    seal_file(io.BytesIO(content), "-", school, [recipient], record_kind="referral",
              created=NOW, stdout=out)  # fmt: skip
    return out.getvalue(), directory, la


def test_seal_and_open_files_stream_large_content(tmp_path: Path) -> None:
    """Content over several 1 MiB pieces round-trips through files."""
    content = os.urandom(3 * 1024 * 1024 + 12345)
    envelope, directory, la = _sealed(content)
    opened = open_to_file(io.BytesIO(envelope), tmp_path / "out", directory, [la], NOW)
    assert (tmp_path / "out").read_bytes() == content
    assert opened.content_length == len(content)
    verified = verify_file(io.BytesIO(envelope), directory, NOW)
    assert verified.digest == opened.verified.digest


def test_seal_file_to_a_path(tmp_path: Path) -> None:
    """Sealing to a path writes the envelope atomically and never overwrites."""
    _, school, la = _world()
    recipient = Recipient(la.org_id, la.encryption.public)
    sealed = seal_file(io.BytesIO(b"hello"), tmp_path / "e", school, [recipient],
                       record_kind="referral", created=NOW)  # fmt: skip
    assert (tmp_path / "e").stat().st_size == sealed.envelope_length
    with pytest.raises(FileExistsError):
        seal_file(io.BytesIO(b"again"), tmp_path / "e", school, [recipient],
                  record_kind="referral", created=NOW)  # fmt: skip


def test_failed_open_leaves_no_file(tmp_path: Path) -> None:
    """An envelope altered at its very end decrypts fully into quarantine, then nothing stays."""
    envelope, directory, la = _sealed(b"y" * 500_000)
    damaged = envelope[:-1] + bytes([envelope[-1] ^ 1])
    with pytest.raises(OpenError):
        open_to_file(io.BytesIO(damaged), tmp_path / "out", directory, [la], NOW)
    assert list(tmp_path.iterdir()) == []


def test_failed_open_to_stdout_writes_nothing() -> None:
    """With ``-`` the content is spooled and never reaches stdout on failure."""
    envelope, directory, la = _sealed(b"z" * 200_000)
    sink = io.BytesIO()
    with pytest.raises(OpenError):
        open_to_file(io.BytesIO(envelope[:-5]), "-", directory, [la], NOW, stdout=sink)
    assert sink.getvalue() == b""
    opened = open_to_file(io.BytesIO(envelope), "-", directory, [la], NOW, stdout=sink)
    assert sink.getvalue() == b"z" * 200_000
    assert opened.content_length == 200_000
