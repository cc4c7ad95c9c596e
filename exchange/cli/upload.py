"""A submission's JSON body with its attachments base64-encoded from their files as it is sent.

``POST /api/v1/envelopes`` takes one JSON object whose ``attachments`` carry each file as
``content_base64``. Building that string in memory would need the file and a third more
again; instead :class:`Upload` writes the object's fields, then for each attachment its name
and content type, then the base64 of the file read :data:`READ_SIZE` bytes at a time (a
multiple of 3, so the encoded pieces join into exactly the base64 of the whole file), then
the closing brackets. Its length is known before a byte is sent (base64 of *n* bytes is
``4 * ceil(n / 3)`` characters, and the JSON text is ASCII), so the request carries a
``Content-Length`` and the node can refuse a body that is too large before it arrives.

The same bytes are produced each time :meth:`Upload.pieces` is called, so a request asked
again (and its ``Idempotency-Key``, which the node checks against the body's hash) matches
the first. A file that changes size while it is read is refused in a sentence.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from exchange.cli.errors import CliError, UsageError
from exchange.records import CONTENT_TYPES, MAX_ATTACHMENT_SIZE, MAX_ATTACHMENTS
from exchange.records.content_checks import DOCX, JPEG, ODT, PDF, PNG, TEXT

#: Bytes read from a file at a time: a multiple of 3 (see the module's docstring), 768 KiB.
READ_SIZE: Final = 3 * 256 * 1024

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


def _encoded_size(size: int) -> int:
    return 4 * ((size + 2) // 3)


@dataclass(frozen=True)
class Upload:
    """The JSON object ``fields`` plus ``attachments`` made from ``parts``, as pieces."""

    fields: Mapping[str, Any]
    parts: Sequence[FilePart]

    def _heads(self) -> list[bytes]:
        """Return the JSON before each attachment's base64 (the first opens the object)."""
        if not self.fields:
            raise ValueError("fields must not be empty")
        opening = _ascii_json(dict(self.fields))[:-1] + b', "attachments": ['
        heads = []
        for index, part in enumerate(self.parts):
            head = (
                (b"" if index else opening)
                + (b", " if index else b"")
                + b'{"name": '
                + _ascii_json(part.name)
                + b', "content_type": '
                + _ascii_json(part.content_type)
                + b', "content_base64": "'
            )
            heads.append(head)
        return heads

    @property
    def length(self) -> int:
        """The body's exact length in bytes."""
        if not self.parts:
            return len(_ascii_json(dict(self.fields)))
        fixed = sum(len(head) + len(b'"}') for head in self._heads()) + len(b"]}")
        return fixed + sum(_encoded_size(part.size) for part in self.parts)

    def pieces(self) -> Iterator[bytes]:
        """Yield the body, reading and encoding each file as it goes."""
        if not self.parts:
            yield _ascii_json(dict(self.fields))
            return
        for head, part in zip(self._heads(), self.parts, strict=True):
            yield head
            yield from _encoded(part)
            yield b'"}'
        yield b"]}"


def _encoded(part: FilePart) -> Iterator[bytes]:
    """Yield the base64 of ``part``'s file, refusing a file whose size changed."""
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
                yield base64.b64encode(block)
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
