"""A new generation of an organisation's keys and the public entry that describes it.

``exchange keys create`` and ``exchange init`` both make keys this way: a fresh key pair, its
validity window, and the public directory entry (``.pub.json``) the organisation sends to
the directory authority, with the routes it is reached by.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from exchange.keys.directory import KeyGeneration, Organisation, OrgKind, Route, org_entry_to_json
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams, encode_key_file
from exchange.keys.keypairs import OrgKeyPair

DAY: Final = 86_400
DEFAULT_VALID_DAYS: Final = 730


@dataclass(frozen=True)
class NewKeys:
    """A key pair just made, with the public entry naming its generation."""

    pair: OrgKeyPair = field(repr=False)
    entry: Organisation

    @property
    def generation(self) -> KeyGeneration:
        """The entry's one key generation: this pair's public keys and validity."""
        return self.entry.keys[0]

    def key_file(self, secret: bytes, params: KdfParams) -> bytes:
        """Return the key file: the pair encrypted with ``secret``."""
        return encode_key_file(self.pair, secret, params=params)

    def public_entry(self) -> bytes:
        """Return the public entry file's bytes (JSON, for the directory authority)."""
        text = json.dumps(org_entry_to_json(self.entry), indent=1, sort_keys=True) + "\n"
        return text.encode("utf-8")


def new_org_keys(
    org: OrgId,
    name: str,
    kind: OrgKind,
    *,
    not_before: int,
    valid_days: int = DEFAULT_VALID_DAYS,
    routes: Sequence[Route] = (),
) -> NewKeys:
    """Make a key pair for ``org`` valid ``valid_days`` from ``not_before``, with its entry."""
    pair = OrgKeyPair.generate(org)
    generation = KeyGeneration(
        signing=pair.signing.public,
        encryption=pair.encryption.public,
        not_before=not_before,
        not_after=not_before + valid_days * DAY,
    )
    return NewKeys(pair, Organisation(org, name, kind, (generation,), tuple(routes)))
