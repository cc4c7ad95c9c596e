"""What a node accepts: the format's ceilings bounded by the node's ``max_envelope_bytes``.

The record container allows each attachment up to 1 GiB and a CP file up to 2 GiB in all
(docs/records.md §5); those are the format's ceilings. A node takes only what, sealed, fits
in an envelope of its ``[limits] max_envelope_bytes`` (a receiving node refuses a longer
one before reading it). :func:`node_limits` works out, once per configuration, how large
each file and all the files of a record of each kind may be on this node, for the staff
API, the web send journey and their messages.

The bound is deliberately conservative: it assumes the longest envelope header, a record
of its kind's largest size and the most attachments, so whatever a page or an answer says
will fit, does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Final

from exchange.envelope.format import max_content_length
from exchange.records import KINDS, MAX_ATTACHMENT_SIZE, kind_spec, max_container_len

#: The setting that bounds everything here, as messages name it.
SETTING: Final = "[limits] max_envelope_bytes"


@dataclass(frozen=True, slots=True)
class AttachmentLimits:
    """The most bytes one file (``per_file``) and all files (``total``) of a record may be."""

    per_file: int
    total: int


@dataclass(frozen=True, slots=True)
class NodeLimits:
    """What a node with ``max_envelope_bytes`` accepts: content, and files by record kind."""

    max_envelope_bytes: int
    max_content: int
    by_kind: dict[str, AttachmentLimits]

    def attachments(self, kind: str) -> AttachmentLimits:
        """Return the limits of ``kind``'s attachments (``ValueError`` for an unknown kind)."""
        kind_spec(kind)
        return self.by_kind[kind]

    def too_large(self, content_length: int) -> str | None:
        """Return the refusal of a container of ``content_length`` bytes, or None if it fits."""
        if content_length <= self.max_content:
            return None
        return (
            f"the record and its files come to {content_length} bytes, more than the "
            f"{self.max_content} bytes that fit in an envelope of this node's {SETTING} "
            f"({self.max_envelope_bytes} bytes)"
        )


@cache
def node_limits(max_envelope_bytes: int) -> NodeLimits:
    """Return what a node whose ``[limits] max_envelope_bytes`` is given accepts."""
    if max_envelope_bytes < 0:
        raise ValueError("max_envelope_bytes must not be negative")
    content = max_content_length(max_envelope_bytes)
    by_kind = {}
    for kind, spec in KINDS.items():
        # Everything in the largest container of the kind but its attachments' bytes.
        overhead = max_container_len(kind) - spec.max_attachments_total
        total = max(0, min(spec.max_attachments_total, content - overhead))
        by_kind[kind] = AttachmentLimits(min(MAX_ATTACHMENT_SIZE, total), total)
    return NodeLimits(max_envelope_bytes, content, by_kind)
