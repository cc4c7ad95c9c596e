"""A node's outbox held still, so that what is submitted waits as behind a busy outbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from exchange.node.runtime import Node


@contextmanager
def outbox_held(node: Node, *, max_backlog: int | None = None) -> Iterator[None]:
    """Make no delivery attempts (and set ``max_backlog``, if given) until the block ends.

    The delivery worker claims as many items as its concurrency leaves room for: at 0 it
    claims none, so envelopes stay queued for destinations that were never found down.
    """
    worker, backpressure = node.worker, node.service.backpressure
    config, limit = worker.config, backpressure.max_backlog
    worker.config = replace(config, concurrency=0)
    if max_backlog is not None:
        backpressure.max_backlog = max_backlog
    try:
        yield
    finally:
        worker.config = config
        backpressure.max_backlog = limit
        node.service.outbox_wakeup.set()
