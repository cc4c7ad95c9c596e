"""Node configuration: the example parses, round trips, and every mistake names its setting."""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from exchange.auth.session import SessionPolicy
from exchange.config import (
    ConfigError,
    DeliveryConfig,
    MeshTenantConfig,
    NodeConfig,
    RelayConfig,
    ServerConfig,
    SmtpSettings,
    TasksConfig,
    config_to_toml,
    load_config,
    parse_config,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "node.example.toml"
OPS_TOKEN = 'token_env = "EXCHANGE_OPS_TOKEN"'  # noqa: S105 - a variable's name, not a secret


def test_example_configuration_is_valid() -> None:
    """config/node.example.toml parses, with paths taken from its own folder."""
    config = load_config(EXAMPLE)
    assert [t.org for t in config.tenants] == ["la:356", "ods:X26ABC"]
    assert config.data_dir == EXAMPLE.parent / "data"
    assert config.trust == str(EXAMPLE.parent / "authority.vkey")
    assert config.delivery.backoff_max == 600.0
    assert config.tasks == TasksConfig()
    assert config.smtp is not None
    assert (config.smtp.host, config.smtp.port, config.smtp.mode) == (
        "smtp.stockport.example", 587, "starttls",
    )  # fmt: skip
    assert config.relay is not None
    assert config.relay.retention == 30 * 24 * 3600.0
    nurses = config.tenants[1].mesh
    assert nurses is not None
    assert (nurses.mailbox, nurses.client_cert) == (
        "X26ABC001",
        EXAMPLE.parent / "tls/mesh-client.crt",
    )
    assert config.tenants[0].notify == ("front.door@stockport.example",)
    assert (config.ops.host, config.ops.port) == ("127.0.0.1", 9180)
    assert config.ops.token_env is None
    assert config.server.behind_proxy is False
    assert config.directory_url == "https://directory.stockport.example/directory.note"
    assert (config.directory_refresh_interval, config.directory_ca) == (3600.0, None)


def test_the_example_ops_token_when_uncommented() -> None:
    """The example's commented-out ops.token_env reads back as the variable's name."""
    config = parse_config(_with(f"# {OPS_TOKEN}", OPS_TOKEN), EXAMPLE.parent)
    assert config.ops.token_env == "EXCHANGE_OPS_TOKEN"  # noqa: S105 - a variable's name
    assert parse_config(config_to_toml(config), EXAMPLE.parent) == config


def test_the_ops_table_and_behind_proxy_have_defaults() -> None:
    """Without [ops]: loopback port 9180, no token; behind_proxy is false unless said."""
    text = EXAMPLE.read_text()
    start = text.index("[ops]")
    config = parse_config(text[:start] + text[text.index("\n[", start) :], EXAMPLE.parent)
    assert (config.ops.host, config.ops.port, config.ops.token_env) == ("127.0.0.1", 9180, None)
    assert parse_config(config_to_toml(config), EXAMPLE.parent) == config


def test_configuration_round_trips_through_toml() -> None:
    """config_to_toml writes what parse_config reads back identically."""
    config = load_config(EXAMPLE)
    assert parse_config(config_to_toml(config), Path("/elsewhere")) == config


def test_upgrade_backups_is_a_folder_from_the_files_folder() -> None:
    """node.upgrade_backups is optional, taken from the file's folder, and round trips."""
    assert load_config(EXAMPLE).upgrade_backups is None
    text = _with('data_dir = "data"', 'data_dir = "data"\nupgrade_backups = "pre-upgrade"')
    config = parse_config(text, Path("/etc/exchange"))
    assert config.upgrade_backups == Path("/etc/exchange/pre-upgrade")
    assert parse_config(config_to_toml(config), Path("/elsewhere")) == config
    wrong = _with('data_dir = "data"', 'data_dir = "data"\nupgrade_backups = 5')
    with pytest.raises(ConfigError, match=r"node\.upgrade_backups must be text"):
        parse_config(wrong, EXAMPLE)


def _with(old: str, new: str) -> str:
    text = EXAMPLE.read_text()
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_with('name = "stockport-la"', ""), "node.name is missing"),
        (_with('listen = "0.0.0.0:8443"', 'listen = "nowhere"'), "node.listen must be host:port"),
        (_with('listen = "0.0.0.0:8443"', "listen = 8443"), "node.listen must be text"),
        (_with("batch = 32", "batch = 0"), "delivery.batch must be a whole number from 1 to 10000"),
        (
            _with("batch = 32", 'batch = "many"'),
            "delivery.batch must be a whole number from 1 to 10000",
        ),
        (_with("batch = 32", "batches = 32"), "delivery.batches is not a known setting"),
        (_with('org = "la:356"', 'org = "Stockport"'), "tenants[0].org must look like"),
        (_with('org = "ods:X26ABC"', 'org = "la:356"'), "names the same organisation twice"),
        (_with('public_url = "https:', 'public_url = "ftp:'), "node.public_url must start"),
        ("[node\n", "not valid TOML"),
        (_with("[ledger]", "[ledgers]"), "ledgers is not a known setting"),
        (
            _with('url = "https://directory.', 'url = "http://directory.'),
            "directory.url must be an https:// address",
        ),
        (_with('url = "https://directory.', "url = 5 #"), "directory.url must be text"),
        (
            _with("refresh_interval = 3600", "refresh_interval = 0"),
            "directory.refresh_interval must be a number of seconds from 1 to 604800",
        ),
        (
            _with("refresh_interval = 3600", 'refresh_interval = "hourly"'),
            "directory.refresh_interval must be a number of seconds",
        ),
        (
            _with('url = "https://directory.', 'ca = "ca.pem"\nx = "'),
            "directory.x is not a known setting",
        ),
        (
            _with('url = "https://directory.stockport.example/directory.note"', 'ca = "ca.pem"'),
            "directory.ca is set but directory.url is not",
        ),
        (_with('mailbox = "X26ABC001"', ""), "tenants[1].mesh.mailbox is missing"),
        (
            _with('url = "https://msg.', 'url = "http://msg.'),
            "tenants[1].mesh.url must start with https://",
        ),
        (_with('client_key = "tls/mesh-client.key"', ""), "client_key go together"),
        (_with("mailbox = ", "mail_box = "), "tenants[1].mesh.mail_box is not a known setting"),
        (_with("port = 587", "port = 70000"), "smtp.port must be a whole number from 1 to 65535"),
        (_with('mode = "starttls"', 'mode = "plain"'), "needs allow_plain = true"),
        (_with('mode = "starttls"', 'mode = "ssl"'), "smtp.mode must be starttls, tls or plain"),
        (_with('username = "exchange"', ""), "smtp.username and smtp.password_env go together"),
        (
            _with("max_items = 10000", "max_items = 0"),
            "relay.max_items must be a whole number from 1 to 10000000",
        ),
        (
            _with("unready_after = 60.0", "unready_after = 0"),
            "tasks.unready_after must be a number of seconds greater than zero",
        ),
        (
            _with("backoff_max = 60.0", "backoff_max = inf"),
            "tasks.backoff_max must be a number of seconds greater than zero",
        ),
        (
            _with("backoff_max = 60.0", "backoff_max = 0.5"),
            "tasks.backoff_max must not be less than tasks.backoff_base",
        ),
        (_with("unready_after = 60.0", "ready_after = 1.0"), "tasks.ready_after is not a known"),
        (
            _with("lease_renew = 20.0", "lease_renew = 60.0"),
            "delivery.lease_renew must be less than delivery.lease",
        ),
        (
            _with("job_lease = 60.0", "job_lease = 10.0"),
            "tasks.job_renew must be less than tasks.job_lease",
        ),
        (
            _with(
                'notify = ["front.door@stockport.example"]',
                'notify = "front.door@stockport.example"',
            ),
            "tenants[0].notify must be a list",
        ),
        (
            _with("behind_proxy = false", 'behind_proxy = "yes"'),
            "server.behind_proxy must be true or false",
        ),
        (_with('listen = "127.0.0.1:9180"', 'listen = "9180"'), "ops.listen must be host:port"),
        (_with('listen = "127.0.0.1:9180"', 'listen = "h:70000"'), "ops.listen must be host"),
        (_with(f"# {OPS_TOKEN}", 'token_env = ""'), "ops.token_env must name"),
        (_with(f"# {OPS_TOKEN}", "token_env = 1"), "ops.token_env must be text"),
        (_with("[ops]", "[ops]\nport = 9180"), "ops.port is not a known setting"),
    ],
)
def test_mistakes_name_the_setting(text: str, message: str) -> None:
    """Each invalid configuration is refused with a message naming the setting."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, EXAMPLE.parent)
    assert message in str(caught.value)


def _numeric_settings() -> list[tuple[str, str, str, str]]:
    """Return (header, name in errors, setting, kind) of every numeric setting.

    A new int or float field of a settings dataclass is covered without touching this list.
    """
    tables: list[tuple[str, str, type]] = [
        ("[delivery]", "delivery", DeliveryConfig),
        ("[tasks]", "tasks", TasksConfig),
        ("[server]", "server", ServerConfig),
        ("[relay]", "relay", RelayConfig),
        ("[smtp]", "smtp", SmtpSettings),
        ("[tenants.mesh]", "tenants[1].mesh", MeshTenantConfig),
        ("[web]", "web", SessionPolicy),
    ]
    found = [
        (header, where, f.name, str(f.type))
        for header, where, cls in tables
        for f in fields(cls)
        if str(f.type) in {"int", "float"}
    ]
    # The [limits] settings are NodeConfig's own numbers that have a default.
    found += [
        ("[limits]", "limits", f.name, str(f.type))
        for f in fields(NodeConfig)
        if str(f.type) == "int" and f.default is not MISSING
    ]
    return found


NUMERIC_SETTINGS = _numeric_settings()
_BASE = config_to_toml(load_config(EXAMPLE))


def _setting(header: str, name: str, value: str) -> str:
    """Return the full configuration with ``name`` of table ``header`` set to ``value``."""
    start = _BASE.index(f"\n{header}\n") + len(header) + 2
    line = _BASE.index(f"\n{name} = ", start - 1) + 1
    end = _BASE.index("\n", line)
    return _BASE[:line] + f"{name} = {value}" + _BASE[end:]


def test_every_numeric_setting_is_listed() -> None:
    """The generated list is not empty and finds settings of every table (a sanity check)."""
    names = {f"{where}.{name}" for _, where, name, _ in NUMERIC_SETTINGS}
    assert {"delivery.batch", "tasks.backoff_base", "server.min_body_rate", "relay.retention"} <= (
        names
    )
    assert {"smtp.port", "tenants[1].mesh.chunk_size", "web.idle_timeout"} <= names
    assert {"limits.max_json_bytes", "limits.max_envelope_bytes"} <= names


BAD_VALUES = ('"abc"', "-5", "0", "1.5", "true", "inf", "nan", "-inf")
#: Each numeric setting with each value it must refuse (a fraction is refused for a count
#: only: it is a valid number of seconds).
BAD_CASES = [
    (*setting, bad)
    for setting in NUMERIC_SETTINGS
    for bad in BAD_VALUES
    if not (setting[3] == "float" and bad == "1.5")
    # 0 is a valid backlog limit: it switches back-pressure off (tested below).
    and not (setting[2] == "max_backlog" and bad == "0")
]


@pytest.mark.parametrize(("header", "where", "name", "kind", "bad"), BAD_CASES)
def test_numeric_settings_refuse_bad_values(
    header: str, where: str, name: str, kind: str, bad: str
) -> None:
    """A string, a negative, zero, a fraction for a count, a bool: refused naming the setting."""
    del kind
    text = _setting(header, name, bad)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, EXAMPLE.parent)
    message = str(caught.value)
    assert message.startswith(f"{where}.{name} must be "), message
    assert "int()" not in message
    assert "a int" not in message
    assert "a float" not in message
    assert "literal" not in message


@pytest.mark.parametrize(("header", "where", "name", "kind"), NUMERIC_SETTINGS)
def test_numeric_settings_keep_their_good_value(
    header: str, where: str, name: str, kind: str
) -> None:
    """The rewriting helper itself changes nothing when given the value already there."""
    del where, kind
    config = load_config(EXAMPLE)
    assert parse_config(_setting(header, name, _value_in_base(header, name)), Path("/x")) == (
        parse_config(_BASE, Path("/x"))
    )
    assert config == parse_config(_BASE, EXAMPLE.parent)


def _value_in_base(header: str, name: str) -> str:
    start = _BASE.index(f"\n{header}\n")
    line = _BASE.index(f"\n{name} = ", start) + len(name) + 4
    return _BASE[line : _BASE.index("\n", line)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _setting("[limits]", "max_json_bytes", '"abc"'),
            "limits.max_json_bytes must be a whole number from 1 to 67108864",
        ),
        (
            _setting("[limits]", "max_json_bytes", "100000000"),
            "limits.max_json_bytes must be a whole number from 1 to 67108864",
        ),
        (
            _setting("[delivery]", "timeout", '"soon"'),
            "delivery.timeout must be a number of seconds greater than zero",
        ),
        (_with("[node]", "node = 1\n[nodes]"), "nodes is not a known setting"),
        (_with('listen = "0.0.0.0:8443"', "listen = true"), "node.listen must be text"),
        (
            _with('ca = "tls/mesh-ca.pem"', 'ca = "tls/mesh-ca.pem"\nallow_http = 1'),
            "tenants[1].mesh.allow_http must be true or false",
        ),
    ],
)
def test_plain_english_messages(text: str, message: str) -> None:
    """Messages say what is allowed in words, with the right article."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, EXAMPLE.parent)
    assert str(caught.value) == message


def test_max_backlog_defaults_on_and_zero_switches_it_off() -> None:
    """``[delivery] max_backlog``: 2000 unless set; 0 means no limit; above the ceiling refused."""
    assert load_config(EXAMPLE).delivery.max_backlog == 2000
    assert parse_config(_setting("[delivery]", "max_backlog", "0"), EXAMPLE.parent).delivery == (
        DeliveryConfig(max_backlog=0)
    )
    assert (
        parse_config(_setting("[delivery]", "max_backlog", "50"), EXAMPLE.parent).delivery
    ).max_backlog == 50
    with pytest.raises(ConfigError) as caught:
        parse_config(_setting("[delivery]", "max_backlog", "10000001"), EXAMPLE.parent)
    assert str(caught.value) == (
        "delivery.max_backlog must be a whole number from 0 (no limit) to 10000000"
    )
