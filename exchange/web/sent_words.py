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


def clock_words(recipient: RecipientView) -> str | None:
    """Return why a delivery waits when a clock holds it up, in plain words; else None."""
    skew = recipient.clock_skew
    if skew is None:
        return None
    whose = "The relay's" if recipient.delivery.route_kind == "mailbox" else "Their node's"
    direction = "ahead of" if skew >= 0 else "behind"
    return (
        f"{whose} clock is {abs(skew)} seconds {direction} this service's clock, so the "
        "record is turned away for now. It will be sent again by itself once the clocks "
        "agree. Ask their IT team to check their clock."
    )


def item_path(digest: bytes) -> str:
    """Return the path of a sent item's page."""
    return f"/sent/{digest.hex()}"
