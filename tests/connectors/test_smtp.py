"""The SMTP route: mail building (pure) and delivery against a real aiosmtpd on loopback.

The shared conformance suite (tests/connectors/conformance.py) sends opaque test bodies
and receipts; the SMTP route carries only real envelopes (it names each mail by the
envelope id in the envelope's header) and refuses receipts, so the suite's cases are
restated here with sealed envelopes: delivered, redelivery recognisable and stored once by
the importing side, refusal, transport failure, back up, slow server, closed, deadline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import io
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
import structlog

from exchange import logs
from exchange.connectors.base import (
    Connector,
    ConnectorError,
    Delivered,
    Message,
    Refused,
    RetryLater,
    StoredBody,
)
from exchange.connectors.bodies import file_body
from exchange.connectors.smtp import SmtpConfig, SmtpConnector, outcome_of
from exchange.connectors.smtp_messages import (
    ENVELOPE_MEDIA_TYPE,
    PART_HEADERS,
    TOP_LEVEL_HEADERS,
    HeaderNotAllowedError,
    PersonalDataError,
    build_envelope_mail,
    build_notification,
    check_headers,
    check_no_personal_data,
    derive_message_id,
    envelope_id_of,
    validate_address,
)
from exchange.envelope import Recipient, seal
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import OrgKeyPair

from .smtp_server import PASSWORD, USERNAME, SmtpServer, ThrowawayCa, make_test_ca, refusing_port
from .smtp_server import start_smtp_server as start_server

SCHOOL = OrgId("urn:106123")
LA = OrgId("la:356")
NAMES = {SCHOOL: "Hillside Primary School", LA: "Stockport front door"}
RECORD_KIND = "cp-file-transfer"
SENTINELS = ("Tallulah Sentinel-Child", "2014-03-09", "A123456789012", "943 476 5919")
MAILBOX = "dsl@front-door.example"
DATE = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)
#: Scheduling slack past a deadline, as in the conformance suite (a loaded 2-core machine).
SLACK = 1.5


def sealed(extra: str = "") -> tuple[bytes, bytes, bytes]:
    """Seal a record full of sentinel personal data; return (envelope, id, digest)."""
    content = ("child: {} dob: {} upn: {} nhs: {} {}".format(*SENTINELS, extra)).encode()
    sender = OrgKeyPair.generate(SCHOOL)
    recipient = OrgKeyPair.generate(LA)
    envelope, info = seal(
        content,
        sender,
        [Recipient(LA, recipient.encryption.public)],
        record_kind=RECORD_KIND,
        created=1_767_600_000,
    )
    return envelope, info.envelope_id, info.digest


def as_message(envelope: bytes, digest: bytes) -> Message:
    """Return the connector message the outbox would hand over for ``envelope``."""
    return Message("envelope", digest, SCHOOL, LA, envelope)


def parse(data: bytes) -> EmailMessage:
    """Parse a mail as received."""
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def attachment_of(mail: EmailMessage) -> bytes:
    """Return the decoded bytes of the single envelope attachment."""
    (part,) = [p for p in mail.iter_attachments() if p.get_content_type() == ENVELOPE_MEDIA_TYPE]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def text_of(mail: EmailMessage) -> str:
    """Return every header and the decoded text body, for searching."""
    body = mail.get_body(("plain",))
    assert body is not None
    headers = "\n".join(f"{k}: {v}" for k, v in mail.items())
    return headers + "\n" + body.get_content()


def import_once(mails: list[bytes]) -> list[bytes]:
    """Do what an importing node does: keep one envelope per digest (docs/smtp.md §4)."""
    seen: dict[str, bytes] = {}
    for data in mails:
        mail = parse(data)
        seen.setdefault(str(mail["X-Exchange-Digest"]), attachment_of(mail))
    return list(seen.values())


# --- mail building, no I/O ------------------------------------------------------------------


def build(envelope: bytes, digest: bytes, link: str | None = None) -> EmailMessage:
    """Build an envelope mail with the test's fixed parties and date."""
    return build_envelope_mail(
        envelope=envelope,
        digest=digest,
        sender_name=NAMES[SCHOOL],
        recipient_name=NAMES[LA],
        from_address="exchange@hillside.example",
        to_address=MAILBOX,
        message_id=derive_message_id("envelope", digest, LA, "hillside.example"),
        date=DATE,
        link=link,
    )


def test_envelope_mail_has_exactly_the_specified_headers() -> None:
    """The top level carries From, To, Subject, Date, Message-ID, the two X- headers, MIME."""
    envelope, envelope_id, digest = sealed()
    mail = parse(build(envelope, digest).as_bytes())
    # A multipart top level has no transfer encoding of its own; everything else is there.
    assert sorted(k.lower() for k in mail) == sorted(
        TOP_LEVEL_HEADERS - {"content-transfer-encoding"}
    )
    assert mail["Subject"] == f"Secure item {envelope_id.hex()} from Hillside Primary School"
    assert mail["X-Exchange-Envelope-Id"] == envelope_id.hex()
    assert mail["X-Exchange-Digest"] == digest.hex()
    assert mail["Date"] == "Mon, 05 Jan 2026 09:30:00 +0000"
    assert mail["Message-ID"] == derive_message_id("envelope", digest, LA, "hillside.example")


def test_envelope_is_attached_byte_for_byte() -> None:
    """The attachment is the envelope, typed and named by its id."""
    envelope, envelope_id, digest = sealed()
    mail = parse(build(envelope, digest).as_bytes())
    (part,) = list(mail.iter_attachments())
    assert part.get_content_type() == ENVELOPE_MEDIA_TYPE
    assert part.get_filename() == f"{envelope_id.hex()}.exchange"
    assert attachment_of(mail) == envelope


def test_envelope_mail_body_says_how_to_open_it() -> None:
    """The body names the organisations, the file, the command and the link."""
    envelope, envelope_id, digest = sealed()
    link = "https://front-door.example/items/" + envelope_id.hex()
    body = parse(build(envelope, digest, link).as_bytes()).get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Hillside Primary School" in text
    assert "Stockport front door" in text
    assert f"--in {envelope_id.hex()}.exchange" in text
    assert "exchange open --key" in text
    assert link in text


def test_envelope_mail_carries_no_personal_data_or_record_kind() -> None:
    """Sentinel personal data sealed inside never appears; nor does the record kind."""
    envelope, _, digest = sealed()
    mail = parse(build(envelope, digest).as_bytes())
    check_no_personal_data(mail, SENTINELS)
    assert RECORD_KIND not in text_of(mail)
    assert "cp-file" not in text_of(mail).lower()


def test_check_no_personal_data_finds_a_sentinel_in_the_body() -> None:
    """The checker is not vacuous: a name in the text is found."""
    envelope, _, digest = sealed()
    mail = build(envelope, digest)
    body = mail.get_body(("plain",))
    assert body is not None
    body.set_content("about Tallulah Sentinel-Child\n", cte="quoted-printable")
    with pytest.raises(PersonalDataError, match="forbidden string"):
        check_no_personal_data(parse(mail.as_bytes()), SENTINELS)


def test_check_no_personal_data_finds_an_unsealed_sentinel_in_an_attachment() -> None:
    """An attachment holding personal data in clear is caught."""
    envelope, _, digest = sealed()
    mail = build(envelope + b"A123456789012", digest)
    with pytest.raises(PersonalDataError, match="attachment"):
        check_no_personal_data(parse(mail.as_bytes()), SENTINELS)


def test_check_no_personal_data_finds_identifier_shapes() -> None:
    """An NHS-number-shaped string in a header is caught without being listed."""
    envelope, _, digest = sealed()
    mail = build(envelope, digest)
    del mail["Subject"]
    mail["Subject"] = "Secure item for 485 777 3456"
    with pytest.raises(PersonalDataError, match="shaped like"):
        check_no_personal_data(parse(mail.as_bytes()), ())


@pytest.mark.parametrize("header", ["Reply-To", "X-Mailer", "Comments", "X-Child-Name"])
def test_headers_outside_the_allow_list_are_refused(header: str) -> None:
    """Any top-level header not on the allow-list fails the check."""
    envelope, _, digest = sealed()
    mail = build(envelope, digest)
    mail[header] = "x@y.example"
    with pytest.raises(HeaderNotAllowedError, match=header):
        check_headers(mail)


def test_part_headers_outside_the_allow_list_are_refused() -> None:
    """A MIME part may carry only content headers (no Content-Description, say)."""
    envelope, _, digest = sealed()
    mail = build(envelope, digest)
    (part,) = list(mail.iter_attachments())
    part["Content-Description"] = "referral"
    with pytest.raises(HeaderNotAllowedError, match="MIME part"):
        check_headers(mail)


def test_allow_lists_are_exactly_as_documented() -> None:
    """Changing the allow-lists is a deliberate act, reviewed against docs/smtp.md §3.3."""
    assert sorted(TOP_LEVEL_HEADERS) == [
        "content-transfer-encoding",
        "content-type",
        "date",
        "from",
        "message-id",
        "mime-version",
        "subject",
        "to",
        "x-exchange-digest",
        "x-exchange-envelope-id",
    ]
    assert sorted(PART_HEADERS) == [
        "content-disposition",
        "content-transfer-encoding",
        "content-type",
        "mime-version",
    ]


def test_notification_format() -> None:
    """A notification: exact subject, names, id and link in the body, no attachment."""
    _, envelope_id, _ = sealed()
    link = "https://front-door.example/inbox"
    mail = parse(
        build_notification(
            envelope_id=envelope_id,
            sender_name=NAMES[SCHOOL],
            recipient_name=NAMES[LA],
            from_address="exchange@front-door.example",
            to_address=MAILBOX,
            message_id=derive_message_id("notification", envelope_id, LA, "front-door.example"),
            date=DATE,
            link=link,
        ).as_bytes()
    )
    assert mail["Subject"] == "Secure item waiting for Stockport front door"
    assert not list(mail.iter_attachments())
    assert "X-Exchange-Digest" not in mail
    text = text_of(mail)
    for needle in ("A secure item is waiting.", NAMES[SCHOOL], NAMES[LA], envelope_id.hex(), link):
        assert needle in text
    check_no_personal_data(mail, SENTINELS)
    check_headers(mail)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Evil\r\nBcc: x@y.example", "control"),
        ("School for 2014-03-09", "shaped like"),
        ("", "1 to 200"),
    ],
)
def test_unsafe_organisation_names_are_refused(name: str, problem: str) -> None:
    """A name that could inject headers or looks like personal data is a ValueError."""
    envelope, _, digest = sealed()
    with pytest.raises(ValueError, match=problem):
        build_envelope_mail(
            envelope=envelope,
            digest=digest,
            sender_name=name,
            recipient_name=NAMES[LA],
            from_address="exchange@hillside.example",
            to_address=MAILBOX,
            message_id="<a@hillside.example>",
            date=DATE,
        )


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", "https://x.example/child/A123456789012", "https://a b"]
)
def test_unsafe_links_are_refused(link: str) -> None:
    """Only plain http(s) URLs with nothing shaped like an identifier are accepted."""
    envelope, _, digest = sealed()
    with pytest.raises(ValueError, match="link"):
        build(envelope, digest, link)


def test_message_id_is_deterministic_per_item_and_destination() -> None:
    """The same item to the same destination has one Message-ID; anything else differs."""
    digest = bytes(range(32))
    one = derive_message_id("envelope", digest, LA, "hillside.example")
    assert one == derive_message_id("envelope", digest, LA, "hillside.example")
    assert one != derive_message_id("envelope", digest, SCHOOL, "hillside.example")
    assert one != derive_message_id("notification", digest, LA, "hillside.example")
    assert one.startswith("<")
    assert one.endswith("@hillside.example>")


@pytest.mark.parametrize(
    "address", ["dsl@front-door.example", "a.b+c@x.y.example", "o'neil@school.sch.uk"]
)
def test_valid_addresses_are_accepted(address: str) -> None:
    """Ordinary dot-atom mailboxes pass."""
    assert validate_address(address) == address


@pytest.mark.parametrize(
    "address",
    [
        "no-at-sign.example",
        "@front-door.example",
        "dsl@localhost",
        "a..b@x.example",
        '"quoted"@x.example',
        "dsl@front-door.example\r\nRCPT TO:<evil@x.example>",
        "dsl@-bad.example",
        "dsl@[127.0.0.1]",
        "ünï@x.example",
        "x" * 65 + "@x.example",
        "a,b@x.example",
        "a@b.example>",
    ],
)
def test_invalid_addresses_are_refused(address: str) -> None:
    """Anything but an ASCII dot-atom at a host name of two labels is a ValueError."""
    with pytest.raises(ValueError, match="address"):
        validate_address(address)


def test_envelope_id_of_rejects_non_envelopes() -> None:
    """A body that is not an envelope is named as such."""
    with pytest.raises(ValueError, match="not an envelope"):
        envelope_id_of(b"sealed bytes, honest")


# --- the outcome table ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (aiosmtplib.SMTPResponseException(421, "closing"), RetryLater),
        (aiosmtplib.SMTPResponseException(450, "mailbox busy"), RetryLater),
        (aiosmtplib.SMTPResponseException(451, "local error"), RetryLater),
        (aiosmtplib.SMTPResponseException(452, "no storage"), RetryLater),
        (aiosmtplib.SMTPResponseException(550, "no such user"), Refused),
        (aiosmtplib.SMTPResponseException(552, "too big"), Refused),
        (aiosmtplib.SMTPResponseException(553, "bad mailbox"), Refused),
        (aiosmtplib.SMTPResponseException(554, "rejected"), Refused),
        (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), RetryLater),
        (aiosmtplib.SMTPResponseException(530, "STARTTLS first"), RetryLater),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "x", "a")]),
            Refused,
        ),
        (aiosmtplib.SMTPNotSupported("STARTTLS extension not supported"), RetryLater),
        (aiosmtplib.SMTPServerDisconnected("gone"), RetryLater),
        (aiosmtplib.SMTPConnectError("refused"), RetryLater),
        (aiosmtplib.SMTPReadTimeoutError("slow"), RetryLater),
        (TimeoutError(), RetryLater),
        (ConnectionRefusedError(), RetryLater),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else f"{type(v).__name__}",
)
def test_outcome_table(exc: BaseException, expected: type) -> None:
    """Each failure maps to the outcome docs/smtp.md §5 gives it, with a reason."""
    outcome = outcome_of(exc)
    assert isinstance(outcome, expected)
    assert outcome.reason


def test_unsafe_configurations_are_refused() -> None:
    """Plain mode needs an explicit opt-in and never carries a password."""
    base = {"host": "127.0.0.1", "port": 25, "from_address": "a@b.example"}
    with pytest.raises(ValueError, match="allow_plain"):
        SmtpConfig(**base, message_id_domain="b.example", mode="plain")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="password"):
        SmtpConfig(
            **base,  # type: ignore[arg-type]
            message_id_domain="b.example",
            mode="plain",
            allow_plain=True,
            username="u",
            password="p",  # noqa: S106 - refused before use
        )
    with pytest.raises(ValueError, match="together"):
        SmtpConfig(**base, message_id_domain="b.example", username="u")  # type: ignore[arg-type]


# --- against a real server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCa:
    """Make a throwaway CA and server certificate shared by the module's servers."""
    return make_test_ca(tmp_path_factory.mktemp("smtp-ca"))


@pytest.fixture
async def server(ca: ThrowawayCa) -> AsyncIterator[SmtpServer]:
    """Run a STARTTLS + AUTH aiosmtpd on 127.0.0.1, port 0."""
    running = await start_server(ca)
    yield running
    await running.stop()


def config_for(port: int, ca: ThrowawayCa, **overrides: object) -> SmtpConfig:
    """Return a connector configuration for the test server."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "from_address": "exchange@hillside.example",
        "message_id_domain": "hillside.example",
        "username": USERNAME,
        "password": PASSWORD,
        "ca_file": ca.ca_file,
        "client_timeout": 10.0,
    }
    values.update(overrides)
    return SmtpConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def connector(server: SmtpServer, ca: ThrowawayCa) -> AsyncIterator[SmtpConnector]:
    """Yield a connector to the fixture's server; close it afterwards."""
    made = SmtpConnector(config_for(server.port, ca), org_names=NAMES.__getitem__)
    yield made
    await made.close()


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Configure structlog as production does, into a buffer."""
    buffer = io.StringIO()
    logs.configure(json=True, level=logging.DEBUG, stream=buffer)
    yield buffer
    structlog.reset_defaults()


@pytest.mark.network
async def test_is_a_connector(connector: SmtpConnector) -> None:
    """SmtpConnector satisfies the connector protocol with route kind smtp."""
    assert isinstance(connector, Connector)
    assert connector.route_kind == "smtp"


@pytest.mark.network
async def test_envelope_is_delivered_over_starttls(
    connector: SmtpConnector, server: SmtpServer
) -> None:
    """The mail arrives encrypted and authenticated, the attachment byte-identical."""
    envelope, envelope_id, digest = sealed()
    outcome = await connector.deliver(as_message(envelope, digest), MAILBOX, timeout=10)
    assert isinstance(outcome, Delivered)
    (got,) = server.handler.received
    assert got.encrypted
    assert got.login == USERNAME.encode()
    assert got.rcpt_tos == (MAILBOX,)
    assert got.mail_from == "exchange@hillside.example"
    mail = parse(got.data)
    assert attachment_of(mail) == envelope
    assert outcome.transport_ref == mail["Message-ID"]
    assert mail["X-Exchange-Envelope-Id"] == envelope_id.hex()


@pytest.mark.network
async def test_delivered_mail_is_free_of_personal_data(
    connector: SmtpConnector, server: SmtpServer
) -> None:
    """What arrived names the organisations and nothing about the child or record kind."""
    envelope, _, digest = sealed()
    await connector.deliver(as_message(envelope, digest), MAILBOX, timeout=10)
    (got,) = server.handler.received
    mail = parse(got.data)
    check_no_personal_data(mail, SENTINELS)
    check_headers(mail)
    text = text_of(mail)
    assert "Hillside Primary School" in text
    assert "Stockport front door" in text
    assert RECORD_KIND not in text


@pytest.mark.network
async def test_auth_happens_only_under_tls(connector: SmtpConnector, server: SmtpServer) -> None:
    """Every AUTH the server saw came over TLS."""
    envelope, _, digest = sealed()
    await connector.deliver(as_message(envelope, digest), MAILBOX, timeout=10)
    assert server.handler.logins == [(USERNAME.encode(), True)]


@pytest.mark.network
async def test_server_refuses_a_client_that_skips_starttls(
    server: SmtpServer, ca: ThrowawayCa
) -> None:
    """Without STARTTLS the server sends nothing through (530), and the outcome may retry."""
    plain = SmtpConnector(
        config_for(server.port, ca, mode="plain", allow_plain=True, username=None, password=None)
    )
    envelope, _, digest = sealed()
    outcome = await plain.deliver(as_message(envelope, digest), MAILBOX, timeout=10)
    assert isinstance(outcome, RetryLater)
    assert "530" in outcome.reason
    assert server.handler.received == []


@pytest.mark.network
async def test_wrong_password_retries_with_a_clear_reason(
    server: SmtpServer, ca: ThrowawayCa, captured: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """A 535 is our misconfiguration: RetryLater naming credentials, password never shown."""
    secret = "wrong-but-secret-Pa55word"  # noqa: S105 - a test value
    bad = SmtpConnector(config_for(server.port, ca, password=secret))
    caplog.set_level(logging.DEBUG)
    envelope, _, digest = sealed()
    outcome = await bad.deliver(as_message(envelope, digest), MAILBOX, timeout=10)
    assert isinstance(outcome, RetryLater)
    assert "535" in outcome.reason
    assert "credentials" in outcome.reason
    assert secret not in outcome.reason
    assert server.handler.received == []
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")]
    assert "smtp.failed" in captured.getvalue()
    assert secret not in captured.getvalue()
    assert not any(secret in line for line in ours)


@pytest.mark.network
async def test_password_is_never_in_repr_or_logs(
    connector: SmtpConnector, server: SmtpServer, captured: io.StringIO
) -> None:
    """Neither the config, the connector nor a delivery's log lines show the password."""
    assert PASSWORD not in repr(connector)
    assert PASSWORD not in repr(config_for(server.port, make_ca_free()))
    envelope, _, digest = sealed()
    await connector.deliver(as_message(envelope, digest), MAILBOX, timeout=10)
    assert "smtp.sent" in captured.getvalue()
    assert PASSWORD not in captured.getvalue()
    for sentinel in SENTINELS:
        assert sentinel not in captured.getvalue()


def make_ca_free() -> ThrowawayCa:
    """Return a ThrowawayCa whose paths are never read (repr only)."""
    return ThrowawayCa(Path("ca.pem"), Path("s.pem"), Path("s.key"))


@pytest.mark.network
async def test_server_down_retries(ca: ThrowawayCa) -> None:
    """Connection refused is RetryLater."""
    with refusing_port() as port:
        down = SmtpConnector(config_for(port, ca))
        envelope, _, digest = sealed()
        outcome = await down.deliver(as_message(envelope, digest), MAILBOX, timeout=5)
    assert isinstance(outcome, RetryLater)
    assert "reached" in outcome.reason


@pytest.mark.network
@pytest.mark.parametrize("reply", ["550 5.1.1 No such mailbox", "554 5.7.1 Rejected"])
async def test_permanent_replies_are_refused(
    connector: SmtpConnector, server: SmtpServer, reply: str
) -> None:
    """A 5xx answer to the message is Refused and says so."""
    server.handler.reply = reply
    envelope, _, digest = sealed()
    outcome = await connector.deliver(as_message(envelope, digest), MAILBOX, timeout=10)
    assert isinstance(outcome, Refused)
    assert reply[:3] in outcome.reason


@pytest.mark.network
@pytest.mark.parametrize(
    "reply", ["421 4.3.0 Closing", "450 4.2.1 Busy", "451 4.3.0 Local error", "452 4.3.1 Full"]
)
async def test_transient_replies_retry(
    connector: SmtpConnector, server: SmtpServer, reply: str
) -> None:
    """A 4xx answer to the message is RetryLater."""
    server.handler.reply = reply
    envelope, _, digest = sealed()
    outcome = await connector.deliver(as_message(envelope, digest), MAILBOX, timeout=10)
    assert isinstance(outcome, RetryLater)
    assert reply[:3] in outcome.reason


@pytest.mark.network
async def test_destination_back_up_takes_the_message(
    connector: SmtpConnector, server: SmtpServer
) -> None:
    """After a 451 the same message delivers on retry, once."""
    envelope, _, digest = sealed()
    msg = as_message(envelope, digest)
    server.handler.reply = "451 4.3.0 Try later"
    assert isinstance(await connector.deliver(msg, MAILBOX, timeout=10), RetryLater)
    server.handler.reply = None
    assert isinstance(await connector.deliver(msg, MAILBOX, timeout=10), Delivered)
    assert import_once([r.data for r in server.handler.received]) == [envelope]


@pytest.mark.network
async def test_redelivery_is_recognisable_and_imported_once(
    connector: SmtpConnector, server: SmtpServer
) -> None:
    """Two deliveries arrive twice (SMTP cannot de-dupe) with one Message-ID, imported once."""
    envelope, _, digest = sealed()
    msg = as_message(envelope, digest)
    first = await connector.deliver(msg, MAILBOX, timeout=10)
    second = await connector.deliver(msg, MAILBOX, timeout=10)
    assert isinstance(first, Delivered)
    assert isinstance(second, Delivered)
    assert first.transport_ref == second.transport_ref
    mails = [r.data for r in server.handler.received]
    assert len({parse(m)["Message-ID"] for m in mails}) == 1
    assert import_once(mails) == [envelope]


@pytest.mark.network
async def test_racing_deliveries_all_succeed(connector: SmtpConnector, server: SmtpServer) -> None:
    """Concurrent attempts of one envelope are each Delivered and imported once."""
    envelope, _, digest = sealed()
    msg = as_message(envelope, digest)
    outcomes = await asyncio.gather(
        *(connector.deliver(msg, MAILBOX, timeout=10) for _ in range(3))
    )
    assert all(isinstance(o, Delivered) for o in outcomes)
    assert import_once([r.data for r in server.handler.received]) == [envelope]


@pytest.mark.network
async def test_slow_server_retries_within_the_deadline(
    connector: SmtpConnector, server: SmtpServer
) -> None:
    """A server that never answers DATA gives RetryLater within timeout + slack."""
    server.handler.stall = True
    envelope, _, digest = sealed()
    loop = asyncio.get_running_loop()
    started = loop.time()
    outcome = await connector.deliver(as_message(envelope, digest), MAILBOX, timeout=0.5)
    elapsed = loop.time() - started
    assert isinstance(outcome, RetryLater)
    assert elapsed <= 0.5 + SLACK, f"took {elapsed:.2f}s"


@pytest.mark.network
async def test_oversized_mail_is_refused_before_connecting(
    server: SmtpServer, ca: ThrowawayCa
) -> None:
    """A mail over max_message_size is Refused and the server sees no connection."""
    small = SmtpConnector(config_for(server.port, ca, max_message_size=2048))
    envelope, _, digest = sealed("x" * 4096)
    outcome = await small.deliver(as_message(envelope, digest), MAILBOX, timeout=10)
    assert isinstance(outcome, Refused)
    assert "limit" in outcome.reason
    assert server.sessions == []


@pytest.mark.network
async def test_a_large_envelope_file_is_refused_before_it_is_read(
    server: SmtpServer, ca: ThrowawayCa, tmp_path: Path
) -> None:
    """An envelope file too large to mail is Refused from its length: never read, never sent.

    The file is sparse and several GiB long: reading it, or building the mail, would take
    seconds and gigabytes; the refusal comes at once, so the outbox tries the next route.
    """
    path = tmp_path / "large.envelope"
    with path.open("wb") as out:
        out.truncate(3 * 1024**3)
    _, _, digest = sealed("x")
    message = replace(
        as_message(b"", digest), body=StoredBody(file_body(path).read_at, 3 * 1024**3)
    )
    connector = SmtpConnector(config_for(server.port, ca))
    outcome = await connector.deliver(message, MAILBOX, timeout=10)
    assert isinstance(outcome, Refused)
    assert outcome.reason == (
        f"the envelope is {3 * 1024**3} bytes, over this route's limit of "
        f"{25 * 1024 * 1024} bytes once attached to a mail"
    )
    assert server.sessions == []


@pytest.mark.network
async def test_server_size_limit_is_refused(ca: ThrowawayCa) -> None:
    """A mail over the server's advertised SIZE is Refused (552 or 5xx), not retried."""
    running = await start_server(ca, data_size_limit=1024)
    try:
        sender = SmtpConnector(config_for(running.port, ca))
        envelope, _, digest = sealed("x" * 4096)
        outcome = await sender.deliver(as_message(envelope, digest), MAILBOX, timeout=10)
    finally:
        await running.stop()
    assert isinstance(outcome, Refused)
    assert running.handler.received == []


@pytest.mark.network
@pytest.mark.parametrize(
    "address", ["not-a-mailbox", "dsl@front-door.example>\r\nRCPT TO:<x@y.example"]
)
async def test_invalid_address_is_refused_before_connecting(
    connector: SmtpConnector, server: SmtpServer, address: str
) -> None:
    """A malformed route address is Refused without touching the server."""
    envelope, _, digest = sealed()
    outcome = await connector.deliver(as_message(envelope, digest), address, timeout=10)
    assert isinstance(outcome, Refused)
    assert "mailbox" in outcome.reason
    assert server.sessions == []


@pytest.mark.network
async def test_receipts_are_refused(connector: SmtpConnector, server: SmtpServer) -> None:
    """The SMTP route carries envelopes only."""
    outcome = await connector.deliver(
        Message("receipt", bytes(32), LA, SCHOOL, b"receipt"), MAILBOX, timeout=10
    )
    assert isinstance(outcome, Refused)
    assert server.sessions == []


@pytest.mark.network
async def test_non_envelope_body_is_refused(connector: SmtpConnector, server: SmtpServer) -> None:
    """An envelope message whose body is not an envelope is Refused, not mailed."""
    outcome = await connector.deliver(
        Message("envelope", bytes(32), SCHOOL, LA, b"opaque"), MAILBOX, timeout=10
    )
    assert isinstance(outcome, Refused)
    assert "not an envelope" in outcome.reason
    assert server.sessions == []


@pytest.mark.network
async def test_untrusted_certificate_retries(server: SmtpServer, tmp_path: Path) -> None:
    """A server certificate from another CA fails the handshake: RetryLater, nothing sent."""
    other = make_test_ca(tmp_path / "other")
    stranger = SmtpConnector(config_for(server.port, other))
    envelope, _, digest = sealed()
    outcome = await stranger.deliver(as_message(envelope, digest), MAILBOX, timeout=10)
    assert isinstance(outcome, RetryLater)
    assert "certificate" in outcome.reason
    assert server.handler.received == []
    assert server.handler.logins == []


@pytest.mark.network
async def test_implicit_tls(ca: ThrowawayCa) -> None:
    """Mode tls talks TLS from the first byte to an implicit-TLS server and delivers."""
    running = await start_server(ca, implicit_tls=True)
    try:
        sender = SmtpConnector(config_for(running.port, ca, mode="tls"))
        envelope, _, digest = sealed()
        outcome = await sender.deliver(as_message(envelope, digest), MAILBOX, timeout=10)
    finally:
        await running.stop()
    assert isinstance(outcome, Delivered)
    (got,) = running.handler.received
    assert got.encrypted
    assert got.login == USERNAME.encode()
    assert attachment_of(parse(got.data)) == envelope


@pytest.mark.network
async def test_notification_is_sent(connector: SmtpConnector, server: SmtpServer) -> None:
    """send_notification mails the PII-free notice, with no attachment."""
    _, envelope_id, _ = sealed()
    outcome = await connector.send_notification(
        envelope_id=envelope_id,
        origin=SCHOOL,
        destination=LA,
        address=MAILBOX,
        link="https://front-door.example/inbox",
        timeout=10,
    )
    assert isinstance(outcome, Delivered)
    (got,) = server.handler.received
    assert got.encrypted
    mail = parse(got.data)
    assert mail["Subject"] == "Secure item waiting for Stockport front door"
    assert outcome.transport_ref == mail["Message-ID"]
    assert not list(mail.iter_attachments())
    check_no_personal_data(mail, SENTINELS)
    check_headers(mail)
    assert envelope_id.hex() in text_of(mail)


@pytest.mark.network
async def test_closed_connector_raises(connector: SmtpConnector) -> None:
    """After close, deliver and send_notification raise ConnectorError; closing twice is fine."""
    await connector.close()
    await connector.close()
    envelope, envelope_id, digest = sealed()
    with pytest.raises(ConnectorError):
        await connector.deliver(as_message(envelope, digest), MAILBOX, timeout=10)
    with pytest.raises(ConnectorError):
        await connector.send_notification(
            envelope_id=envelope_id,
            origin=SCHOOL,
            destination=LA,
            address=MAILBOX,
            link="https://front-door.example/inbox",
            timeout=10,
        )


@pytest.mark.network
async def test_timeout_must_be_positive(connector: SmtpConnector) -> None:
    """A deadline of zero or less is the caller's mistake, named as such."""
    envelope, _, digest = sealed()
    with pytest.raises(ValueError, match="timeout"):
        await connector.deliver(as_message(envelope, digest), MAILBOX, timeout=0)
