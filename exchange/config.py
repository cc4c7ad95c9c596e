"""Node configuration: a TOML file, validated at start-up with errors that name the setting.

See ``config/node.example.toml`` for every setting with a comment. Paths are relative to
the configuration file's folder. Secrets are never in the file: key-file passphrases come
from environment variables named by the file (``passphrase_env``).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from exchange.auth.session import SessionPolicy
from exchange.auth.sso_rules import SsoProvider
from exchange.config_database import (
    DatabaseConfig,
    DatabaseConfigError,
    database_to_toml,
    parse_database,
)
from exchange.config_sso import SsoConfigError, parse_provider, provider_to_toml
from exchange.keys.ids import OrgId, parse_org_id

MAX_CONFIG_LEN: Final = 1024 * 1024
#: ``[directory] refresh_interval``: an hour by default; from a second (tests) to a week.
DEFAULT_REFRESH_INTERVAL: Final = 3600.0
MIN_REFRESH_INTERVAL: Final = 1.0
MAX_REFRESH_INTERVAL: Final = 7 * 24 * 3600.0
MAX_URL_LEN: Final = 2048


class ConfigError(Exception):
    """The configuration is invalid; the message names the setting."""


@dataclass(frozen=True)
class MeshTenantConfig:
    """A tenant's NHS MESH mailbox. Secrets come from the named environment variables."""

    url: str
    mailbox: str
    password_env: str
    shared_key_env: str
    workflow: str = "EXCHANGE_ENVELOPE"
    chunk_size: int = 20 * 1024 * 1024
    client_cert: Path | None = None
    client_key: Path | None = None
    ca: Path | None = None
    #: Plain HTTP to the MESH sandbox on loopback; never for the live service.
    allow_http: bool = False


@dataclass(frozen=True)
class TenantConfig:
    """One organisation the node serves, with its key files (oldest first)."""

    org: OrgId
    key_files: tuple[Path, ...]
    passphrase_env: str
    #: Staff mailboxes told (without personal data) that an item is waiting.
    notify: tuple[str, ...] = ()
    mesh: MeshTenantConfig | None = None


@dataclass(frozen=True)
class SmtpSettings:
    """The mail submission server: for the ``smtp`` route and staff notifications."""

    host: str
    port: int
    from_address: str
    message_id_domain: str
    mode: str = "starttls"
    username: str | None = None
    password_env: str | None = None
    ca: Path | None = None
    link_template: str | None = None
    #: Plain SMTP on loopback; tests only.
    allow_plain: bool = False


@dataclass(frozen=True)
class RelayConfig:
    """This node also keeps relay mailboxes for organisations that collect (docs/relay.md)."""

    retention: float = 30 * 24 * 3600.0
    max_items: int = 10_000


@dataclass(frozen=True)
class DeliveryConfig:
    """Retry policy of the outbox (docs/architecture.md §4)."""

    batch: int = 32
    concurrency: int = 16
    timeout: float = 30.0
    backoff_base: float = 2.0
    backoff_max: float = 600.0
    dead_letter_after: float = 3 * 24 * 3600.0
    poll_interval: float = 0.5
    #: Failed attempts in a row on one route before the next route is tried.
    fallback_after: int = 3
    #: Attempts to one organisation at once (a receiving node takes at most
    #: ``[server] peer_uploads`` from one peer: 4 by default).
    per_destination: int = 4
    #: Seconds between collection rounds of pull routes (NHS MESH, relay mailboxes).
    collect_interval: float = 5.0
    #: An envelope handed to a MESH, relay or SMTP route without a ``delivered`` receipt
    #: after this many seconds is shown as overdue.
    overdue_after: float = 24 * 3600.0
    #: Seconds between looks for deadlines past due, each chased once by mail.
    chase_interval: float = 3600.0
    #: Envelopes waiting for answering destinations at which submissions are refused as busy
    #: (exchange.service.busy); 0 switches back-pressure off.
    max_backlog: int = 2000
    #: Seconds an ``exchange serve`` process holds an item it is attempting before another
    #: process of the group may take it over (its process died or hangs), and how often the
    #: process renews the leases of the attempts it is still making (a large body takes
    #: minutes). The renewal must come well within the lease.
    lease: float = 60.0
    lease_renew: float = 20.0


@dataclass(frozen=True)
class TasksConfig:
    """How the node keeps its background tasks going (docs/node.md §6).

    A failed round of a task (the outbox, collection, checkpoints, chases, sweeps) is tried
    again after ``backoff_base`` seconds, doubling after each failure in a row up to
    ``backoff_max``. A task failing for longer than ``unready_after`` seconds makes
    ``/readyz`` answer 503 (a full disk or a ledger that does not verify: at once).
    """

    backoff_base: float = 1.0
    backoff_max: float = 60.0
    unready_after: float = 60.0
    #: Seconds between signed ledger checkpoints.
    checkpoint_interval: float = 5.0
    #: Seconds a process holds a job that runs once in the group (checkpoints, chases,
    #: collection, ...) past what it needs, before another process may take the job over,
    #: and how often a process renews its lease while a round runs (and looks whether a
    #: job it does not hold has been left).
    job_lease: float = 60.0
    job_renew: float = 20.0


@dataclass(frozen=True)
class ServerConfig:
    """The listener's defences against slow and greedy clients (``[server]``; docs/node.md §1).

    A request's head must arrive within ``header_timeout`` seconds of its first byte; a
    body must keep arriving at ``min_body_rate`` bytes a second or more, checked every
    ``body_timeout`` seconds; a connection with no request for ``idle_timeout`` seconds is
    closed. At most ``peer_uploads`` peer requests from one organisation, and
    ``total_uploads`` from all together, are received at once (503 with Retry-After beyond).
    """

    header_timeout: float = 30.0
    body_timeout: float = 30.0
    idle_timeout: float = 30.0
    min_body_rate: int = 16 * 1024
    peer_uploads: int = 4
    total_uploads: int = 16
    #: TLS ends at a proxy in front, which forwards plain HTTP to this node. The only way
    #: to run without ``[tls]``; with ``[tls]`` it is a contradiction and refused.
    behind_proxy: bool = False


@dataclass(frozen=True)
class OpsConfig:
    """The operations listener (``[ops]``; docs/node.md §6): /healthz, /readyz, /metrics.

    It listens on ``host:port`` (loopback by default). With ``token_env``, the name of an
    environment variable holding a token, the main listener answers those paths too, to
    ``Authorization: Bearer <token>``; without it, 404 there.
    """

    host: str = "127.0.0.1"
    port: int = 9180
    token_env: str | None = None


@dataclass(frozen=True)
class TlsConfig:
    """Server certificate and the CA bundle used to check peers."""

    cert: Path
    key: Path
    ca: Path | None


@dataclass(frozen=True)
class RecordsConfig:
    """The policy, calendar and retention files; None: the file shipped in the package."""

    policy: Path | None = None
    calendar: Path | None = None
    retention: Path | None = None


@dataclass(frozen=True)
class NodeConfig:
    """A validated node configuration."""

    name: str
    host: str
    port: int
    public_url: str
    data_dir: Path
    directory_file: Path
    trust: str
    ledger_key: Path
    ledger_passphrase_env: str
    ledger_origin: str
    tenants: tuple[TenantConfig, ...]
    delivery: DeliveryConfig
    tls: TlsConfig | None
    max_envelope_bytes: int = 64 * 1024 * 1024
    max_json_bytes: int = 256 * 1024
    #: Seconds an ``Idempotency-Key`` of a submission and its answer are kept (1 to 30 days).
    idempotency_keys_for: int = 24 * 3600
    smtp: SmtpSettings | None = None
    relay: RelayConfig | None = None
    records: RecordsConfig | None = None
    #: The staff web pages' sessions: idle and absolute timeouts (``[web]``).
    web: SessionPolicy = field(default_factory=SessionPolicy)
    #: Back-off and readiness of the background tasks (``[tasks]``).
    tasks: TasksConfig = field(default_factory=TasksConfig)
    #: Listener timeouts and upload limits (``[server]``).
    server: ServerConfig = field(default_factory=ServerConfig)
    #: Where the backup taken before a schema upgrade goes (None: ``<data_dir>/backups``).
    upgrade_backups: Path | None = None
    #: The operations listener and its token (``[ops]``).
    ops: OpsConfig = field(default_factory=OpsConfig)
    #: Where the authority publishes the signed directory (``[directory] url``), if anywhere.
    directory_url: str | None = None
    #: Seconds between fetches of ``directory_url`` and looks at ``directory_file``.
    directory_refresh_interval: float = DEFAULT_REFRESH_INTERVAL
    #: A PEM file of the CA(s) to trust for ``directory_url`` (else the system's).
    directory_ca: Path | None = None
    #: Single sign-on providers for the staff web pages (``[sso.<id>]``), by id.
    sso: tuple[SsoProvider, ...] = ()
    #: Where the store is: SQLite in ``data_dir`` or a PostgreSQL database (``[database]``).
    database: DatabaseConfig = field(default_factory=DatabaseConfig)


#: What each kind of setting must be, in plain English (the article included).
_KIND_NAMES: Final[Mapping[type, str]] = {
    int: "a whole number",
    float: "a number",
    str: "text",
    bool: "true or false",
    dict: "a table",
    list: "a list",
}

#: Upper bounds of numeric settings where one is obvious (``table.setting``: bound).
UPPER_BOUNDS: Final[Mapping[str, int | float]] = {
    "delivery.batch": 10_000,
    "delivery.concurrency": 1024,
    "delivery.per_destination": 1024,
    "delivery.fallback_after": 1000,
    "server.peer_uploads": 1024,
    "server.total_uploads": 4096,
    "server.min_body_rate": 1024 * 1024 * 1024,
    "relay.max_items": 10_000_000,
    "mesh.chunk_size": 100 * 1024 * 1024,
    "limits.max_json_bytes": 64 * 1024 * 1024,
    "limits.max_envelope_bytes": 1024 * 1024 * 1024 * 1024,
}


def _must_be(where: str, key: str, kind: type) -> ConfigError:
    return ConfigError(f"{where}.{key} must be {_KIND_NAMES[kind]}")


def _get(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise ConfigError(f"{where}.{key} is missing")
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise _must_be(where, key, kind)
    return value


def _whole(value: Any, name: str, high: int | float | None = None) -> int:
    """Return ``value`` if it is a whole number from 1 to ``high``, else refuse naming ``name``."""
    if type(value) is not int or value <= 0 or (high is not None and value > high):
        allowed = "greater than zero" if high is None else f"from 1 to {high}"
        raise ConfigError(f"{name} must be a whole number {allowed}")
    return value


def _seconds(value: Any, name: str) -> float:
    """Return ``value`` as seconds if it is a finite number above zero, else refuse."""
    if type(value) not in (int, float) or not 0 < value < math.inf:
        raise ConfigError(f"{name} must be a number of seconds greater than zero")
    return float(value)


def _number(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    """Return the numeric setting ``where.key``: a count (int) or seconds (float)."""
    name = f"{where}.{key}"
    bound_name = f"mesh.{key}" if where.endswith(".mesh") else name
    if kind is int:
        return _whole(table[key], name, UPPER_BOUNDS.get(bound_name))
    return _seconds(table[key], name)


def _numbers(
    table: Any, cls: type, where: str, skip: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    """Return the checked numeric settings of ``table`` for settings dataclass ``cls``.

    ``skip``: the fields of ``cls`` that are not numbers, read by the caller.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    names = [f.name for f in fields(cls) if f.name not in skip]
    _check_keys(table, set(names), where)
    defaults = cls()
    values: dict[str, Any] = {}
    for name in names:
        if name in table:
            kind = int if isinstance(getattr(defaults, name), int) else float
            values[name] = _number(table, name, kind, where)
    return values


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        name = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"{name} is not a known setting")


def _path(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _trust(value: str, base: Path) -> str:
    # A verifier key contains '+' (name+hash+key); anything else is a file holding one.
    return value if "+" in value else str(_path(base, value))


def _directory_url(table: Mapping[str, Any]) -> str | None:
    """Return ``[directory] url``: an https:// address with a host, or None."""
    url: str | None = _optional(table, "url", str, "directory")
    if url is None:
        return None
    host = url.removeprefix("https://").split("/", 1)[0]
    if not url.startswith("https://") or not host or len(url) > MAX_URL_LEN:
        raise ConfigError(
            "directory.url must be an https:// address with a host name, at most "
            f"{MAX_URL_LEN} characters (the directory is never fetched over plain HTTP)"
        )
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise ConfigError("directory.url must not contain spaces or control characters")
    return url


def _refresh_interval(table: Mapping[str, Any]) -> float:
    """Return ``[directory] refresh_interval``: seconds from a minute to a week."""
    if "refresh_interval" not in table:
        return DEFAULT_REFRESH_INTERVAL
    value = table["refresh_interval"]
    if type(value) not in (int, float) or not (
        MIN_REFRESH_INTERVAL <= value <= MAX_REFRESH_INTERVAL
    ):
        raise ConfigError(
            f"directory.refresh_interval must be a number of seconds from {MIN_REFRESH_INTERVAL:g} "
            f"to {MAX_REFRESH_INTERVAL:g} (a week)"
        )
    return float(value)


def _directory(table: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """Return the ``[directory]`` settings as :class:`NodeConfig` fields."""
    _check_keys(table, {"file", "trust", "url", "refresh_interval", "ca"}, "directory")
    url = _directory_url(table)
    ca = _optional_path(base, table, "ca", "directory")
    if ca is not None and url is None:
        raise ConfigError("directory.ca is set but directory.url is not: give both or neither")
    return {
        "directory_file": _path(base, _get(table, "file", str, "directory")),
        "trust": _trust(_get(table, "trust", str, "directory"), base),
        "directory_url": url,
        "directory_refresh_interval": _refresh_interval(table),
        "directory_ca": ca,
    }


#: Largest ``[delivery] max_backlog``.
MAX_BACKLOG: Final = 10_000_000


def _delivery(table: Any) -> DeliveryConfig:
    numbers = (
        {k: v for k, v in table.items() if k != "max_backlog"} if isinstance(table, dict) else table
    )
    values = _numbers(numbers, DeliveryConfig, "delivery", skip={"max_backlog"})
    if "max_backlog" in table:
        value = table["max_backlog"]
        if type(value) is not int or not 0 <= value <= MAX_BACKLOG:
            raise ConfigError(
                f"delivery.max_backlog must be a whole number from 0 (no limit) to {MAX_BACKLOG}"
            )
        values["max_backlog"] = value
    delivery = DeliveryConfig(**values)
    _renewed_within(delivery, "lease_renew", "lease", "delivery")
    return delivery


def _renewed_within(settings: object, renew: str, lease: str, where: str) -> None:
    """Refuse a lease renewed no more often than it lasts (it would run out while held)."""
    if getattr(settings, renew) >= getattr(settings, lease):
        raise ConfigError(
            f"{where}.{renew} must be less than {where}.{lease} (a lease is renewed before "
            "it runs out; a third of it is a good choice)"
        )


def _database(table: Any) -> DatabaseConfig:
    try:
        return parse_database(table)
    except DatabaseConfigError as exc:
        raise ConfigError(str(exc)) from None


def _tasks(table: Any) -> TasksConfig:
    tasks = TasksConfig(**_numbers(table, TasksConfig, "tasks"))
    if tasks.backoff_max < tasks.backoff_base:
        raise ConfigError("tasks.backoff_max must not be less than tasks.backoff_base")
    _renewed_within(tasks, "job_renew", "job_lease", "tasks")
    return tasks


def _server(table: Any) -> ServerConfig:
    if not isinstance(table, dict):
        raise ConfigError("server must be a table")
    numbers = {k: v for k, v in table.items() if k != "behind_proxy"}
    behind_proxy = _optional(table, "behind_proxy", bool, "server") or False
    config = ServerConfig(
        **_numbers(numbers, ServerConfig, "server", skip={"behind_proxy"}),
        behind_proxy=behind_proxy,
    )
    if config.peer_uploads > config.total_uploads:
        raise ConfigError("server.peer_uploads must not be greater than server.total_uploads")
    return config


def _optional(table: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    return _get(table, key, kind, where) if key in table else None


def _listen(table: Mapping[str, Any], where: str, example: str) -> tuple[str, int]:
    """Return the host and port of the ``listen`` setting of ``where`` (port 0 allowed)."""
    listen = _get(table, "listen", str, where)
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{where}.listen must be host:port, e.g. {example}")
    return host, int(port_text)


def _ops(table: Any) -> OpsConfig:
    if not isinstance(table, dict):
        raise ConfigError("ops must be a table")
    _check_keys(table, {"listen", "token_env"}, "ops")
    defaults = OpsConfig()
    host, port = (
        _listen(table, "ops", "127.0.0.1:9180")
        if "listen" in table
        else (defaults.host, defaults.port)
    )
    token_env = _optional(table, "token_env", str, "ops")
    if token_env is not None and not token_env:
        raise ConfigError("ops.token_env must name an environment variable")
    return OpsConfig(host=host, port=port, token_env=token_env)


def _optional_path(base: Path, table: Mapping[str, Any], key: str, where: str) -> Path | None:
    value = _optional(table, key, str, where)
    return None if value is None else _path(base, value)


def _mesh(table: Any, base: Path, where: str) -> MeshTenantConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    _check_keys(table, set(MeshTenantConfig.__dataclass_fields__), where)
    mesh = MeshTenantConfig(
        url=_get(table, "url", str, where),
        mailbox=_get(table, "mailbox", str, where),
        password_env=_get(table, "password_env", str, where),
        shared_key_env=_get(table, "shared_key_env", str, where),
        workflow=_optional(table, "workflow", str, where) or "EXCHANGE_ENVELOPE",
        chunk_size=(
            _number(table, "chunk_size", int, where) if "chunk_size" in table else 20 * 1024 * 1024
        ),
        client_cert=_optional_path(base, table, "client_cert", where),
        client_key=_optional_path(base, table, "client_key", where),
        ca=_optional_path(base, table, "ca", where),
        allow_http=bool(_optional(table, "allow_http", bool, where)),
    )
    if not mesh.url.startswith("https://") and not (
        mesh.allow_http and mesh.url.startswith("http://")
    ):
        raise ConfigError(f"{where}.url must start with https://")
    if (mesh.client_cert is None) != (mesh.client_key is None):
        raise ConfigError(f"{where}.client_cert and {where}.client_key go together")
    return mesh


def _smtp(table: Any, base: Path) -> SmtpSettings:
    where = "smtp"
    if not isinstance(table, dict):
        raise ConfigError("smtp must be a table")
    _check_keys(table, set(SmtpSettings.__dataclass_fields__) - {"from_address"} | {"from"}, where)
    if "port" not in table:
        raise ConfigError("smtp.port is missing")
    port = _whole(table["port"], "smtp.port", 65535)
    mode = _optional(table, "mode", str, where) or "starttls"
    if mode not in {"starttls", "tls", "plain"}:
        raise ConfigError("smtp.mode must be starttls, tls or plain")
    settings = SmtpSettings(
        host=_get(table, "host", str, where),
        port=port,
        from_address=_get(table, "from", str, where),
        message_id_domain=_get(table, "message_id_domain", str, where),
        mode=mode,
        username=_optional(table, "username", str, where),
        password_env=_optional(table, "password_env", str, where),
        ca=_optional_path(base, table, "ca", where),
        link_template=_optional(table, "link_template", str, where),
        allow_plain=bool(_optional(table, "allow_plain", bool, where)),
    )
    if (settings.username is None) != (settings.password_env is None):
        raise ConfigError("smtp.username and smtp.password_env go together")
    if mode == "plain" and not settings.allow_plain:
        raise ConfigError("smtp.mode plain sends mail unencrypted; it needs allow_plain = true")
    return settings


def _relay(table: Any) -> RelayConfig:
    return RelayConfig(**_numbers(table, RelayConfig, "relay"))


def _records(table: Any, base: Path) -> RecordsConfig:
    if not isinstance(table, dict):
        raise ConfigError("records must be a table")
    _check_keys(table, set(RecordsConfig.__dataclass_fields__), "records")
    return RecordsConfig(**{name: _optional_path(base, table, name, "records") for name in table})


def _web(table: Any) -> SessionPolicy:
    if not isinstance(table, dict):
        raise ConfigError("web must be a table")
    names = set(SessionPolicy.__dataclass_fields__)
    _check_keys(table, names, "web")
    try:
        return SessionPolicy(**{name: table[name] for name in names if name in table})
    except ValueError as exc:
        raise ConfigError(f"web.{exc}") from None


def _org(text: str, field: str) -> OrgId:
    try:
        return parse_org_id(text, field=field)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _sso(table: Any, base: Path, served: set[OrgId]) -> tuple[SsoProvider, ...]:
    """Return the ``[sso.<id>]`` providers, each signing into an organisation served here."""
    if not isinstance(table, dict):
        raise ConfigError("sso must be a table of providers, like [sso.entra]")
    providers = []
    for provider_id, provider_table in table.items():
        try:
            provider = parse_provider(provider_id, provider_table, base, _org)
        except SsoConfigError as exc:
            raise ConfigError(str(exc)) from None
        if provider.org not in served:
            raise ConfigError(f"{provider.where}.org is not an organisation this node serves")
        providers.append(provider)
    return tuple(providers)


def _idempotency_keys_for(limits: Mapping[str, Any]) -> int:
    """Return ``[limits] idempotency_keys_for``: whole seconds, a day to 30 days."""
    value = limits.get("idempotency_keys_for", 24 * 3600)
    if type(value) is not int or not 24 * 3600 <= value <= 30 * 24 * 3600:
        raise ConfigError(
            "limits.idempotency_keys_for must be whole seconds from 86400 (a day) to 2592000 "
            "(30 days)"
        )
    return value


def _limit(limits: Mapping[str, Any], key: str, default: int) -> int:
    """Return the size ``[limits] key``: a whole number of bytes, or ``default``."""
    if key not in limits:
        return default
    return _whole(limits[key], f"limits.{key}", UPPER_BOUNDS[f"limits.{key}"])


def _limits_table(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    limits = doc.get("limits", {})
    if not isinstance(limits, dict):
        raise ConfigError("limits must be a table")
    _check_keys(limits, {"max_envelope_bytes", "max_json_bytes", "idempotency_keys_for"}, "limits")
    return limits


def parse_config(text: str, base: Path) -> NodeConfig:
    """Validate configuration ``text``; relative paths are taken from ``base``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the configuration is not valid TOML: {exc}") from None
    _check_keys(
        doc,
        {"node", "directory", "ledger", "tenants", "delivery", "tls", "limits", "smtp", "relay"}
        | {"records", "web", "tasks", "server", "ops", "sso", "database"},
        "",
    )
    node = _get(doc, "node", dict, "config")
    _check_keys(node, {"name", "listen", "public_url", "data_dir", "upgrade_backups"}, "node")
    host, port = _listen(node, "node", "127.0.0.1:8443")
    public_url = _get(node, "public_url", str, "node")
    if not public_url.startswith(("https://", "http://")):
        raise ConfigError("node.public_url must start with https:// (or http:// for tests)")

    directory = _directory(_get(doc, "directory", dict, "config"), base)
    ledger = _get(doc, "ledger", dict, "config")
    _check_keys(ledger, {"key", "passphrase_env", "origin"}, "ledger")

    tenants_raw = _get(doc, "tenants", list, "config")
    if not tenants_raw:
        raise ConfigError("tenants must list at least one organisation")
    tenants = []
    for i, t in enumerate(tenants_raw):
        where = f"tenants[{i}]"
        if not isinstance(t, dict):
            raise ConfigError(f"{where} must be a table")
        _check_keys(t, {"org", "keys", "passphrase_env", "notify", "mesh"}, where)
        try:
            org = parse_org_id(_get(t, "org", str, where), field=f"{where}.org")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        key_files = _get(t, "keys", list, where)
        if not key_files or not all(isinstance(k, str) for k in key_files):
            raise ConfigError(f"{where}.keys must be a non-empty list of key file paths")
        notify = t.get("notify", [])
        if not isinstance(notify, list) or not all(isinstance(a, str) for a in notify):
            raise ConfigError(f"{where}.notify must be a list of mail addresses")
        tenants.append(
            TenantConfig(
                org,
                tuple(_path(base, k) for k in key_files),
                _get(t, "passphrase_env", str, where),
                notify=tuple(notify),
                mesh=_mesh(t["mesh"], base, f"{where}.mesh") if "mesh" in t else None,
            )
        )
    if len({t.org for t in tenants}) != len(tenants):
        raise ConfigError("tenants names the same organisation twice")

    tls = None
    if "tls" in doc:
        tls_table = _get(doc, "tls", dict, "config")
        _check_keys(tls_table, {"cert", "key", "ca"}, "tls")
        ca = tls_table.get("ca")
        tls = TlsConfig(
            cert=_path(base, _get(tls_table, "cert", str, "tls")),
            key=_path(base, _get(tls_table, "key", str, "tls")),
            ca=None if ca is None else _path(base, str(ca)),
        )
    limits = _limits_table(doc)
    keys_for = _idempotency_keys_for(limits)
    return NodeConfig(
        name=_get(node, "name", str, "node"),
        host=host,
        port=port,
        public_url=public_url.rstrip("/"),
        data_dir=_path(base, _get(node, "data_dir", str, "node")),
        ledger_key=_path(base, _get(ledger, "key", str, "ledger")),
        ledger_passphrase_env=_get(ledger, "passphrase_env", str, "ledger"),
        ledger_origin=_get(ledger, "origin", str, "ledger"),
        tenants=tuple(tenants),
        delivery=_delivery(doc.get("delivery", {})),
        tls=tls,
        max_envelope_bytes=_limit(limits, "max_envelope_bytes", 64 * 1024 * 1024),
        max_json_bytes=_limit(limits, "max_json_bytes", 256 * 1024),
        idempotency_keys_for=keys_for,
        smtp=_smtp(doc["smtp"], base) if "smtp" in doc else None,
        relay=_relay(doc["relay"]) if "relay" in doc else None,
        records=_records(doc["records"], base) if "records" in doc else None,
        web=_web(doc["web"]) if "web" in doc else SessionPolicy(),
        tasks=_tasks(doc["tasks"]) if "tasks" in doc else TasksConfig(),
        server=_server(doc["server"]) if "server" in doc else ServerConfig(),
        upgrade_backups=(
            _path(base, _get(node, "upgrade_backups", str, "node"))
            if "upgrade_backups" in node
            else None
        ),
        ops=_ops(doc["ops"]) if "ops" in doc else OpsConfig(),
        sso=_sso(doc.get("sso", {}), base, {t.org for t in tenants}),
        database=_database(doc["database"]) if "database" in doc else DatabaseConfig(),
        **directory,
    )


def load_config(path: Path) -> NodeConfig:
    """Read and validate the configuration file at ``path``."""
    data = path.read_bytes()
    if len(data) > MAX_CONFIG_LEN:
        raise ConfigError(f"the configuration file is larger than {MAX_CONFIG_LEN} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("the configuration file is not UTF-8 text") from None
    return parse_config(text, path.parent)


def _toml_string(value: str) -> str:
    # TOML basic strings share JSON's escapes for everything a path or URL can hold.
    return json.dumps(value)


def config_to_toml(config: NodeConfig) -> str:
    """Return ``config`` as TOML that :func:`parse_config` reads back to the same value."""
    d = config.delivery
    token_env = config.ops.token_env
    ops_token = [] if token_env is None else [f"token_env = {_toml_string(token_env)}"]
    lines = [
        "[node]",
        f"name = {_toml_string(config.name)}",
        f"listen = {_toml_string(f'{config.host}:{config.port}')}",
        f"public_url = {_toml_string(config.public_url)}",
        f"data_dir = {_toml_string(str(config.data_dir))}",
        *(
            [f"upgrade_backups = {_toml_string(str(config.upgrade_backups))}"]
            if config.upgrade_backups is not None
            else []
        ),
        "",
        "[directory]",
        f"file = {_toml_string(str(config.directory_file))}",
        f"trust = {_toml_string(config.trust)}",
        *([f"url = {_toml_string(config.directory_url)}"] if config.directory_url else []),
        f"refresh_interval = {config.directory_refresh_interval!r}",
        *([f"ca = {_toml_string(str(config.directory_ca))}"] if config.directory_ca else []),
        "",
        "[ledger]",
        f"key = {_toml_string(str(config.ledger_key))}",
        f"passphrase_env = {_toml_string(config.ledger_passphrase_env)}",
        f"origin = {_toml_string(config.ledger_origin)}",
        "",
        "[delivery]",
        *(f"{name} = {getattr(d, name)!r}" for name in DeliveryConfig.__dataclass_fields__),
        "",
        "[limits]",
        f"max_envelope_bytes = {config.max_envelope_bytes}",
        f"max_json_bytes = {config.max_json_bytes}",
        f"idempotency_keys_for = {config.idempotency_keys_for}",
        "",
        "[web]",
        f"idle_timeout = {config.web.idle_timeout}",
        f"absolute_timeout = {config.web.absolute_timeout}",
        f"step_up_window = {config.web.step_up_window}",
        "",
        "[tasks]",
        *_toml_fields(config.tasks),
        "",
        "[server]",
        *_toml_fields(config.server),
        "",
        "[ops]",
        f"listen = {_toml_string(f'{config.ops.host}:{config.ops.port}')}",
        *ops_token,
        "",
    ]
    if config.tls is not None:
        lines += [
            "[tls]",
            f"cert = {_toml_string(str(config.tls.cert))}",
            f"key = {_toml_string(str(config.tls.key))}",
        ]
        if config.tls.ca is not None:
            lines.append(f"ca = {_toml_string(str(config.tls.ca))}")
        lines.append("")
    if config.relay is not None:
        lines += ["[relay]", *_toml_fields(config.relay), ""]
    if config.smtp is not None:
        lines += ["[smtp]", *_toml_fields(config.smtp, rename={"from_address": "from"}), ""]
    if config.records is not None:
        lines += ["[records]", *_toml_fields(config.records), ""]
    for tenant in config.tenants:
        lines += [
            "[[tenants]]",
            f"org = {_toml_string(tenant.org)}",
            "keys = [" + ", ".join(_toml_string(str(k)) for k in tenant.key_files) + "]",
            f"passphrase_env = {_toml_string(tenant.passphrase_env)}",
            "notify = [" + ", ".join(_toml_string(a) for a in tenant.notify) + "]",
            "",
        ]
        if tenant.mesh is not None:
            lines += ["[tenants.mesh]", *_toml_fields(tenant.mesh), ""]
    lines += database_to_toml(config.database)
    for provider in config.sso:
        lines += provider_to_toml(provider)
    return "\n".join(lines)


def _toml_fields(value: Any, rename: Mapping[str, str] | None = None) -> list[str]:
    """Return ``key = value`` lines for a settings dataclass, leaving out unset values."""
    lines = []
    for name in value.__dataclass_fields__:
        field_value = getattr(value, name)
        if field_value is None:
            continue
        key = (rename or {}).get(name, name)
        if isinstance(field_value, bool):
            lines.append(f"{key} = {'true' if field_value else 'false'}")
        elif isinstance(field_value, int | float):
            lines.append(f"{key} = {field_value!r}")
        else:
            lines.append(f"{key} = {_toml_string(str(field_value))}")
    return lines
