"""Staff passwords: the rules a new one must meet, and Argon2id hashing.

Rules (NIST SP 800-63B §3.1.1.2): at least :data:`MIN_LENGTH` characters, at most
:data:`MAX_LENGTH` (long passphrases welcome; the limit only bounds the work), not one
character repeated, and nothing else (no composition rules, which push people to worse
passwords). Passwords are NFKC-normalised first, so the same passphrase typed on two
keyboards matches.

Hashes are the PHC string libsodium's ``crypto_pwhash_str`` writes,
``$argon2id$v=19$m=<KiB>,t=<passes>,p=1$<salt>$<hash>``: the string carries its parameters,
so they can be raised later (:func:`needs_rehash`) without breaking existing hashes. The salt
comes from injected randomness; the hash is computed with libsodium's Argon2id
(``nacl.pwhash.argon2id.kdf``) and compared in constant time.
"""

from __future__ import annotations

import base64
import hmac
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import nacl.pwhash.argon2id

from exchange.auth.errors import PasswordHashError, WeakPasswordError, WrongPasswordError

MIN_LENGTH: Final = 12
#: Bounds the hashing work one sign-in attempt can ask for; NIST asks for at least 64.
MAX_LENGTH: Final = 256
SALT_LEN: Final = 16
HASH_LEN: Final = 32
#: Bounds on parameters read back from a stored hash: libsodium's minimums, and a ceiling
#: (1 GiB, 10 passes) far above what a node sets, so a corrupted row cannot stall sign-in.
_MAX_MEMLIMIT: Final = 1024 * 1024 * 1024
_MAX_OPSLIMIT: Final = 10

_PHC: Final = re.compile(
    r"\$argon2id\$v=19\$m=(?P<m>[0-9]{1,8}),t=(?P<t>[0-9]{1,2}),p=1"
    r"\$(?P<salt>[A-Za-z0-9+/]{16,64})\$(?P<hash>[A-Za-z0-9+/]{16,128})"
)


@dataclass(frozen=True)
class PasswordParams:
    """Argon2id cost: passes (``opslimit``) and memory in bytes (``memlimit``)."""

    opslimit: int
    memlimit: int

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("opslimit", self.opslimit, nacl.pwhash.argon2id.OPSLIMIT_MIN, _MAX_OPSLIMIT),
            ("memlimit", self.memlimit, nacl.pwhash.argon2id.MEMLIMIT_MIN, _MAX_MEMLIMIT),
        ):
            if type(value) is not int or not low <= value <= high:
                raise ValueError(f"{name} must be an integer from {low} to {high}")
        if self.memlimit % 1024:
            raise ValueError("memlimit must be a whole number of KiB")

    @classmethod
    def default(cls) -> PasswordParams:
        """Return the parameters for real accounts."""
        # The OWASP Password Storage Cheat Sheet's first Argon2id setting: 19 MiB, 2 passes,
        # 1 lane. Lighter than a key file's (keys/keyfile.py, 64 MiB) because a node checks
        # passwords for many people at once on a small machine; raise it with the hardware.
        return cls(opslimit=2, memlimit=19 * 1024 * 1024)

    @classmethod
    def fast_for_tests(cls) -> PasswordParams:
        """Return libsodium's minimum parameters. For tests only: they offer no protection."""
        return cls(
            opslimit=nacl.pwhash.argon2id.OPSLIMIT_MIN, memlimit=nacl.pwhash.argon2id.MEMLIMIT_MIN
        )


#: The parameters new hashes get.
DEFAULT_PARAMS: Final = PasswordParams.default()


def normalise(password: str) -> str:
    """Return ``password`` in Unicode normal form NFKC (NIST SP 800-63B §5.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


def check_password_rules(password: str) -> None:
    """Refuse a new password that breaks a rule, saying which in plain English."""
    text = normalise(password)
    if len(text) < MIN_LENGTH:
        raise WeakPasswordError(f"Password must be {MIN_LENGTH} characters or more")
    if len(text) > MAX_LENGTH:
        raise WeakPasswordError(f"Password must be {MAX_LENGTH} characters or fewer")
    if len(set(text)) == 1:
        raise WeakPasswordError("Password must not be one character repeated")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _derive(password: str, salt: bytes, params: PasswordParams) -> bytes:
    return bytes(
        nacl.pwhash.argon2id.kdf(
            HASH_LEN,
            normalise(password).encode("utf-8"),
            salt,
            opslimit=params.opslimit,
            memlimit=params.memlimit,
        )
    )


def hash_password(
    password: str, random: Callable[[int], bytes], params: PasswordParams = DEFAULT_PARAMS
) -> str:
    """Return the PHC string of ``password`` with a fresh salt from ``random``.

    The rules are not checked here (a sign-in compares against any stored hash); call
    :func:`check_password_rules` on a new password first.
    """
    salt = random(SALT_LEN)
    if len(salt) != SALT_LEN:
        raise ValueError(f"random must return {SALT_LEN} bytes")
    digest = _derive(password, salt, params)
    return (
        f"$argon2id$v=19$m={params.memlimit // 1024},t={params.opslimit},p=1"
        f"${_b64(salt)}${_b64(digest)}"
    )


def _parse(encoded: str) -> tuple[PasswordParams, bytes, bytes]:
    found = _PHC.fullmatch(encoded)
    if found is None:
        raise PasswordHashError("the stored password hash is not an Argon2id PHC string")
    try:
        params = PasswordParams(opslimit=int(found["t"]), memlimit=int(found["m"]) * 1024)
        salt, digest = _unb64(found["salt"]), _unb64(found["hash"])
    except ValueError as exc:
        raise PasswordHashError(f"the stored password hash is out of bounds: {exc}") from None
    return params, salt, digest


def verify_password(password: str, encoded: str) -> None:
    """Check ``password`` against a stored hash; raise :class:`WrongPasswordError` if wrong.

    The hash is recomputed with the parameters and salt the stored string names and
    compared in constant time. A password longer than :data:`MAX_LENGTH` is still hashed
    (so a refusal takes as long as any other) and then refused.
    """
    params, salt, expected = _parse(encoded)
    too_long = len(normalise(password)) > MAX_LENGTH
    actual = _derive(password[: MAX_LENGTH * 4], salt, params)
    if not hmac.compare_digest(actual, expected) or too_long:
        raise WrongPasswordError("the password is not right")


def needs_rehash(encoded: str, params: PasswordParams = DEFAULT_PARAMS) -> bool:
    """Say whether a stored hash was made with parameters other than ``params``."""
    return _parse(encoded)[0] != params
