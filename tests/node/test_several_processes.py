"""Two ``exchange serve`` processes of one node on one store, as behind a load balancer.

The second process is a second :class:`~exchange.node.runtime.Node` started from the same
configuration while the first runs (SQLite: the same folder opened twice; PostgreSQL: the
same database, and a data folder of its own as on another machine), on a port of its own.
A browser or a client may reach either with each request; what one process gave out must
work at the other.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from exchange.auth.session import session_id_hash
from exchange.auth.sso_pending import PendingLogin, open_pending, seal_pending
from exchange.config import ConfigError, load_config
from exchange.demo.loopback import Deployment
from exchange.node.runtime import Node, shared_register_key
from exchange.service.register_reports import KEY_FILE
from exchange.web.accounts import REFUSED
from exchange.web.security import WebKeys
from exchange.web.sso import PENDING_KEY
from tests.web.page_client import Answer, PageClient, csrf_token
from tests.web.send_filling import fill_referral
from tests.web.world import World

from .conftest import LA, SCHOOL
from .helpers import auth, submission

pytestmark = pytest.mark.network


@pytest.fixture
async def second(world: Deployment, store_engine: str) -> AsyncIterator[Node]:
    """Start a second process of the school's node beside the first; stop it afterwards.

    On PostgreSQL it has a data folder of its own, as on another machine, holding only the
    node's ``register.key`` (copied, as the operator copies it).
    """
    config = load_config(world.folder / "node-school.toml")
    # Its own ports (the file names the first process's, once it was bound).
    config = replace(config, port=0, ops=replace(config.ops, port=0))
    if store_engine == "postgresql":
        own = world.folder / "data-school-elsewhere"
        own.mkdir(mode=0o700)
        shutil.copy2(config.data_dir / KEY_FILE, own / KEY_FILE)
        config = replace(config, data_dir=own)
    node = Node(config, match_public_url=False)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


def _browser(world: Deployment) -> aiohttp.ClientSession:
    """Return a client keeping cookies for 127.0.0.1, both processes' host, as a browser does."""
    assert world.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.ca_file))
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


async def _sign_in_elsewhere(browser: aiohttp.ClientSession, first: str, other: str) -> int:
    """Load the sign-in form from ``first``, post it to ``other``; return the status."""
    async with browser.get(first + "/sign-in") as page:
        assert page.status == 200
        token = csrf_token(await page.text())
    form = {"csrf_token": token, "email": "nobody@example.org", "password": "not this one"}
    async with browser.post(other + "/sign-in", data=form, allow_redirects=False) as answer:
        if answer.status == 401:
            assert REFUSED in await answer.text()
        return answer.status


async def test_a_sign_in_form_from_one_process_is_accepted_by_another(
    world: Deployment, second: Node
) -> None:
    """The pre-sign-in CSRF cookie is signed with the node's key, not a process's."""
    first = world.url("school")
    other = f"https://127.0.0.1:{second.port}"
    async with _browser(world) as browser:
        # Past the CSRF check at the other process: the password is what is refused.
        assert await _sign_in_elsewhere(browser, first, other) == 401
        assert await _sign_in_elsewhere(browser, other, first) == 401


async def test_a_sign_in_form_from_another_node_is_still_refused(
    world: Deployment, second: Node
) -> None:
    """The key is the node's: a form (and cookie) another node's store signed fails (403)."""
    async with _browser(world) as browser:
        status = await _sign_in_elsewhere(
            browser, world.url("la"), f"https://127.0.0.1:{second.port}"
        )
        assert status == 403


async def test_a_sign_on_sealed_by_one_process_opens_in_another(
    world: Deployment, second: Node
) -> None:
    """The provider may send the browser back to the other process: it opens the cookie."""
    first = world.nodes["school"]
    now = first.service.clock()
    pending = PendingLogin("test", "state", "nonce", "verifier", created=now, return_to="/inbox")
    sealed = seal_pending(first.app[PENDING_KEY], pending, lambda n: b"\x01" * n)
    assert open_pending(second.app[PENDING_KEY], sealed, now=now) == pending
    # Another key (as each process made its own before) opens nothing.
    assert open_pending(WebKeys.random().sso_pending, sealed, now=now) is None


async def test_one_key_sent_to_two_processes_at_once_seals_one_envelope(
    world: Deployment, second: Node
) -> None:
    """Each process holds its keys in progress alone; the store lets one commit through."""
    bases = (world.url("school"), f"https://127.0.0.1:{second.port}")
    store = world.nodes["school"].service.store
    async with _browser(world) as http:
        for round_ in range(3):
            body = submission(b'{"synthetic": "twice %d"}' % round_, [LA])
            headers = {**auth(world, SCHOOL, "dsl"), "Idempotency-Key": f"key-{round_}"}

            async def post(base: str, body: Any = body, headers: Any = headers) -> str:
                async with http.post(f"{base}/api/v1/envelopes", json=body, headers=headers) as r:
                    assert r.status == 202, await r.text()
                    return str((await r.json())["digest"])

            answers = await asyncio.gather(*(post(b) for b in bases))
            assert answers[0] == answers[1]
        sent = await store.list_sent(SCHOOL, limit=50)
        assert len(sent) == 3


async def test_a_process_with_another_register_key_is_refused(second: Node) -> None:
    """A process whose register.key is not the one the store was used with does not start."""
    store = second.service.store
    key_file = store.folder / KEY_FILE
    kept = key_file.read_bytes()
    # The same key passes (as every process of the node reads it) ...
    await shared_register_key(store, second.clock)
    # ... another, as `exchange serve` would make on a machine without the file, is refused.
    key_file.write_bytes(hashlib.sha256(b"another machine").digest())
    try:
        with pytest.raises(ConfigError) as refused:
            await shared_register_key(store, second.clock)
        assert "is not the register key this node's store was used with" in str(refused.value)
    finally:
        key_file.write_bytes(kept)


@dataclass
class _Alternating(PageClient):
    """A browser whose every request reaches the other process, as a load balancer may send it."""

    bases: tuple[str, ...] = ()
    reached: list[str] = field(default_factory=list)

    def _next(self) -> None:
        self.base = self.bases[len(self.reached) % len(self.bases)]
        self.reached.append(self.base)

    async def get(self, path: str) -> Answer:
        self._next()
        return await super().get(path)

    async def _post(
        self, path: str, fields: list[tuple[str, str]]
    ) -> tuple[int, bytes, CIMultiDictProxy[str]]:
        self._next()
        return await super()._post(path, fields)

    async def upload(
        self,
        path: str,
        page: str,
        *,
        name: str,
        data: bytes,
        fields: Mapping[str, str] | None = None,
    ) -> Answer:
        self._next()
        return await super().upload(path, page, name=name, data=data, fields=fields)


async def test_the_send_journey_alternating_between_processes_sends_the_record_once(
    world: Deployment, second: Node
) -> None:
    """Each page at the other process: the draft and its file are in the store, not a process.

    Sent at both processes at once, the record makes one envelope, and both answers go to
    its confirmation; the draft's answers and files are gone from the store afterwards.
    """
    assert world.ca_file is not None
    context = ssl.create_default_context(cafile=str(world.ca_file))
    async with aiohttp.ClientSession() as plain:
        pages = World(world, context, plain)
        try:
            pages.made[SCHOOL, "dsl"] = 1  # the deployment made the first DSL
            person = await pages.person(SCHOOL, "dsl")
            bases = (world.url("school"), f"https://127.0.0.1:{second.port}")
            browser = _Alternating(person.http, bases[0], bases=bases)
            check = await fill_referral(browser)
            assert set(browser.reached) == set(bases)
            service = world.nodes["school"].service
            before = await service.sent_items(person.user, limit=100, before=None)
            _, page, _ = await browser.get(check)
            send = check.replace("/check", "/send")
            first, other = (PageClient(person.http, base) for base in bases)
            answers = await asyncio.gather(first.post(send, {}, page), other.post(send, {}, page))
            sent = check.replace("/check", "/sent")
            assert [(status, headers["Location"]) for status, _, headers in answers] == [
                (303, sent),
                (303, sent),
            ]
            for client in (first, other):
                status, shown, _ = await client.get(sent)
                assert status == 200
                assert "Record sent" in shown
            after = await service.sent_items(person.user, limit=100, before=None)
            assert len(after) == len(before) + 1
            token = person.session_token()
            assert token is not None
            owner = session_id_hash(token)
            assert owner is not None
            assert await service.drafts_store.draft_file_ids(owner) == []
        finally:
            for client in pages.clients:
                await client.close()
