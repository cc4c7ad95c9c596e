"""The signed directory of organisations: who exists, their keys over time, and their routes.

The directory is a JSON document (format ``exchange-directory/v1``) carried as the text of a
C2SP signed note signed by the directory authority. For each organisation it lists key
generations, each a signing and an encryption public key with a validity window and an
optional revocation, and the organisation's routes in order of preference. Loading checks the
authority's signature before reading anything, refuses a version older than one already
accepted (rollback), and validates every field, naming it by its path (for example
``organisations[3].keys[0].not_after``). Lookups answer the questions sealing and opening ask:
which key does this organisation use now, and was this key valid at that time. A revoked key
generation is refused for every time, because a compromised key can sign with any date.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

from exchange.keys.errors import (
    DirectoryError,
    InvalidNoteSignatureError,
    InvalidPublicKeyError,
    KeyLookupError,
    NoteError,
    UnsignedNoteError,
    UntrustedNoteError,
)
from exchange.keys.ids import OrgId, key_id_text, parse_org_id
from exchange.keys.keypairs import PUBLIC_KEY_LEN, EncryptionPublicKey, SigningPublicKey
from exchange.keys.notes import (
    NoteSigner,
    NoteVerifier,
    verify_note,
)
from exchange.keys.strictjson import StrictJsonError, loads_strict

FORMAT: Final = "exchange-directory/v1"

OrgKind = Literal["school", "la", "nhs", "relay", "authority"]
ORG_KINDS: Final[frozenset[str]] = frozenset(get_args(OrgKind))
ROUTE_KINDS: Final = frozenset({"https", "mesh", "mailbox", "smtp"})

# Limits. The number of organisations covers every school, LA and NHS team in England
# (about 24,000 schools, 153 LAs, a few thousand NHS teams) with room to grow; 16 key
# generations is decades of annual rotation; 8 routes is more than the four route kinds.
MAX_ORGANISATIONS: Final = 50_000
MAX_KEY_GENERATIONS: Final = 16
MAX_ROUTES: Final = 8
MAX_NAME_LEN: Final = 200
MAX_ADDRESS_LEN: Final = 2048
MAX_ROUTE_OPTIONS: Final = 32
MAX_OPTION_NAME_LEN: Final = 64
MAX_OPTION_VALUE_LEN: Final = 2048
#: The largest version number, so it fits a signed 64-bit database column.
MAX_VERSION: Final = 2**63 - 1
#: Times are limited to years 1970 to 9999, the range the ISO form below can spell.
MAX_TIME: Final = 253_402_300_799

_TIME_RE: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")
_SHORT_ID_LEN: Final = 16

_ROOT_FIELDS: Final = frozenset({"format", "authority", "version", "issued", "organisations"})
_ORG_FIELDS: Final = frozenset({"id", "name", "kind", "keys", "routes"})
_KEY_FIELDS: Final = frozenset(
    {
        "signing",
        "encryption",
        "signing_key_id",
        "encryption_key_id",
        "not_before",
        "not_after",
        "revoked_at",
    }
)
_ROUTE_FIELDS: Final = frozenset({"kind", "address", "options"})

_NO_REVOCATIONS: Final[Mapping[bytes, int]] = MappingProxyType({})


def format_time(value: int) -> str:
    """Return unix seconds as ``YYYY-MM-DDTHH:MM:SSZ``."""
    if not 0 <= value <= MAX_TIME:
        raise ValueError(f"time must be from 0 to {MAX_TIME} unix seconds")
    return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, *, field: str = "time") -> int:
    """Parse ``YYYY-MM-DDTHH:MM:SSZ`` as unix seconds; raise ``ValueError`` naming ``field``."""
    match = _TIME_RE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{field} must be a UTC time of the form YYYY-MM-DDTHH:MM:SSZ")
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{field} is not a real date and time") from None
    value = int(moment.timestamp())
    if not 0 <= value <= MAX_TIME:
        raise ValueError(f"{field} must be between 1970 and 9999")
    return value


def _short(key_id: bytes) -> str:
    return key_id.hex()[:_SHORT_ID_LEN]


def _check_time(value: object, name: str) -> None:
    if type(value) is not int or not 0 <= value <= MAX_TIME:
        raise ValueError(f"{name} must be an integer from 0 to {MAX_TIME} (unix seconds)")


def _check_name(value: object, name: str, limit: int) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise ValueError(f"{name} must be a string of 1 to {limit} characters")
    if _CONTROL_RE.search(value):
        raise ValueError(f"{name} must not contain control characters")


@dataclass(frozen=True)
class KeyGeneration:
    """One generation of an organisation's public keys, with its validity window.

    A generation is valid from ``not_before`` (inclusive) to ``not_after`` (exclusive) unless
    it was revoked; a revoked generation is never valid, whatever the time.
    """

    signing: SigningPublicKey
    encryption: EncryptionPublicKey
    not_before: int
    not_after: int
    revoked_at: int | None = None

    def __post_init__(self) -> None:
        _check_time(self.not_before, "not_before")
        _check_time(self.not_after, "not_after")
        if self.not_after <= self.not_before:
            raise ValueError("not_after must be later than not_before")
        if self.revoked_at is not None:
            _check_time(self.revoked_at, "revoked_at")

    def valid_at(self, at: int) -> bool:
        """Return whether this generation may be used at ``at`` (unix seconds)."""
        return self.revoked_at is None and self.not_before <= at < self.not_after


@dataclass(frozen=True)
class Route:
    """One way to reach an organisation; ``routing`` interprets address and options."""

    kind: str
    address: str
    options: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in ROUTE_KINDS:
            raise ValueError(f"kind must be one of {', '.join(sorted(ROUTE_KINDS))}")
        _check_name(self.address, "address", MAX_ADDRESS_LEN)
        if len(self.options) > MAX_ROUTE_OPTIONS:
            raise ValueError(f"options must have at most {MAX_ROUTE_OPTIONS} entries")
        for name, value in self.options.items():
            _check_name(name, "an option name", MAX_OPTION_NAME_LEN)
            if not isinstance(value, str) or len(value) > MAX_OPTION_VALUE_LEN:
                raise ValueError(f"option {name!r} must be a string of at most 2048 characters")
        # A read-only copy, so a frozen Route cannot change through the caller's dict.
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))


@dataclass(frozen=True)
class Organisation:
    """An organisation in the directory: its id, name, kind, key generations and routes."""

    id: OrgId
    name: str
    kind: OrgKind
    keys: tuple[KeyGeneration, ...]
    routes: tuple[Route, ...] = ()

    def __post_init__(self) -> None:
        parse_org_id(self.id, field="id")
        _check_name(self.name, "name", MAX_NAME_LEN)
        if self.kind not in ORG_KINDS:
            raise ValueError(f"kind must be one of {', '.join(sorted(ORG_KINDS))}")
        if not 0 < len(self.keys) <= MAX_KEY_GENERATIONS:
            raise ValueError(f"keys must list 1 to {MAX_KEY_GENERATIONS} key generations")
        if len(self.routes) > MAX_ROUTES:
            raise ValueError(f"routes must list at most {MAX_ROUTES} routes")
        signing_ids = {gen.signing.key_id for gen in self.keys}
        encryption_ids = {gen.encryption.key_id for gen in self.keys}
        if len(signing_ids) != len(self.keys) or len(encryption_ids) != len(self.keys):
            raise ValueError("keys must not list the same public key in two generations")


@dataclass(frozen=True)
class Directory:
    """A version of the directory, issued at ``issued`` by ``authority``."""

    version: int
    issued: int
    authority: str
    organisations: Mapping[OrgId, Organisation] = field(hash=False)

    def __post_init__(self) -> None:
        if type(self.version) is not int or not 1 <= self.version <= MAX_VERSION:
            raise ValueError(f"version must be an integer from 1 to {MAX_VERSION}")
        _check_time(self.issued, "issued")
        _check_name(self.authority, "authority", MAX_NAME_LEN)
        if len(self.organisations) > MAX_ORGANISATIONS:
            raise ValueError(f"a directory lists at most {MAX_ORGANISATIONS} organisations")
        owners: dict[bytes, OrgId] = {}
        for org_id, org in self.organisations.items():
            if org.id != org_id:
                raise ValueError(f"organisations: the entry under {org_id} is for {org.id}")
            for gen in org.keys:
                for kid in (gen.signing.key_id, gen.encryption.key_id):
                    # One key serving two organisations would let one sign or read as the
                    # other; every tenant has its own keys (docs/architecture.md §1).
                    if owners.setdefault(kid, org_id) != org_id:
                        raise ValueError(
                            f"key {_short(kid)} is listed for both {owners[kid]} and {org_id}"
                        )
        ordered = dict(sorted(self.organisations.items()))
        object.__setattr__(self, "organisations", MappingProxyType(ordered))

    def organisation(self, org_id: OrgId) -> Organisation:
        """Return the organisation ``org_id`` or raise :class:`KeyLookupError`."""
        org = self.organisations.get(org_id)
        if org is None:
            raise KeyLookupError(
                f"the organisation {org_id} is not in the directory", "unknown-organisation"
            )
        return org

    def _generation(self, org_id: OrgId, key_id: bytes, at: int, *, use: str) -> KeyGeneration:
        org = self.organisation(org_id)
        for gen in org.keys:
            public = gen.signing if use == "signing" else gen.encryption
            if public.key_id != key_id:
                continue
            if gen.revoked_at is not None:
                raise KeyLookupError(
                    f"the {use} key {_short(key_id)} of {org_id} was revoked at "
                    f"{format_time(gen.revoked_at)}",
                    "revoked",
                )
            if not gen.valid_at(at):
                raise KeyLookupError(
                    f"the {use} key {_short(key_id)} of {org_id} is not valid at "
                    f"{_describe_time(at)}",
                    "not-valid",
                )
            return gen
        raise KeyLookupError(
            f"the organisation {org_id} has no {use} key {_short(key_id)}", "unknown-key"
        )

    def signing_key_for(self, org_id: OrgId, key_id: bytes, at: int) -> SigningPublicKey:
        """Return ``org_id``'s signing key with id ``key_id`` if it was valid at ``at``."""
        return self._generation(org_id, key_id, at, use="signing").signing

    def encryption_key_for(self, org_id: OrgId, key_id: bytes, at: int) -> EncryptionPublicKey:
        """Return ``org_id``'s encryption key with id ``key_id`` if it was valid at ``at``."""
        return self._generation(org_id, key_id, at, use="encryption").encryption

    def current_keys(self, org_id: OrgId, at: int) -> KeyGeneration:
        """Return the newest generation valid at ``at`` (greatest ``not_before``) to seal to."""
        valid = [gen for gen in self.organisation(org_id).keys if gen.valid_at(at)]
        if not valid:
            raise KeyLookupError(
                f"the organisation {org_id} has no key valid at {_describe_time(at)}",
                "not-valid",
            )
        # Ties on not_before go to the generation listed later, the one enrolled last.
        return max(reversed(valid), key=lambda gen: gen.not_before)


def _describe_time(at: int) -> str:
    try:
        return format_time(at)
    except ValueError:
        return f"{at} (unix seconds)"


# --- encoding ----------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _key_to_json(gen: KeyGeneration) -> dict[str, Any]:
    return {
        "signing": _b64(gen.signing.raw),
        "encryption": _b64(gen.encryption.raw),
        "signing_key_id": key_id_text(gen.signing.key_id),
        "encryption_key_id": key_id_text(gen.encryption.key_id),
        "not_before": format_time(gen.not_before),
        "not_after": format_time(gen.not_after),
        "revoked_at": None if gen.revoked_at is None else format_time(gen.revoked_at),
    }


def org_entry_to_json(org: Organisation) -> dict[str, Any]:
    """Return the JSON object for one organisation (a directory entry or a public entry file)."""
    return {
        "id": org.id,
        "name": org.name,
        "kind": org.kind,
        "keys": [_key_to_json(gen) for gen in org.keys],
        "routes": [
            {"kind": route.kind, "address": route.address, "options": dict(route.options)}
            for route in org.routes
        ],
    }


def directory_text(d: Directory) -> str:
    """Return the directory's JSON text: sorted keys, one-space indent, ending in a newline.

    ``ensure_ascii`` escapes every non-ASCII and control character, so the text can never
    contain a blank line or a character the signed-note format forbids.
    """
    document = {
        "format": FORMAT,
        "authority": d.authority,
        "version": d.version,
        "issued": format_time(d.issued),
        "organisations": [org_entry_to_json(org) for org in d.organisations.values()],
    }
    return json.dumps(document, sort_keys=True, indent=1, ensure_ascii=True) + "\n"


def sign_directory(d: Directory, signer: NoteSigner) -> bytes:
    """Return the directory as a signed note; the signer's key name must be the authority."""
    if signer.verifier.name != d.authority:
        raise ValueError(
            f"signer: the key name {signer.verifier.name!r} is not the directory's authority "
            f"{d.authority!r}"
        )
    return signer.sign(directory_text(d))


# --- decoding ----------------------------------------------------------------------------


def _fail(path: str, problem: str) -> DirectoryError:
    return DirectoryError(f"{path} {problem}")


def _object(value: Any, path: str, names: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "must be a JSON object")
    missing = sorted(names - value.keys())
    if missing:
        raise _fail(f"{path}.{missing[0]}", "is missing")
    unknown = sorted(value.keys() - names)
    if unknown:
        raise _fail(f"{path}.{unknown[0]}", "is not a known field")
    return value


def _list(value: Any, path: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(path, "must be a JSON array")
    if len(value) > limit:
        raise _fail(path, f"has more than {limit} entries")
    return value


def _string(value: Any, path: str, limit: int) -> str:
    try:
        _check_name(value, "it", limit)
    except ValueError as exc:
        raise _fail(path, str(exc).removeprefix("it ")) from None
    return str(value)


def _time(value: Any, path: str) -> int:
    try:
        return parse_time(value, field="it")
    except ValueError as exc:
        raise _fail(path, str(exc).removeprefix("it ")) from None


def _public(value: Any, path: str) -> bytes:
    if not isinstance(value, str):
        raise _fail(path, "must be a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise _fail(path, "must be standard base64") from None
    # One spelling per key: Python's decoder ignores non-zero trailing bits.
    if _b64(raw) != value or len(raw) != PUBLIC_KEY_LEN:
        raise _fail(path, f"must be the canonical base64 of {PUBLIC_KEY_LEN} bytes")
    return raw


def _key_from_json(value: Any, path: str) -> KeyGeneration:
    obj = _object(value, path, _KEY_FIELDS)
    try:
        signing = SigningPublicKey.from_bytes(_public(obj["signing"], f"{path}.signing"))
    except InvalidPublicKeyError as exc:
        raise _fail(f"{path}.signing", f"is refused: {exc}") from None
    try:
        encryption = EncryptionPublicKey.from_bytes(
            _public(obj["encryption"], f"{path}.encryption")
        )
    except InvalidPublicKeyError as exc:
        raise _fail(f"{path}.encryption", f"is refused: {exc}") from None
    if obj["signing_key_id"] != key_id_text(signing.key_id):
        raise _fail(f"{path}.signing_key_id", "does not match the signing key")
    if obj["encryption_key_id"] != key_id_text(encryption.key_id):
        raise _fail(f"{path}.encryption_key_id", "does not match the encryption key")
    not_before = _time(obj["not_before"], f"{path}.not_before")
    not_after = _time(obj["not_after"], f"{path}.not_after")
    if not_after <= not_before:
        raise _fail(f"{path}.not_after", "must be later than not_before")
    revoked = obj["revoked_at"]
    revoked_at = None if revoked is None else _time(revoked, f"{path}.revoked_at")
    return KeyGeneration(signing, encryption, not_before, not_after, revoked_at)


def _route_from_json(value: Any, path: str) -> Route:
    obj = _object(value, path, _ROUTE_FIELDS)
    kind = obj["kind"]
    if kind not in ROUTE_KINDS:
        raise _fail(f"{path}.kind", f"must be one of {', '.join(sorted(ROUTE_KINDS))}")
    address = _string(obj["address"], f"{path}.address", MAX_ADDRESS_LEN)
    options = obj["options"]
    if not isinstance(options, dict):
        raise _fail(f"{path}.options", "must be a JSON object")
    if len(options) > MAX_ROUTE_OPTIONS:
        raise _fail(f"{path}.options", f"has more than {MAX_ROUTE_OPTIONS} entries")
    for name, option in options.items():
        _string(name, f"{path}.options", MAX_OPTION_NAME_LEN)
        if not isinstance(option, str) or len(option) > MAX_OPTION_VALUE_LEN:
            raise _fail(
                f"{path}.options.{name}",
                f"must be a string of at most {MAX_OPTION_VALUE_LEN} characters",
            )
    return Route(kind, address, options)


def org_entry_from_json(obj: Any, path: str = "organisation") -> Organisation:
    """Parse one organisation's JSON object, raising :class:`DirectoryError` naming the path."""
    org = _object(obj, path, _ORG_FIELDS)
    if not isinstance(org["id"], str):
        raise _fail(f"{path}.id", "must be a string")
    try:
        org_id = parse_org_id(org["id"], field="it")
    except ValueError as exc:
        raise _fail(f"{path}.id", str(exc).removeprefix("it ")) from None
    name = _string(org["name"], f"{path}.name", MAX_NAME_LEN)
    kind = org["kind"]
    if kind not in ORG_KINDS:
        raise _fail(f"{path}.kind", f"must be one of {', '.join(sorted(ORG_KINDS))}")
    raw_keys = _list(org["keys"], f"{path}.keys", MAX_KEY_GENERATIONS)
    if not raw_keys:
        raise _fail(f"{path}.keys", "must list at least one key generation")
    keys = tuple(_key_from_json(k, f"{path}.keys[{i}]") for i, k in enumerate(raw_keys))
    seen: set[bytes] = set()
    for i, gen in enumerate(keys):
        for kid, part in ((gen.signing.key_id, "signing"), (gen.encryption.key_id, "encryption")):
            if kid in seen:
                raise _fail(f"{path}.keys[{i}].{part}", "repeats a key of an earlier generation")
            seen.add(kid)
    raw_routes = _list(org["routes"], f"{path}.routes", MAX_ROUTES)
    routes = tuple(_route_from_json(r, f"{path}.routes[{i}]") for i, r in enumerate(raw_routes))
    return Organisation(org_id, name, kind, keys, routes)


def parse_directory_text(text: str) -> Directory:
    """Parse and validate the directory's JSON text (already verified by its signature)."""
    try:
        doc = loads_strict(text)
    except StrictJsonError as exc:
        raise DirectoryError(f"the directory {exc}") from None
    root = _object(doc, "directory", _ROOT_FIELDS)
    if root["format"] != FORMAT:
        raise _fail("format", f"must be {FORMAT!r}")
    authority = _string(root["authority"], "authority", MAX_NAME_LEN)
    version = root["version"]
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise _fail("version", f"must be an integer from 1 to {MAX_VERSION}")
    issued = _time(root["issued"], "issued")
    raw_orgs = _list(root["organisations"], "organisations", MAX_ORGANISATIONS)
    organisations: dict[OrgId, Organisation] = {}
    owners: dict[bytes, str] = {}
    for i, raw in enumerate(raw_orgs):
        path = f"organisations[{i}]"
        org = org_entry_from_json(raw, path)
        if org.id in organisations:
            raise _fail(f"{path}.id", f"repeats the organisation {org.id}")
        for k, gen in enumerate(org.keys):
            for kid, part in (
                (gen.signing.key_id, "signing"),
                (gen.encryption.key_id, "encryption"),
            ):
                if kid in owners:
                    raise _fail(f"{path}.keys[{k}].{part}", f"is already listed for {owners[kid]}")
                owners[kid] = org.id
        organisations[org.id] = org
    return Directory(version, issued, authority, organisations)


def load_directory(
    note: bytes,
    trusted: Sequence[NoteVerifier],
    *,
    min_version: int = 0,
) -> Directory:
    """Verify the directory note against the ``trusted`` authority keys and parse it.

    ``min_version`` is the newest version already accepted; an older one is refused as a
    rollback. The document's ``authority`` must be the name of a key that signed it.
    """
    try:
        text, signers = verify_note(note, trusted)
    except UnsignedNoteError:
        raise DirectoryError("the directory is not signed") from None
    except InvalidNoteSignatureError:
        raise DirectoryError(
            "the directory's signature does not verify against the trusted authority key"
        ) from None
    except UntrustedNoteError:
        raise DirectoryError("the directory is not signed by a trusted authority key") from None
    except NoteError as exc:
        raise DirectoryError(f"the directory is not a well-formed signed note: {exc}") from None
    directory = parse_directory_text(text)
    if directory.authority not in {signer.name for signer in signers}:
        raise DirectoryError(
            f"the directory names the authority {directory.authority!r}, which is not the "
            "name of the trusted key that signed it"
        )
    if directory.version < min_version:
        raise DirectoryError(
            f"the directory is version {directory.version}, older than version {min_version} "
            "already accepted; a rollback is refused"
        )
    return directory


# --- building ----------------------------------------------------------------------------


def _merge_org(existing: Organisation, entry: Organisation) -> Organisation:
    """Add ``entry``'s new key generations to ``existing``; take its name, kind and routes."""
    known = {gen.signing.key_id for gen in existing.keys}
    added = tuple(gen for gen in entry.keys if gen.signing.key_id not in known)
    keys = existing.keys + added
    if len(keys) > MAX_KEY_GENERATIONS:
        raise ValueError(
            f"entries: {entry.id} would have more than {MAX_KEY_GENERATIONS} key generations"
        )
    # An entry written for a key rotation may carry no routes; keep the known ones then.
    routes = entry.routes or existing.routes
    return Organisation(existing.id, entry.name, entry.kind, keys, routes)


def merge_directory(
    previous: Directory | None,
    entries: Sequence[Organisation],
    *,
    version: int,
    issued: int,
    authority: str,
    revoke: Mapping[bytes, int] = _NO_REVOCATIONS,
) -> Directory:
    """Return the next directory: ``previous`` plus ``entries``, with ``revoke`` applied.

    Entries for known organisations add their new key generations (by signing key id) and
    replace the name, kind and (if given) routes; other entries add organisations.
    ``revoke`` maps a signing or encryption key id to the revocation time.
    """
    if previous is not None and version <= previous.version:
        raise ValueError(
            f"version must be greater than the previous version {previous.version}, not {version}"
        )
    orgs: dict[OrgId, Organisation] = dict(previous.organisations) if previous else {}
    for entry in entries:
        orgs[entry.id] = _merge_org(orgs[entry.id], entry) if entry.id in orgs else entry
    for kid, when in revoke.items():
        _check_time(when, "revoke time")
        owner = next(
            (
                org
                for org in orgs.values()
                for gen in org.keys
                if kid in (gen.signing.key_id, gen.encryption.key_id)
            ),
            None,
        )
        if owner is None:
            raise ValueError(f"revoke: no key generation has the key id {_short(kid)}")
        keys = tuple(
            replace(gen, revoked_at=_earliest(gen.revoked_at, when))
            if kid in (gen.signing.key_id, gen.encryption.key_id)
            else gen
            for gen in owner.keys
        )
        orgs[owner.id] = replace(owner, keys=keys)
    return Directory(version, issued, authority, orgs)


def _earliest(current: int | None, when: int) -> int:
    """Keep the earliest revocation time, so a second revocation never un-revokes a period."""
    return when if current is None else min(current, when)
