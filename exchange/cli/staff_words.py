"""How the staff commands show what the node answers: organisations by name, London times.

People read organisations by name (the directory's, fetched once from the node with
``GET /api/v1/organisations``) with the id after it, times and deadlines in Europe/London in
the words the web pages use (:mod:`exchange.words`), and an envelope by the short reference
the pages show. Text from the node is cleaned for one terminal line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from exchange.cli.errors import CliError
from exchange.cli.staff_client import StaffClient, clean
from exchange.words import deadline_words, kind_name, london_time, short_reference


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
