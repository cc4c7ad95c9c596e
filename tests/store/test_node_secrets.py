"""Secrets the processes of one node share: made once, the same in every opening of the store."""

from __future__ import annotations

import asyncio

from exchange.store.base import Store

from .conftest import T0


async def test_the_first_secret_offered_is_kept_for_every_process(
    pair: tuple[Store, Store],
) -> None:
    first, second = pair
    made = await first.node_secret("sso-pending", b"a" * 32, T0)
    assert made == b"a" * 32
    # Another process offering its own value gets the one made first, now and later.
    assert await second.node_secret("sso-pending", b"b" * 32, T0 + 1) == made
    assert await first.node_secret("sso-pending", b"c" * 32, T0 + 2) == made


async def test_each_name_is_its_own_secret(pair: tuple[Store, Store]) -> None:
    first, second = pair
    assert await first.node_secret("one", b"1" * 32, T0) == b"1" * 32
    assert await second.node_secret("two", b"2" * 32, T0) == b"2" * 32


async def test_processes_starting_together_agree_on_one_secret(
    pair: tuple[Store, Store],
) -> None:
    first, second = pair
    offers = [(first if n % 2 else second, bytes([n]) * 32) for n in range(8)]
    kept = await asyncio.gather(*(s.node_secret("web", offer, T0) for s, offer in offers))
    assert len(set(kept)) == 1
    assert kept[0] in {offer for _, offer in offers}
