r"""``exchange record show``: read an opened record container, and save its documents.

Opening an item (``exchange open``, or ``POST /api/v1/inbox/{digest}/open`` on the node)
releases the record container of docs/records.md §4: the JSON record and its attachments in
one binary file. This command decodes it with :func:`exchange.records.decode_container`
(every rule checked: label, lengths, schema, names, content types, digests, manifest) and
prints the record's kind and version, its fields as indented JSON and the list of
attachments; or, with ``--json``, one JSON object. With ``--extract DIR`` it saves each
attachment under its sanitised name, mode 0600, in ``DIR`` (created mode 0700 if missing).

The record is the member of staff's own decrypted record: printing it to their terminal is
the point, but it is never logged, and a refusal names the rule and the byte offset, never
content. Characters that could drive a terminal (controls, bidi overrides, line separators,
lone surrogates) are printed as JSON ``\u`` escapes, so a hostile sender cannot disguise
what is shown. Extraction writes nothing unless every attachment was written: each goes to
a temporary file first, and the files appear under their names only when all succeeded; an
existing file is never replaced.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol

from exchange.cli import common
from exchange.cli.errors import CliError, concerning
from exchange.files import STDIO, read_limited, set_mode
from exchange.records import (
    MAX_CONTAINER_LEN,
    Attachment,
    Container,
    decode_container,
    kind_spec,
    sanitise_file_name,
)

#: Mode of a folder ``--extract`` creates, and of each file it writes.
DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600

#: Unicode categories escaped in printed JSON: controls (C0 are escaped by ``json`` already,
#: DEL and C1 are not), format characters (bidi overrides), surrogates, private use,
#: unassigned, and the line and paragraph separators.
_ESCAPED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_TEMP_PREFIX: Final = ".exchange-extract-"


class NamedFile(Protocol):
    """A file to save: its (sanitised) name and its bytes; an attachment is one."""

    @property
    def name(self) -> str:
        """The file name, a plain name in sanitised form."""
        ...

    @property
    def data(self) -> bytes:
        """The content."""
        ...


class StreamedFile(Protocol):
    """A file to save whose content is written in pieces (a download), never held whole."""

    @property
    def name(self) -> str:
        """The file name, a plain name in sanitised form."""
        ...

    def write_to(self, handle: BinaryIO) -> None:
        """Write the content to ``handle`` (an empty file); raise ``CliError`` on failure."""
        ...


@dataclass(frozen=True, slots=True)
class _Listed:
    """One attachment as the command reports it."""

    index: int
    attachment: Attachment
    manifest_match: bool

    def as_json(self) -> dict[str, Any]:
        a = self.attachment
        return {
            "name": a.name,
            "content_type": a.content_type,
            "size": a.size,
            "sha256": a.sha256.hex(),
            "manifest_match": self.manifest_match,
        }


def add_commands(sub: common.Subcommands) -> None:
    """Add ``exchange record show``."""
    record = sub.add_parser("record", help="read an opened record container")
    actions = record.add_subparsers(dest="record_command", metavar="COMMAND", required=True)
    show = actions.add_parser(
        "show",
        help="print an opened record and its attachments; optionally save the attachments",
        description=(
            "Read a record container (what `exchange open` or the node's open gives you), "
            "check it (docs/records.md section 4) and print the record's kind, version and "
            "fields, and each attachment's name, content type, size, SHA-256 and whether "
            "the record's manifest lists it. The record is printed to your terminal only; it "
            "is never logged. --extract DIR saves the attachments in DIR under their "
            "sanitised names (mode 0600; DIR is created mode 0700), all or none, never "
            "replacing a file."
        ),
    )
    show.add_argument(
        "file", metavar="FILE", help=f"the opened record container ({STDIO} for standard input)"
    )
    show.add_argument(
        "--extract",
        metavar="DIR",
        help="save each attachment in DIR; refused if any would replace an existing file",
    )
    show.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object {record, attachments} instead of the summary",
    )
    show.set_defaults(handler=show_command)


def show_command(args: argparse.Namespace) -> int:
    """Decode a container, extract its attachments if asked, then print it."""
    path = str(args.file)
    with concerning(f"container {path}"):
        data = read_limited(path, MAX_CONTAINER_LEN, what="the file")
        container = decode_container(data)
    listed = _listing(container)
    for item in listed:
        if not item.manifest_match:
            raise CliError(
                f"container {path}: attachment {item.index}'s bytes do not match the digest "
                "the record's manifest lists; nothing was shown or saved"
            )
    if args.extract is not None:
        extract(container.attachments, Path(args.extract))
    if args.json:
        document = {
            "record": container.record.data,
            "attachments": [item.as_json() for item in listed],
        }
        common.say(_json_text(document))
    else:
        common.say(_summary(container, listed))
    if args.extract is not None:
        common.note(f"saved {len(listed)} attachment(s) in {args.extract}")
    return 0


def _listing(container: Container) -> list[_Listed]:
    """Pair each attachment with whether the record's manifest entry describes it."""
    spec = kind_spec(container.record.kind)
    entries: Sequence[Any] = ()
    if spec.manifest is not None:
        entries = container.record.data.get(spec.manifest, ())
    listed = []
    for index, attachment in enumerate(container.attachments):
        entry = entries[index] if index < len(entries) else None
        match = (
            isinstance(entry, dict)
            and entry.get("sha256") == attachment.sha256.hex()
            and entry.get("size") == attachment.size
            and entry.get("content_type") == attachment.content_type
        )
        listed.append(_Listed(index, attachment, match))
    return listed


# --- output ------------------------------------------------------------------------------


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _json_text(value: object) -> str:
    r"""Return ``value`` as indented JSON, readable (non-ASCII kept) and terminal-safe.

    Outside strings JSON is ASCII, and ``json`` escapes the C0 controls inside them, so the
    only raw control left is the newline of the indentation. Every other character of an
    escaped category is written as a ``\u`` escape, which is still the same JSON value.
    """
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return "".join(
        _escape(ch) if ch != "\n" and unicodedata.category(ch) in _ESCAPED_CATEGORIES else ch
        for ch in text
    )


def _summary(container: Container, listed: Sequence[_Listed]) -> str:
    record = container.record
    fields = "\n".join("  " + line for line in _json_text(record.data).splitlines())
    lines = [f"record: {record.kind}, version {record.version}", "fields:", fields]
    lines.append(f"attachments: {len(listed)}" if listed else "attachments: none")
    for item in listed:
        a = item.attachment
        lines += [
            # Names are in sanitised form (the decoder refuses any other): no controls, no
            # bidi overrides, no separators. Quoted as JSON so spaces at the edges show.
            f"  [{item.index}] {_json_text(a.name)}",
            f"      content type: {a.content_type}",
            f"      size: {a.size:,} bytes",
            f"      sha256: {a.sha256.hex()}",
            f"      manifest: {'matches' if item.manifest_match else 'DOES NOT MATCH'}",
        ]
    return "\n".join(lines)


# --- extraction --------------------------------------------------------------------------


def safe_target(directory: Path, name: str) -> Path:
    """Return ``directory / name``, refusing a name that is not a plain file name in it.

    The decoder has already refused any name not in sanitised form; this checks again, so a
    name can never reach outside ``directory`` whatever produced it.
    """
    plain = (
        name not in {"", ".", ".."}
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and Path(name).name == name
    )
    try:
        sanitised = sanitise_file_name(name)
    except ValueError:
        sanitised = None
    target = directory / name
    if (
        not plain
        or sanitised != name
        or target.parent != directory
        or Path(os.path.normpath(target)).parent != Path(os.path.normpath(directory))
    ):
        raise CliError("an attachment's file name would leave the folder; nothing was saved")
    return target


def _prepare_directory(directory: Path) -> bool:
    """Create ``directory`` (mode 0700) if it is missing, saying whether it was created.

    Anything there that is not a folder is refused.
    """
    if directory.is_dir():
        return False
    if directory.exists() or directory.is_symlink():
        raise NotADirectoryError(20, "not a directory", str(directory))
    directory.mkdir(mode=DIR_MODE)
    # The umask may have removed bits; set exactly 0700.
    directory.chmod(DIR_MODE)
    return True


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(directory: Path, file: NamedFile | StreamedFile) -> Path:
    """Write a file's content to a new private temporary file in ``directory``; sync it."""
    fd, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".partial", dir=directory)
    temp = Path(name)
    try:
        with os.fdopen(fd, "w+b") as handle:
            if hasattr(file, "write_to"):
                file.write_to(handle)
            else:
                handle.write(file.data)
            handle.flush()
            set_mode(handle.fileno(), temp, FILE_MODE)
            os.fsync(handle.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _publish(temp: Path, target: Path) -> None:
    """Give ``temp`` the name ``target``, never replacing an existing file."""
    try:
        # link() fails if the target exists, even one that appeared while we were writing.
        os.link(temp, target)
    except FileExistsError:
        raise
    except OSError:
        # A file system without hard links: check, then rename (a narrow race remains).
        if target.exists() or target.is_symlink():
            raise FileExistsError(17, "the output file already exists", str(target)) from None
        temp.replace(target)
        return
    temp.unlink()


@contextlib.contextmanager
def _all_or_nothing() -> Iterator[tuple[list[Path], list[Path]]]:
    """Yield (temporary files, published files); on any exception remove both."""
    temps: list[Path] = []
    published: list[Path] = []
    try:
        yield temps, published
    except BaseException:
        for path in (*published, *temps):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        raise
    finally:
        for path in temps:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


def extract(attachments: Sequence[NamedFile | StreamedFile], directory: Path) -> None:
    """Save every file in ``directory`` under its name (mode 0600), all or none.

    Refuses, before writing anything, a name that would leave the folder, two names equal
    after case folding, or a name that already exists. Each attachment is written and synced
    to a temporary file; only when all were written are they given their names, and if any
    step fails every file written so far is removed (and the folder, if this created it).
    """
    with concerning(f"folder {directory}"):
        created = _prepare_directory(directory)
    try:
        _extract_into(attachments, directory)
    except BaseException:
        if created:
            # Empty again: every file was removed. rmdir never removes a non-empty folder.
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise


def _extract_into(attachments: Sequence[NamedFile | StreamedFile], directory: Path) -> None:
    targets = [safe_target(directory, a.name) for a in attachments]
    folded = [t.name.casefold() for t in targets]
    if len(set(folded)) != len(folded):
        raise CliError("two attachments have the same file name; nothing was saved")
    for target in targets:
        if target.exists() or target.is_symlink():
            raise _exists(target)
    with _all_or_nothing() as (temps, published):
        with concerning(f"folder {directory}"):
            for attachment in attachments:
                temps.append(_write_temp(directory, attachment))
        for temp, target in zip(temps, targets, strict=True):
            try:
                _publish(temp, target)
            except FileExistsError:
                raise _exists(target) from None
            published.append(target)
    with concerning(f"folder {directory}"):
        _fsync_directory(directory)


def _exists(target: Path) -> CliError:
    # Named here rather than by `concerning`, which would name the folder instead.
    return CliError(f"{target} already exists; refusing to overwrite it; nothing was saved")
