"""The refusals of the sign-in core, one base for all.

::

    AuthError
    ├── WeakPasswordError      a new password breaks a rule (the message says which, plainly)
    ├── WrongPasswordError     the password does not match the stored hash
    ├── PasswordHashError      a stored hash is malformed or its parameters out of bounds
    ├── InvalidCodeError       a TOTP or recovery code is wrong, reused or out of its window
    └── InvalidCsrfTokenError  a form's CSRF token does not match its session

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
