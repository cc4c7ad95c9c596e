"""A sent item's story with one recipient, in plain words: each attempt, route, receipt, recall.

The words come from what the service already holds about the item, and nothing else: the
sender's own ledger events for that recipient (each delivery attempt and the route it went
over, each move to a fallback route), the signed receipts the recipient sent back
(delivered, opened, acknowledged, rejected) and the outcome of a recall. Times are in
Europe/London. No event carries record content, so neither does the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from exchange.model import RecallRow
from exchange.service.views import RecipientView, TimelineEvent
from exchange.web.words import london_time

#: Each route kind as the pages name it.
ROUTE_WORDS: Final = {
    "https": "the direct connection to their node",
    "mailbox": "a relay mailbox",
    "mesh": "NHS MESH",
    "smtp": "secure email",
    "outbox": "this node",
    "none": "no route",
}

#: What each outcome of a delivery attempt means (``attempted`` events: ``outcome:route``).
_ATTEMPTS: Final = {
    "handed-over": "Handed over to {route}",
    "retry": "Could not be delivered over {route}; it will be tried again",
    "refused": "Refused over {route}; it will not be tried there again",
    "expired": "Expired in {route} before it was collected",
    "undelivered": "Reported undelivered over {route}",
}

#: What each signed receipt from the recipient says.
_RECEIPTS: Final = {
    "delivered": "Received by their node",
    "opened": "Opened by a member of their staff",
    "acknowledged": "Acknowledged",
    "rejected": "Rejected",
}

#: What each recall outcome means for this recipient.
RECALL_OUTCOMES: Final = {
    "recalled": "Recalled before anyone opened it",
    "too-late": "Could not be recalled: it had already been opened",
    "not-recallable": "Could not be recalled by this service",
    "expired": "The relay had already expired it, uncollected",
    "pending": "Recall not finished: a delivery attempt was under way",
    "failed": "Recall not finished: their side could not be asked",
}


@dataclass(frozen=True)
class Moment:
    """One line of a recipient's timeline: when, and what happened, in words."""

    time: float
    text: str


def route_words(kind: str | None) -> str:
    """Return a route kind in words (``not handed over yet`` when there is none)."""
    if kind is None:
        return "not handed over yet"
    return ROUTE_WORDS.get(kind, kind)


def _attempt(reason: str | None) -> str:
    outcome, _, kind = (reason or "").partition(":")
    words = _ATTEMPTS.get(outcome, "A delivery attempt over {route}")
    return words.format(route=route_words(kind or None))


def _recall_moments(recall: RecallRow) -> list[Moment]:
    moments = [Moment(recall.requested_at, "Your organisation asked to recall it")]
    words = RECALL_OUTCOMES.get(recall.outcome, recall.outcome)
    detail = recall.detail.rstrip(".")
    text = f"{words} ({detail})" if detail else words
    moments.append(Moment(recall.at if recall.at is not None else recall.updated_at, text))
    return moments


def recipient_timeline(
    recipient: RecipientView, events: tuple[TimelineEvent, ...], submitted_at: float
) -> list[Moment]:
    """Return what happened to a sent item with one recipient, oldest first."""
    org = recipient.delivery.destination
    moments = [Moment(submitted_at, "Sent by your organisation")]
    for event in events:
        if event.counterparty != org:
            continue
        if event.type == "attempted":
            moments.append(Moment(event.time, _attempt(event.reason)))
        elif event.type == "fallback":
            route = route_words(event.reason)
            moments.append(Moment(event.time, f"Moved on from {route} to the next route"))
    moments.extend(
        Moment(r.time, _RECEIPTS.get(r.status, r.status.capitalize())) for r in recipient.receipts
    )
    if recipient.recall is not None:
        moments.extend(_recall_moments(recipient.recall))
    if recipient.delivery.state == "dead":
        moments.append(
            Moment(recipient.delivery.updated_at, "Delivery failed: no route could deliver it")
        )
    # Receipts and events carry whole seconds: in the same second, the order added stands.
    return sorted(moments, key=lambda m: int(m.time))


def timeline_rows(moments: list[Moment]) -> list[list[str]]:
    """Return the timeline as table rows: the London time, then what happened."""
    return [[london_time(m.time), m.text] for m in moments]
