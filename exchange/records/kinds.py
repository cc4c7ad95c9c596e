"""The record kinds, their schema versions and their size limits (docs/records.md §1, §5).

Schemas are files shipped inside the package (``exchange/records/schemas``) and read with
:mod:`importlib.resources`, so this module touches no path of the host and works from a
wheel or a zip as well as from a source tree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

KIB: Final = 1024
MIB: Final = 1024 * KIB
GIB: Final = 1024 * MIB

#: Most attachments one record may carry. Fifty covers a long CP file (chronology, notes of
#: concern, several sets of conference minutes and plans) while bounding per-item work.
MAX_ATTACHMENTS: Final = 50
#: Largest single attachment: the format's ceiling, not what a node accepts. A whole paper
#: CP file scanned at archive quality is one PDF of hundreds of megabytes, so the ceiling is
#: 1 GiB (a u32 holds it); a node accepts only what fits in its ``[limits]
#: max_envelope_bytes`` (exchange.sharing.limits), 64 MiB unless raised.
MAX_ATTACHMENT_SIZE: Final = GIB


@dataclass(frozen=True, slots=True)
class KindSpec:
    """A record kind: its current schema version and the limits of its documents.

    ``max_document`` bounds the record's JSON text; ``max_attachments_total`` bounds the sum
    of its attachments' sizes (0: the kind carries none); ``manifest`` names the field that
    lists the attachments (``None``: the kind has no manifest and so no attachments).
    """

    kind: str
    version: int
    max_document: int
    max_attachments_total: int
    manifest: str | None


#: Every kind this version understands. The JSON limits are generous for typed-in forms (a
#: referral with a long description and 30 household members is under 64 KiB) and bound the
#: work a hostile sender can cause; the attachment totals follow the kinds' real contents: a
#: CP file may be a whole paper file scanned (several large PDFs), a referral a few
#: supporting documents. These are the format's ceilings; a node's own setting bounds them
#: further (docs/records.md §5).
KINDS: Final[dict[str, KindSpec]] = {
    spec.kind: spec
    for spec in (
        KindSpec("referral", 1, 256 * KIB, 50 * MIB, "attachments"),
        KindSpec("cp-file-transfer", 1, 256 * KIB, 2 * GIB, "documents"),
        KindSpec("lac-record", 1, 256 * KIB, 0, None),
        KindSpec("outcome", 1, 64 * KIB, 0, None),
        KindSpec("information-request", 1, 64 * KIB, 0, None),
    )
}


def kind_spec(kind: str) -> KindSpec:
    """Return the :class:`KindSpec` of ``kind`` or raise ``ValueError`` naming the argument."""
    if not isinstance(kind, str):
        raise TypeError("kind must be a string")
    spec = KINDS.get(kind)
    if spec is None:
        raise ValueError(f"kind must be one of: {', '.join(KINDS)}")
    return spec


def schema_name(kind: str, version: int) -> str:
    """Return the file name of a kind's schema, for example ``referral.v1.schema.json``."""
    return f"{kind}.v{version}.schema.json"


@cache
def load_schema(kind: str) -> dict[str, Any]:
    """Return the parsed JSON Schema of ``kind``'s current version (cached; do not mutate)."""
    spec = kind_spec(kind)
    text = (
        resources.files("exchange.records")
        .joinpath("schemas", schema_name(kind, spec.version))
        .read_text(encoding="utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema
