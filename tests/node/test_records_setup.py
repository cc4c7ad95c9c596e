"""The node's policy, calendar and retention files, and its register key, at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange.config import ConfigError, RecordsConfig, load_config, parse_config
from exchange.node.runtime import load_register_key
from exchange.service.register_reports import KEY_FILE, RegisterKey, RegisterKeyError
from exchange.shipped import load_records_setup, shipped_text

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "node.example.toml"


def test_the_example_names_the_shipped_files_and_they_load() -> None:
    """[records] paths are taken from the configuration's folder; all three validate."""
    config = load_config(EXAMPLE)
    assert config.records == RecordsConfig(
        policy=EXAMPLE.parent / "policy.toml",
        calendar=EXAMPLE.parent / "calendar.toml",
        retention=EXAMPLE.parent / "retention.toml",
    )
    setup = load_records_setup(config)
    assert "safeguarding-referral" in setup.policy.purposes
    assert setup.policy.deadlines["cp-file-transfer"].count == 5
    assert load_records_setup(None).policy == setup.policy


def test_a_records_setting_that_is_not_known_is_refused() -> None:
    """An unknown [records] key stops the node with the setting named."""
    text = EXAMPLE.read_text().replace('retention = "retention.toml"', 'retain = "x.toml"')
    with pytest.raises(ConfigError, match=r"records\.retain is not a known setting"):
        parse_config(text, EXAMPLE.parent)


def test_a_broken_policy_names_the_file_and_the_setting(tmp_path: Path) -> None:
    """A policy mistake names records.policy, the file and the policy setting at fault."""
    broken = shipped_text("policy.toml").replace(
        'recipient_kinds = ["nhs", "la"]', 'recipient_kinds = ["nhs", "relay"]'
    )
    path = tmp_path / "policy.toml"
    path.write_text(broken)
    with pytest.raises(ConfigError) as caught:
        load_records_setup(RecordsConfig(policy=path))
    message = str(caught.value)
    assert message.startswith(f"records.policy ({path}): purposes.lac-health.recipient_kinds[1]")
    with pytest.raises(ConfigError, match=r"records\.calendar .* cannot be read"):
        load_records_setup(RecordsConfig(calendar=tmp_path / "missing.toml"))


def test_the_register_key_is_created_once_and_kept_private(tmp_path: Path) -> None:
    """The key is 32 random bytes, mode 0600, reused, and refused if others can read it."""
    assert RegisterKey.load(tmp_path, create=False) is None
    first = RegisterKey.load(tmp_path, create=True)
    assert first is not None
    path = tmp_path / KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    again = RegisterKey.load(tmp_path, create=True)
    assert again is not None
    assert again.subject("upn", "W356200124001") == first.subject("upn", "W356200124001")
    assert first.subject("upn", "W356200124001") != first.subject("nhs-number", "W356200124001")
    assert "secret" in repr(first)
    assert path.read_bytes().hex() not in repr(first)
    path.chmod(0o644)
    with pytest.raises(RegisterKeyError, match="readable by the node's user only"):
        RegisterKey.load(tmp_path, create=True)
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(RegisterKeyError, match="exactly 32 bytes"):
        RegisterKey.load(tmp_path, create=False)


def test_a_missing_register_key_is_not_replaced_once_hashes_exist(tmp_path: Path) -> None:
    """A restore without register.key: a new key would hide every earlier subject, so no."""
    with pytest.raises(ConfigError) as caught:
        load_register_key(tmp_path, hashes_kept=True)
    assert "register.key is missing" in str(caught.value)
    assert "docs/node.md" in str(caught.value)
    assert not (tmp_path / KEY_FILE).exists()
    made = load_register_key(tmp_path, hashes_kept=False)
    assert load_register_key(tmp_path, hashes_kept=True).subject("upn", "A") == made.subject(
        "upn", "A"
    )


def test_shipped_files_are_package_data_and_config_shows_them() -> None:
    """The rule files ship inside the package; the repository's config/ shows the same text."""
    for name in ("policy.toml", "calendar.toml", "retention.toml"):
        assert shipped_text(name) == (EXAMPLE.parent / name).read_text("utf-8")
    with pytest.raises(ValueError, match="not a shipped rule file"):
        shipped_text("../node.example.toml")
