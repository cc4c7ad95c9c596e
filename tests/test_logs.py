"""The logging processor keeps a child's details out of every log line."""

from __future__ import annotations

import io
import json
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
