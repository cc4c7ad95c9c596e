"""The serving process freezes its start-up objects (exchange/node/heap.py)."""

from __future__ import annotations

import gc

from exchange.node.heap import freeze_start_up


def test_start_up_objects_are_frozen_out_of_the_collectors_way() -> None:
    kept = [object() for _ in range(1000)]
    assert gc.get_freeze_count() == 0
    try:
        freeze_start_up()
        # Everything alive, these included, is now in the permanent generation.
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
    assert gc.get_freeze_count() == 0
