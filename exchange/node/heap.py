"""The serving process's heap after start-up: frozen, so garbage collection skips it.

A node starts by importing its libraries and building its directory, schemas, templates and
keys: hundreds of thousands of objects that live as long as the process. Python's cyclic
garbage collector walks every one of them at each full collection, which stalled a loaded
node for up to 93 ms at a time (bench/load.py: 532 ms of full collections in one run, 113 ms
with the start-up objects frozen). :func:`freeze_start_up` moves them out of the
collector's way once, after the node has started and before it takes load. Only the
process that serves (``exchange serve``) calls it: a program that starts and stops many
nodes (the test suite) would keep every frozen object for ever.
"""

from __future__ import annotations

import gc


def freeze_start_up() -> None:
    """Collect once, then freeze every object alive: collections no longer walk them."""
    gc.collect()
    gc.freeze()
