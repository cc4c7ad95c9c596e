"""``exchange record show``: the summary, ``--json``, ``--extract`` and every refusal."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange.cli import record_cmd
from exchange.cli.errors import CliError
from exchange.files import read_limited
from exchange.records import (
    L_CONTAINER,
    MAX_CONTAINER_LEN,
    Attachment,
    Container,
    Record,
    encode_container,
    validate_record,
)
from exchange.records.content_checks import PDF, TEXT
from tests.cli.conftest import Result, assert_refused, run

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "records"
TRICKY_NAME = "../../x\u202eexe.pdf"
#: What the records module makes of TRICKY_NAME: separators replaced, the right-to-left
#: override removed, leading dots stripped.
TRICKY_SANITISED = "_.._xexe.pdf"
PDF_DATA = b"%PDF-1.7\n% synthetic attendance record\n%%EOF\n"
TEXT_DATA = "Synthetic note of concern: Zoë said she was hungry.\n".encode()
#: A phrase of the record that must never appear in an error line.
DESCRIPTION = "Synthetic description of the concern for test purposes."


def _vector(kind: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / kind / "valid" / f"{name}.json").read_text())
    return data


def _attachments() -> list[Attachment]:
    return [
        Attachment.create(TRICKY_NAME, PDF, PDF_DATA),
        Attachment.create("notes of concern.txt", TEXT, TEXT_DATA),
    ]


def _record(attachments: list[Attachment], **changes: Any) -> Record:
    doc = _vector("referral", "full")
    doc["attachments"] = [
        {"title": f"Document {i}", **a.manifest_fields()} for i, a in enumerate(attachments)
    ]
    doc.update(changes)
    return validate_record("referral", doc)


def _container(**changes: Any) -> tuple[bytes, Record, list[Attachment]]:
    attachments = _attachments()
    record = _record(attachments, **changes)
    return encode_container(record, attachments), record, attachments


def _write(data: bytes, name: str = "item.container") -> str:
    Path(name).write_bytes(data)
    return name


def _refused(result: Result, *fragments: str) -> str:
    line = assert_refused(result, 1, *fragments)
    assert DESCRIPTION not in result.err
    assert "Zoë" not in result.err
    return line


def _fields(text: str) -> Any:
    """Return the record printed between ``fields:`` and ``attachments:`` in the summary."""
    lines = text.splitlines()
    start = lines.index("fields:") + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("attachments:"))
    assert all(line.startswith("  ") for line in lines[start:end])
    return json.loads("\n".join(line[2:] for line in lines[start:end]))


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --- showing -----------------------------------------------------------------------------


def test_show_prints_kind_fields_and_attachments() -> None:
    """The summary: kind and version, the record's fields as JSON, then each attachment."""
    data, record, attachments = _container()
    result = run("record", "show", _write(data))
    assert result.status == 0, result
    assert result.err == ""
    lines = result.text.splitlines()
    assert lines[0] == "record: referral, version 1"
    assert _fields(result.text) == record.data
    tail = lines[lines.index("attachments: 2") :]
    assert tail == [
        "attachments: 2",
        f'  [0] "{TRICKY_SANITISED}"',
        "      content type: application/pdf",
        f"      size: {len(PDF_DATA)} bytes",
        f"      sha256: {attachments[0].sha256.hex()}",
        "      manifest: matches",
        '  [1] "notes of concern.txt"',
        "      content type: text/plain",
        f"      size: {len(TEXT_DATA)} bytes",
        f"      sha256: {attachments[1].sha256.hex()}",
        "      manifest: matches",
    ]
    assert "\u202e" not in result.text
    assert "Zoë" not in result.text  # the attachments' content is never printed


def test_json_shape() -> None:
    """--json prints one object: the record, and each attachment's five facts."""
    data, record, attachments = _container()
    result = run("record", "show", _write(data), "--json")
    assert result.status == 0, result
    document = json.loads(result.out)
    assert document == {
        "record": record.data,
        "attachments": [
            {
                "name": a.name,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256.hex(),
                "manifest_match": True,
            }
            for a in attachments
        ],
    }
    assert [a["name"] for a in document["attachments"]] == [
        TRICKY_SANITISED,
        "notes of concern.txt",
    ]


@pytest.mark.parametrize(("kind", "vector"), [("outcome", "nfa"), ("lac-record", "full")])
def test_kind_without_attachments(kind: str, vector: str) -> None:
    """A kind with no manifest shows its fields and no attachments."""
    record = validate_record(kind, _vector(kind, vector))
    name = _write(encode_container(record))
    shown = run("record", "show", name)
    assert shown.status == 0, shown
    assert shown.text.splitlines()[0] == f"record: {kind}, version 1"
    assert shown.text.splitlines()[-1] == "attachments: none"
    assert _fields(shown.text) == record.data
    as_json = run("record", "show", name, "--json")
    assert json.loads(as_json.out) == {"record": record.data, "attachments": []}


def test_standard_input() -> None:
    """FILE may be - for standard input (for example piped from the node's open)."""
    data, record, _ = _container()
    result = run("record", "show", "-", "--json", stdin=data)
    assert result.status == 0, result
    assert json.loads(result.out)["record"] == record.data


def _with_raw_description(raw: bytes) -> bytes:
    """Return a container whose record's description is the JSON string body ``raw``.

    The encoder writes Python strings; this puts escapes such as a lone surrogate's into
    the JSON text itself, as a hostile sender could.
    """
    data, record, _ = _container(description="PLACEHOLDER")
    old = json.dumps(
        record.data, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode()
    new = old.replace(b"PLACEHOLDER", raw)
    at = len(L_CONTAINER) + 1 + 1 + len(b"referral")
    assert data[at + 4 : at + 4 + len(old)] == old
    return data[:at] + struct.pack(">I", len(new)) + new + data[at + 4 + len(old) :]


def test_characters_that_drive_a_terminal_are_escaped() -> None:
    """C1 controls, bidi overrides, separators and private-use characters print escaped."""
    raw = "a \u009b31m b \u202e c \u2028 d e \U000f0000 f".encode()
    name = _write(_with_raw_description(raw))
    shown = run("record", "show", name)
    assert shown.status == 0, shown
    for char in ("\u009b", "\u202e", "\u2028", "\U000f0000"):
        assert char not in shown.text
    description = "a \u009b31m b \u202e c \u2028 d e \U000f0000 f"
    assert _fields(shown.text)["description"] == description
    assert "\\u009b31m" in shown.text
    assert "\\udb80\\udc00" in shown.text  # the private-use character as a surrogate pair
    as_json = run("record", "show", name, "--json")
    assert as_json.status == 0, as_json
    assert json.loads(as_json.out)["record"]["description"] == description


def test_a_lone_surrogate_in_the_record_is_refused_cleanly() -> None:
    """JSON may escape a lone surrogate; the records module refuses it as not text."""
    name = _write(_with_raw_description(b"a \\ud800 b"))
    shown = run("record", "show", name)
    assert shown.status == 1
    assert shown.out == b""
    assert "the document holds a lone surrogate escape, not Unicode text" in shown.err


# --- extracting --------------------------------------------------------------------------


def test_extract_writes_each_attachment_0600_in_a_new_0700_folder() -> None:
    """--extract creates the folder 0700 and each file 0600, whatever the umask."""
    data, record, _ = _container()
    saved = os.umask(0)
    try:
        result = run("record", "show", _write(data), "--extract", "files")
    finally:
        os.umask(saved)
    assert result.status == 0, result
    assert _fields(result.text) == record.data
    assert result.err_lines == ["saved 2 attachment(s) in files"]
    folder = Path("files")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert _listing(folder) == {TRICKY_SANITISED, "notes of concern.txt"}
    assert (folder / TRICKY_SANITISED).read_bytes() == PDF_DATA
    assert (folder / "notes of concern.txt").read_bytes() == TEXT_DATA
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Nothing escaped the folder.
    assert _listing(Path()) == {"item.container", "files"}


def test_extract_into_an_existing_folder_keeps_its_mode_and_files(tmp_path: Path) -> None:
    """An existing folder is used as it is; other files in it are left alone."""
    folder = tmp_path / "existing"
    folder.mkdir(mode=0o750)
    folder.chmod(0o750)
    (folder / "other.txt").write_text("kept")
    data, _, _ = _container()
    result = run("record", "show", _write(data), "--json", "--extract", str(folder))
    assert result.status == 0, result
    assert stat.S_IMODE(folder.stat().st_mode) == 0o750
    assert _listing(folder) == {"other.txt", TRICKY_SANITISED, "notes of concern.txt"}
    assert (folder / "other.txt").read_text() == "kept"


@pytest.mark.parametrize("existing", [TRICKY_SANITISED, "notes of concern.txt"])
def test_extract_never_overwrites(existing: str) -> None:
    """If any name is taken, nothing at all is written and the existing file is untouched."""
    folder = Path("files")
    folder.mkdir()
    (folder / existing).write_bytes(b"mine")
    data, _, _ = _container()
    result = run("record", "show", _write(data), "--extract", "files")
    line = _refused(result, "already exists", "refusing to overwrite", "nothing was saved")
    assert line.startswith(f"exchange: files/{existing} already exists")
    assert result.out == b""
    assert _listing(folder) == {existing}
    assert (folder / existing).read_bytes() == b"mine"


def test_extract_refuses_a_symlink_in_the_way(tmp_path: Path) -> None:
    """A symbolic link under an attachment's name is not followed nor replaced."""
    folder = Path("files")
    folder.mkdir()
    outside = tmp_path / "outside.txt"
    (folder / "notes of concern.txt").symlink_to(outside)
    data, _, _ = _container()
    _refused(run("record", "show", _write(data), "--extract", "files"), "already exists")
    assert not outside.exists()
    assert _listing(folder) == {"notes of concern.txt"}


def test_failure_while_publishing_removes_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the second file cannot be put in place, the first is removed, and the new folder."""
    calls: list[Path] = []
    publish = record_cmd._publish

    def failing(temp: Path, target: Path) -> None:
        calls.append(target)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        publish(temp, target)

    monkeypatch.setattr(record_cmd, "_publish", failing)
    data, _, _ = _container()
    _refused(run("record", "show", _write(data), "--extract", "files"), "no space left")
    assert len(calls) == 2
    assert not Path("files").exists()
    assert _listing(Path()) == {"item.container"}


def test_failure_while_writing_removes_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """If a temporary file cannot be written, none is left and the existing folder is kept."""
    folder = Path("files")
    folder.mkdir()
    calls: list[bytes] = []
    write_temp = record_cmd._write_temp

    def failing(directory: Path, data: bytes) -> Path:
        calls.append(data)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        return write_temp(directory, data)

    monkeypatch.setattr(record_cmd, "_write_temp", failing)
    data, _, _ = _container()
    _refused(run("record", "show", _write(data), "--extract", "files"), "folder files")
    assert _listing(folder) == set()


def test_extract_folder_not_writable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder where no file can be created is refused by name; nothing is printed."""

    def denied(*_args: object, **_kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied", "files/.exchange-extract-x")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    data, _, _ = _container()
    result = run("record", "show", _write(data), "--extract", "files")
    assert _refused(result) == "exchange: folder files: permission denied"
    assert result.out == b""
    assert not Path("files").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to a read-only folder")
def test_extract_folder_read_only() -> None:
    """A real read-only folder is refused."""
    folder = Path("files")
    folder.mkdir(mode=0o500)
    try:
        data, _, _ = _container()
        _refused(run("record", "show", _write(data), "--extract", "files"), "permission denied")
        assert _listing(folder) == set()
    finally:
        folder.chmod(0o700)


def test_extract_into_a_file_or_under_a_missing_folder() -> None:
    """DIR must be a folder, and only DIR itself is created."""
    data, _, _ = _container()
    name = _write(data)
    Path("plain").write_text("not a folder")
    assert _refused(run("record", "show", name, "--extract", "plain")) == (
        "exchange: folder plain: not a directory"
    )
    assert _refused(run("record", "show", name, "--extract", "missing/files")) == (
        "exchange: folder missing/files: no such file or directory"
    )
    assert not Path("missing").exists()


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "../x.pdf", "a/b.pdf", "/etc/passwd", "a\\b.pdf", "x\x00y", " x.pdf",
     "x\u202eexe.pdf", "CON", "."*3 + "x"],
)  # fmt: skip
def test_names_that_would_leave_the_folder_are_refused(name: str, tmp_path: Path) -> None:
    """Defence in depth: only a plain, already sanitised name is ever joined to DIR."""
    with pytest.raises(CliError, match="would leave the folder"):
        record_cmd.safe_target(tmp_path, name)


def test_sanitised_names_are_accepted(tmp_path: Path) -> None:
    """The names the decoder accepts are joined to DIR as they are."""
    for name in (TRICKY_SANITISED, "notes of concern.txt", "Zoë.pdf", "_CON"):
        assert record_cmd.safe_target(tmp_path, name) == tmp_path / name


# --- refusals ----------------------------------------------------------------------------


def test_missing_file() -> None:
    """A missing FILE is named."""
    assert _refused(run("record", "show", "nope.container")) == (
        "exchange: container nope.container: no such file or directory"
    )


def test_a_folder_is_not_a_container() -> None:
    """FILE must be a file."""
    Path("folder").mkdir()
    _refused(run("record", "show", "folder"), "container folder is a directory")


def test_not_a_container() -> None:
    """Anything else (here, a plain record as `exchange open` gives for a text envelope)."""
    result = run("record", "show", _write(b"Referral (synthetic): not a container.\n"))
    assert _refused(result) == (
        "exchange: container item.container: record container error at byte 0 "
        "[container.label]: the bytes are not a record container"
    )


def test_truncated() -> None:
    """A container that stops short names the rule and the offset."""
    data, _, _ = _container()
    line = _refused(run("record", "show", _write(data[:-5])), "[container.truncated]")
    assert f"at byte {len(data) - len(TEXT_DATA)}" in line


def test_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file over the limit is refused with the limit, before it is decoded."""
    monkeypatch.setattr(record_cmd, "MAX_CONTAINER_LEN", 1000)
    data, _, _ = _container()
    assert len(data) > 1000
    assert _refused(run("record", "show", _write(data))) == (
        "exchange: container item.container: the file is larger than the limit of 1,000 bytes"
    )


def test_the_limit_is_the_records_module_largest_container(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command reads no more than decode_container would look at."""
    limits: list[int] = []

    def spy(path: str, limit: int, *, what: str) -> bytes:
        limits.append(limit)
        return read_limited(path, limit, what=what)

    monkeypatch.setattr(record_cmd, "read_limited", spy)
    data, _, _ = _container()
    assert run("record", "show", _write(data)).status == 0
    assert limits == [MAX_CONTAINER_LEN]


def test_invalid_record_names_fields_not_values() -> None:
    """A record that breaks its schema is refused by field and rule."""
    data = _with_raw_description(b"x" * 20001)
    line = _refused(run("record", "show", _write(data), "--extract", "files"), "description")
    assert "maxLength" in line or "referral record is invalid" in line
    assert not Path("files").exists()


@pytest.mark.parametrize("extract", [False, True])
def test_tampered_attachment_is_refused_by_index(extract: bool) -> None:
    """Bytes that do not match the digest: refused, naming the attachment; nothing shown."""
    data, _, _ = _container()
    tampered = data[:-2] + b"!\n"  # still text, so only the digest catches it
    extra = ["--extract", "files"] if extract else []
    result = run("record", "show", _write(tampered), *extra)
    line = _refused(result, "[attachment.digest]", "attachment 1's SHA-256 does not match")
    assert f"at byte {len(data) - len(TEXT_DATA)}" in line
    assert result.out == b""
    assert not Path("files").exists()


def test_attachment_replaced_with_its_digest_is_refused_by_the_manifest() -> None:
    """New bytes with a matching stored digest still disagree with the record's manifest."""
    data, _, _ = _container()
    new = TEXT_DATA[:-2] + b"!\n"
    at = len(data) - len(TEXT_DATA) - 32
    tampered = data[:at] + hashlib.sha256(new).digest() + new
    result = run("record", "show", _write(tampered), "--extract", "files")
    _refused(result, "[manifest.entry]", "attachments[1] does not describe attachment 1")
    assert not Path("files").exists()


def test_manifest_mismatch_is_refused_even_if_the_decoder_let_it_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defence in depth: the command checks each attachment against the manifest itself."""
    attachments = _attachments()
    record = _record(attachments)
    record.data["attachments"][1]["sha256"] = "0" * 64
    monkeypatch.setattr(
        record_cmd, "decode_container", lambda _: Container(record, tuple(attachments))
    )
    result = run("record", "show", _write(b"ignored"), "--extract", "files")
    _refused(result, "attachment 1's bytes do not match", "nothing was shown or saved")
    assert result.out == b""
    assert not Path("files").exists()


def test_help() -> None:
    """The command explains itself."""
    for argv in (["record", "--help"], ["record", "show", "--help"]):
        result = run(*argv)
        assert result.status == 0
        assert "usage: exchange record" in result.text
    assert "--extract" in run("record", "show", "--help").text


def test_usage_errors() -> None:
    """A missing FILE or subcommand is a usage error (status 2)."""
    assert_refused(run("record", "show"), 2, "FILE")
    assert_refused(run("record"), 2)


# --- never a crash -----------------------------------------------------------------------


def _assert_clean(result: Result) -> None:
    assert result.status in (0, 1), result
    assert "Traceback" not in result.err
    assert "internal error" not in result.err
    if result.status == 1:
        _refused(result)
        assert result.out == b""


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=4000),
        st.binary(max_size=4000).map(lambda tail: L_CONTAINER + b"\x01" + tail),
        st.binary(max_size=4000).map(lambda tail: L_CONTAINER + b"\x01\x08referral" + tail),
    )
)
def test_random_bytes_never_crash(data: bytes) -> None:
    """Any input ends in success or one clean `exchange:` line, never a traceback."""
    _assert_clean(run("record", "show", "-", stdin=data))


_VALID = _container()[0]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), min_size=1, max_size=4
    ),
    st.integers(0, len(_VALID)),
)
def test_damaged_containers_never_crash(changes: list[tuple[int, int]], keep: int) -> None:
    """A valid container with bytes changed, or cut short, is refused cleanly or shown."""
    data = bytearray(_VALID)
    for offset, value in changes:
        data[offset] = value
    _assert_clean(run("record", "show", "-", "--json", stdin=bytes(data[:keep])))
