"""The words the sent items pages share: status tags, short references, item paths."""

from __future__ import annotations

from typing import Final

from exchange.service.views import RecipientView

#: Each recipient status's words and GOV.UK tag colour (exchange.service.views.RecipientView).
STATUS_TAGS: Final = {
    "queued": ("Queued", "grey"),
    "sent": ("Sent", "light-blue"),
    "delivered": ("Delivered", "blue"),
    "opened": ("Opened", "teal"),
    "acknowledged": ("Acknowledged", "green"),
    "rejected": ("Rejected", "pink"),
    "overdue": ("Overdue", "red"),
    "recalled": ("Recalled", "yellow"),
    "failed": ("Failed", "red"),
}


def status_tag(recipient: RecipientView) -> dict[str, str]:
    """Return a recipient's status as the words and colour of its tag."""
    words, colour = STATUS_TAGS[recipient.status]
    return {"words": words, "colour": colour}


def item_path(digest: bytes) -> str:
    """Return the path of a sent item's page."""
    return f"/sent/{digest.hex()}"
