"""What the outbox says of a far side whose clock disagrees with this node's.

A peer node or relay refuses a signed request whose ``created`` time is more than five
minutes from its own clock (docs/protocol.md §5, ``signature.time``). That is not a final
refusal: once the clocks agree the same item goes through, so the outbox waits and tries
again. The item's last error then says how far off the far side's clock is, in a sentence
:func:`skew_reason` writes and :func:`skew_in_reason` reads back for the sent views. Pure:
the skew is measured by the worker, from the far side's ``Date`` and this node's clock.
"""

from __future__ import annotations

import re
from typing import Final

#: The sentence of an item waiting because a far side refused its time; ``{who}`` is
#: "receiver" or "relay", ``{seconds}`` how far off, ``{direction}`` ahead or behind.
_REASON: Final = (
    "the {who}'s clock is {seconds} seconds off ({direction} this node's clock), so it "
    "refuses the signed request as {staleness}; the item waits and is tried again until "
    "the clocks agree"
)
_REASON_RE: Final = re.compile(
    r"the (?:receiver|relay)'s clock is (?P<seconds>[0-9]{1,12}) seconds off "
    r"\((?P<direction>ahead of|behind) this node's clock\)"
)


def skew_reason(skew: int, *, relay: bool = False) -> str:
    """Return the last error of an item refused because the far side's clock is ``skew`` off.

    ``skew`` is the far side's clock minus this node's, in whole seconds: positive when the
    far side runs ahead. ``relay`` names a relay rather than the receiving node.
    """
    return _REASON.format(
        who="relay" if relay else "receiver",
        seconds=abs(skew),
        direction="ahead of" if skew >= 0 else "behind",
        staleness="too old" if skew >= 0 else "from the future",
    )


def skew_in_reason(reason: str | None) -> int | None:
    """Return the skew a :func:`skew_reason` sentence names (negative: behind), or None."""
    match = _REASON_RE.match(reason or "")
    if match is None:
        return None
    seconds = int(match["seconds"])
    return seconds if match["direction"] == "ahead of" else -seconds
