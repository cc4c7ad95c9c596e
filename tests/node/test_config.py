"""Node configuration: the example parses, round trips, and every mistake names its setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.config import ConfigError, TasksConfig, config_to_toml, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "node.example.toml"


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


def test_configuration_round_trips_through_toml() -> None:
    """config_to_toml writes what parse_config reads back identically."""
    config = load_config(EXAMPLE)
    assert parse_config(config_to_toml(config), Path("/elsewhere")) == config


def _with(old: str, new: str) -> str:
    text = EXAMPLE.read_text()
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_with('name = "stockport-la"', ""), "node.name is missing"),
        (_with('listen = "0.0.0.0:8443"', 'listen = "nowhere"'), "node.listen must be host:port"),
        (_with('listen = "0.0.0.0:8443"', "listen = 8443"), "node.listen must be a str"),
        (_with("batch = 32", "batch = 0"), "delivery.batch must be greater than zero"),
        (_with("batch = 32", 'batch = "many"'), "delivery.batch must be a int"),
        (_with("batch = 32", "batches = 32"), "delivery.batches is not a known setting"),
        (_with('org = "la:356"', 'org = "Stockport"'), "tenants[0].org must look like"),
        (_with('org = "ods:X26ABC"', 'org = "la:356"'), "names the same organisation twice"),
        (_with('public_url = "https:', 'public_url = "ftp:'), "node.public_url must start"),
        ("[node\n", "not valid TOML"),
        (_with("[ledger]", "[ledgers]"), "ledgers is not a known setting"),
        (_with('mailbox = "X26ABC001"', ""), "tenants[1].mesh.mailbox is missing"),
        (
            _with('url = "https://msg.', 'url = "http://msg.'),
            "tenants[1].mesh.url must start with https://",
        ),
        (_with('client_key = "tls/mesh-client.key"', ""), "client_key go together"),
        (_with("mailbox = ", "mail_box = "), "tenants[1].mesh.mail_box is not a known setting"),
        (_with("port = 587", "port = 70000"), "smtp.port must be from 1 to 65535"),
        (_with('mode = "starttls"', 'mode = "plain"'), "needs allow_plain = true"),
        (_with('mode = "starttls"', 'mode = "ssl"'), "smtp.mode must be starttls, tls or plain"),
        (_with('username = "exchange"', ""), "smtp.username and smtp.password_env go together"),
        (_with("max_items = 10000", "max_items = 0"), "relay.max_items must be greater than zero"),
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
            _with(
                'notify = ["front.door@stockport.example"]',
                'notify = "front.door@stockport.example"',
            ),
            "tenants[0].notify must be a list",
        ),
    ],
)
def test_mistakes_name_the_setting(text: str, message: str) -> None:
    """Each invalid configuration is refused with a message naming the setting."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, EXAMPLE.parent)
    assert message in str(caught.value)
