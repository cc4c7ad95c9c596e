"""The SMTP route: sealed envelopes as mail attachments, and "an item is waiting" notices.

:class:`SmtpConnector` (route kind ``smtp``) hands an envelope to a submission server with
aiosmtplib, over STARTTLS or implicit TLS, authenticated when a user name is configured;
the route's address is the recipient's mailbox. The mail itself is built by
:mod:`exchange.connectors.smtp_messages` and carries no personal data. The same client code
sends staff notifications (an item waits, a deadline passed) through
:meth:`SmtpConnector.send_notification`.

SMTP has no de-duplication: a reply lost after the server took a message makes the outbox
send it again. Both copies carry the same Message-ID, derived from the envelope digest and
the destination, and the receiving node de-duplicates by envelope id and digest when it
imports (docs/smtp.md §4).

Every library exception is translated in one place, :func:`outcome_of`, into
:class:`~exchange.connectors.base.RetryLater` or :class:`~exchange.connectors.base.Refused`
(the table is in docs/smtp.md §5). Exceptions this module raises::

    ConnectorError            deliver or send_notification after close (exchange.connectors.base)
    ValueError                an SmtpConfig that is unsafe or malformed, naming the field
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Final, Literal

import aiosmtplib

from exchange.connectors.base import (
    ConnectorError,
    Delivered,
    Message,
    Outcome,
    Refused,
    RetryLater,
)
from exchange.connectors.bodies import read_small
from exchange.connectors.smtp_messages import (
    build_envelope_mail,
    build_notification,
    build_overdue_notice,
    derive_message_id,
    envelope_id_of,
    validate_address,
    validate_domain,
)
from exchange.envelope.format import HASH_LEN
from exchange.keys.errors import KeyLookupError
from exchange.keys.ids import OrgId
from exchange.logs import get_logger, scrub

ROUTE_KIND: Final = "smtp"

SmtpMode = Literal["starttls", "tls", "plain"]

#: Default largest mail (bytes, after base64) sent: 25 MiB is below the 35 MB limit of
#: NHSmail and the 25 MB most public mail services accept, so a mail that passes here is not
#: refused for size by the commonly used servers.
DEFAULT_MAX_MESSAGE_SIZE: Final = 25 * 1024 * 1024
#: Default per-operation timeout of the SMTP client (seconds); the deadline given to
#: ``deliver`` bounds the whole exchange anyway.
DEFAULT_CLIENT_TIMEOUT: Final = 30.0
#: How long a polite QUIT may take after the server took the message; the message is
#: delivered whatever happens to the QUIT.
QUIT_TIMEOUT: Final = 1.0
#: Longest piece of a server reply kept in an outcome's reason.
MAX_REPLY_TEXT: Final = 200
#: RFC 4954 §6 and RFC 5248 replies that say our credentials are wrong or missing.
AUTH_FAILURE_CODES: Final = frozenset({530, 534, 535, 538})

_log = get_logger("exchange.connectors.smtp")


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how to submit mail. ``password`` never appears in ``repr``.

    ``mode`` is ``starttls`` (submission, port 587), ``tls`` (implicit TLS, port 465) or
    ``plain`` (no encryption, refused unless ``allow_plain`` is set; tests only).
    ``ca_file`` is the certificate authority the server's certificate must chain to (the
    system store when ``None``). ``link_template`` optionally gives envelope mails a link,
    with ``{envelope_id}`` replaced by the envelope id in hex.
    """

    host: str
    port: int
    from_address: str
    message_id_domain: str
    mode: SmtpMode = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    client_timeout: float = DEFAULT_CLIENT_TIMEOUT
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    allow_plain: bool = False
    link_template: str | None = None

    def __post_init__(self) -> None:
        if not self.host or not isinstance(self.host, str):
            raise ValueError("host must be a non-empty host name or address")
        if not 0 < self.port < 65536:
            raise ValueError("port must be from 1 to 65535")
        if self.mode not in ("starttls", "tls", "plain"):
            raise ValueError("mode must be 'starttls', 'tls' or 'plain'")
        if self.mode == "plain" and not self.allow_plain:
            raise ValueError("mode 'plain' sends mail unencrypted; it needs allow_plain=True")
        if self.mode == "plain" and self.password is not None:
            raise ValueError("password must not be set in mode 'plain' (it would travel in clear)")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be given together")
        validate_address(self.from_address, field="from_address")
        validate_domain(self.message_id_domain, field="message_id_domain")
        if not self.client_timeout > 0:
            raise ValueError("client_timeout must be a positive number of seconds")
        if self.max_message_size <= 0:
            raise ValueError("max_message_size must be a positive number of bytes")
        if self.link_template is not None and "{envelope_id}" not in self.link_template:
            raise ValueError("link_template must contain '{envelope_id}'")


def mail_size(length: int) -> int:
    """Return the least size of a mail carrying an envelope of ``length`` bytes.

    The attachment is base64 in lines of 76 characters and CRLF: 4 bytes for every 3,
    and 2 for every 76. Headers and the text part only add to it.
    """
    encoded = -(-length // 3) * 4
    return encoded + 2 * -(-encoded // 76)


def _reply_text(exc: aiosmtplib.SMTPResponseException) -> str:
    # A server's reply may echo a mailbox; it never holds record content, but it is
    # scrubbed and cut like anything else from a peer that ends up in a ledger or log.
    return scrub(" ".join(exc.message.split()))[:MAX_REPLY_TEXT]


def outcome_of(exc: BaseException) -> RetryLater | Refused:  # noqa: PLR0911 - one table
    """Translate an exception of an SMTP attempt into an outcome (docs/smtp.md §5).

    The one place where aiosmtplib, ssl and socket errors become outcomes: 4xx replies,
    failed or timed-out connections and TLS failures may pass, so they are ``RetryLater``;
    5xx replies are ``Refused``, except an authentication failure, which is a fault of our
    configuration rather than of the message and is ``RetryLater`` (the routing policy
    still falls back after its configured number of failures).
    """
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        return outcome_of(exc.recipients[0])
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        code, text = exc.code, _reply_text(exc)
        if code in AUTH_FAILURE_CODES:
            return RetryLater(
                f"the SMTP server refused our credentials ({code} {text}); "
                "an operator must fix the route's user name or password"
            )
        if 400 <= code < 500:
            return RetryLater(f"the SMTP server answered {code} {text}")
        if 500 <= code < 600:
            return Refused(f"the SMTP server refused the mail: {code} {text}")
        return RetryLater(f"the SMTP server answered with the unexpected code {code}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        # Typically STARTTLS not offered: maybe a misconfigured server, maybe an attacker
        # stripping it. Mail is never sent unencrypted, so this attempt fails; it may pass
        # once the server is fixed.
        return RetryLater(f"the SMTP server lacks a required extension: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS" in str(exc):
        # aiosmtplib 5 raises a bare SMTPException, not SMTPNotSupported, when the server
        # does not offer STARTTLS at connect; its message is the only sign.
        return RetryLater("the SMTP server did not offer STARTTLS; nothing was sent in clear")
    if isinstance(exc, TimeoutError):
        return RetryLater("the SMTP server did not answer in time")
    if isinstance(exc, ssl.SSLCertVerificationError) or isinstance(
        exc.__cause__, ssl.SSLCertVerificationError
    ):
        return RetryLater("the SMTP server's certificate did not verify")
    if isinstance(exc, ssl.SSLError) or isinstance(exc.__cause__, ssl.SSLError):
        return RetryLater("the TLS handshake with the SMTP server failed")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return RetryLater("the SMTP server closed the connection")
    if isinstance(exc, aiosmtplib.SMTPConnectError | OSError):
        return RetryLater("the SMTP server could not be reached")
    return RetryLater(f"the SMTP exchange failed ({type(exc).__name__})")


def _default_name(org: OrgId) -> str:
    return str(org)


class SmtpConnector:
    """Deliver envelopes and notifications by SMTP submission.

    ``org_names`` maps an organisation id to the name put in subjects and bodies (usually
    ``lambda org: directory.organisation(org).name``); without it the id itself is used.
    ``clock`` gives the Date header.
    """

    route_kind = ROUTE_KIND

    def __init__(
        self,
        config: SmtpConfig,
        *,
        org_names: Callable[[OrgId], str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._names = org_names or _default_name
        self._clock = clock
        self._closed = False
        self._tls: ssl.SSLContext | None = None
        if config.mode != "plain":
            ca = None if config.ca_file is None else str(config.ca_file)
            self._tls = ssl.create_default_context(cafile=ca)
            self._tls.minimum_version = ssl.TLSVersion.TLSv1_2

    def __repr__(self) -> str:
        c = self._config
        return (
            f"SmtpConnector(host={c.host!r}, port={c.port}, mode={c.mode!r}, "
            f"username={c.username!r})"
        )

    async def close(self) -> None:
        """Mark the connector closed; it holds no connection between sends."""
        self._closed = True

    async def deliver(self, message: Message, address: str, *, timeout: float) -> Outcome:
        """Mail the envelope ``message`` as an attachment to the mailbox ``address``."""
        self._check_open(timeout)
        if message.kind != "envelope":
            return Refused("the SMTP route carries envelopes only, not receipts")
        try:
            validate_address(address, field="the route's mailbox")
        except ValueError as exc:
            return Refused(str(exc))
        if len(message.message_id) != HASH_LEN:
            return Refused(f"an envelope's message id must be its {HASH_LEN}-byte digest")
        limit = self._config.max_message_size
        if mail_size(message.length) > limit:
            # Refused before the body is read: a large envelope goes by another route.
            _log.warning(
                "smtp.refused", digest=message.message_id.hex(), route=ROUTE_KIND,
                outcome="refused", bytes=message.length,
            )  # fmt: skip
            return Refused(
                f"the envelope is {message.length} bytes, over this route's limit of {limit} "
                "bytes once attached to a mail"
            )
        envelope = await read_small(message.body, limit)
        try:
            envelope_id = envelope_id_of(envelope)
            link = self._link(envelope_id)
            mail = build_envelope_mail(
                envelope=envelope,
                digest=message.message_id,
                sender_name=self._names(message.origin),
                recipient_name=self._names(message.destination),
                from_address=self._config.from_address,
                to_address=address,
                message_id=derive_message_id(
                    "envelope",
                    message.message_id,
                    message.destination,
                    self._config.message_id_domain,
                ),
                date=self._now(),
                link=link,
            )
        except (ValueError, LookupError, KeyLookupError) as exc:
            return Refused(f"the mail could not be built: {exc}")
        return await self._send(mail, address, envelope_id, message.destination, timeout)

    async def send_notification(
        self,
        *,
        envelope_id: bytes,
        origin: OrgId,
        destination: OrgId,
        address: str,
        link: str,
        timeout: float,
    ) -> Outcome:
        """Tell the staff mailbox ``address`` of ``destination`` that an item is waiting."""
        self._check_open(timeout)
        try:
            validate_address(address, field="the notification mailbox")
            mail = build_notification(
                envelope_id=envelope_id,
                sender_name=self._names(origin),
                recipient_name=self._names(destination),
                from_address=self._config.from_address,
                to_address=address,
                message_id=derive_message_id(
                    "notification", envelope_id, destination, self._config.message_id_domain
                ),
                date=self._now(),
                link=link,
            )
        except (ValueError, LookupError, KeyLookupError) as exc:
            return Refused(f"the notification could not be built: {exc}")
        return await self._send(mail, address, envelope_id, destination, timeout)

    async def send_overdue_notice(
        self,
        *,
        envelope_id: bytes,
        origin: OrgId,
        recipient: OrgId,
        due: str,
        waiting_for: str,
        address: str,
        link: str,
        timeout: float,
    ) -> Outcome:
        """Tell ``origin``'s staff mailbox ``address`` that an item to ``recipient`` is late."""
        self._check_open(timeout)
        try:
            validate_address(address, field="the notification mailbox")
            mail = build_overdue_notice(
                envelope_id=envelope_id,
                sender_name=self._names(origin),
                recipient_name=self._names(recipient),
                due=due,
                waiting_for=waiting_for,
                from_address=self._config.from_address,
                to_address=address,
                message_id=derive_message_id(
                    "overdue", envelope_id + recipient.encode("ascii"), origin,
                    self._config.message_id_domain,
                ),
                date=self._now(),
                link=link,
            )  # fmt: skip
        except (ValueError, LookupError, KeyLookupError) as exc:
            return Refused(f"the overdue notice could not be built: {exc}")
        return await self._send(mail, address, envelope_id, origin, timeout)

    def _check_open(self, timeout: float) -> None:
        if self._closed:
            raise ConnectorError("the SMTP connector is closed")
        if not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), dt.UTC)

    def _link(self, envelope_id: bytes) -> str | None:
        template = self._config.link_template
        return None if template is None else template.replace("{envelope_id}", envelope_id.hex())

    async def _send(
        self, mail: EmailMessage, address: str, envelope_id: bytes, org: OrgId, timeout: float
    ) -> Outcome:
        data = mail.as_bytes()
        log = _log.bind(envelope_id=envelope_id.hex(), route=ROUTE_KIND, recipient=org)
        if len(data) > self._config.max_message_size:
            log.warning("smtp.refused", outcome="refused", bytes=len(data))
            return Refused(
                f"the mail is {len(data)} bytes, over this route's limit of "
                f"{self._config.max_message_size}"
            )
        outcome = await self._transact(data, address, timeout)
        if isinstance(outcome, Delivered):
            outcome = Delivered(transport_ref=str(mail["Message-ID"]))
            log.info("smtp.sent", outcome="delivered", bytes=len(data))
        else:
            kind = "refused" if isinstance(outcome, Refused) else "retry"
            log.warning("smtp.failed", outcome=kind, error=outcome.reason)
        return outcome

    async def _transact(self, data: bytes, address: str, timeout: float) -> Outcome:
        c = self._config
        client = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.mode == "tls",
            start_tls=c.mode == "starttls",
            tls_context=self._tls,
            validate_certs=c.mode != "plain",
            # Our own domain, not socket.getfqdn(): no DNS lookup, no internal host name.
            local_hostname=c.message_id_domain,
            timeout=min(c.client_timeout, timeout),
        )
        try:
            try:
                async with asyncio.timeout(timeout):
                    await client.connect()
                    if c.username is not None and c.password is not None:
                        await client.login(c.username, c.password)
                    await client.sendmail(c.from_address, [address], data)
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return outcome_of(exc)
            # The server took the message; QUIT is politeness and cannot undo delivery.
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                async with asyncio.timeout(min(QUIT_TIMEOUT, timeout)):
                    await client.quit()
            return Delivered()
        finally:
            client.close()
