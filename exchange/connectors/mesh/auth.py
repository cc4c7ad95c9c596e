"""The NHSMESH authorisation header (mesh-api.yaml, "MESH Authorization header").

Pure: no I/O. Every MESH request carries::

    Authorization: NHSMESH {mailbox}:{nonce}:{nonce_count}:{timestamp}:{hash}

where ``timestamp`` is the UTC time as ``yyyyMMddHHmm`` and ``hash`` is the lower-case hex
HMAC-SHA256, keyed with the environment's shared key, of
``{mailbox}:{nonce}:{nonce_count}:{password}:{timestamp}``. The live service accepts each
token once (a repeat is ``403``) and only within two hours of its clock; the sandbox is
more lenient, so :class:`TokenSource` holds our side to the live rule: a fresh uuid4 nonce
for every request, ``nonce_count`` 0, and a refusal to hand out a nonce it has handed out
recently (which only an injected nonce source could produce).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

#: The scheme name; the header value is the scheme, one space, then the token.
SCHEME: Final = "NHSMESH"

#: A mailbox id as MESH issues them: upper-case letters and digits (mesh-api.yaml: "Must be
#: uppercase"); the colon would break the token's layout.
MAILBOX_RE: Final = re.compile(r"[A-Z0-9]{1,100}")

#: How many recent nonces :class:`TokenSource` remembers to refuse a repeat.
RECENT_NONCES: Final = 4096


def timestamp(now: datetime) -> str:
    """Return ``now`` (timezone-aware) in UTC as ``yyyyMMddHHmm``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).strftime("%Y%m%d%H%M")


def auth_header(
    mailbox: str,
    password: str,
    shared_key: bytes,
    *,
    nonce: str,
    nonce_count: int,
    now: datetime,
) -> str:
    """Return the ``Authorization`` header value for one request."""
    if not MAILBOX_RE.fullmatch(mailbox):
        raise ValueError("mailbox must be upper-case letters and digits")
    if not nonce or ":" in nonce:
        raise ValueError("nonce must be non-empty and contain no colon")
    if nonce_count < 0:
        raise ValueError("nonce_count must not be negative")
    when = timestamp(now)
    signed = f"{mailbox}:{nonce}:{nonce_count}:{password}:{when}"
    digest = hmac.new(shared_key, signed.encode(), hashlib.sha256).hexdigest()
    return f"{SCHEME} {mailbox}:{nonce}:{nonce_count}:{when}:{digest}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _uuid4() -> str:
    return str(uuid.uuid4())


class TokenSource:
    """Mints a single-use ``Authorization`` value for every request of one mailbox.

    ``clock`` returns the current time (timezone-aware) and ``nonces`` a new nonce; both are
    injectable for tests. Each call uses a new nonce with ``nonce_count`` 0. A nonce seen in
    the last :data:`RECENT_NONCES` calls raises ``ValueError`` instead of producing a token
    the live service would refuse as a replay.
    """

    def __init__(
        self,
        mailbox: str,
        password: str,
        shared_key: bytes,
        *,
        clock: Callable[[], datetime] = _utc_now,
        nonces: Callable[[], str] = _uuid4,
    ) -> None:
        if not MAILBOX_RE.fullmatch(mailbox):
            raise ValueError("mailbox must be upper-case letters and digits")
        self._mailbox = mailbox
        self._password = password
        self._key = shared_key
        self._clock = clock
        self._nonces = nonces
        self._recent: deque[str] = deque(maxlen=RECENT_NONCES)
        self._recent_set: set[str] = set()

    def __call__(self) -> str:
        """Return a fresh header value."""
        nonce = self._nonces()
        if nonce in self._recent_set:
            raise ValueError("the nonce source repeated a nonce")
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(nonce)
        self._recent_set.add(nonce)
        return auth_header(
            self._mailbox, self._password, self._key, nonce=nonce, nonce_count=0, now=self._clock()
        )


def parse_token(value: str) -> tuple[str, str, int, str, str]:
    """Split a header value into ``(mailbox, nonce, nonce_count, timestamp, hash)``.

    For tests and logs; raises ``ValueError`` when the value is not an NHSMESH token.
    """
    scheme, _, token = value.partition(" ")
    parts = token.split(":")
    if scheme != SCHEME or len(parts) != 5 or not parts[2].isdigit():
        raise ValueError("not an NHSMESH token")
    mailbox, nonce, count, when, digest = parts
    return mailbox, nonce, int(count), when, digest
