"""The logging processor keeps a child's details out of every log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from exchange import logs

SENTINELS = {
    "name": "Tallulah Sentinel-Child",
    "dob": "2014-03-09",
    "upn": "A123456789012",
    "nhs": "943 476 5919",
}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Configure structlog as production does, writing JSON lines to a buffer."""
    buffer = io.StringIO()
    logs.configure(json=True, stream=buffer)
    yield buffer
    structlog.reset_defaults()


def test_unlisted_fields_are_redacted(captured: io.StringIO) -> None:
    """A field that is not on the allow-list keeps its name but loses its value."""
    logs.get_logger("t").info("referral.built", child_name=SENTINELS["name"], envelope_id="ab12")
    line = json.loads(captured.getvalue())
    assert line["child_name"] == logs.REDACTED
    assert line["envelope_id"] == "ab12"
    assert SENTINELS["name"] not in captured.getvalue()


@pytest.mark.parametrize("value", list(SENTINELS.values())[1:])
def test_identifier_shapes_are_scrubbed_from_allowed_fields(
    captured: io.StringIO, value: str
) -> None:
    """A UPN, NHS number or date inside an allowed field is replaced."""
    logs.get_logger("t").warning("open.failed", error=f"bad input near {value} here")
    assert value not in captured.getvalue()
    assert logs.REDACTED in json.loads(captured.getvalue())["error"]


def test_lists_are_scrubbed_element_by_element() -> None:
    """Values inside a list are scrubbed too."""
    out = logs.drop_sensitive(None, "info", {"event": "x", "recipients": ["la:356", "2014-03-09"]})
    assert out["recipients"] == ["la:356", logs.REDACTED]


def test_ordinary_ids_survive_scrubbing() -> None:
    """Organisation ids and hex digests are not mistaken for personal data."""
    digest = "9f" * 32
    out = logs.drop_sensitive(None, "info", {"event": "e", "org": "urn:106123", "digest": digest})
    assert out == {"event": "e", "org": "urn:106123", "digest": digest}


def test_standard_logging_records_lose_their_text_and_traceback(captured: io.StringIO) -> None:
    """Records of aiohttp and asyncio arrive as one line: logger, level, exception class."""
    token = "QINsecret-bearer-token-0123456789"  # noqa: S105 - a stand-in for a real one
    failure = ValueError(f"b'Authorization: Bearer {token}' {SENTINELS['name']}")
    logging.getLogger("aiohttp.server").error(
        "Error handling request from %s: %s", "127.0.0.1", SENTINELS["upn"], exc_info=failure
    )
    logging.getLogger("asyncio").error(f"Task exception: {SENTINELS['name']}")
    logging.getLogger("aiohttp.access").info("below the bridge's level: %s", token)
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [(x["component"], x["level"], x["error_class"]) for x in lines] == [
        ("aiohttp.server", "error", "ValueError"),
        ("asyncio", "error", None),
    ]
    assert {x["event"] for x in lines} == {"stdlib.record"}
    for secret in (token, *SENTINELS.values(), "Traceback", "127.0.0.1"):
        assert secret not in captured.getvalue()


def test_configuring_again_keeps_one_bridge(captured: io.StringIO) -> None:
    """Each configure replaces the bridge on the root logger: a record is logged once."""
    logs.configure(json=True, stream=captured)
    logging.getLogger("aiohttp.server").warning("once")
    assert len(captured.getvalue().splitlines()) == 1
    bridges = [h for h in logging.getLogger().handlers if isinstance(h, logs.StdlibBridge)]
    assert len(bridges) == 1
