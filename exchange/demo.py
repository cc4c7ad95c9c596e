"""``exchange demo``: the envelope round trip on embedded defaults, in a temporary folder.

Three organisations (a primary school, Stockport's children's front door and a school
nursing team) and one bystander (a neighbouring local authority) get keys, stored encrypted
on disk as a node would store them. A directory authority signs the directory listing them.
The school seals a synthetic referral to the front door and the nurses; each opens it; the
bystander cannot; and a one-byte change to the sealed file is detected. The demo prints what
it did, never the record's content, as the real service never does.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from exchange.envelope import OpenError, Recipient, open_envelope, seal, verify_envelope
from exchange.files import write_new_file
from keys.directory import KeyGeneration, Organisation, OrgKind, load_directory, merge_directory
from keys.directory import sign_directory as sign_directory_note
from keys.ids import OrgId
from keys.keyfile import KdfParams, decode_key_file, encode_key_file
from keys.keypairs import OrgKeyPair, SigningKey
from keys.notes import NoteSigner

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


def run_demo() -> int:
    """Run the demonstration; return the process exit status."""
    now = int(time.time())
    with tempfile.TemporaryDirectory(prefix="exchange-demo-") as tmp:
        folder = Path(tmp)
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
        _say(f"created keys for {len(PARTIES)} organisations (Argon2id-encrypted, mode 0600)")

        authority = NoteSigner("directory.exchange.example", SigningKey.generate())
        directory_file = folder / "directory.note"
        draft = merge_directory(
            None, entries, version=1, issued=now, authority=authority.verifier.name
        )
        write_new_file(directory_file, sign_directory_note(draft, authority), mode=0o644)
        directory = load_directory(directory_file.read_bytes(), [authority.verifier])
        _say(
            f"signed directory version {directory.version} lists "
            + ", ".join(directory.organisations)
            + f"; authority key {authority.verifier.vkey()}"
        )

        school, front_door, nurses, bystander = (pairs[p.org_id] for p in PARTIES)
        recipients = [
            Recipient(org, directory.current_keys(org, now).encryption)
            for org in (front_door.org_id, nurses.org_id)
        ]
        content = synthetic_referral()
        envelope, sealed = seal(content, school, recipients, record_kind="referral", created=now)
        envelope_file = folder / "referral.env"
        write_new_file(envelope_file, envelope)
        _say(
            f"{school.org_id} sealed a referral ({len(content)} bytes) for "
            f"{', '.join(sealed.recipients)}: envelope {sealed.envelope_id.hex()}, "
            f"{len(envelope)} bytes, digest {sealed.digest.hex()[:16]}…"
        )

        verified = verify_envelope(envelope_file.read_bytes(), directory, now=now)
        _say(
            f"anyone with the directory can check it: sender {verified.header.sender} "
            f"verified, digest matches: {verified.digest == sealed.digest}"
        )
        for reader in (front_door, nurses):
            plaintext, opened = open_envelope(
                envelope_file.read_bytes(), directory, [reader], now=now
            )
            same = plaintext == content and opened.verified.digest == sealed.digest
            _say(f"{reader.org_id} opened it: {opened.content_length} bytes, identical: {same}")
            if not same:
                return 1

        try:
            open_envelope(envelope_file.read_bytes(), directory, [bystander], now=now)
        except OpenError as exc:
            _say(f"{bystander.org_id} cannot open it: {exc}")
        else:
            return 1

        altered = bytearray(envelope_file.read_bytes())
        altered[len(altered) // 2] ^= 0x01
        try:
            open_envelope(bytes(altered), directory, [front_door], now=now)
        except OpenError as exc:
            _say(f"one byte changed in transit is detected: {exc}")
        else:
            return 1
    _say("demo finished; the temporary folder was removed")
    return 0
