"""``exchange demo``: the envelope, then two nodes exchanging a referral, on loopback.

Three organisations (a primary school, Stockport's children's front door and a school
nursing team) and one bystander (a neighbouring local authority) get keys, stored encrypted
on disk as a node would store them. A directory authority signs the directory listing them.
The school seals a synthetic referral to the front door and the nurses; each opens it; the
bystander cannot; and a one-byte change to the sealed file is detected. Part 2
(``exchange.demo.node_part``) runs a school node and an LA node and follows a referral through
delivery, opening, acknowledgement and the receipts' return. The demo prints what it did,
never the record's content, as the real service never does.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from exchange.demo.node_part import run_node_demo
from exchange.demo.routes_part import run_routes_demo
from exchange.demo.sharing_part import run_sharing_demo
from exchange.demo.web_part import serve_web_demo, should_serve
from exchange.envelope import OpenError, Recipient
from exchange.files import open_to_file, seal_file, verify_file, write_new_file
from exchange.keys.directory import (
    Directory,
    KeyGeneration,
    Organisation,
    OrgKind,
    load_directory,
    merge_directory,
)
from exchange.keys.directory import sign_directory as sign_directory_note
from exchange.keys.ids import OrgId
from exchange.keys.keyfile import KdfParams, decode_key_file, encode_key_file
from exchange.keys.keypairs import OrgKeyPair, SigningKey
from exchange.keys.notes import NoteSigner
from exchange.logs import configure

_YEAR = 365 * 24 * 3600


@dataclass(frozen=True)
class _Party:
    org_id: OrgId
    name: str
    kind: OrgKind


PARTIES = (
    _Party(OrgId("urn:106123"), "Hillside Primary School (demo)", "school"),
    _Party(OrgId("la:356"), "Stockport children's front door (demo)", "la"),
    _Party(OrgId("ods:X26ABC"), "Stockport school nursing team (demo)", "nhs"),
    _Party(OrgId("la:357"), "Neighbouring local authority (demo)", "la"),
)


def synthetic_referral() -> bytes:
    """Return a made-up referral: every person and identifier in it is fictional."""
    record = {
        "kind": "referral",
        "referrer": {"role": "Designated Safeguarding Lead", "organisation": "urn:106123"},
        "child": {
            "given_name": "Demo",
            "family_name": "Child",
            "date_of_birth": "2016-01-01",
            "upn": "A000000000000",
        },
        "concerns": ["neglect"],
        "description": "Synthetic text for the demonstration only.",
        "parents_informed": True,
    }
    return json.dumps(record, indent=2).encode("utf-8")


def _say(line: str) -> None:
    print(line)  # noqa: T201 - the demo's output is its purpose


NAMES = {p.org_id: p.name for p in PARTIES}


def _enrol(folder: Path, now: int) -> tuple[dict[OrgId, OrgKeyPair], Directory]:
    """Create every party's keys on disk and a signed directory listing them."""
    passphrase = secrets.token_urlsafe(24).encode("ascii")
    pairs: dict[OrgId, OrgKeyPair] = {}
    entries = []
    for party in PARTIES:
        pair = OrgKeyPair.generate(party.org_id)
        key_file = folder / f"{party.org_id.replace(':', '-')}.key"
        write_new_file(key_file, encode_key_file(pair, passphrase, params=KdfParams.default()))
        # Read back as a node would: the key only ever exists decrypted in memory.
        pairs[party.org_id] = decode_key_file(key_file.read_bytes(), passphrase)
        generation = KeyGeneration(
            signing=pair.signing.public,
            encryption=pair.encryption.public,
            not_before=now - 60,
            not_after=now + 2 * _YEAR,
        )
        entries.append(Organisation(party.org_id, party.name, party.kind, (generation,)))
    _say(
        f"created keys for {len(PARTIES)} organisations; each key file is encrypted with "
        "a passphrase (Argon2id) and readable only by its owner (mode 0600)"
    )
    authority = NoteSigner("directory.exchange.example", SigningKey.generate())
    directory_file = folder / "directory.note"
    draft = merge_directory(None, entries, version=1, issued=now, authority=authority.verifier.name)
    write_new_file(directory_file, sign_directory_note(draft, authority), mode=0o644)
    directory = load_directory(directory_file.read_bytes(), [authority.verifier])
    _say(
        f"the directory authority signed directory version {directory.version} listing "
        + ", ".join(directory.organisations)
    )
    return pairs, directory


def _send_and_open(
    folder: Path, now: int, pairs: dict[OrgId, OrgKeyPair], directory: Directory
) -> Path | None:
    """Seal the referral to two parties and open it as each; return the envelope's path."""
    school, front_door, nurses, _ = (pairs[p.org_id] for p in PARTIES)
    recipients = [
        Recipient(org, directory.current_keys(org, now).encryption)
        for org in (front_door.org_id, nurses.org_id)
    ]
    record_file = folder / "referral.json"
    write_new_file(record_file, synthetic_referral())
    envelope_file = folder / "referral.env"
    with record_file.open("rb") as source:
        sealed = seal_file(
            source, envelope_file, school, recipients, record_kind="referral", created=now
        )
    _say(
        f"{NAMES[school.org_id]} sealed a synthetic referral ({sealed.content_length} "
        f"bytes) for {' and '.join(NAMES[r] for r in sealed.recipients)}"
    )
    _say(f"  envelope {sealed.envelope_id.hex()}, {sealed.envelope_length} bytes")
    _say(f"  digest   {sealed.digest.hex()}")

    with envelope_file.open("rb") as stream:
        verified = verify_file(stream, directory, now)
    match = "match" if verified.digest == sealed.digest else "MISMATCH"
    _say(
        f"anyone holding the directory can check the sender ({verified.header.sender}) "
        f"and the digest without a key: {match}"
    )
    for reader in (front_door, nurses):
        out = folder / f"received-{reader.org_id.replace(':', '-')}.json"
        with envelope_file.open("rb") as stream:
            opened = open_to_file(stream, out, directory, [reader], now)
        same = out.read_bytes() == record_file.read_bytes()
        same = same and opened.verified.digest == sealed.digest
        _say(
            f"{NAMES[reader.org_id]} opened it: {opened.content_length} bytes, "
            f"{'identical to what was sent' if same else 'DIFFERENT'}"
        )
        if not same:
            return None
    return envelope_file


def _refusals(
    folder: Path,
    now: int,
    envelope_file: Path,
    pairs: dict[OrgId, OrgKeyPair],
    directory: Directory,
) -> bool:
    """Show a non-recipient and a one-byte change refused, with nothing written."""
    _, front_door, _, bystander = (pairs[p.org_id] for p in PARTIES)
    altered = bytearray(envelope_file.read_bytes())
    altered[len(altered) // 2] ^= 0x01
    cases = [
        (f"{NAMES[bystander.org_id]} tries to open it", envelope_file.read_bytes(), bystander),
        ("one byte is changed in transit", bytes(altered), front_door),
    ]
    for what, data, reader in cases:
        out = folder / "should-not-exist.json"
        try:
            open_to_file(io.BytesIO(data), out, directory, [reader], now)
        except OpenError as exc:
            left = "nothing written" if not out.exists() else "PARTIAL OUTPUT LEFT"
            _say(f"{what}: refused ({exc}); {left}")
            if out.exists():
                return False
        else:
            return False
    return True


def run_demo(*, serve: bool = True, mesh_sandbox: Path | None = None) -> int:
    """Run the demonstration; return the process exit status.

    ``mesh_sandbox`` is the virtual environment of NHS England's MESH sandbox for part 3,
    installed there first if needed (:func:`exchange.demo.routes_part.run_routes_demo`).
    In a terminal (and unless ``serve`` is false) the demo nodes then keep serving their web
    pages until Ctrl-C (:mod:`exchange.demo.web_part`); elsewhere the demo ends here.
    """
    # Node events would drown the story; warnings and errors still show.
    configure(level=logging.WARNING)
    _say("== Part 1: the sealed envelope ==")
    now = int(time.time())
    with tempfile.TemporaryDirectory(prefix="exchange-demo-") as tmp:
        folder = Path(tmp)
        pairs, directory = _enrol(folder, now)
        envelope_file = _send_and_open(folder, now, pairs, directory)
        if envelope_file is None or not _refusals(folder, now, envelope_file, pairs, directory):
            _say("demo FAILED")
            return 1
    _say("")
    _say("== Part 2: two nodes, a referral and its receipts ==")
    if not run_node_demo(synthetic_referral(), _say):
        _say("demo FAILED")
        return 1
    _say("")
    _say("== Part 3: a relay mailbox, NHS MESH and a PII-free email ==")
    if not run_routes_demo(_say, mesh_sandbox):
        _say("demo FAILED")
        return 1
    _say("")
    _say("== Part 4: policy, deadlines, recall, the register and subject access ==")
    if not run_sharing_demo(_say):
        _say("demo FAILED")
        return 1
    _say("demo finished; the temporary folders were removed")
    if serve and should_serve():
        _say("")
        return serve_web_demo(_say)
    return 0
