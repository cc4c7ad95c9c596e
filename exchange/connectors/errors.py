"""Failures inside a connector: library exceptions translated at the edge, then outcomes.

A connector's internals raise these, each chained with ``from`` to the library exception it
replaces, at the one edge that translates (:func:`exchange.connectors.edge.translated` for
aiohttp). The connector's public ``deliver`` catches them and returns their
:meth:`AttemptError.outcome`, so callers only ever see outcome values
(exchange.connectors.base); the calls without an outcome value turn them into the port's
:class:`~exchange.connectors.base.TransportError`. They never escape a connector. They are
not :class:`~exchange.connectors.base.ConnectorError` subclasses on purpose: that class
means misuse by the caller, and an ``except ConnectorError`` written for misuse must not
swallow an ordinary network failure.

The tree::

    Exception
     ├── ConnectorError          exchange.connectors.base: misuse (closed, wrong route kind)
     └── AttemptError            one attempt failed; never leaves the connector
          ├── TransientError     may pass later  -> RetryLater
          │    ├── UnreachableError     exchange.connectors.edge: network, TLS, deadline
          │    └── AnswerTooLargeError  exchange.connectors.edge: an answer over its limit
          └── PermanentError     never on route  -> Refused
"""

from __future__ import annotations

from exchange.connectors.base import CollectError, RecallError, Refused, RetryLater


class AttemptError(Exception):
    """One delivery attempt failed; ``reason`` is a plain sentence with no message content."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def outcome(self) -> RetryLater | Refused:
        """Return the outcome value the connector answers with."""
        raise NotImplementedError

    def collect_error(self) -> CollectError:
        """Return the port's failure for a collect or acknowledge call that met this."""
        return CollectError(self.reason, retry=isinstance(self, TransientError))

    def recall_error(self) -> RecallError:
        """Return the port's failure for a recall or status call that met this."""
        return RecallError(self.reason, retry=isinstance(self, TransientError))


class TransientError(AttemptError):
    """The attempt may work later: network down, timeout, 5xx, 429, an oversized answer.

    ``far_time`` is the far side's clock when it answered (its ``Date``), if it answered;
    ``clock`` is true when it refused the request because of its time (a clock is off).
    """

    def __init__(
        self,
        reason: str,
        *,
        after: float | None = None,
        far_time: float | None = None,
        clock: bool = False,
    ) -> None:
        super().__init__(reason)
        self.after = after
        self.far_time = far_time
        self.clock = clock

    def outcome(self) -> RetryLater:
        """Return :class:`RetryLater` with this reason."""
        return RetryLater(self.reason, self.after, far_time=self.far_time, clock=self.clock)


class PermanentError(AttemptError):
    """The route will never take this message: a final 4xx, a malformed route address."""

    def outcome(self) -> Refused:
        """Return :class:`Refused` with this reason."""
        return Refused(self.reason)
