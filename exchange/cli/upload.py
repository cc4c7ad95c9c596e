"""A submission's body with its attachments streamed from their files as it is sent.

``POST /api/v1/envelopes`` takes a record with files as ``multipart/form-data``: a first
part named ``submission`` holding the JSON object of the submission's fields, then one
part named ``attachment`` per file, in order, each with its file name and content type.
:class:`Upload` writes the parts' headers and reads each file :data:`READ_SIZE` bytes at a
time, so a file of any size is sent without being held in memory, and the node streams it
to disk in turn. Its length is known before a byte is sent, so the request carries a
``Content-Length`` and the node can refuse a body that is too large before it arrives. A
submission without files is sent as plain JSON.

The same bytes are produced each time :meth:`Upload.pieces` is called (the boundary is
drawn from the submission itself), so a request asked again (and its ``Idempotency-Key``, which the
node checks against the hash of the submission and its files) matches the first. A file
that changes size while it is read is refused in a sentence.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from exchange.cli.errors import CliError, UsageError
from exchange.records import CONTENT_TYPES, MAX_ATTACHMENT_SIZE, MAX_ATTACHMENTS
from exchange.records.content_checks import DOCX, JPEG, ODT, PDF, PNG, TEXT

#: Bytes read from a file at a time.
READ_SIZE: Final = 1024 * 1024

#: Attachment content types by file extension: exactly the types records may carry.
CONTENT_TYPE_BY_EXTENSION: Final = {
    ".pdf": PDF,
    ".png": PNG,
    ".jpg": JPEG,
    ".jpeg": JPEG,
    ".docx": DOCX,
    ".odt": ODT,
    ".txt": TEXT,
}
assert set(CONTENT_TYPE_BY_EXTENSION.values()) == set(CONTENT_TYPES)


@dataclass(frozen=True)
class FilePart:
    """One attachment: the file, the name and content type it is sent under, its size."""

    path: Path
    name: str
    content_type: str
    size: int

    @classmethod
    def of(cls, path: str, content_type: str) -> FilePart:
        """Return the part for ``path``, its size taken now (checked again as it is read)."""
        target = Path(path)
        return cls(target, target.name, content_type, target.stat().st_size)


def attachment_parts(paths: Sequence[str]) -> list[FilePart]:
    """Return the parts for ``paths``, each checked before anything is sent.

    A file must have an extension of a type records may carry, exist, and hold 1 byte to
    the records format's ceiling for one file; at most the records' number of attachments.
    What the node takes is bounded further by its ``[limits] max_envelope_bytes``, and the
    node says so (413) when a submission is over it: that is not checked here.
    """
    if len(paths) > MAX_ATTACHMENTS:
        raise UsageError(f"at most {MAX_ATTACHMENTS} attachments")
    parts = []
    for path in paths:
        content_type = CONTENT_TYPE_BY_EXTENSION.get(Path(path).suffix.lower())
        if content_type is None:
            allowed = ", ".join(sorted(CONTENT_TYPE_BY_EXTENSION))
            raise CliError(f"attachment {path}: only {allowed} files can be attached")
        try:
            part = FilePart.of(path, content_type)
        except OSError as exc:
            reason = (exc.strerror or type(exc).__name__).rstrip(".").lower()
            raise CliError(f"attachment {path}: {reason}") from None
        if not part.path.is_file():
            raise CliError(f"attachment {path}: is not a file")
        if part.size == 0:
            raise CliError(f"attachment {path}: is empty")
        if part.size > MAX_ATTACHMENT_SIZE:
            raise CliError(
                f"attachment {path}: is larger than the records format allows for one "
                f"attachment ({MAX_ATTACHMENT_SIZE:,} bytes)"
            )
        parts.append(part)
    return parts


def _ascii_json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=True).encode("ascii")


def _disposition(part: FilePart) -> bytes:
    """Return a file part's Content-Disposition: an ASCII name, and the name in UTF-8."""
    plain = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in part.name
    )
    encoded = urllib.parse.quote(part.name, safe="")
    return (
        f'form-data; name="attachment"; filename="{plain}"; filename*=utf-8\'\'{encoded}'
    ).encode("ascii")


@dataclass(frozen=True)
class Upload:
    """The submission ``fields`` and the files ``parts`` as one request body, in pieces."""

    fields: Mapping[str, Any]
    parts: Sequence[FilePart]

    @property
    def boundary(self) -> str:
        """The multipart boundary: drawn from the fields and the files' names and sizes.

        The same upload always has the same bytes; a file would have to hold this hash of
        its own size to hold the boundary.
        """
        digest = hashlib.sha256(_ascii_json(dict(self.fields)))
        for part in self.parts:
            digest.update(f"\n{part.name}\n{part.content_type}\n{part.size}".encode())
        return "exchange-" + digest.hexdigest()[:40]

    @property
    def content_type(self) -> str:
        """The body's media type: multipart with files, JSON without."""
        if not self.parts:
            return "application/json"
        return f"multipart/form-data; boundary={self.boundary}"

    def _heads(self) -> list[bytes]:
        """Return what comes before each file's bytes (the first holds the submission)."""
        if not self.fields:
            raise ValueError("fields must not be empty")
        dash = f"--{self.boundary}\r\n".encode("ascii")
        opening = (
            dash
            + b'Content-Disposition: form-data; name="submission"\r\n'
            + b"Content-Type: application/json\r\n\r\n"
            + _ascii_json(dict(self.fields))
            + b"\r\n"
        )
        heads = []
        for index, part in enumerate(self.parts):
            heads.append(
                (b"\r\n" if index else opening)
                + dash
                + b"Content-Disposition: "
                + _disposition(part)
                + b"\r\nContent-Type: "
                + part.content_type.encode("ascii")
                + b"\r\n\r\n"
            )
        return heads

    def _closing(self) -> bytes:
        return f"\r\n--{self.boundary}--\r\n".encode("ascii")

    @property
    def length(self) -> int:
        """The body's exact length in bytes."""
        if not self.parts:
            return len(_ascii_json(dict(self.fields)))
        fixed = sum(len(head) for head in self._heads()) + len(self._closing())
        return fixed + sum(part.size for part in self.parts)

    def pieces(self) -> Iterator[bytes]:
        """Yield the body, reading each file as it goes."""
        if not self.parts:
            yield _ascii_json(dict(self.fields))
            return
        for head, part in zip(self._heads(), self.parts, strict=True):
            yield head
            yield from _read(part)
        yield self._closing()


def _read(part: FilePart) -> Iterator[bytes]:
    """Yield ``part``'s file in pieces, refusing a file whose size changed."""
    read = 0
    try:
        with part.path.open("rb") as handle:
            while True:
                block = _read_full(handle.fileno(), READ_SIZE)
                if not block:
                    break
                read += len(block)
                if read > part.size:
                    break
                yield block
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).rstrip(".").lower()
        raise CliError(f"attachment {part.path}: {reason}") from None
    if read != part.size:
        raise CliError(
            f"attachment {part.path} changed size while it was being sent, so it was not sent"
        )


def _read_full(fd: int, size: int) -> bytes:
    """Read ``size`` bytes, or fewer only at the end of the file."""
    pieces = []
    wanted = size
    while wanted:
        piece = os.read(fd, wanted)
        if not piece:
            break
        pieces.append(piece)
        wanted -= len(piece)
    return b"".join(pieces)
