"""A progress bar on standard error, drawn only when standard error is a terminal.

``exchange send`` streams its attachments to the node; on a terminal this shows how much
has gone (``sending  42% [########            ] 8.4 of 20.0 MB``), redrawn at most
:data:`REDRAW_EVERY` seconds apart on one line. In a pipe, a log or a script it writes
nothing, so standard error keeps only the one-line messages scripts rely on.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Final, TextIO

#: Seconds between redraws: often enough to look alive, rarely enough to cost nothing.
REDRAW_EVERY: Final = 0.1
_WIDTH: Final = 24
_MB: Final = 1_000_000


class Progress:
    """Counts bytes towards ``total`` and draws the bar if ``stream`` is a terminal."""

    def __init__(
        self,
        label: str,
        total: int,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = max(total, 1)
        self.stream = sys.stderr if stream is None else stream
        self.shown = _is_terminal(self.stream)
        self.clock = clock
        self.done = 0
        self._drawn_at: float | None = None

    def restart(self) -> None:
        """Count from zero again (the request is being made again)."""
        self.done = 0
        self._drawn_at = None

    def advance(self, size: int) -> None:
        """Count ``size`` more bytes, redrawing if it is time."""
        self.done += size
        if not self.shown:
            return
        now = self.clock()
        due = self._drawn_at is None or now - self._drawn_at >= REDRAW_EVERY
        if due or self.done >= self.total:
            self._drawn_at = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def line(self) -> str:
        """Return the bar as it stands."""
        share = min(self.done / self.total, 1.0)
        filled = int(share * _WIDTH)
        bar = "#" * filled + " " * (_WIDTH - filled)
        return (
            f"{self.label} {share:4.0%} [{bar}] {self.done / _MB:.1f} of {self.total / _MB:.1f} MB"
        )

    def finish(self) -> None:
        """End the bar's line, so what follows starts on a line of its own."""
        if self.shown and self._drawn_at is not None:
            self.stream.write("\n")
            self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
