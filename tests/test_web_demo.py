"""``exchange demo`` in a terminal keeps demo nodes serving, with accounts that can sign in."""

from __future__ import annotations

import asyncio
import re
import ssl

import aiohttp
import pytest

from exchange.demo import web_part

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_without_a_terminal_the_demo_does_not_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under CI, or with stdin or stdout not a terminal, the demo ends after its story."""
    monkeypatch.setenv("CI", "true")
    assert not web_part.should_serve()
    monkeypatch.delenv("CI")
    # pytest captures stdout, so it is not a terminal here.
    assert not web_part.should_serve()


async def test_the_served_nodes_sign_in_each_printed_account() -> None:
    """Every printed address answers, and a printed account signs in with the password."""
    said: list[str] = []
    stop = asyncio.Event()
    task = asyncio.create_task(web_part.serve_until_stopped(said.append, stop))
    try:
        async with asyncio.timeout(120):
            while not any(line.startswith("Every demo account's password") for line in said):
                assert not task.done(), said
                await asyncio.sleep(0.1)
        text = "\n".join(said)
        assert "synthetic" in text
        password = re.search(r"password: (\S+)", text)
        assert password is not None
        addresses = re.findall(r"(https://127\.0\.0\.1:\d+)/sign-in", text)
        assert len(addresses) == 4
        emails = re.findall(r"^  (\S+@\S+)", text, re.MULTILINE)
        assert len(emails) == 16
        assert "dsl@frontdoor.demo" in emails
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        jar = aiohttp.CookieJar(unsafe=True)
        connector = aiohttp.TCPConnector(ssl=tls)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
            for address in set(addresses):
                async with http.get(address + "/sign-in") as resp:
                    assert resp.status == 200
            front_door = addresses[1]
            async with http.get(front_door + "/sign-in") as resp:
                page = await resp.text()
            token = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert token is not None
            form = {
                "csrf_token": token.group(1),
                "email": "dsl@frontdoor.demo",
                "password": password.group(1),
            }
            async with http.post(front_door + "/sign-in", data=form) as resp:
                # A first sign-in sets up the authenticator app.
                assert resp.url.path == "/sign-in/set-up-authenticator"
                assert "QR code" in await resp.text()
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    assert said[-1] == "the demo nodes stopped; the temporary folder was removed"
