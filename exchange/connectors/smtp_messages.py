"""Mail messages of the SMTP route, built without I/O: envelope deliveries and notifications.

Two kinds of RFC 5322 message leave a node by SMTP (docs/smtp.md §3): an *envelope mail*
carrying a sealed envelope as an ``application/vnd.exchange.envelope`` attachment, for an
organisation whose only route is email, and a *notification* telling staff that an item is
waiting. Neither carries personal data (docs/architecture.md §5): the subject, headers and body name
only the two organisations, the envelope id, the envelope digest and a link. The builders
take nothing else, so there is no argument through which a child's details could reach a
mail; :func:`check_headers` enforces a strict allow-list of header names on every message
built, and :func:`check_no_personal_data` lets tests prove a given mail is clean.

Exceptions this module raises::

    ValueError                a malformed argument (address, name, link, envelope)
    PersonalDataError         check_no_personal_data found a forbidden string or shape
    HeaderNotAllowedError     check_headers found a header outside the allow-list
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from collections.abc import Iterable
from email import policy
from email.message import EmailMessage, Message
from email.utils import format_datetime
from typing import Final, Literal

from exchange.envelope.format import (
    ENVELOPE_ID_LEN,
    HASH_LEN,
    PREFIX_LEN,
    SIG_LEN,
    decode_header,
    parse_prefix,
)
from exchange.keys.ids import OrgId
from exchange.logs import scrub

#: The media type of an attached envelope (docs/smtp.md §3.1).
ENVELOPE_MEDIA_TYPE: Final = "application/vnd.exchange.envelope"
#: The file name extension of an attached envelope.
ENVELOPE_FILE_SUFFIX: Final = ".exchange"

#: Header names the builders may put on the top level of a message. Anything else, a
#: ``Reply-To``, an ``X-Mailer``, a ``Comments`` header, is a place where data could leak
#: and is refused by :func:`check_headers` (docs/smtp.md §3.3).
TOP_LEVEL_HEADERS: Final = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "x-exchange-envelope-id",
        "x-exchange-digest",
    }
)
#: Header names allowed on a MIME part below the top level (the text body, the attachment).
PART_HEADERS: Final = frozenset(
    {"content-type", "content-transfer-encoding", "content-disposition", "mime-version"}
)

#: RFC 5321 §4.5.3.1: local part at most 64 octets, path at most 256 including the angle
#: brackets, so a mailbox is at most 254 octets.
MAX_LOCAL_PART_LEN: Final = 64
MAX_ADDRESS_LEN: Final = 254
#: Longest organisation name put in a subject; the directory allows up to this many too.
MAX_NAME_LEN: Final = 200
#: Longest link accepted (a URL to the recipient's node; 2048 is the directory's own limit
#: on route options).
MAX_LINK_LEN: Final = 2048

# RFC 5322 §3.2.3 atext, as a dot-atom; quoted local parts and address literals are not
# accepted (no exchange partner needs them, and they are where parsers disagree).
_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_RE: Final = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LABEL_RE: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_LINK_RE: Final = re.compile(r"https?://[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+")

#: Domain separation of Message-ID derivation (one label per kind of mail).
_MESSAGE_ID_LABELS: Final = {
    "envelope": b"exchange/v1/smtp-message-id/envelope\x00",
    "notification": b"exchange/v1/smtp-message-id/notification\x00",
    "overdue": b"exchange/v1/smtp-message-id/overdue\x00",
}

MailKind = Literal["envelope", "notification", "overdue"]

#: CRLF line ends (RFC 5321) and no folding below RFC 5322's hard limit of 998: the
#: standard library folds a long subject right after "Subject:", and its own parser then
#: reads the value back with a leading space. Bodies are quoted-printable or base64, whose
#: lines are 76 characters whatever this says; only headers are affected.
MAIL_POLICY: Final = policy.SMTP.clone(max_line_length=998)


class PersonalDataError(AssertionError):
    """A mail contains a forbidden string, or something shaped like a child's identifier."""


class HeaderNotAllowedError(ValueError):
    """A mail carries a header name outside the allow-list."""


def validate_address(address: str, *, field: str = "address") -> str:
    """Return ``address`` if it is an ASCII RFC 5321 mailbox (dot-atom@domain).

    Raises ``ValueError`` naming ``field`` otherwise. Only ``local@domain.tld`` with a
    dot-atom local part and a host name of at least two labels is accepted.
    """
    if not isinstance(address, str):
        raise TypeError(f"{field} must be a string")
    if not address.isascii() or len(address) > MAX_ADDRESS_LEN:
        raise ValueError(f"{field} must be an ASCII mailbox of at most {MAX_ADDRESS_LEN} octets")
    local, at, domain = address.rpartition("@")
    if not at or not local or len(local) > MAX_LOCAL_PART_LEN:
        raise ValueError(f"{field} must be local-part@domain, local part of 1-64 characters")
    if _LOCAL_RE.fullmatch(local) is None:
        raise ValueError(f"{field} has a local part that is not a dot-atom (RFC 5322 §3.2.3)")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        raise ValueError(f"{field} has a domain that is not a host name of two or more labels")
    return address


def validate_domain(domain: str, *, field: str = "domain") -> str:
    """Return ``domain`` if it is a host name of two or more labels, else raise ``ValueError``."""
    labels = domain.split(".") if isinstance(domain, str) and domain.isascii() else []
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL_RE.fullmatch(x) for x in labels):
        raise ValueError(f"{field} must be a host name of two or more labels")
    return domain


def _check_name(name: str, field: str) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME_LEN:
        raise ValueError(f"{field} must be a string of 1 to {MAX_NAME_LEN} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise ValueError(f"{field} must not contain control or format characters")
    if scrub(name) != name:
        raise ValueError(f"{field} contains something shaped like a date or a child's identifier")
    return name


def _check_link(link: str | None) -> str | None:
    if link is None:
        return None
    if len(link) > MAX_LINK_LEN or _LINK_RE.fullmatch(link) is None:
        raise ValueError(f"link must be an http(s) URL of at most {MAX_LINK_LEN} characters")
    if scrub(link) != link:
        raise ValueError("link contains something shaped like a date or a child's identifier")
    return link


def envelope_id_of(envelope: bytes) -> bytes:
    """Return the envelope id from the header of ``envelope``; ``ValueError`` if malformed.

    Only the header is decoded, nothing is verified: the mail names the envelope, the
    recipient's node verifies it.
    """
    try:
        header_len = parse_prefix(envelope[:PREFIX_LEN])
        header = decode_header(envelope[:header_len])
    except Exception as exc:
        raise ValueError(f"the message body is not an envelope: {exc}") from exc
    if len(envelope) < header_len + SIG_LEN:
        raise ValueError("the message body is not an envelope: it ends inside its header")
    return header.envelope_id


def derive_message_id(kind: MailKind, message_id: bytes, destination: OrgId, domain: str) -> str:
    """Return the Message-ID of a mail, the same for every retry of the same item.

    SMTP cannot de-duplicate, so a redelivery after a lost reply arrives twice; giving both
    copies the same Message-ID (a hash of the item's id and its destination) makes the
    duplicate recognisable to mail clients and to the importing node (docs/smtp.md §4).
    """
    digest = hashlib.sha256(
        _MESSAGE_ID_LABELS[kind] + message_id + b"\x00" + destination.encode("ascii")
    ).hexdigest()
    return f"<{digest[:40]}@{validate_domain(domain, field='message id domain')}>"


def _base(
    *,
    subject: str,
    from_address: str,
    to_address: str,
    message_id: str,
    date: dt.datetime,
    envelope_id: bytes,
) -> EmailMessage:
    if date.tzinfo is None:
        raise ValueError("date must be timezone-aware")
    if len(envelope_id) != ENVELOPE_ID_LEN:
        raise ValueError(f"envelope id must be {ENVELOPE_ID_LEN} bytes")
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = validate_address(from_address, field="from address")
    msg["To"] = validate_address(to_address, field="to address")
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date.astimezone(dt.UTC))
    msg["Message-ID"] = message_id
    msg["X-Exchange-Envelope-Id"] = envelope_id.hex()
    return msg


def _envelope_body(
    sender_name: str, recipient_name: str, envelope_id: str, digest: str, link: str | None
) -> str:
    file_name = f"{envelope_id}{ENVELOPE_FILE_SUFFIX}"
    lines = [
        f"{sender_name} has sent {recipient_name} a secure item through the safeguarding",
        "exchange.",
        "",
        f"The attached file {file_name} is a sealed envelope. Only {recipient_name}",
        "can open it, with its own private key. This email does not contain or describe",
        "what is inside.",
        "",
        "To open it, save the attachment and run:",
        "",
        f"    exchange open --key <your organisation's key file> --in {file_name} --out <file>",
        "",
        "or import the file into your organisation's exchange node.",
        "",
        f"Envelope id: {envelope_id}",
        f"Envelope digest: {digest}",
    ]
    if link is not None:
        lines.append(f"Link: {link}")
    lines += [
        "",
        "If you did not expect this item, do not forward it: tell your designated",
        "safeguarding lead.",
    ]
    return "\n".join(lines) + "\n"


def build_envelope_mail(
    *,
    envelope: bytes,
    digest: bytes,
    sender_name: str,
    recipient_name: str,
    from_address: str,
    to_address: str,
    message_id: str,
    date: dt.datetime,
    link: str | None = None,
) -> EmailMessage:
    """Return the mail that delivers ``envelope`` (sealed bytes) as an attachment.

    The subject is exactly ``Secure item <envelope id hex> from <sender_name>``; the record
    kind is deliberately absent (docs/smtp.md §2).
    """
    if len(digest) != HASH_LEN:
        raise ValueError(f"digest must be {HASH_LEN} bytes")
    envelope_id = envelope_id_of(envelope)
    sender_name = _check_name(sender_name, "sender name")
    recipient_name = _check_name(recipient_name, "recipient name")
    link = _check_link(link)
    msg = _base(
        subject=f"Secure item {envelope_id.hex()} from {sender_name}",
        from_address=from_address,
        to_address=to_address,
        message_id=message_id,
        date=date,
        envelope_id=envelope_id,
    )
    msg["X-Exchange-Digest"] = digest.hex()
    body = _envelope_body(sender_name, recipient_name, envelope_id.hex(), digest.hex(), link)
    msg.set_content(body, cte="quoted-printable")
    msg.add_attachment(
        envelope,
        maintype="application",
        subtype=ENVELOPE_MEDIA_TYPE.split("/", 1)[1],
        filename=f"{envelope_id.hex()}{ENVELOPE_FILE_SUFFIX}",
    )
    check_headers(msg)
    return msg


def _notice(
    *,
    subject: str,
    opening: list[str],
    envelope_id: bytes,
    from_address: str,
    to_address: str,
    message_id: str,
    date: dt.datetime,
    link: str,
) -> EmailMessage:
    """Return a staff notice: ``opening`` lines, the link, the envelope id, no attachment."""
    checked = _check_link(link)
    assert checked is not None
    msg = _base(
        subject=subject,
        from_address=from_address,
        to_address=to_address,
        message_id=message_id,
        date=date,
        envelope_id=envelope_id,
    )
    body = "\n".join(
        [
            *opening,
            "",
            f"    {checked}",
            "",
            f"Envelope id: {envelope_id.hex()}",
            "",
            "This email does not contain or describe what is inside the item.",
        ]
    )
    msg.set_content(body + "\n", cte="quoted-printable")
    check_headers(msg)
    return msg


def build_notification(
    *,
    envelope_id: bytes,
    sender_name: str,
    recipient_name: str,
    from_address: str,
    to_address: str,
    message_id: str,
    date: dt.datetime,
    link: str,
) -> EmailMessage:
    """Return the mail telling staff of ``recipient_name`` that a secure item is waiting.

    The subject is exactly ``Secure item waiting for <recipient_name>``; there is no
    attachment, the item is collected from the node through ``link``.
    """
    sender_name = _check_name(sender_name, "sender name")
    recipient_name = _check_name(recipient_name, "recipient name")
    return _notice(
        subject=f"Secure item waiting for {recipient_name}",
        opening=[
            "A secure item is waiting.",
            "",
            f"{sender_name} has sent {recipient_name} a secure item through the",
            "safeguarding exchange. Sign in to your organisation's exchange node to open it:",
        ],
        envelope_id=envelope_id,
        from_address=from_address,
        to_address=to_address,
        message_id=message_id,
        date=date,
        link=link,
    )


def build_overdue_notice(
    *,
    envelope_id: bytes,
    sender_name: str,
    recipient_name: str,
    due: str,
    waiting_for: str,
    from_address: str,
    to_address: str,
    message_id: str,
    date: dt.datetime,
    link: str,
) -> EmailMessage:
    """Return the mail telling ``sender_name``'s staff that an item sent is past its deadline.

    The subject is exactly ``Overdue: secure item for <recipient_name>``. Like every mail
    here it names organisations, the envelope id, the due date and the receipt awaited, and
    never the record kind, the child or anything inside.
    """
    sender_name = _check_name(sender_name, "sender name")
    recipient_name = _check_name(recipient_name, "recipient name")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", due):
        raise ValueError("due must be a date, YYYY-MM-DD")
    if waiting_for not in {"delivered", "opened", "acknowledged"}:
        raise ValueError("waiting_for must be a receipt status")
    return _notice(
        subject=f"Overdue: secure item for {recipient_name}",
        opening=[
            "A secure item is past its deadline.",
            "",
            f"{sender_name} sent {recipient_name} a secure item through the safeguarding",
            f"exchange. It was due by {due}, and no '{waiting_for}' receipt has come back.",
            "Please follow it up with the recipient. Sign in to see its timeline:",
        ],
        envelope_id=envelope_id,
        from_address=from_address,
        to_address=to_address,
        message_id=message_id,
        date=date,
        link=link,
    )


def check_headers(message: Message) -> None:
    """Raise :class:`HeaderNotAllowedError` if any header of any part is not allowed."""
    for index, part in enumerate(message.walk()):
        allowed = TOP_LEVEL_HEADERS if index == 0 else PART_HEADERS
        for name in part.keys():  # noqa: SIM118 - a Message is not a dict: keys() lists repeats
            if name.lower() not in allowed:
                where = "the message" if index == 0 else f"MIME part {index}"
                raise HeaderNotAllowedError(f"header {name!r} on {where} is not on the allow-list")


def _texts(message: Message) -> list[tuple[str, str]]:
    """Return (where, text) for every header value and text part, decoded, and the raw mail."""
    found = [("the raw message", message.as_bytes(policy=MAIL_POLICY).decode("ascii", "replace"))]
    for index, part in enumerate(message.walk()):
        found += [(f"header {name} of part {index}", str(value)) for name, value in part.items()]
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                found.append((f"text of part {index}", payload.decode("utf-8", "replace")))
    return found


def check_no_personal_data(message: Message, forbidden: Iterable[str]) -> None:
    """Raise :class:`PersonalDataError` if ``message`` contains personal data.

    Every header value and text part (decoded) and the raw message are searched, ignoring
    case, for each string of ``forbidden``, and the text for anything shaped like a UPN, an
    NHS number or a date (the shapes the log scrubber uses). Attachments (decoded) are
    searched for the forbidden strings as UTF-8 bytes: a sealed envelope must not contain
    them in clear.
    """
    needles = [f for f in forbidden if f]
    for where, text in _texts(message):
        folded = text.casefold()
        for needle in needles:
            if needle.casefold() in folded:
                raise PersonalDataError(f"{where} contains a forbidden string")
        if where != "the raw message" and scrub(text) != text:
            raise PersonalDataError(f"{where} contains something shaped like an identifier")
    for index, part in enumerate(message.walk()):
        if part.get_content_maintype() in {"text", "multipart"}:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        for needle in needles:
            if needle.encode("utf-8") in payload:
                raise PersonalDataError(f"attachment in part {index} contains a forbidden string")
