"""The refusals of the sign-in core, one base for all.

::

    AuthError
    ├── WeakPasswordError      a new password breaks a rule (the message says which, plainly)
    ├── WrongPasswordError     the password does not match the stored hash
    ├── PasswordHashError      a stored hash is malformed or its parameters out of bounds
    ├── InvalidCodeError       a TOTP or recovery code is wrong, reused or out of its window
    ├── InvalidCsrfTokenError  a form's CSRF token does not match its session
    └── PasskeyRefusedError    a passkey's answer does not verify (``reason`` says which check)

Messages never hold what was typed: a password, an email address or a code.
"""

from __future__ import annotations


class AuthError(Exception):
    """Base of every refusal of the sign-in core."""


class WeakPasswordError(AuthError):
    """A new password breaks a rule; the message says which, in plain English."""


class WrongPasswordError(AuthError):
    """The password does not match the stored hash."""


class PasswordHashError(AuthError):
    """A stored password hash is malformed or names parameters out of bounds."""


class InvalidCodeError(AuthError):
    """A security code or recovery code is wrong, already used or outside its window."""


class InvalidCsrfTokenError(AuthError):
    """A form's CSRF token is missing or does not match its session."""


class PasskeyRefusedError(AuthError):
    """A passkey's answer was refused; ``reason`` names the check, for logs and the audit.

    The reasons: ``malformed`` (not a WebAuthn answer), ``challenge`` (unknown, used,
    expired, or another browser's), ``origin``, ``rp-id``, ``not-verified``,
    ``credential`` (not the passkey looked up), ``attestation`` or ``signature`` (py_webauthn
    refused the answer), ``sign-count`` (the authenticator's counter went back).
    The message is the reason alone: never the answer, a credential id or an origin sent.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
