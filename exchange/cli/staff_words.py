"""How the staff commands show what the node answers: organisations by name, London times.

People read organisations by name (the directory's, fetched once from the node with
``GET /api/v1/organisations``) with the id after it, times and deadlines in Europe/London in
the words the web pages use (:mod:`exchange.words`), and an envelope by the short reference
the pages show. Text from the node is cleaned for one terminal line. :func:`show` prints an
answer either way: as it is with ``--json`` (the machine form, unchanged), else as lines.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from exchange.cli import common
from exchange.cli.errors import CliError
from exchange.cli.staff_client import StaffClient, clean
from exchange.cli.staff_options import wants_json
from exchange.words import deadline_words, kind_name, london_time, short_reference

#: What is said when an answer cannot be shown as lines (a node of another version, say).
NOT_AS_EXPECTED = "the node's answer is not in the expected form (print it with --json)"


@dataclass(frozen=True)
class Names:
    """The directory's names of organisations, by id (empty if the node could not say)."""

    by_id: dict[str, str]

    @classmethod
    def fetch(cls, client: StaffClient) -> Names:
        """Ask the node for the directory's names; an older node without the list gives none."""
        try:
            answer = client.call("GET", "/api/v1/organisations")
            listed = answer["organisations"]
            return cls({str(o["id"]): str(o["name"]) for o in listed})
        except (CliError, KeyError, TypeError):
            return cls({})

    def of(self, org: object) -> str:
        """Return ``Name (id)``, or the id alone when the directory has no name for it."""
        name = self.by_id.get(str(org))
        return clean(org, 60) if name is None else f"{clean(name, 100)} ({clean(org, 60)})"


def london(moment: object) -> str:
    """Return unix seconds in Europe/London words (``-`` when unknown)."""
    if isinstance(moment, bool) or not isinstance(moment, int | float):
        return "-"
    return london_time(moment)


def deadline(value: object) -> str:
    """Return a ``{"due", "rule"}`` deadline in words, or ``-`` when there is none."""
    if not isinstance(value, dict) or not isinstance(value.get("due"), str):
        return "-"
    try:
        due = date.fromisoformat(value["due"])
    except ValueError:
        return "-"
    return deadline_words(due)


def kind(value: object) -> str:
    """Return a record kind in words."""
    return kind_name(clean(value, 40))


def reference(envelope_id: object) -> str:
    """Return the short reference the pages show for an envelope id (hex)."""
    try:
        return short_reference(bytes.fromhex(str(envelope_id)))
    except ValueError:
        return "-"


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Return ``rows`` as lines whose columns line up (the last column is not padded)."""
    if not rows:
        return []
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]


def show(
    args: argparse.Namespace,
    client: StaffClient,
    answer: Any,
    lines: Callable[[Any, Names], list[str]],
    *,
    unexpected: str = NOT_AS_EXPECTED,
) -> None:
    """Print ``answer`` as JSON (``--json``), or as the lines ``lines`` makes of it for people.

    Only the lines fetch the organisations' names; an answer they cannot read is refused
    with ``unexpected`` in one line rather than shown in part.
    """
    if wants_json(args):
        common.say(json.dumps(answer, indent=2, ensure_ascii=True))
        return
    try:
        text = lines(answer, Names.fetch(client))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise CliError(unexpected) from None
    for line in text:
        common.say(line)
