"""The words pages use for times, record kinds and organisations (GOV.UK style).

The words that need no request (times in Europe/London, deadlines, record kinds, short
references) are in :mod:`exchange.words`, shared with the ``exchange`` command; this adds
organisations by their directory name, never by identifier when a name is known.
"""

from __future__ import annotations

from aiohttp import web

from exchange.keys.errors import KeysError
from exchange.keys.ids import OrgId
from exchange.web.app import web_service
from exchange.words import (
    KIND_NAMES,
    date_words,
    day_words,
    deadline_words,
    kind_name,
    london_time,
    short_reference,
)

__all__ = [
    "KIND_NAMES",
    "date_words",
    "day_words",
    "deadline_words",
    "kind_name",
    "london_time",
    "organisation_name",
    "short_reference",
]


def organisation_name(request: web.Request, org: OrgId) -> str:
    """Return the directory's name of an organisation (its id if the directory has none)."""
    try:
        return web_service(request).directory.organisation(org).name
    except KeysError:
        return org
