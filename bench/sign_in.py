"""Benchmark of signing in, stepping up and recording account events (docs/performance.md).

Run ``python bench/sign_in.py`` (``--quick`` for fewer repetitions). Everything runs on a
real SQLite store in a temporary folder, through the accounts and passkeys services the web
pages call, with the node's own password parameters (Argon2id). The clock is the bench's
own, moved 30 seconds per sign-in so each authenticator code is a fresh one.

What is measured, interleaved round-robin so that the shared machine's noise falls on all
alike, each as the median time of one operation:

- **password and app**: the email address and password (:meth:`Accounts.begin_sign_in`),
  the session (``start_session``) and the code (``verify_second_factor``), with its
  ``sign-in`` account event in the ledger. Reference: one Argon2id verification of the same
  password alone, the part no sign-in can avoid. Target: at most 1.5 times the reference
  (the hash is meant to dominate; the transactions around it must not).
- **passkey**: the options and the answer of a software passkey (ECDSA P-256), checked by
  py_webauthn, with its account event. **step-up by code**: ``/sign-in/confirm``'s call
  on a signed-in session. **account event**: one ``_audited`` call (the ledger statement,
  its commitment and the readable row, in one transaction). Reference for these three: a
  page's session check (``session_for``: one read and one write of the sessions table),
  the floor of any signed-in request. Targets: a passkey sign-in and a step-up under
  20 times a page's session check; an account event under 3 times.

Single sign-on is not here: its time is the provider's and the network's (a token request
and, hourly, the provider's keys), and its checks are one ID token signature.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from exchange.auth.account import NewAccount
from exchange.auth.passkey import browser_binding
from exchange.auth.passwords import hash_password, verify_password
from exchange.auth.totp import TotpSecret, code_at
from exchange.keys.ids import OrgId
from exchange.logs import configure
from exchange.model import User
from exchange.service.accounts import Accounts
from exchange.service.passkeys import Passkeys
from exchange.store import SqliteStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.auth.webauthn_device import SoftPasskey

SCHOOL: Final = OrgId("urn:106123")
DSL: Final = User("u-dsl", SCHOOL, "Dee Ess", "dsl")
EMAIL: Final = "dsl@hillside.example"
PASSWORD: Final = "bench password, not a secret"  # noqa: S105
PUBLIC_URL: Final = "https://exchange.hillside.example"
BROWSER: Final = browser_binding(b"\x01" * 32)
T0: Final = 1_800_000_000.0
SECRET: Final = TotpSecret(bytes(range(20)))


@dataclass
class Context:
    """The store, the bench's clock and the node's public URL."""

    store: SqliteStore
    public_url: str = PUBLIC_URL
    clock: float = T0

    def now(self) -> int:
        """Return the bench's time in whole seconds."""
        return int(self.clock)


async def _setup(folder: Path) -> tuple[Context, Accounts, Passkeys, SoftPasskey]:
    store = await SqliteStore.open(folder)
    encoded = await asyncio.to_thread(hash_password, PASSWORD, _random)
    account = NewAccount(user_id=DSL.id, email=EMAIL, password_hash=encoded)
    await store.add_user_with_account(DSL, hashlib.sha256(b"u-dsl").digest(), account, T0)
    row = await store.account_by_user(DSL.id)
    assert row is not None
    await store.set_totp_pending(row.id, SECRET, T0)
    assert await store.confirm_totp(row.id, SECRET, step=1, recovery_hashes=[], now=T0)
    context = Context(store)
    accounts = Accounts(context)
    passkeys = Passkeys(context, accounts)
    device = SoftPasskey(rp_id="exchange.hillside.example", origin=PUBLIC_URL)
    token, _ = await accounts.start_verified_session(
        DSL.id, method="password+totp", second_factor=True
    )
    options = await passkeys.registration_options(token, binding=BROWSER)
    await passkeys.add(token, binding=BROWSER, answer=device.register(options), name="Bench")
    return context, accounts, passkeys, device


def _random(n: int) -> bytes:
    return secrets.token_bytes(n)


async def _run(quick: bool) -> list[str]:
    rounds = 15 if quick else 60
    with tempfile.TemporaryDirectory() as tmp:
        context, accounts, passkeys, device = await _setup(Path(tmp) / "node")
        account = await context.store.account_by_user(DSL.id)
        assert account is not None
        encoded = account.password_hash
        page_token, _ = await accounts.start_verified_session(
            DSL.id, method="password+totp", second_factor=True
        )

        def tick() -> float:
            context.clock += 31
            return context.clock

        async def argon2() -> None:
            await asyncio.to_thread(verify_password, PASSWORD, encoded)

        async def password_and_app() -> None:
            t = tick()
            step = await accounts.begin_sign_in(EMAIL, PASSWORD, now=t)
            token, _ = await accounts.start_session(step, now=t)
            await accounts.verify_second_factor(token, code_at(SECRET, t), now=t)

        async def page_session() -> None:
            context.clock += 1
            assert await accounts.session_for(page_token, now=context.clock) is not None

        async def passkey() -> None:
            t = tick()
            options = await passkeys.sign_in_options(binding=BROWSER, session=None, now=t)
            await passkeys.sign_in(binding=BROWSER, answer=device.sign_in(options), now=t)

        first, _ = await accounts.start_verified_session(
            DSL.id, method="password+totp", second_factor=True
        )
        step_token = [first]

        async def step_up() -> None:
            t = tick()
            token, _ = await accounts.step_up(step_token[0], code_at(SECRET, t), now=t)
            step_token[0] = token

        async def account_event() -> None:
            await accounts._audited("step-up", DSL, method="password+totp", now=context.clock)

        cases: dict[str, Callable[[], Awaitable[None]]] = {
            "Argon2id verify (reference 1)": argon2,
            "password and app": password_and_app,
            "page session check (reference 2)": page_session,
            "passkey": passkey,
            "step-up by code": step_up,
            "account event": account_event,
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, case in cases.items():
                start = time.perf_counter()
                await case()
                times[name].append(time.perf_counter() - start)
        await context.store.close()
    median = {name: statistics.median(t) * 1000 for name, t in times.items()}
    ref1 = median["Argon2id verify (reference 1)"]
    ref2 = median["page session check (reference 2)"]
    targets = {
        "password and app": (ref1, 1.5),
        "passkey": (ref2, 20.0),
        "step-up by code": (ref2, 20.0),
        "account event": (ref2, 3.0),
    }
    lines = [
        f"Python {platform.python_version()}, {rounds} rounds, medians",
        "",
        "| operation | median ms | reference | ratio | target | |",
        "|---|---:|---|---:|---:|---|",
    ]
    for name, ms in median.items():
        if name in targets:
            ref, limit = targets[name]
            ratio = ms / ref
            which = "1" if ref is ref1 else "2"
            verdict = "PASS" if ratio <= limit else "MISS"
            lines.append(f"| {name} | {ms:.2f} | {which} | {ratio:.2f} | ≤ {limit:g} | {verdict} |")
        else:
            lines.append(f"| {name} | {ms:.2f} | | | | |")
    return lines


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    configure(level=logging.WARNING)
    print("\n".join(asyncio.run(_run(args.quick))))


if __name__ == "__main__":
    main()
