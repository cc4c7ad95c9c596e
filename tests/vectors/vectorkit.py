"""What the three vector generators share: the fixed clock, the organisations, the keys and --check.

The envelope (``generate.py``), receipt (``receipts_generate.py``) and record
(``records/generate.py``) generators each run as a script from the repository root; each
finds this module beside it on ``sys.path``. Everything here is deterministic: keys are
derived from fixed labels and names, and the clock is the constant :data:`NOW`. Changing a
value here changes the bytes of every vector set that uses it, so ``--check`` of each
generator guards it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from exchange.keys.ids import OrgId
from exchange.keys.keypairs import EncryptionKey, OrgKeyPair, SigningKey

KEY_LABEL: Final = b"exchange/v1/test-vector-key\x00"

#: The fixed clock of the envelope and receipt vectors: 2026-01-01T00:00:00Z.
NOW: Final = 1_767_225_600
YEAR: Final = 365 * 24 * 3600

SCHOOL: Final = "urn:106123"
FRONT_DOOR: Final = "la:356"
NURSES: Final = "ods:X26ABC"
THIRD_PARTY: Final = "la:357"


@dataclass(frozen=True)
class Generation:
    """One key generation of one organisation, and how the directory lists it."""

    org: str
    name: str
    not_before: int
    not_after: int
    revoked: bool = False
    listed: bool = True

    def seed(self, algorithm: str) -> bytes:
        """Return the fixed secret of this generation for ``algorithm``."""
        return hashlib.sha256(
            b"\x00".join([KEY_LABEL + algorithm.encode(), self.org.encode(), self.name.encode()])
        ).digest()

    @property
    def pair(self) -> OrgKeyPair:
        """Return the key pair built from the fixed secrets."""
        return OrgKeyPair(
            OrgId(self.org), SigningKey(self.seed("ed25519")), EncryptionKey(self.seed("x25519"))
        )


def current(org: str, *, listed: bool = True) -> Generation:
    """Return ``org``'s ``current`` generation: valid from a year before NOW to a year after."""
    return Generation(org, "current", NOW - YEAR, NOW + YEAR, listed=listed)


def find_generation(generations: Iterable[Generation], org: str, name: str) -> Generation:
    """Return the generation ``name`` of ``org`` among ``generations``."""
    for gen in generations:
        if gen.org == org and gen.name == name:
            return gen
    raise KeyError((org, name))


def key_json(gen: Generation, *, encryption_key_id: bool) -> dict[str, Any]:
    """Return one generation's secrets, public keys and key ids (hex), in the files' order."""
    pair = gen.pair
    out = {
        "org": gen.org,
        "generation": gen.name,
        "ed25519_seed": gen.seed("ed25519").hex(),
        "ed25519_public": pair.signing.public.raw.hex(),
        "ed25519_key_id": pair.signing.public.key_id.hex(),
        "x25519_secret": gen.seed("x25519").hex(),
        "x25519_public": pair.encryption.public.raw.hex(),
    }
    if encryption_key_id:
        out["x25519_key_id"] = pair.encryption.public.key_id.hex()
    return out


#: The public-key fields a directory listing may carry, by name.
_DIRECTORY_KEYS: Final = {
    "signing_key_id": lambda pair: pair.signing.public.key_id.hex(),
    "signing_public": lambda pair: pair.signing.public.raw.hex(),
    "encryption_public": lambda pair: pair.encryption.public.raw.hex(),
}


def directory_json(generations: Iterable[Generation], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Return each listed generation: its ``keys`` (in that order), window and revocation."""
    return [
        {
            "org": gen.org,
            "generation": gen.name,
            **{key: _DIRECTORY_KEYS[key](gen.pair) for key in keys},
            "not_before": gen.not_before,
            "not_after": gen.not_after,
            "revoked": gen.revoked,
        }
        for gen in generations
        if gen.listed
    ]


def render(vector: dict[str, Any]) -> str:
    """Return the file text of one envelope or receipt vector."""
    return json.dumps(vector, indent=1) + "\n"


def write_or_check(
    files: dict[Path, str],
    on_disk: set[Path],
    base: Path,
    *,
    check: bool,
    report: TextIO | None = None,
) -> int:
    """Write ``files`` and delete stale ``on_disk`` ones; with ``check`` only compare.

    ``on_disk`` is every vector file that exists now; ``base`` is the folder names are
    reported relative to. With ``check`` each difference is written to ``report``
    (standard error unless given) and the status is 1 if there is any.
    """
    if check:
        problems = [
            f"missing or different: {path.relative_to(base)}"
            for path, text in files.items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text
        ]
        problems += [f"not generated: {p.relative_to(base)}" for p in sorted(on_disk - set(files))]
        out = report or sys.stderr
        for line in problems:
            out.write(line + "\n")
        return 1 if problems else 0
    for stale in on_disk - set(files):
        stale.unlink()
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return 0


def generator_main(
    description: str | None,
    all_files: Callable[[], dict[Path, str]],
    out: Path,
    base: Path,
    argv: Sequence[str] | None = None,
) -> int:
    """Run a vector generator: write its files under ``out``, or with ``--check`` compare.

    ``all_files`` makes every vector file's path and text; the files on disk are those in
    ``out``'s ``positive`` and ``negative`` folders, reported relative to ``base``.
    """
    parser = argparse.ArgumentParser(description=(description or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    files = all_files()
    on_disk = {p for d in ("positive", "negative") for p in (out / d).glob("*.json")}
    status = write_or_check(files, on_disk, base, check=args.check)
    if not args.check:
        sys.stdout.write(f"wrote {len(files)} vectors to {out}\n")
    return status


def run_generator_check(script: Path) -> subprocess.CompletedProcess[str]:
    """Run a vector generator with ``--check`` from the repository root; return the run."""
    return subprocess.run(
        [sys.executable, str(script), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
