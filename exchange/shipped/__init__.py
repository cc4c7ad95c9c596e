"""The rule files shipped with the package, and loading a node's rules at start.

The sharing policy, the school calendar and the retention rules are validated as a whole when
the node starts (``exchange.policy`` refuses unknown keys and names the setting at fault), so
a mistake stops the node instead of surfacing as a wrong decision on a DSL's submission. Their
paths come from the node configuration's ``[records]`` table; a file not named there is the
one shipped in this package (read with :mod:`importlib.resources`, so an installed wheel finds
them wherever it was installed). The repository's ``config/`` folder shows the same files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

from exchange.config import ConfigError, NodeConfig, RecordsConfig
from exchange.policy import (
    PolicyError,
    RecordsSetup,
    load_calendar,
    load_policy,
    load_retention,
)

#: The files are a few kilobytes; anything much larger is not one of them.
MAX_FILE_LEN: Final = 1024 * 1024
#: The rule files this package ships, by the ``[records]`` setting that can replace each.
SHIPPED_FILES: Final = {
    "policy": "policy.toml",
    "calendar": "calendar.toml",
    "retention": "retention.toml",
}


def shipped_text(name: str) -> str:
    """Return the text of one shipped rule file (``policy.toml``, ``calendar.toml``, ...)."""
    if name not in SHIPPED_FILES.values():
        raise ValueError(f"name: {name!r} is not a shipped rule file")
    return resources.files(__name__).joinpath(name).read_text("utf-8")


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
    given = {"policy": records.policy, "calendar": records.calendar, "retention": records.retention}
    texts: dict[str, str] = {}
    where: dict[str, str] = {}
    for name, path in given.items():
        if path is None:
            texts[name] = shipped_text(SHIPPED_FILES[name])
            where[name] = f"shipped {SHIPPED_FILES[name]}"
        else:
            texts[name] = _read(path, f"records.{name}")
            where[name] = str(path)
    try:
        policy = load_policy(texts["policy"])
    except PolicyError as exc:
        raise ConfigError(f"records.policy ({where['policy']}): {exc}") from None
    try:
        calendar = load_calendar(texts["calendar"])
    except PolicyError as exc:
        raise ConfigError(f"records.calendar ({where['calendar']}): {exc}") from None
    try:
        retention = load_retention(texts["retention"], purposes=tuple(policy.purposes))
    except PolicyError as exc:
        raise ConfigError(f"records.retention ({where['retention']}): {exc}") from None
    return RecordsSetup(policy=policy, calendar=calendar, retention=retention)
