"""NHS MESH over its REST API (mesh-api.yaml): send, poll, download, acknowledge.

:class:`MeshConnector` serves the directory's ``mesh`` routes; the route address is the
destination's MESH mailbox id. It is a :class:`~exchange.connectors.base.PullConnector`: it sends
from, and collects for, one MESH mailbox (one organisation of the node). docs/mesh.md is
the reference: headers sent, chunking, the classification table, what is not done.

- Every request carries a fresh single-use NHSMESH token (:mod:`exchange.connectors.mesh.auth`).
- ``mex-*`` headers carry no personal data: ``mex-localid`` and ``mex-subject`` are the
  message id in hex, ``mex-filename`` is ``<hex>.exchange``; the rest are mailbox ids,
  the workflow id and the chunk range.
- Bodies are split into chunks of ``chunk_size`` uncompressed bytes and each chunk is
  gzipped on its own (stored blocks: the bodies are ciphertext;
  :mod:`exchange.connectors.mesh.stored_gzip`) and sent with ``Content-Encoding: gzip``
  (the MESH chunking rule), read from the body's file piece by piece as it is sent.
- Downloads are read incrementally and decompressed with a hard limit of
  ``max_message_size`` into a spool (:class:`exchange.spool.Spool`: to disk past a small
  size), so a message of any size costs a piece of memory, and a hostile or broken server
  no more than that limit of disk.
- Requests, the translation of aiohttp's exceptions, bounded reads and the status
  classification are the shared edge's (:mod:`exchange.connectors.edge`); MESH adds its own
  retry statuses (:data:`RETRY_STATUSES`).
- Failures of ``collect`` and ``acknowledge`` are the port's
  :class:`~exchange.connectors.base.CollectError`; messages that cannot be read are left in
  the inbox and listed by :meth:`MeshConnector.unread`, and error reports by
  :meth:`MeshConnector.non_delivery_reports`, as for every pull connector.
"""

from __future__ import annotations

import asyncio
import json
import platform
import re
import ssl
import zlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Final

import aiohttp
import yarl

from exchange.connectors.base import (
    Collected,
    CollectError,
    ConnectorError,
    Delivered,
    Message,
    MessageKind,
    NonDelivery,
    Outcome,
    check_timeout,
)
from exchange.connectors.bodies import body_pieces
from exchange.connectors.edge import (
    READ_PIECE,
    Answer,
    AnswerTooLargeError,
    Data,
    Sink,
    SinkFor,
    Streamed,
    classify_status,
    judge,
    request,
)
from exchange.connectors.errors import AttemptError, PermanentError, TransientError
from exchange.connectors.mesh.auth import MAILBOX_RE, TokenSource
from exchange.connectors.mesh.stored_gzip import PIECE as STORED_PIECE
from exchange.connectors.mesh.stored_gzip import stored_gzip, stored_length
from exchange.keys.ids import OrgId
from exchange.spool import Spool, SpoolFeeder

#: The MESH API version asked for: v2 answers ``message_id`` and pages the inbox.
ACCEPT: Final = "application/vnd.mesh.v2+json"

#: The largest request payload the live service accepts is 100 MB (mesh-api.yaml, "Send
#: message"); a chunk (after gzip) must stay below it.
LIVE_MAX_CHUNK: Final = 100 * 1000 * 1000

#: Default uncompressed chunk size: well under the live limit, so a chunk that does not
#: compress still fits, and one request never holds more than this in flight.
DEFAULT_CHUNK_SIZE: Final = 20 * 1024 * 1024

#: Default limit on one collected message, all chunks, after decompression. Matches the
#: largest body a peer node accepts (exchange/peerauth DEFAULT_MAX_BODY).
DEFAULT_MAX_MESSAGE: Final = 64 * 1024 * 1024

#: The live service returns at most 500 ids per inbox page; the sandbox refuses fewer than
#: 10 (``max_results`` below 10 is a 400).
MAX_PAGE: Final = 500
MIN_PAGE: Final = 10

#: Most inbox pages followed in one collection (500 ids each): a server whose pages link on
#: for ever cannot keep a collection running until its deadline.
MAX_PAGES: Final = 100

#: Most chunks one message may claim. The live service's messages are at most 20 GB in
#: chunks of up to 100 MB; a larger claim is a malformed message, left in the inbox.
MAX_CHUNKS: Final = 1000

#: Largest JSON answer read (an inbox page of 500 ids is about 15 KB).
MAX_JSON_ANSWER: Final = 1024 * 1024

#: Statuses below 500 that may pass later: Request Timeout, Too Early, Too Many Requests;
#: and 401/403, which on MESH mean our credentials or token were not accepted: a
#: configuration problem of this route, not of the message (docs/mesh.md §5).
RETRY_STATUSES: Final = frozenset({401, 403, 408, 425, 429})

#: The handshake is repeated after this many seconds (mesh-api.yaml: once every 24 hours).
HANDSHAKE_EVERY: Final = 24 * 3600.0

#: How many sent message ids are remembered, to answer a redelivery without resending.
SENT_MEMORY: Final = 10_000

#: Workflow ids as MESH issues them.
WORKFLOW_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,300}")

#: MESH message ids as the service (and the sandbox) mint them; anything else the server
#: sends is not put into a URL.
MESSAGE_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,100}")

_CHUNK_RANGE_RE: Final = re.compile(r"(\d{1,6}):(\d{1,6})")

#: How MESH is named in reasons.
MESH: Final = "MESH"


@dataclass(frozen=True, slots=True)
class MeshConfig:
    """One MESH mailbox of the node.

    ``organisation`` is the node's organisation this mailbox collects for. Workflow ids:
    ``envelope_workflow`` for envelopes, ``receipt_workflow`` (default: the envelope
    workflow with ``_ACK``) for receipts. ``inbox_page`` is the ``max_results`` of each
    inbox list request (10 to 500); further pages are followed through ``links.next``.
    ``client_cert``/``client_key`` (PEM paths) enable mutual TLS and ``ca_file`` pins the
    CA bundle; ``allow_http`` is for the sandbox only.
    """

    base_url: str
    mailbox: str
    password: str = field(repr=False)
    shared_key: bytes = field(repr=False)
    organisation: OrgId
    envelope_workflow: str
    receipt_workflow: str = ""
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_message_size: int = DEFAULT_MAX_MESSAGE
    inbox_page: int = MAX_PAGE
    client_cert: str | None = None
    client_key: str | None = None
    ca_file: str | None = None
    allow_http: bool = False

    def __post_init__(self) -> None:
        if not MAILBOX_RE.fullmatch(self.mailbox):
            raise ValueError("mailbox must be upper-case letters and digits")
        if not self.receipt_workflow:
            object.__setattr__(self, "receipt_workflow", f"{self.envelope_workflow}_ACK")
        for name in ("envelope_workflow", "receipt_workflow"):
            if not WORKFLOW_RE.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} must be a MESH workflow id")
        if self.envelope_workflow == self.receipt_workflow:
            raise ValueError("envelope_workflow and receipt_workflow must differ")
        if not 1 <= self.chunk_size <= LIVE_MAX_CHUNK // 2:
            raise ValueError(f"chunk_size must be between 1 and {LIVE_MAX_CHUNK // 2} bytes")
        if not MIN_PAGE <= self.inbox_page <= MAX_PAGE:
            raise ValueError(f"inbox_page must be between {MIN_PAGE} and {MAX_PAGE}")
        if self.max_message_size < 1:
            raise ValueError("max_message_size must be positive")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        url = yarl.URL(self.base_url)
        schemes = {"https", "http"} if self.allow_http else {"https"}
        if url.scheme not in schemes or not url.host or url.query_string or url.fragment:
            raise ValueError("base_url must be an absolute https URL without query or fragment")


@dataclass(slots=True)
class _KeyLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


def _ssl_context(config: MeshConfig) -> ssl.SSLContext | None:
    if config.ca_file is None and config.client_cert is None:
        return None  # aiohttp's default verification against the system store
    context = ssl.create_default_context(cafile=config.ca_file)
    if config.client_cert is not None and config.client_key is not None:
        context.load_cert_chain(config.client_cert, config.client_key)
    return context


def _client_headers() -> dict[str, str]:
    """Return the handshake's client description (no personal data: software, platform)."""
    try:
        ours = version("safeguarding-exchange")
    except PackageNotFoundError:
        ours = "0"
    return {
        "mex-clientversion": f"safeguarding-exchange=={ours}",
        "mex-osarchitecture": platform.machine() or "unknown",
        "mex-osname": platform.system() or "unknown",
        "mex-osversion": platform.release() or "unknown",
    }


class MeshConnector:
    """Sends and collects over NHS MESH for one mailbox (route kind ``mesh``).

    The connector owns its :class:`aiohttp.ClientSession` (created on first use, with the
    configured TLS) and closes it in :meth:`close`. ``tokens`` mints the ``Authorization``
    values (default: a :class:`~exchange.connectors.mesh.auth.TokenSource` for the mailbox);
    ``trace_configs`` are handed to the session (tests capture requests with them).
    Collected messages are downloaded into spools in the folder ``spool`` (the node's bodies'
    spool folder, where storing one in a folder of files is a link; None: the system's
    temporary folder).
    """

    route_kind: str = "mesh"

    def __init__(
        self,
        config: MeshConfig,
        *,
        tokens: TokenSource | None = None,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
        spool: Path | None = None,
    ) -> None:
        self._config = config
        self._spool = spool
        self._base = config.base_url.rstrip("/")
        self._tokens = tokens or TokenSource(config.mailbox, config.password, config.shared_key)
        self._ssl = _ssl_context(config)
        self._trace_configs = list(trace_configs)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._handshake_at: float | None = None
        self._handshake_lock = asyncio.Lock()
        self._sent: OrderedDict[tuple[bytes, str], str] = OrderedDict()
        self._locks: dict[tuple[bytes, str], _KeyLock] = {}
        self._reports: dict[str, NonDelivery] = {}
        self._ignored: dict[str, str] = {}

    # -- the protocol ------------------------------------------------------------------

    async def deliver(self, message: Message, address: str, *, timeout: float) -> Outcome:
        """Send ``message`` to the MESH mailbox ``address``; classify the answer.

        A message id already sent to ``address`` by this connector answers the first
        send's :class:`Delivered` without sending again; concurrent attempts of one id
        wait for each other. MESH itself does not de-duplicate, so after a restart (or a
        lost answer) the receiving node de-duplicates by digest (docs/mesh.md §4).
        """
        self._check_open()
        check_timeout(timeout)
        key = (message.message_id, address)
        entry = self._locks.setdefault(key, _KeyLock())
        entry.users += 1
        try:
            async with asyncio.timeout(timeout):
                async with entry.lock:
                    if key in self._sent:
                        return Delivered(transport_ref=self._sent[key])
                    ref = await self._send(message, address, timeout)
                    self._remember(key, ref)
                    return Delivered(transport_ref=ref)
        except AttemptError as failure:
            return failure.outcome()
        except TimeoutError:
            return TransientError("could not reach MESH: no answer before the deadline").outcome()
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[key]

    async def collect(self, *, limit: int, timeout: float) -> Sequence[Collected]:
        """Return up to ``limit`` waiting envelopes and receipts; they stay until acknowledged.

        Error reports found on the way are kept for :meth:`non_delivery_reports`; messages on
        a workflow this connector does not serve, or that cannot be read (bad gzip, too
        large, malformed chunk range), are left in the inbox and listed by :meth:`unread`.
        Raises :class:`~exchange.connectors.base.CollectError` when MESH cannot be reached
        or refuses.
        """
        self._check_open()
        check_timeout(timeout)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        try:
            async with asyncio.timeout(timeout):
                return await self._collect(limit, timeout)
        except AttemptError as failure:
            raise failure.collect_error() from failure
        except TimeoutError as exc:
            raise CollectError(
                "could not reach MESH: no answer before the deadline", retry=True
            ) from exc

    async def acknowledge(self, transport_ref: str, *, timeout: float) -> None:
        """Acknowledge a collected message or error report (idempotent).

        An id MESH no longer knows (404, 410) counts as acknowledged. Raises
        :class:`~exchange.connectors.base.CollectError` when MESH cannot be reached or
        refuses.
        """
        self._check_open()
        check_timeout(timeout)
        if not MESSAGE_ID_RE.fullmatch(transport_ref):
            raise ValueError("transport_ref is not a MESH message id")
        try:
            async with asyncio.timeout(timeout):
                await self._ensure_handshake(timeout)
                answer = await self._request(
                    "PUT", f"/inbox/{transport_ref}/status/acknowledged", timeout=timeout
                )
                if answer.status not in {404, 410}:
                    self._judge(answer, "acknowledging")
        except AttemptError as failure:
            raise failure.collect_error() from failure
        except TimeoutError as exc:
            raise CollectError(
                "could not reach MESH: no answer before the deadline", retry=True
            ) from exc
        self._reports.pop(transport_ref, None)

    async def close(self) -> None:
        """Close the session; further use raises :class:`ConnectorError`."""
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def non_delivery_reports(self) -> list[NonDelivery]:
        """Return the error reports seen by :meth:`collect` and not yet acknowledged."""
        return list(self._reports.values())

    def unread(self) -> dict[str, str]:
        """Return inbox message ids left unread, each with a plain reason."""
        return dict(self._ignored)

    # -- sending -----------------------------------------------------------------------

    async def _send(self, message: Message, address: str, timeout: float) -> str:
        if not MAILBOX_RE.fullmatch(address):
            raise PermanentError("the mesh route's address is not a MESH mailbox id")
        await self._ensure_handshake(timeout)
        size = self._config.chunk_size
        length = message.length
        total = max(1, -(-length // size))
        if total > MAX_CHUNKS:
            raise PermanentError(
                f"the message needs {total} MESH chunks of {size} bytes, more than MESH's "
                f"{MAX_CHUNKS}"
            )
        ident = message.message_id.hex()
        workflow = (
            self._config.envelope_workflow
            if message.kind == "envelope"
            else self._config.receipt_workflow
        )
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Encoding": "gzip",
            "mex-from": self._config.mailbox,
            "mex-to": address,
            "mex-workflowid": workflow,
            "mex-localid": ident,
            "mex-subject": ident,
            "mex-filename": f"{ident}.exchange",
            "mex-chunk-range": f"1:{total}",
        }
        first = await self._request(
            "POST", "/outbox", headers=headers, data=_chunk(message, 1, size), timeout=timeout
        )
        self._judge(first, "sending")
        mesh_id = _sent_message_id(first.body)
        for number in range(2, total + 1):
            answer = await self._request(
                "POST",
                f"/outbox/{mesh_id}/{number}",
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Encoding": "gzip",
                    "mex-chunk-range": f"{number}:{total}",
                },
                data=_chunk(message, number, size),
                timeout=timeout,
            )
            self._judge(answer, f"sending chunk {number}")
        return mesh_id

    def _remember(self, key: tuple[bytes, str], ref: str) -> None:
        self._sent[key] = ref
        while len(self._sent) > SENT_MEMORY:
            self._sent.popitem(last=False)

    # -- collecting --------------------------------------------------------------------

    async def _collect(self, limit: int, timeout: float) -> list[Collected]:
        await self._ensure_handshake(timeout)
        found: list[Collected] = []
        seen: set[str] = set()
        path = f"/inbox?max_results={self._config.inbox_page}"
        for _page in range(MAX_PAGES):
            page = await self._request("GET", path, timeout=timeout, limit=MAX_JSON_ANSWER)
            self._judge(page, "listing the inbox")
            ids, next_path = self._inbox_page(page.body)
            for mesh_id in ids:
                if mesh_id in seen or mesh_id in self._ignored or mesh_id in self._reports:
                    continue
                seen.add(mesh_id)
                item = await self._download(mesh_id, timeout)
                if item is not None:
                    found.append(item)
                    if len(found) >= limit:
                        return found
            if next_path is None:
                return found
            path = next_path
        return found  # the rest is collected next time

    def _inbox_page(self, body: bytes) -> tuple[list[str], str | None]:
        invalid = "MESH answered an inbox list that is not valid"
        try:
            data = json.loads(body)
            raw_ids = data["messages"]
            links = data.get("links") or {}
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise TransientError(invalid) from exc
        if not isinstance(raw_ids, list) or not isinstance(links, dict):
            raise TransientError(invalid)
        ids = [i for i in raw_ids if isinstance(i, str) and MESSAGE_ID_RE.fullmatch(i)]
        nxt = links.get("next")
        prefix = f"/messageexchange/{self._config.mailbox}"
        if isinstance(nxt, str) and nxt.startswith(f"{prefix}/inbox?") and ids:
            return ids, nxt[len(prefix) :]
        return ids, None

    async def _download(self, mesh_id: str, timeout: float) -> Collected | None:
        """Download every chunk of one message; ``None`` for a report or an unusable one.

        A chunk answer over ``max_message_size`` (declared or read) leaves the message in the
        inbox, listed by :meth:`unread`, like one that decompresses to more: it would fail
        the same way at every collect.
        """
        try:
            return await self._download_chunks(mesh_id, timeout)
        except AnswerTooLargeError:
            self._ignored[mesh_id] = f"a chunk is larger than {self._config.max_message_size} bytes"
        except _UnusableError as exc:
            self._ignored[mesh_id] = exc.reason
        return None

    async def _download_chunks(self, mesh_id: str, timeout: float) -> Collected | None:
        """Download a message chunk by chunk into a spool; ``None`` for a report or gone.

        Each chunk is gunzipped as it arrives and written to the spool (to disk past a small
        size), within ``max_message_size`` for the whole message: memory stays at a piece
        whatever the message's size. The spool is the caller's once returned.
        """
        with Spool(self._spool).dropped_on_failure() as spool:
            kind = await self._download_into(mesh_id, spool, timeout)
        if kind is None:
            spool.close()
            return None
        held = spool.read(spool.length) if spool.in_memory else spool
        return Collected(
            transport_ref=mesh_id,
            kind=kind,
            origin=None,
            destination=self._config.organisation,
            body=held,
        )

    async def _download_into(
        self, mesh_id: str, spool: Spool, timeout: float
    ) -> MessageKind | None:
        """Download every chunk of ``mesh_id`` into ``spool``; return its kind, None if none."""
        budget = self._config.max_message_size
        feeder = SpoolFeeder(spool)
        first = _FirstChunk(self._config, mesh_id, feeder, budget)
        answer = await self._request(
            "GET", f"/inbox/{mesh_id}", timeout=timeout, limit=budget, sink=first.sink
        )
        if answer.status in {404, 410}:
            return None  # acknowledged or expired since the list
        self._judge(answer, "downloading")
        if first.report is not None:
            self._reports[mesh_id] = first.report
            # The message was not delivered: a later send of it must really send again,
            # not answer from the memory of the first send.
            for key, ref in list(self._sent.items()):
                if ref == first.report.linked_message_id:
                    del self._sent[key]
            return None
        assert first.kind is not None
        assert first.decoder is not None
        await first.decoder.finish(1)
        for number in range(2, first.total + 1):
            chunk = _ChunkSink(feeder, budget, number)
            answer = await self._request(
                "GET", f"/inbox/{mesh_id}/{number}", timeout=timeout, limit=budget,
                sink=chunk.sink,
            )  # fmt: skip
            if classify_status(answer.status, retry_statuses=RETRY_STATUSES) == "refused":
                # A chunk MESH will never give: the message cannot be read; leave it
                # (listed by unread()) rather than fail every collection.
                raise _UnusableError(f"chunk {number} was refused with {answer.status}")
            self._judge(answer, f"downloading chunk {number}")
            if chunk.decoder is None:
                raise _UnusableError(f"chunk {number} is unusable: it has no body")
            await chunk.decoder.finish(number)
        await feeder.flush()
        return first.kind

    # -- requests ----------------------------------------------------------------------

    async def _ensure_handshake(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        async with self._handshake_lock:
            at = self._handshake_at
            if at is not None and loop.time() - at < HANDSHAKE_EVERY:
                return
            answer = await self._request("POST", "", headers=_client_headers(), timeout=timeout)
            self._judge(answer, "the handshake")
            self._handshake_at = loop.time()

    def _judge(self, answer: Answer, doing: str) -> None:
        # MESH's Retry-After is not documented for these calls; the outbox's backoff applies.
        judge(
            answer,
            far_side=MESH,
            doing=doing,
            retry_statuses=RETRY_STATUSES,
            honour_retry_after=False,
        )

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True),
                auto_decompress=False,
                trace_configs=self._trace_configs or None,
            )
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        data: Data | None = None,
        limit: int = MAX_JSON_ANSWER,
        sink: SinkFor | None = None,
    ) -> Answer:
        sent = {
            "Authorization": self._tokens(),
            "Accept": ACCEPT,
            "Accept-Encoding": "gzip",
            **(headers or {}),
        }
        return await request(
            self._get_session(),
            method,
            f"{self._base}/messageexchange/{self._config.mailbox}{path}",
            far_side=MESH,
            whose="MESH's",
            timeout=timeout,
            limit=limit,
            headers=sent,
            data=data,
            sink=sink,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectorError("the MESH connector is closed")


class _UnusableError(Exception):
    """A message that cannot be read as it is: left in the inbox, listed by unread()."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _chunk(message: Message, number: int, size: int) -> Streamed:
    """Return chunk ``number`` (from 1) of ``message`` as a stored gzip member, streamed.

    The chunk's bytes are read from the body in pieces as the request is written; the
    member's length, and so the request's Content-Length, is known before.
    """
    start = (number - 1) * size
    stop = min(start + size, message.length)
    pieces = body_pieces(message.body, STORED_PIECE, start=start, stop=stop)
    return Streamed(stored_gzip(pieces, stop - start), stored_length(stop - start))


class _Decoder:
    """Decodes one chunk's body as it arrives (gunzip or identity) into the spool's feeder.

    The whole message must stay within ``budget`` bytes once decoded; a chunk that is not
    valid gzip, is cut short or goes over raises :class:`_UnusableError`'s ``ValueError``.
    """

    def __init__(self, feeder: SpoolFeeder, budget: int, encoding: str) -> None:
        if encoding not in {"gzip", "", "identity"}:
            raise ValueError("an unsupported Content-Encoding")
        self._feeder = feeder
        self._budget = budget
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None

    async def feed(self, piece: bytes) -> None:
        if self._inflater is None:
            await self._take(piece)
            return
        data = piece
        while data:
            if self._inflater.eof:
                raise ValueError("gzip data continues after the end of its member")
            try:
                out = self._inflater.decompress(data, READ_PIECE)
            except zlib.error as exc:
                raise ValueError("not valid gzip data") from exc
            await self._take(out)
            data = self._inflater.unconsumed_tail

    async def _take(self, out: bytes) -> None:
        if self._feeder.length + len(out) > self._budget:
            raise ValueError(f"decompresses to more than {self._budget} bytes")
        await self._feeder.add(out)

    async def finish(self, number: int) -> None:
        if self._inflater is not None and not self._inflater.eof:
            raise _UnusableError(f"chunk {number} is unusable: gzip data is truncated")


class _ChunkSink:
    """The sink of one chunk's answer: a decoder chosen by its Content-Encoding."""

    def __init__(self, feeder: SpoolFeeder, budget: int, number: int) -> None:
        self.feeder = feeder
        self.budget = budget
        self.number = number
        self.decoder: _Decoder | None = None

    def sink(self, headers: Mapping[str, str]) -> Sink:
        encoding = headers.get("Content-Encoding", "").strip().lower()
        try:
            self.decoder = _Decoder(self.feeder, self.budget, encoding)
        except ValueError as exc:
            raise _UnusableError(f"chunk {self.number} is unusable: {exc}") from None
        return self._feed

    async def _feed(self, piece: bytes) -> None:
        assert self.decoder is not None
        try:
            await self.decoder.feed(piece)
        except ValueError as exc:
            raise _UnusableError(f"chunk {self.number} is unusable: {exc}") from None


class _FirstChunk(_ChunkSink):
    """The first chunk's sink: its headers say what the message is, before its body is read.

    A report is noted (its body is not kept); a workflow this connector does not serve or
    a malformed chunk range is refused at once (:class:`_UnusableError`).
    """

    def __init__(self, config: MeshConfig, mesh_id: str, feeder: SpoolFeeder, budget: int) -> None:
        super().__init__(feeder, budget, 1)
        self._config = config
        self._mesh_id = mesh_id
        self.report: NonDelivery | None = None
        self.kind: MessageKind | None = None
        self.total = 1

    def sink(self, headers: Mapping[str, str]) -> Sink:
        if headers.get("mex-messagetype", "DATA").upper() == "REPORT":
            self.report = _report(self._mesh_id, headers)
            return _discard
        workflow = headers.get("mex-workflowid", "")
        if workflow == self._config.envelope_workflow:
            self.kind = "envelope"
        elif workflow == self._config.receipt_workflow:
            self.kind = "receipt"
        else:
            raise _UnusableError("a workflow this connector does not serve")
        match = _CHUNK_RANGE_RE.fullmatch(headers.get("mex-chunk-range", "1:1").strip() or "1:1")
        if match is None or int(match[1]) != 1 or not 1 <= int(match[2]) <= MAX_CHUNKS:
            raise _UnusableError("a malformed mex-chunk-range")
        self.total = int(match[2])
        return super().sink(headers)


async def _discard(piece: bytes) -> None:
    del piece


def _sent_message_id(body: bytes) -> str:
    try:
        data = json.loads(body)
        mesh_id = data.get("message_id") or data.get("messageID")
    except (ValueError, AttributeError) as exc:
        raise TransientError("MESH accepted the message but its answer is not valid") from exc
    if not isinstance(mesh_id, str) or not MESSAGE_ID_RE.fullmatch(mesh_id):
        raise TransientError("MESH accepted the message but gave no valid message id")
    return mesh_id


def _report(mesh_id: str, headers: Mapping[str, str]) -> NonDelivery:
    local = headers.get("mex-localid", "")
    try:
        message_id: bytes | None = bytes.fromhex(local) if local else None
    except ValueError:
        message_id = None
    linked = headers.get("mex-linkedmsgid", "")
    code = headers.get("mex-statuscode", "")[:8]
    return NonDelivery(
        transport_ref=mesh_id,
        linked_message_id=linked if MESSAGE_ID_RE.fullmatch(linked) else "",
        message_id=message_id,
        status_code=code,
        status_event=headers.get("mex-statusevent", "")[:32],
        reason=f"MESH reported the message undelivered (code {code})",
    )
