"""Loading the sharing policy, the school calendar and the retention rules at node start.

The three files are validated as a whole when the node starts (``exchange.policy`` refuses
unknown keys and names the setting at fault), so a mistake stops the node instead of
surfacing as a wrong decision on a DSL's submission. Their paths come from the node
configuration's ``[records]`` table; a path not given there is the file shipped in the
project's ``config/`` folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from exchange.node.config import ConfigError, NodeConfig, RecordsConfig
from exchange.policy import (
    Policy,
    PolicyError,
    RetentionPolicy,
    SchoolCalendar,
    load_calendar,
    load_policy,
    load_retention,
)

#: The project's own config folder, holding the shipped policy, calendar and retention files.
SHIPPED_CONFIG: Final = Path(__file__).resolve().parents[2] / "config"
#: The files are a few kilobytes; anything much larger is not one of them.
MAX_FILE_LEN: Final = 1024 * 1024


@dataclass(frozen=True)
class RecordsSetup:
    """The validated policy, calendar and retention rules a node applies to submissions."""

    policy: Policy
    calendar: SchoolCalendar
    retention: RetentionPolicy


def _read(path: Path, setting: str) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_LEN + 1)
    except OSError as exc:
        raise ConfigError(f"{setting} ({path}) cannot be read: {exc.strerror}") from None
    if len(data) > MAX_FILE_LEN:
        raise ConfigError(f"{setting} ({path}) is larger than {MAX_FILE_LEN} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{setting} ({path}) is not UTF-8") from None


def load_records_setup(config: NodeConfig | RecordsConfig | None = None) -> RecordsSetup:
    """Read and validate the three files; raise :class:`ConfigError` naming the one at fault."""
    records = config.records if isinstance(config, NodeConfig) else config
    records = records or RecordsConfig()
    paths = {
        "policy": records.policy or SHIPPED_CONFIG / "policy.toml",
        "calendar": records.calendar or SHIPPED_CONFIG / "calendar.toml",
        "retention": records.retention or SHIPPED_CONFIG / "retention.toml",
    }
    texts = {name: _read(path, f"records.{name}") for name, path in paths.items()}
    try:
        policy = load_policy(texts["policy"])
    except PolicyError as exc:
        raise ConfigError(f"records.policy ({paths['policy']}): {exc}") from None
    try:
        calendar = load_calendar(texts["calendar"])
    except PolicyError as exc:
        raise ConfigError(f"records.calendar ({paths['calendar']}): {exc}") from None
    try:
        retention = load_retention(texts["retention"], purposes=tuple(policy.purposes))
    except PolicyError as exc:
        raise ConfigError(f"records.retention ({paths['retention']}): {exc}") from None
    return RecordsSetup(policy=policy, calendar=calendar, retention=retention)
