"""``exchange recall|rectify|thread|sent``: the staff API of a node, from the command line.

Unlike the node commands (``overdue``, ``register export``...), which read the node's store on
the node's machine, these act *through* the node, as a member of staff: they call the staff
API (docs/openapi.yaml) with the user's bearer token, so the node checks the role, scopes the
answer to the user's organisation, records the action in its ledger and does the work (a
recall notice, a sealed correction). They run anywhere that can reach the node.

- ``recall DIGEST --reason TEXT``: ``POST /api/v1/sent/{digest}/recall``;
- ``rectify DIGEST --record FILE --reason TEXT [--attach FILE ...]``:
  ``POST /api/v1/sent/{digest}/rectify``;
- ``thread DIGEST``: ``GET /api/v1/threads/{digest}``;
- ``sent`` and ``sent show DIGEST``: ``GET /api/v1/sent`` and ``GET /api/v1/sent/{digest}``.

The node is ``--node URL`` (or ``EXCHANGE_NODE``), HTTPS unless ``--allow-http``; ``--ca``
names a private CA. The token is read **only** from the environment variable ``--token-env``
names (default ``EXCHANGE_TOKEN``), never from the command line, so it stays out of shell
history and process lists; it is never printed and never sent anywhere but the node
(redirects are not followed). Answers are read up to a limit; a refusal by the node is one
``exchange: the node refused: <message> [<rule>]`` line, exit status 1.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from http.client import HTTPException
from pathlib import Path
from typing import IO, Any, Final

from exchange import __version__
from exchange.cli import common
from exchange.cli.errors import CliError, UsageError, concerning
from exchange.files import read_limited
from exchange.records import CONTENT_TYPES, KINDS, MAX_ATTACHMENT_SIZE, MAX_ATTACHMENTS
from exchange.records.content_checks import DOCX, JPEG, ODT, PDF, PNG, TEXT

ENV_NODE: Final = "EXCHANGE_NODE"
ENV_TOKEN: Final = "EXCHANGE_TOKEN"  # noqa: S105 - a variable name, not a secret

#: Seconds to wait for the node at each step (connect, send, each read). A recall may wait
#: for a delivery attempt in flight (the node's ``delivery.timeout``), so this is generous.
DEFAULT_TIMEOUT: Final = 60.0
#: Largest answer read: a page of 200 sent items or a thread of 501 items is far below.
MAX_ANSWER: Final = 16 * 1024 * 1024
#: Largest error answer read: a refusal is one sentence, perhaps with 20 problems.
MAX_ERROR_ANSWER: Final = 64 * 1024
#: Largest corrected record file: the largest record JSON any kind allows (docs/records.md §5).
MAX_RECORD_FILE: Final = max(spec.max_document for spec in KINDS.values())
#: Most sent items one page lists (the node's own limit).
MAX_PAGE: Final = 200
#: Most characters of a text from the node shown in one line.
_MAX_SHOWN: Final = 300
#: Most record problems named in a refusal line.
_MAX_PROBLEMS_SHOWN: Final = 5

#: Attachment content types by file extension: exactly the types records may carry.
CONTENT_TYPE_BY_EXTENSION: Final = {
    ".pdf": PDF,
    ".png": PNG,
    ".jpg": JPEG,
    ".jpeg": JPEG,
    ".docx": DOCX,
    ".odt": ODT,
    ".txt": TEXT,
}
assert set(CONTENT_TYPE_BY_EXTENSION.values()) == set(CONTENT_TYPES)

_DIGEST_RE: Final = re.compile(r"[0-9a-f]{64}")
_ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: A bearer token is visible ASCII (RFC 6750 b64token and more); anything else could split
#: the header, and http.client would then quote the value in its error.
_TOKEN_RE: Final = re.compile(r"[\x21-\x7e]{1,4096}")


# --- arguments ---------------------------------------------------------------------------


def digest_arg(value: str) -> str:
    """Parse an envelope digest: 64 hexadecimal characters (upper case is accepted)."""
    digest = value.strip().lower()
    if _DIGEST_RE.fullmatch(digest) is None:
        raise argparse.ArgumentTypeError(
            "a digest is 64 hexadecimal characters (as `exchange sent` or the API prints it)"
        )
    return digest


def _env_name_arg(value: str) -> str:
    if _ENV_NAME_RE.fullmatch(value) is None:
        # Not repeated: it might be the token itself, given here by mistake.
        raise argparse.ArgumentTypeError("it is not an environment variable name")
    return value


def _limit_arg(value: str) -> int:
    try:
        limit = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if not 1 <= limit <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"the limit is 1 to {MAX_PAGE}")
    return limit


def _timeout_arg(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError("the timeout is more than 0 and at most 3600 seconds")
    return seconds


class _RefuseToken(argparse.Action):
    """``--token``: refused without repeating the value, which would be the secret."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        del parser, namespace, values, option_string
        raise UsageError(
            f"the token is never given on the command line (it would be kept in the shell "
            f"history and shown to other users by ps): set {ENV_TOKEN}, or the variable "
            "--token-env names"
        )


def _connection_options() -> common.Parser:
    """Return a parent parser with the node, token and TLS options.

    Their defaults are suppressed so that, on ``sent`` and ``sent show`` alike, an option
    given to either is kept (argparse copies a subcommand's defaults over its parent's).
    """
    parent = common.Parser(add_help=False)
    parent.add_argument("--token", nargs="?", action=_RefuseToken, help=argparse.SUPPRESS)
    group = parent.add_argument_group("connecting to the node")
    group.add_argument(
        "--node",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"the node's address, e.g. https://exchange.example:8443 (default: ${ENV_NODE})",
    )
    group.add_argument(
        "--token-env",
        metavar="NAME",
        type=_env_name_arg,
        default=argparse.SUPPRESS,
        help=(
            f"the environment variable holding your API token (default: {ENV_TOKEN}); the token "
            "is never given on the command line"
        ),
    )
    group.add_argument(
        "--ca",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="trust only this CA certificate file (PEM) for the node, for a private CA",
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_timeout_arg,
        default=argparse.SUPPRESS,
        help=f"how long to wait for the node at each step (default: {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "--allow-http",
        action="store_true",
        default=argparse.SUPPRESS,
        help="allow a plain http:// address (tests on loopback only: the token travels in clear)",
    )
    parent.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the node's answer as JSON instead of lines",
    )
    return parent


def _option(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    return getattr(args, name, default)


# --- talking to the node -----------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: the token must go to the node named and nowhere else."""

    def redirect_request(  # noqa: PLR0917 - the signature of the method overridden
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        """Refuse; the 3xx then surfaces as an ``HTTPError``."""
        del req, fp, code, msg, headers, newurl
        return None


@dataclass(frozen=True)
class StaffClient:
    """A client of one node's staff API: where the node is and how to reach it."""

    base: str
    token: str
    context: ssl.SSLContext | None
    timeout: float

    def call(self, method: str, path: str, body: object | None = None) -> Any:
        """Make one request and return the JSON answer; raise :class:`CliError` otherwise."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "User-Agent": f"exchange/{__version__}",
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in connect()
            self.base + path, data=data, headers=headers, method=method
        )
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if self.context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.context))
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(request, timeout=self.timeout) as response:
                raw = _read_answer(response, MAX_ANSWER)
        except urllib.error.HTTPError as exc:
            with exc:
                raise _refusal(exc.code, _read_error(exc)) from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            raise self._unreachable(reason if isinstance(reason, BaseException) else None) from None
        except (OSError, HTTPException) as exc:
            raise self._unreachable(exc) from None
        try:
            return json.loads(raw)
        except (UnicodeError, ValueError):
            raise CliError(
                f"the answer from {self.base} is not JSON; is --node the address of an "
                "exchange node?"
            ) from None

    def _unreachable(self, reason: BaseException | None) -> CliError:
        for kinds, sentence in _UNREACHABLE:
            if isinstance(reason, kinds):
                return CliError(sentence.format(where=self.base))
        if isinstance(reason, OSError) and reason.strerror:
            return CliError(f"could not reach {self.base}: {reason.strerror.rstrip('.').lower()}")
        return CliError(f"could not reach {self.base}")


#: What went wrong reaching the node, most specific first, as plain sentences.
_UNREACHABLE: Final[
    tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...]
] = (
    (
        ssl.SSLCertVerificationError,
        "could not verify the TLS certificate of {where} (for a private CA, give --ca FILE)",
    ),
    (ssl.SSLError, "could not make a TLS connection to {where}"),
    (TimeoutError, "{where} did not answer in time (see --timeout)"),
    (ConnectionRefusedError, "could not connect to {where}: the connection was refused"),
    (
        (ConnectionError, HTTPException),
        "the connection to {where} was closed before the answer was complete",
    ),
)


def _read_answer(response: Any, limit: int) -> bytes:
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise CliError(f"the node's answer is larger than the limit of {limit:,} bytes")
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        part = response.read(min(1024 * 1024, limit + 1 - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    if size > limit:
        raise CliError(f"the node's answer is larger than the limit of {limit:,} bytes")
    return b"".join(parts)


def _read_error(exc: urllib.error.HTTPError) -> bytes:
    try:
        return _read_answer(exc, MAX_ERROR_ANSWER)
    except (CliError, OSError, HTTPException):
        return b""


def clean(value: object, limit: int = _MAX_SHOWN) -> str:
    """Return text from the node safe for one terminal line: no controls, bounded."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_object(raw: bytes) -> dict[str, Any] | None:
    """Return the ``error`` object of an error answer, or None if it has none."""
    try:
        error = json.loads(raw)["error"]
    except (UnicodeError, ValueError, KeyError, TypeError):
        return None
    return error if isinstance(error, dict) else None


def _refusal(status: int, raw: bytes) -> CliError:
    """Turn an error answer into one line: the node's message and rule, or the status."""
    if 300 <= status < 400:
        return CliError(
            f"the node answered with a redirect (HTTP {status}), which is not followed so the "
            "token goes nowhere else; give --node the address the node answers at"
        )
    error = _error_object(raw)
    message = None if error is None else error.get("message")
    if error is None or not isinstance(message, str) or not message:
        return CliError(f"the node refused the request (HTTP {status}) without saying why")
    line = f"the node refused: {clean(message)}"
    rule = error.get("rule")
    if isinstance(rule, str) and rule:
        line += f" [{clean(rule, 100)}]"
    problems = error.get("problems")
    if isinstance(problems, list) and problems:
        named = [
            f"{clean(p.get('path'), 100)} ({clean(p.get('rule'), 60)})"
            for p in problems[:_MAX_PROBLEMS_SHOWN]
            if isinstance(p, dict)
        ]
        more = len(problems) - len(named)
        line += ": " + "; ".join(named) + (f"; and {more} more" if more > 0 else "")
    return CliError(line)


def _base_url(args: argparse.Namespace) -> tuple[str, bool]:
    """Return the node's base URL from --node or the environment, and whether it is HTTPS."""
    value = _option(args, "node") or os.environ.get(ENV_NODE)
    if not value:
        raise UsageError(f"no node: give --node URL or set {ENV_NODE}")
    try:
        url = urllib.parse.urlsplit(value.strip())
        _ = url.port  # a port that is not a number raises ValueError
    except ValueError:
        raise UsageError(
            "--node is not a URL (for example https://exchange.school.example:8443)"
        ) from None
    if url.scheme == "http" and not _option(args, "allow_http", default=False):
        raise UsageError(
            "--node must be an https:// address: the token and records must not travel in "
            "clear (--allow-http is for tests on loopback only)"
        )
    if url.scheme not in {"https", "http"} or not url.hostname:
        raise UsageError(
            "--node is not an https:// URL (for example https://exchange.example:8443)"
        )
    if url.username is not None or url.password is not None:
        raise UsageError("--node must not hold a user name or password; the token is set apart")
    if url.query or url.fragment:
        raise UsageError("--node must not have a query or fragment")
    base = urllib.parse.urlunsplit((url.scheme, url.netloc, url.path.rstrip("/"), "", ""))
    return base, url.scheme == "https"


def _token(args: argparse.Namespace) -> str:
    """Return the API token from the environment variable --token-env names."""
    given = _option(args, "token_env")
    name = given or ENV_TOKEN
    # A name given with --token-env is not repeated: it might be the token, given by mistake.
    shown = "the variable --token-env names" if given else f"the environment variable {name}"
    token = os.environ.get(name)
    if not token:
        raise UsageError(
            f"no API token: set {shown} to your token (printed once by `exchange users add`); "
            "it is never taken on the command line"
        )
    if _TOKEN_RE.fullmatch(token) is None:
        raise UsageError(f"{shown} does not hold a token: it has spaces or other characters")
    return token


def _tls_context(ca: str | None) -> ssl.SSLContext:
    """Return a verifying TLS context: the system's CAs, or only the CA in ``ca``."""
    if ca is None:
        return ssl.create_default_context()
    if not Path(ca).is_file():
        raise CliError(f"--ca {ca}: no such file")
    try:
        return ssl.create_default_context(cafile=ca)
    except (ssl.SSLError, ValueError, UnicodeError):
        raise CliError(f"--ca {ca}: not a PEM certificate file") from None


def connect(args: argparse.Namespace) -> StaffClient:
    """Return a client of the node to talk to, checking the address, the token and the CA."""
    base, https = _base_url(args)
    token = _token(args)
    context = _tls_context(_option(args, "ca")) if https else None
    return StaffClient(base, token, context, float(_option(args, "timeout", DEFAULT_TIMEOUT)))


# --- showing answers ---------------------------------------------------------------------


def when(value: object) -> str:
    """Return unix seconds as ``YYYY-MM-DDTHH:MM:SSZ`` (``-`` when unknown)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _show(args: argparse.Namespace, answer: Any, lines: Callable[[Any], list[str]]) -> None:
    """Print ``answer`` as JSON (``--json``) or as the lines ``lines`` makes of it."""
    if _option(args, "json", default=False):
        common.say(json.dumps(answer, indent=2, ensure_ascii=True))
        return
    try:
        text = lines(answer)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise CliError(
            "the node's answer is not in the expected form (print it with --json)"
        ) from None
    for line in text:
        common.say(line)


def _recall_detail(outcome: dict[str, Any]) -> str:
    parts = [clean(outcome.get("detail") or "")]
    if outcome.get("at") is not None:
        parts.append(f"at {when(outcome['at'])}")
    if outcome.get("opened_by_role"):
        parts.append(f"opened by {clean(outcome['opened_by_role'], 20)}")
    return ", ".join(p for p in parts if p)


def recall_lines(answer: dict[str, Any]) -> list[str]:
    """One line per recipient: organisation, outcome, route, then what happened and when."""
    return [
        f"{clean(r['organisation'], 60):<16} {clean(r['outcome'], 20):<15} "
        f"{clean(r.get('route') or '-', 10):<8} {_recall_detail(r)}"
        for r in answer["recipients"]
    ]


def rectify_lines(answer: dict[str, Any]) -> list[str]:
    """Return the correction's names, each recipient sent it, and each left out with why."""
    lines = [
        f"correction {clean(answer['digest'], 64)} (envelope {clean(answer['envelope_id'], 32)})",
        f"corrects   {clean(answer['corrects'], 64)}",
    ]
    lines += [f"sent to    {clean(org, 60)}" for org in answer["recipients"]]
    lines += [
        f"not sent   {clean(n['organisation'], 60)}: {clean(n['reason'])}"
        for n in answer["not_sent"]
    ]
    deadline = answer.get("deadline")
    if isinstance(deadline, dict):
        lines.append(f"due        {clean(deadline['due'], 20)} ({clean(deadline['rule'], 80)})")
    return lines


def _receipts(receipts: Sequence[dict[str, Any]]) -> str:
    orgs = {r["organisation"] for r in receipts}
    return ", ".join(
        (f"{clean(r['organisation'], 60)} " if len(orgs) > 1 else "")
        + f"{clean(r['status'], 20)} {when(r['time'])}"
        for r in receipts
    )


def thread_lines(answer: dict[str, Any]) -> list[str]:
    """One line per envelope, oldest first: time, direction, counterparty, kind, receipts."""
    lines = []
    for item in answer["items"]:
        marker = "*" if item["digest"] == answer["digest"] else " "
        direction = "sent to" if item["direction"] == "sent" else "from"
        counterparties = ", ".join(clean(c, 60) for c in item["counterparties"])
        relation = clean(item.get("relation") or "", 12)
        kind = clean(item["record_kind"], 30) + (f" ({relation})" if relation else "")
        receipts = _receipts(item["receipts"]) or "no receipts"
        if item.get("state"):
            receipts += f"; {clean(item['state'], 20)} here"
        lines.append(
            f"{marker} {when(item['time'])}  {direction:<7} {counterparties:<16} {kind:<30} "
            f"{clean(item['digest'], 64)}  {receipts}"
        )
    return lines


def _recipient_summary(recipient: dict[str, Any]) -> str:
    text = f"{clean(recipient['organisation'], 60)} {clean(recipient['delivery_state'], 20)}"
    statuses = [clean(t["status"], 20) for t in recipient["timeline"]]
    if statuses:
        text += f" ({', '.join(statuses)})"
    if recipient.get("overdue"):
        text += " OVERDUE"
    recall = recipient.get("recall")
    if isinstance(recall, dict):
        text += f" recall {clean(recall['outcome'], 20)}"
    return text


def sent_list_lines(answer: dict[str, Any]) -> list[str]:
    """One line per sent item, newest first: created, kind, digest, each recipient's state."""
    return [
        f"{when(item['created'])}  {clean(item['record_kind'], 30):<20} "
        f"{clean(item['digest'], 64)}  "
        + "; ".join(_recipient_summary(r) for r in item["recipients"])
        for item in answer["items"]
    ]


def sent_item_lines(item: dict[str, Any]) -> list[str]:
    """Return one sent item's timeline: each recipient's route, state, receipts and recall."""
    lines = [
        f"digest        {clean(item['digest'], 64)}",
        f"envelope      {clean(item['envelope_id'], 32)}",
        f"kind          {clean(item['record_kind'], 30)}",
        f"created       {when(item['created'])} by {clean(item['submitted_by'], 80)}",
    ]
    if item.get("in_reply_to"):
        lines.append(f"in reply to   {clean(item['in_reply_to'], 64)}")
    if item.get("corrects"):
        lines.append(f"corrects      {clean(item['corrects'], 64)}")
    lines += [f"corrected by  {clean(d, 64)}" for d in item.get("corrected_by") or ()]
    for r in item["recipients"]:
        route = clean(r.get("route") or "no route yet", 20)
        state = f"{clean(r['delivery_state'], 20)} via {route}, {int(r['attempts'])} attempt(s)"
        if r.get("overdue"):
            state += ", OVERDUE"
        if r.get("last_error"):
            state += f", last error: {clean(r['last_error'])}"
        lines.append(f"to {clean(r['organisation'], 60)}")
        lines.append(f"  delivery    {state}")
        lines += [f"  {clean(t['status'], 20):<11} {when(t['time'])}" for t in r["timeline"]]
        recall = r.get("recall")
        if isinstance(recall, dict):
            lines.append(f"  recall      {clean(recall['outcome'], 20)}: {_recall_detail(recall)}")
    events = item.get("events") or ()
    if events:
        lines.append("events")
    lines += [
        f"  {when(e['time'])}  {clean(e['type'], 20):<10} {clean(e.get('counterparty') or '-', 60)}"
        + (f"  {clean(e['reason'], 100)}" if e.get("reason") else "")
        + f"  (ledger #{int(e['index'])})"
        for e in events
    ]
    return lines


# --- the commands ------------------------------------------------------------------------


def recall_command(args: argparse.Namespace) -> int:
    """Recall a sent envelope from every recipient and show each outcome."""
    node = connect(args)
    body = {"reason": args.reason}
    if args.reason_code is not None:
        body["reason_code"] = args.reason_code
    answer = node.call("POST", f"/api/v1/sent/{args.digest}/recall", body)
    _show(args, answer, recall_lines)
    if not _option(args, "json", default=False):
        outcomes = [str(r.get("outcome")) for r in answer.get("recipients", ())]
        counts = ", ".join(f"{outcomes.count(o)} {o}" for o in dict.fromkeys(outcomes))
        retry = (
            " (run it again to retry those pending or failed)"
            if {"pending", "failed"} & set(outcomes)
            else ""
        )
        common.note(f"recall of {args.digest}: {counts or 'no recipients'}{retry}")
    return 0


def _attachment(path: str) -> dict[str, str]:
    extension = Path(path).suffix.lower()
    content_type = CONTENT_TYPE_BY_EXTENSION.get(extension)
    if content_type is None:
        allowed = ", ".join(sorted(CONTENT_TYPE_BY_EXTENSION))
        raise CliError(f"attachment {path}: only {allowed} files can be attached")
    with concerning(f"attachment {path}"):
        data = read_limited(path, MAX_ATTACHMENT_SIZE, what="the attachment")
        if not data:
            raise CliError("is empty")
    return {
        "name": Path(path).name,
        "content_type": content_type,
        "content_base64": base64.b64encode(data).decode("ascii"),
    }


def rectify_command(args: argparse.Namespace) -> int:
    """Send a corrected record to every organisation that received the original."""
    node = connect(args)
    with concerning(f"record {args.record}"):
        record = json.loads(read_limited(args.record, MAX_RECORD_FILE, what="the record file"))
        if not isinstance(record, dict):
            raise CliError("must hold one JSON object: the corrected record")
    paths = args.attach or []
    if len(paths) > MAX_ATTACHMENTS:
        raise UsageError(f"at most {MAX_ATTACHMENTS} attachments")
    body: dict[str, Any] = {"record": record, "reason": args.reason}
    if paths:
        body["attachments"] = [_attachment(path) for path in paths]
    answer = node.call("POST", f"/api/v1/sent/{args.digest}/rectify", body)
    _show(args, answer, rectify_lines)
    return 0


def thread_command(args: argparse.Namespace) -> int:
    """Show the conversation an envelope belongs to."""
    answer = connect(args).call("GET", f"/api/v1/threads/{args.digest}")
    _show(args, answer, thread_lines)
    return 0


def sent_command(args: argparse.Namespace) -> int:
    """List the organisation's sent items, newest first."""
    query = {"limit": str(args.limit)}
    if args.before:
        query["before"] = args.before
    answer = connect(args).call("GET", "/api/v1/sent?" + urllib.parse.urlencode(query))
    _show(args, answer, sent_list_lines)
    if not _option(args, "json", default=False) and isinstance(answer, dict) and answer.get("next"):
        common.note(f"more: exchange sent --before {clean(answer['next'], 200)}")
    return 0


def sent_show_command(args: argparse.Namespace) -> int:
    """Show one sent item's timeline."""
    answer = connect(args).call("GET", f"/api/v1/sent/{args.digest}")
    _show(args, answer, sent_item_lines)
    return 0


_AFTER: Final = (
    f"The node is --node or ${ENV_NODE}; your API token is read only from ${ENV_TOKEN} (or the "
    "variable --token-env names). A refusal by the node is printed as one line with its rule."
)


def add_commands(sub: common.Subcommands) -> None:
    """Add ``exchange recall``, ``rectify``, ``thread`` and ``sent`` to the parser."""
    connection = _connection_options()

    recall = sub.add_parser(
        "recall",
        parents=[connection],
        help="recall something sent in error, through the node (DSL or DPO)",
        description=(
            "Ask the node to recall a sent envelope from every recipient, and print each "
            "recipient's outcome: recalled (never sent, deleted from the relay, or withdrawn "
            "at their node before anyone opened it), too-late (when, and by which role, it "
            "was opened or collected) or not-recallable (handed to MESH or mailed: ask them "
            "to delete it). Asking again is safe. " + _AFTER
        ),
    )
    recall.add_argument("digest", type=digest_arg, metavar="DIGEST", help="the sent envelope")
    recall.add_argument(
        "--reason", required=True, metavar="TEXT", help="why, in plain words (no identifiers)"
    )
    recall.add_argument(
        "--reason-code", metavar="CODE", help="a token for the ledger (default: sent-in-error)"
    )
    recall.set_defaults(handler=recall_command)

    rectify = sub.add_parser(
        "rectify",
        parents=[connection],
        help="send a corrected record to everyone who received the original (DSL or DPO)",
        description=(
            "Send a corrected record, of the original's kind, to every organisation that "
            "received the original (UK GDPR Art 19); print the correction's digest, who was "
            "sent it, and who was left out and why. Attachments are .pdf, .png, .jpg, .docx, "
            ".odt or .txt files, listed in the record's manifest in the same order. " + _AFTER
        ),
    )
    rectify.add_argument("digest", type=digest_arg, metavar="DIGEST", help="the original")
    rectify.add_argument(
        "--record", required=True, metavar="FILE", help="the corrected record (JSON; - for stdin)"
    )
    rectify.add_argument(
        "--reason", required=True, metavar="TEXT", help="what was wrong, in plain words"
    )
    rectify.add_argument(
        "--attach", action="append", metavar="FILE", help="a document to attach (repeatable)"
    )
    rectify.set_defaults(handler=rectify_command)

    thread = sub.add_parser(
        "thread",
        parents=[connection],
        help="show the conversation an envelope belongs to",
        description=(
            "Print every envelope of the conversation, oldest first: when, sent to or received "
            "from whom, the record kind (and whether a reply or a correction), its digest and "
            "its receipts. The envelope asked about is marked *. Replies received join the "
            "thread once someone opens them. " + _AFTER
        ),
    )
    thread.add_argument("digest", type=digest_arg, metavar="DIGEST", help="any envelope of it")
    thread.set_defaults(handler=thread_command)

    sent = sub.add_parser(
        "sent",
        parents=[connection],
        help="list what your organisation sent, or show one item ('sent show DIGEST')",
        description=(
            "List your organisation's sent items, newest first, with each recipient's "
            "delivery state, receipts, recall and whether it is overdue; 'exchange sent show "
            "DIGEST' prints one item's whole timeline, with its ledger events. " + _AFTER
        ),
    )
    sent.add_argument(
        "--limit", type=_limit_arg, default=50, metavar="N", help="how many (1-200, default 50)"
    )
    sent.add_argument("--before", metavar="CURSOR", help="the page after the one that printed it")
    sent.set_defaults(handler=sent_command)
    actions = sent.add_subparsers(dest="sent_command", metavar="COMMAND", required=False)
    show = actions.add_parser(
        "show",
        parents=[connection],
        help="one sent item's timeline",
        description=(
            "Print one sent item: its names, what it replies to or corrects, then for each "
            "recipient the route, delivery state, attempts, receipts and any recall, and "
            "finally the ledger events. " + _AFTER
        ),
    )
    show.add_argument("digest", type=digest_arg, metavar="DIGEST", help="the sent envelope")
    show.set_defaults(handler=sent_show_command)
