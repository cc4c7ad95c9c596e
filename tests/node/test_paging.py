"""Sent and inbox lists page with a cursor: every item once, newest first, bad input refused."""

from __future__ import annotations

from typing import Any

from exchange.demo.loopback import Deployment

from .conftest import LA, SCHOOL
from .helpers import auth, client, get_json, submit, until


async def _all_pages(world: Deployment, url: str, headers: dict[str, str]) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    async with client(world) as http:
        while True:
            query = "?limit=2" + (f"&before={cursor}" if cursor else "")
            page: dict[str, Any] = await get_json(http, url + query, headers)
            pages.append([i["digest"] for i in page["items"]])
            cursor = page["next"]
            if cursor is None:
                return pages


async def test_sent_and_inbox_page_through_every_item_once(world: Deployment) -> None:
    async with client(world) as http:
        digests = [
            (await submit(http, world, f"synthetic {i}".encode(), [LA]))["digest"] for i in range(5)
        ]
        inbox_url = world.url("la") + "/api/v1/inbox"

        async def arrived() -> bool:
            page = await get_json(http, inbox_url, auth(world, LA, "staff"))
            return len(page["items"]) == 5

        await until(arrived, timeout=20.0)
    sent_pages = await _all_pages(
        world, world.url("school") + "/api/v1/sent", auth(world, SCHOOL, "dsl")
    )
    assert [len(p) for p in sent_pages] == [2, 2, 1]
    assert [d for p in sent_pages for d in p] == digests[::-1]
    inbox_pages = await _all_pages(world, inbox_url, auth(world, LA, "staff"))
    assert sorted(d for p in inbox_pages for d in p) == sorted(digests)
    assert [len(p) for p in inbox_pages] == [2, 2, 1]


async def test_bad_paging_parameters_are_refused_by_name(world: Deployment) -> None:
    url = world.url("school") + "/api/v1/sent"
    cases = {
        "?limit=0": "limit must be a whole number from 1 to 200",
        "?limit=201": "limit must be a whole number from 1 to 200",
        "?limit=two": "limit must be a whole number from 1 to 200",
        "?before=yesterday": "before must be the next cursor of an earlier page",
        "?page=2": "this address takes only the parameters limit, before",
        "?limit=2&limit=3": "each query parameter may be given only once",
    }
    async with client(world) as http:
        for query, message in cases.items():
            async with http.get(url + query, headers=auth(world, SCHOOL, "dsl")) as resp:
                assert resp.status == 400, query
                assert (await resp.json())["error"]["message"] == message
