"""Shared fixtures of the envelope tests: a directory fake, fixed organisations, vectors.

The organisations and keys are those of the vector generator (tests/vectors/generate.py),
which is loaded here by path so tests can also use its test-only sealer to build envelopes
with exactly one defect.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from exchange.envelope import Opener, Recipient
from exchange.keys.errors import KeyLookupError
from exchange.keys.ids import KeyId, OrgId
from exchange.keys.keypairs import EncryptionKey, OrgKeyPair, SigningKey, SigningPublicKey

VECTORS_DIR = Path(__file__).resolve().parents[1] / "vectors"


def _load_generate() -> ModuleType:
    # The generator imports its shared helpers (vectorkit) from its own folder, as it does
    # when run as a script.
    if str(VECTORS_DIR) not in sys.path:
        sys.path.append(str(VECTORS_DIR))
    spec = importlib.util.spec_from_file_location("vector_generate", VECTORS_DIR / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


GENERATE = _load_generate()


@dataclass(frozen=True)
class DirectoryEntry:
    """One signing key the directory lists, with its validity window and revocation."""

    org_id: str
    public: SigningPublicKey
    not_before: int
    not_after: int
    revoked: bool = False


class StaticDirectory:
    """An in-memory directory that satisfies ``exchange.envelope.SenderKeys``.

    A key is valid at ``at`` when ``not_before <= at < not_after`` (as in exchange.keys.directory);
    a revoked key is refused at every time.
    """

    def __init__(self, entries: Iterable[DirectoryEntry]) -> None:
        self._entries = tuple(entries)

    def signing_key_for(self, org_id: OrgId, key_id: KeyId, at: int) -> SigningPublicKey:
        """Return the signing key or raise ``KeyLookupError`` with the reason."""
        entries = [e for e in self._entries if e.org_id == org_id]
        if not entries:
            raise KeyLookupError(f"{org_id} is not in the directory", "unknown-organisation")
        for entry in entries:
            if entry.public.key_id != key_id:
                continue
            if entry.revoked:
                raise KeyLookupError(f"the key of {org_id} was revoked", "revoked")
            if not entry.not_before <= at < entry.not_after:
                raise KeyLookupError(f"the key of {org_id} was not valid then", "not-valid")
            return entry.public
        raise KeyLookupError(f"{org_id} has no such signing key", "unknown-key")


@dataclass(frozen=True)
class VectorKeys:
    """Everything a vector file says about keys, as objects."""

    now: int
    directory: StaticDirectory
    #: Every key generation of each organisation.
    by_org: dict[str, list[OrgKeyPair]]
    by_generation: dict[tuple[str, str], OrgKeyPair]

    def recipients(self, seal_inputs: dict[str, Any]) -> list[Recipient]:
        """Return the vector's recipients in the order given to seal."""
        out = []
        for r in seal_inputs["recipients"]:
            (pair,) = [
                p
                for p in self.by_org[r["org"]]
                if p.encryption.public.key_id.hex() == r["x25519_key_id"]
            ]
            out.append(Recipient(OrgId(r["org"]), pair.encryption.public))
        return out


def keys_from_vector(vector: dict[str, Any]) -> VectorKeys:
    """Build the key pairs and the directory a vector file describes, from its hex alone."""
    by_org: dict[str, list[OrgKeyPair]] = {}
    by_generation = {}
    publics = {}
    for k in vector["keys"]:
        pair = OrgKeyPair(
            OrgId(k["org"]),
            SigningKey(bytes.fromhex(k["ed25519_seed"])),
            EncryptionKey(bytes.fromhex(k["x25519_secret"])),
        )
        by_org.setdefault(k["org"], []).append(pair)
        by_generation[k["org"], k["generation"]] = pair
        publics[k["ed25519_key_id"]] = pair.signing.public
    entries = [
        DirectoryEntry(
            org_id=d["org"],
            public=SigningPublicKey.from_bytes(bytes.fromhex(d["signing_public"])),
            not_before=d["not_before"],
            not_after=d["not_after"],
            revoked=d["revoked"],
        )
        for d in vector["directory"]
    ]
    return VectorKeys(vector["now"], StaticDirectory(entries), by_org, by_generation)


class World:
    """The generator's organisations with their current keys, a directory and a clock."""

    def __init__(self, now: int, directory: StaticDirectory, pairs: dict[str, OrgKeyPair]) -> None:
        self.now = now
        self.directory = directory
        self.pairs = pairs

    def __repr__(self) -> str:
        return f"World(now={self.now}, orgs={len(self.pairs)})"

    def recipients(self, orgs: Sequence[str]) -> list[Recipient]:
        """Return ``orgs`` as recipients under their current encryption keys."""
        return [Recipient(OrgId(o), self.pairs[o].encryption.public) for o in orgs]

    def keys(self, org: str) -> list[OrgKeyPair]:
        """Return the key pairs ``org`` opens with."""
        return [self.pairs[org]]


def open_streaming(opener: Opener, data: bytes, pieces: Iterable[int]) -> bytes:
    """Feed ``data`` to ``opener`` cut at the offsets ``pieces``, finish, return the content."""
    points = sorted({p % (len(data) + 1) for p in pieces})
    out, start = [], 0
    for p in [*points, len(data)]:
        out.append(opener.feed(data[start:p]))
        start = p
    opener.finish_opened()
    return b"".join(out)


def replay(draws: Sequence[bytes]) -> Callable[[int], bytes]:
    """Return a random source that hands out ``draws`` in order and nothing else."""
    it: Iterator[bytes] = iter(draws)

    def random(n: int) -> bytes:
        value = next(it)
        assert len(value) == n
        return value

    return random


@pytest.fixture(scope="session")
def generate() -> ModuleType:
    """Return the vector generator module (its fixed keys, ShakeRandom, build_envelope)."""
    return GENERATE


@pytest.fixture(scope="session")
def world() -> World:
    """Return the fixed organisations under their current keys, and a directory of them."""
    gens = [g for g in GENERATE.GENERATIONS if g.listed]
    entries = [
        DirectoryEntry(g.org, g.pair.signing.public, g.not_before, g.not_after, g.revoked)
        for g in gens
    ]
    pairs = {g.org: g.pair for g in GENERATE.GENERATIONS if g.name == "current"}
    return World(GENERATE.NOW, StaticDirectory(entries), pairs)


@pytest.fixture(scope="session")
def vector_keys() -> Callable[[dict[str, Any]], VectorKeys]:
    """Return the function that turns a vector file's keys and directory into objects."""
    return keys_from_vector


@pytest.fixture(scope="session")
def replay_random() -> Callable[[Sequence[bytes]], Callable[[int], bytes]]:
    """Return the function that makes a random source replaying recorded draws."""
    return replay


@pytest.fixture(scope="session")
def stream() -> Callable[[Opener, bytes, Iterable[int]], bytes]:
    """Return the function that feeds an Opener in pieces and finishes it."""
    return open_streaming
