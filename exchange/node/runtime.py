"""Starting and stopping a node: configuration in, a running aiohttp site out.

:class:`Node` first runs every check of ``exchange config check``
(:mod:`exchange.node.config_check`) and refuses to start, before it opens or binds
anything, when one fails. From what the checks read (the directory verified against the
trusted authority key, the tenants' keys and the ledger key decrypted) it opens the store
and runs the HTTP server, the operations listener (/healthz, /readyz, /metrics) and
its background tasks (the outbox worker, collection, checkpoints, chases, sweeps), each
under one :class:`~exchange.workers.supervisor.Supervisor` that keeps it going through
failed rounds and reports its health to /readyz and /metrics. :meth:`Node.stop` is the
graceful shutdown: stop accepting, let in-flight requests and delivery attempts finish (an
attempt whose outcome cannot be recorded is given back to the queue), sign a last
checkpoint (a failure is logged, not raised), close the store. Nothing is lost at any
point, because nothing is acknowledged before it is committed.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from exchange.config import ConfigError, NodeConfig, TenantConfig
from exchange.connectors.base import Connector
from exchange.connectors.https import HttpsPushConnector, request_signer
from exchange.connectors.mesh import MeshConfig, MeshConnector
from exchange.connectors.relay_mailbox import RelayMailboxConnector
from exchange.connectors.smtp import SmtpConfig, SmtpConnector
from exchange.http.app import READY, create_app
from exchange.http.listener import GuardedSite, Timeouts
from exchange.http.ops import create_ops_app
from exchange.http.peer import UPLOADS
from exchange.http.recall import set_recaller
from exchange.keys.directory import Directory
from exchange.keys.ids import OrgId
from exchange.keys.notes import NoteSigner
from exchange.keys.succession import note_digest
from exchange.logs import get_logger
from exchange.node.binding import bind_listener
from exchange.node.config_check import CheckReport, ConfigRefusedError, check_config
from exchange.node.trusted_directory import trusted_verifiers
from exchange.outbox.routing import Routes
from exchange.peerauth import UploadLimits
from exchange.policy import RecordsSetup
from exchange.relay.server import Relay, RelayLimits, add_relay_routes
from exchange.relay.store import RelayStore
from exchange.service.body_checks import own_body_intact
from exchange.service.directory_updates import (
    DirectoryStartError,
    DirectoryUpdates,
    RefreshResult,
)
from exchange.service.faults import fault_of
from exchange.service.key_expiry import seconds_left, warning_days
from exchange.service.ledger import NodeLedger
from exchange.service.node_service import NodeService
from exchange.service.recall import Recaller
from exchange.service.register_reports import RegisterKey, RegisterKeyError
from exchange.service.sso_client import ProviderClient
from exchange.shipped import load_records_setup
from exchange.store import Store
from exchange.store.opening import NodeStore, open_node_store
from exchange.web.pages import add_staff_pages, shared_web_keys
from exchange.workers.chase import Chaser
from exchange.workers.collect import Collector
from exchange.workers.delivery import DeliveryWorker
from exchange.workers.directory_fetch import NoteFetcher
from exchange.workers.jobs import GroupJobs, new_process_id
from exchange.workers.oidc_http import OidcHttpClient
from exchange.workers.supervisor import SupervisionPolicy, Supervisor

log = get_logger("exchange.node")

#: Seconds between checks of keys about to expire (the log warns once a day).
KEY_EXPIRY_INTERVAL = 86400.0
#: Seconds between sweeps of files left by interrupted writes (each keeps files an hour old).
LEFTOVER_SWEEP_INTERVAL = 3600.0
#: Seconds between sweeps of expired staff web sessions (the idle timeout is minutes).
SESSION_SWEEP_INTERVAL = 60.0
#: Seconds between purges of the relay's expired mail.
RELAY_PURGE_INTERVAL = 600.0


class ReadersWithoutSecondFactorError(Exception):
    """Accounts that read records are signed in without a second factor: the node refuses.

    ``accounts`` are their numbers (never their email addresses); the message says how to
    end their sessions, after which sign-in makes each set up a second factor.
    """

    def __init__(self, accounts: list[int]) -> None:
        self.accounts = accounts
        numbers = ", ".join(str(a) for a in accounts)
        super().__init__(
            f"the node will not start: account(s) {numbers} can read records but are signed "
            "in without a second factor; end their sessions with `exchange users sign-out "
            "--config FILE --account NUMBER` for each, and they will set up an authenticator "
            "app at their next sign-in"
        )


def load_register_key(folder: Path, *, hashes_kept: bool) -> RegisterKey:
    """Read the register's secret from the data folder, creating it on first start.

    A store that already holds subject hashes was indexed under a key that is missing (a
    restore without ``register.key``): a new key would silently stop subject access from
    finding anything registered before, so the start is refused instead.
    """
    try:
        register_key = RegisterKey.load(folder, create=not hashes_kept)
    except RegisterKeyError as exc:
        raise ConfigError(str(exc)) from None
    if register_key is None:
        raise ConfigError(
            f"{folder / 'register.key'} is missing but the register holds subject hashes made "
            "with it: put back register.key from where the keys are backed up "
            "(docs/node.md §8)"
        )
    return register_key


#: The name of the register key's fingerprint among the node's shared secrets.
REGISTER_KEY_FINGERPRINT = "register-key-fingerprint"


async def shared_register_key(store: Store, clock: Callable[[], float]) -> RegisterKey:
    """Load the register key (:func:`load_register_key`) and check it is the node's one key.

    The first start records the key's fingerprint in the store; a process whose
    ``register.key`` differs (another machine's data folder, where ``exchange serve`` made
    a key of its own) is refused, since the subject hashes it wrote would be another key's
    and subject access would miss them.
    """
    folder = store.folder
    key = load_register_key(folder, hashes_kept=await store.holds_subject_hashes())
    mine = key.fingerprint()
    kept = await store.node_secret(REGISTER_KEY_FINGERPRINT, mine, clock())
    if not hmac.compare_digest(kept, mine):
        raise ConfigError(
            f"{folder / 'register.key'} is not the register key this node's store was used "
            "with: copy register.key from the data folder of the node's first process, or from "
            "where the keys are backed up (docs/node.md §8), with mode 600"
        )
    return key


def client_ssl(config: NodeConfig) -> ssl.SSLContext | bool:
    """Return the TLS context for calls to peers: the configured CA, or the system's."""
    if config.tls is None or config.tls.ca is None:
        return True
    return ssl.create_default_context(cafile=str(config.tls.ca))


def server_ssl(config: NodeConfig) -> ssl.SSLContext | None:
    """Return the server's TLS context, or None for plain HTTP (loopback tests only)."""
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.tls.cert), str(config.tls.key))
    return context


def listener_timeouts(config: NodeConfig) -> Timeouts:
    """Return the listener's deadlines from the ``[server]`` settings."""
    server = config.server
    return Timeouts(
        header=server.header_timeout,
        body=server.body_timeout,
        idle=server.idle_timeout,
        min_body_rate=server.min_body_rate,
    )


def _secret(env: str, where: str) -> str:
    value = os.environ.get(env)
    if not value:
        raise ConfigError(f"{where}: the environment variable {env} is not set")
    return value


def mesh_connector(
    tenant: TenantConfig, *, max_message: int, spool: Path | None = None
) -> MeshConnector:
    """Return the MESH connector of one tenant's mailbox (its secrets from the environment).

    Messages of up to ``max_message`` bytes are collected (the node's envelope limit),
    downloaded chunk by chunk into spools in ``spool`` (the store's bodies folder).
    """
    mesh = tenant.mesh
    assert mesh is not None
    where = f"the MESH mailbox of {tenant.org}"
    try:
        config = MeshConfig(
            base_url=mesh.url,
            mailbox=mesh.mailbox,
            password=_secret(mesh.password_env, where),
            shared_key=_secret(mesh.shared_key_env, where).encode(),
            organisation=tenant.org,
            envelope_workflow=mesh.workflow,
            chunk_size=mesh.chunk_size,
            max_message_size=max_message,
            client_cert=None if mesh.client_cert is None else str(mesh.client_cert),
            client_key=None if mesh.client_key is None else str(mesh.client_key),
            ca_file=None if mesh.ca is None else str(mesh.ca),
            allow_http=mesh.allow_http,
        )
    except ValueError as exc:
        raise ConfigError(f"tenants {tenant.org} mesh: {exc}") from None
    return MeshConnector(config, spool=spool)


def smtp_connector(config: NodeConfig, directory: Callable[[], Directory]) -> SmtpConnector:
    """Return the SMTP connector (the ``smtp`` route and staff notices)."""
    settings = config.smtp
    assert settings is not None
    password = None
    if settings.password_env is not None:
        password = _secret(settings.password_env, "smtp.password_env")
    try:
        smtp_config = SmtpConfig(
            host=settings.host,
            port=settings.port,
            from_address=settings.from_address,
            message_id_domain=settings.message_id_domain,
            mode=settings.mode,  # type: ignore[arg-type]
            username=settings.username,
            password=password,
            ca_file=settings.ca,
            allow_plain=settings.allow_plain,
            link_template=settings.link_template,
        )
    except ValueError as exc:
        raise ConfigError(f"smtp: {exc}") from None

    def name_of(org: OrgId) -> str:
        return directory().organisation(org).name

    return SmtpConnector(smtp_config, org_names=name_of)


@dataclass
class Node:
    """A running node.

    ``match_public_url``: compare ``public_url`` with the directory at start (as
    ``exchange config check`` does). A harness that learns the node's address only once it
    is bound, and gives it with :meth:`set_public_url`, says false; a node listening on
    port 0 is never compared.
    """

    config: NodeConfig
    clock: Callable[[], float] = time.time
    match_public_url: bool = True
    #: This process's random id: the owner of its leases on outbox items and on the jobs
    #: that run once in a group of processes sharing one store (exchange.workers.jobs).
    process_id: str = field(default_factory=new_process_id)
    service: NodeService = field(init=False)
    ledger: NodeLedger = field(init=False)
    worker: DeliveryWorker = field(init=False)
    collector: Collector = field(init=False)
    routes: Routes = field(init=False)
    relay: Relay | None = field(init=False, default=None)
    port: int = field(init=False, default=0)
    site: GuardedSite | None = field(init=False, default=None)
    #: The operations listener (/healthz, /readyz, /metrics), once started.
    ops_site: GuardedSite | None = field(init=False, default=None)
    _app: web.Application = field(init=False)
    _ops_app: web.Application = field(init=False)
    _runner: web.AppRunner | None = field(init=False, default=None)
    _ops_runner: web.AppRunner | None = field(init=False, default=None)
    _session: aiohttp.ClientSession | None = field(init=False, default=None)
    #: Requests to single sign-on providers, once a provider is configured.
    _oidc_http: OidcHttpClient | None = field(init=False, default=None)
    _stop: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    #: Keeps the background tasks going and knows their health (/readyz, /metrics).
    supervisor: Supervisor = field(init=False)
    #: Judges and adopts new directory versions (the file, the authority's address).
    directory_updates: DirectoryUpdates = field(init=False)

    @property
    def app(self) -> web.Application:
        """The node's aiohttp application (its routes), once started."""
        return self._app

    @property
    def ops_app(self) -> web.Application:
        """The operations listener's application (/healthz, /readyz, /metrics), once started."""
        return self._ops_app

    @property
    def ops_port(self) -> int:
        """The operations listener's bound port, once started."""
        assert self.ops_site is not None, "the node has not started"
        return self.ops_site.port

    async def _open_store(self) -> NodeStore:
        """Open the store: a backup first if its schema is older; leftovers swept."""
        config = self.config
        store = await open_node_store(
            config.data_dir,
            database_url=config.database.url,
            pool_size=config.database.pool_size,
            upgrade_backups=config.upgrade_backups,
            sweep=True,
        )
        if store.upgrade_backup is not None:
            log.info("store.pre-upgrade-backup", path=str(store.upgrade_backup))
        if store.leftovers_removed:
            log.info("store.leftovers-removed", count=store.leftovers_removed)
        return store

    async def start(self) -> None:
        """Check the configuration, then open everything and start serving.

        Raises :class:`~exchange.node.config_check.ConfigRefusedError` naming every problem
        ``exchange config check`` would name; nothing is opened, written or bound then.
        Raises :class:`~exchange.node.binding.ListenRefusedError` when ``ops.listen`` or
        ``node.listen`` cannot be bound (an address another program holds, one that is not
        this machine's): like any failure after the store is opened, it closes again
        whatever was opened or bound before it.
        """
        config = self.config
        report = check_config(config, match_public_url=self.match_public_url)
        if report.problems:
            # Said once, by whoever started the node (`exchange serve` prints each line).
            raise ConfigRefusedError(report.problems)
        assert report.directory is not None
        assert report.ledger_pair is not None
        for tenant in config.tenants:
            if tenant.org not in report.directory.organisations:
                # Allowed with directory.url only (exchange config check says so).
                log.warning("directory.tenant-not-listed", org=tenant.org)
        records = load_records_setup(config)
        store = await self._open_store()
        try:
            await self._start_on(store, report, records)
        except BaseException:
            # Nothing half-started: what was opened or bound so far is closed again.
            await self._close_edges()
            await self._close_stores(store)
            raise
        log.info("node.started", org=",".join(report.tenants), count=len(report.tenants))

    async def _start_on(self, store: NodeStore, report: CheckReport, records: RecordsSetup) -> None:
        """Start serving from the open ``store`` and what the checks read."""
        config = self.config
        assert report.directory is not None
        assert report.ledger_pair is not None
        directory, tenants, ledger_pair = report.directory, report.tenants, report.ledger_pair
        self.service = NodeService(
            store=store,
            directory=directory,
            tenants=tenants,
            records=records,
            register_key=await shared_register_key(store, self.clock),
            clock=self.clock,
            max_envelope_bytes=config.max_envelope_bytes,
            public_url=config.public_url,
            overdue_after=config.delivery.overdue_after,
            session_policy=config.web,
            idempotency_keys_for=config.idempotency_keys_for,
            max_backlog=config.delivery.max_backlog,
        )
        await self._refuse_readers_without_second_factor()
        self._start_sso(report)
        await self._start_directory_updates(report.directory_note)
        self.ledger = NodeLedger(
            store, NoteSigner(config.ledger_origin, ledger_pair.signing), self.service.clock
        )
        await self.ledger.load()
        connector = aiohttp.TCPConnector(ssl=client_ssl(config), limit=64)
        self._session = aiohttp.ClientSession(connector=connector)
        self.routes = self._routes()
        smtp = self.routes.shared.get("smtp")
        notify = {t.org: t.notify for t in config.tenants if t.notify}
        if isinstance(smtp, SmtpConnector) and notify:
            self.service.notified = frozenset(notify)
        service = self.service
        self.worker = DeliveryWorker(
            service,
            config.delivery,
            # The connector signs every attempt afresh as the item's origin organisation.
            https=HttpsPushConnector(
                self._session,
                request_signer(
                    lambda org: service.tenant(org).signing_pair(service.directory, service.now()),
                    service.now,
                ),
            ),
            routes=self.routes,
            notifier=smtp if isinstance(smtp, SmtpConnector) else None,
            notify=notify,
            link_template=config.smtp.link_template if config.smtp else None,
            intact=lambda digest, body, created: own_body_intact(
                service.context, digest, body, created
            ),
            owner=self.process_id,
        )
        self.collector = Collector(self.service, self.routes, config.delivery)
        tasks = config.tasks
        self.supervisor = Supervisor(
            SupervisionPolicy(tasks.backoff_base, tasks.backoff_max, tasks.unready_after)
        )
        app = create_app(
            self.service,
            self.worker,
            self.ledger,
            json_limit=config.max_json_bytes,
            collect_stats=self.collector.stats,
            supervisor=self.supervisor,
            ops_token=report.ops_token,
        )
        # Recall asks the far sides through the same connectors the outbox delivers with.
        set_recaller(
            app, Recaller(self.service, routes=self.routes, timeout=config.delivery.timeout)
        )
        # The staff web pages, beside the APIs, over the same service.
        # Their keys are the node's, from the store: any process may answer the next request.
        add_staff_pages(app, self.service, await shared_web_keys(self.service))
        app[UPLOADS] = UploadLimits(config.server.peer_uploads, config.server.total_uploads)
        self._app = app
        if config.relay is not None:
            self.relay = await self._relay(store, app[UPLOADS])
            add_relay_routes(app, self.relay)
        # The operations endpoints have their own listener (loopback by default): plain
        # HTTP, the same deadlines and quiet handling of broken requests.
        timeouts = listener_timeouts(config)
        self._ops_app = create_ops_app(app)
        self._ops_runner, self.ops_site = await bind_listener(
            "ops.listen", self._ops_app, config.ops.host, config.ops.port, timeouts=timeouts
        )
        # One listener serves everything else (API, pages, peers, relay), with deadlines on
        # every connection against slow clients (exchange.http.listener).
        self._runner, self.site = await bind_listener(
            "node.listen", app, config.host, config.port,
            timeouts=timeouts, ssl_context=server_ssl(config),
        )  # fmt: skip
        self.port = self.site.port
        self._start_tasks()

    def _start_tasks(self) -> None:
        """Start the background tasks, each under the supervisor (exchange.workers.supervisor).

        A failed round of any of them is logged once per cause, counted in /metrics and
        tried again after the back-off; /readyz reports a task that cannot make progress.

        Several processes may share the store (docs/node.md, "Several processes"): the
        outbox runs in each (its items are leased one by one); collection, checkpoints,
        chases, the session sweep and the key check run in one process of the group at a
        time (a job lease each); the directory look, the sweep of leftover files and the
        relay's purge run in each, for what each process holds itself (its directory in
        memory, its disk, its relay store).
        """
        supervisor, stop, config = self.supervisor, self._stop, self.config
        worker, collector = self.worker, self.collector
        accounts = self.service.accounts
        jobs = GroupJobs(
            self.service.store, self.process_id, self.service.clock,
            lease=config.tasks.job_lease, renew=config.tasks.job_renew,
        )  # fmt: skip
        self._tasks = [
            supervisor.start("outbox", "the outbox", lambda h: worker.run(stop, h), stop),
            supervisor.start(
                "collect", "collection from pull routes",
                lambda h: collector.run(stop, h, jobs.turn("collect")), stop,
            ),
            supervisor.every(
                "checkpoints", "the checkpoint signer", config.tasks.checkpoint_interval,
                self.ledger.checkpoint, stop, stage="checkpoint", wait_first=True,
                turn=jobs.turn("checkpoints"),
            ),
            supervisor.every(
                "session-sweep", "the sweep of ended web sessions", SESSION_SWEEP_INTERVAL,
                accounts.sweep_sessions, stop, stage="sweep", wait_first=True,
                turn=jobs.turn("session-sweep"),
            ),
            supervisor.every(
                "directory", "the look for a new directory", config.directory_refresh_interval,
                self.directory_updates.refresh, stop, stage="refresh",
            ),
            supervisor.every(
                "key-expiry", "the check of keys about to expire", KEY_EXPIRY_INTERVAL,
                self._warn_expiring_keys, stop, stage="check", turn=jobs.turn("key-expiry"),
            ),
            supervisor.every(
                "leftover-sweep", "the sweep of files left by interrupted writes",
                LEFTOVER_SWEEP_INTERVAL, self._sweep_leftovers, stop, stage="sweep",
                wait_first=True,
            ),
        ]  # fmt: skip
        if self.relay is not None:
            self._tasks.append(
                supervisor.every(
                    "relay-purge", "the relay's purge of expired mail", RELAY_PURGE_INTERVAL,
                    self.relay.purge, stop, stage="purge",
                )
            )  # fmt: skip
        if self.service.notified:
            chaser = Chaser(self.service, self.config.delivery.chase_interval)
            self._tasks.append(
                supervisor.start(
                    "chase", "the chase of overdue items",
                    lambda h: chaser.run(stop, h, jobs.turn("chase")), stop,
                )
            )  # fmt: skip

    async def _refuse_readers_without_second_factor(self) -> None:
        """Refuse to start while an account could read records without a second factor.

        Sign-in makes every role that reads records set up a second factor before its
        session counts as signed in, and an invited or reset account must set one up
        whatever its role, so an account with no second factor yet (invited, or created
        with a password for its first sign-in) reads nothing. What could is a session
        stored as signed in with the password alone for an account whose role now reads
        records (``Accounts.readers_signed_in_without_second_factor``). Sessions past
        their timeouts are swept first: they open nothing.
        """
        accounts = self.service.accounts
        await accounts.sweep_sessions()
        unsafe = await accounts.readers_signed_in_without_second_factor()
        if unsafe:
            log.error("node.refused", count=len(unsafe), outcome="readers-without-second-factor")
            raise ReadersWithoutSecondFactorError(unsafe)

    async def _relay(self, store: NodeStore, uploads: UploadLimits) -> Relay:
        """Open the relay role's own store and checks (docs/relay.md)."""
        config = self.config
        assert config.relay is not None
        service = self.service
        return Relay(
            await RelayStore.open(config.data_dir / "relay"),
            directory=lambda: service.directory,
            public_url=lambda: service.public_url,
            replay=store.seen_or_record_nonce,
            clock=self.clock,
            limits=RelayLimits(
                max_envelope_bytes=config.max_envelope_bytes,
                max_items_per_mailbox=config.relay.max_items,
            ),
            retention=config.relay.retention,
            # Any organisation of the directory has a mailbox here: receiving schools for
            # envelopes, and their senders for the receipts that come back the same way.
            keeps_mailbox=lambda org: org in service.directory.organisations,
            uploads=uploads,
        )

    def _mailboxes(self) -> list[tuple[str, OrgId]]:
        """Return the (relay, organisation) pairs to collect from: every relay, every tenant."""
        relays = dict.fromkeys(
            route.address
            for org in self.service.directory.organisations.values()
            for route in org.routes
            if route.kind == "mailbox"
        )
        return [(relay, tenant) for relay in relays for tenant in self.service.tenants]

    def _routes(self) -> Routes:
        """Build the connectors this node's configuration and directory call for."""
        config = self.config
        service = self.service
        assert self._session is not None
        shared: dict[str, Connector] = {
            "mailbox": RelayMailboxConnector(
                self._session,
                request_signer(
                    lambda org: service.tenant(org).signing_pair(service.directory, service.now()),
                    service.now,
                ),
                mailboxes=self._mailboxes(),
                allow_http=not config.public_url.startswith("https://"),
                max_message=config.max_envelope_bytes,
                spool=service.store.blobs.spool,
            )
        }
        if config.smtp is not None:
            shared["smtp"] = smtp_connector(config, lambda: self.service.directory)
        per_org: dict[tuple[str, OrgId], Connector] = {
            ("mesh", t.org): mesh_connector(
                t, max_message=config.max_envelope_bytes, spool=service.store.blobs.spool
            )
            for t in config.tenants
            if t.mesh is not None
        }
        return Routes(shared, per_org)

    def set_public_url(self, url: str) -> None:
        """Change the URL peers sign requests against (known only after binding port 0)."""
        self.service.public_url = url

    async def _start_directory_updates(self, note: bytes) -> None:
        """Set up directory updates; refuse to start on a file older than the one adopted."""
        config = self.config
        fetch = None
        if config.directory_url is not None:
            fetch = NoteFetcher(config.directory_url, ca=config.directory_ca)
        self.directory_updates = DirectoryUpdates(
            self.service.context,
            trusted=trusted_verifiers(config),
            digest=note_digest(note),
            file=lambda: self.config.directory_file,
            apply=self._apply_directory,
            fetch=fetch,
        )
        self.service.directory_updates = self.directory_updates
        try:
            await self.directory_updates.record_start()
        except DirectoryStartError as exc:
            log.error("node.refused", outcome="directory-rollback")  # noqa: TRY400 - no trace
            raise ConfigError(str(exc)) from None

    def _apply_directory(self, directory: Directory) -> None:
        """Put ``directory`` in use: the service, and the connectors that cache from it."""
        self.service.directory = directory
        mailbox = self.routes.shared.get("mailbox") if hasattr(self, "routes") else None
        if isinstance(mailbox, RelayMailboxConnector):
            mailbox.set_mailboxes(self._mailboxes())

    def reload_directory(self, note: bytes) -> None:
        """Adopt a newer signed directory in memory (same trusted authority, higher version).

        The loopback harness's way to publish; a running node's own way is
        :meth:`DirectoryUpdates.refresh`, which also writes the file and the ledger.
        """
        directory = self.directory_updates.adopt_in_memory(note)
        log.info("directory.reloaded", version=directory.version)

    async def refresh_directory(self) -> RefreshResult:
        """Look for a new directory now (the file, then the authority's address)."""
        return await self.directory_updates.refresh()

    async def _warn_expiring_keys(self) -> None:
        """Log each organisation whose keys expire within 60, 30 or 7 days (once a day)."""
        service = self.service
        for org in service.tenants:
            days = warning_days(seconds_left(service.directory, org, service.now()))
            if days is not None:
                log.warning("keys.expiring", org=org, count=days)

    async def _sweep_leftovers(self) -> None:
        """Remove temporaries and uncommitted bodies an hour old (a kill mid-write)."""
        removed = await self.service.store.sweep_leftovers()
        if removed:
            log.info("store.leftovers-removed", count=removed)

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, finish in-flight work, checkpoint, close."""
        if self._runner is None:
            return
        self._app[READY]["accepting"] = False
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_edges()
        try:
            await self.ledger.checkpoint()
        except Exception as exc:  # noqa: BLE001 - the stop goes on; what failed is logged
            # The class and the kind of fault only; the stored checkpoints stay as they were.
            fault = fault_of(exc)
            log.error(  # noqa: TRY400
                "node.final-checkpoint-failed", cause=fault.kind, error_class=type(exc).__name__,
            )  # fmt: skip
        await self._close_stores(self.service.store)
        log.info("node.stopped")

    def _start_sso(self, report: CheckReport) -> None:
        """Offer sign-in through each ``[sso.<id>]`` provider, with the secret the check read."""
        service = self.service
        for provider in self.config.sso:
            if self._oidc_http is None:
                self._oidc_http = OidcHttpClient()
            service.sso.add(
                ProviderClient(
                    provider, report.sso_secrets[provider.id], self._oidc_http,
                    lambda: service.clock(),  # noqa: PLW0108 - read at each call: tests move it
                )
            )  # fmt: skip

    async def _close_edges(self) -> None:
        """Close the listeners, the connectors and the client sessions, whichever are open."""
        for runner in (self._runner, self._ops_runner):
            if runner is not None:
                await runner.cleanup()
        self._runner = self._ops_runner = None
        if self._oidc_http is not None:
            await self._oidc_http.close()
            self._oidc_http = None
        if hasattr(self, "routes"):
            await self.routes.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _close_stores(self, store: Store) -> None:
        """Close the relay's store, if any, and the node's."""
        if self.relay is not None:
            await self.relay.store.close()
        await store.close()
