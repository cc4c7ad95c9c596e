"""The words the administrator's pages use for roles, route kinds and account states."""

from __future__ import annotations

from typing import Final

from exchange.auth.account import Account

#: Each role in words, with what it lets a person do.
ROLE_NAMES: Final = {
    "dsl": "Designated safeguarding lead",
    "staff": "Staff member",
    "dpo": "Data protection officer",
    "admin": "Administrator",
}
ROLE_HINTS: Final = {
    "dsl": "Sends, receives and decides on records",
    "staff": "Sends and receives records",
    "dpo": "Keeps the sharing register, answers subject access requests and reviews retention",
    "admin": "Manages staff accounts and sees the node's state, but cannot read records",
}

#: Each route kind of the directory in words.
ROUTE_NAMES: Final = {
    "https": "Direct to their node (HTTPS)",
    "mesh": "NHS MESH",
    "mailbox": "Relay mailbox",
    "smtp": "Secure email",
    "none": "No route this node can use",
}


def role_name(role: str) -> str:
    """Return a role in words (the role itself if it has no name here)."""
    return ROLE_NAMES.get(role, role)


def role_choices() -> list[dict[str, str]]:
    """Return the roles as radio items: value, words and hint."""
    return [
        {"value": role, "text": ROLE_NAMES[role], "hint": ROLE_HINTS[role]} for role in ROLE_NAMES
    ]


def route_name(kind: str) -> str:
    """Return a route kind in words (the kind itself if it has no name here)."""
    return ROUTE_NAMES.get(kind, kind)


def count_words(count: int, one: str, many: str) -> str:
    """Return ``1 dead letter`` or ``3 dead letters``."""
    return f"{count} {one if count == 1 else many}"


def second_factor_words(account: Account) -> str:
    """Say which second factors an account has set up: an app, passkeys, both or none."""
    parts = ["Authenticator app"] if account.has_code else []
    if account.passkeys:
        parts.append(f"{account.passkeys} passkey{'s' if account.passkeys != 1 else ''}")
    return " and ".join(parts) if parts else "Not set up"
