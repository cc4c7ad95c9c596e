"""Reading a multipart/form-data submission body in a test: its JSON part and its files."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any


def parse_submission(
    content_type: str, body: bytes
) -> tuple[dict[str, Any], list[tuple[str, str, bytes]]]:
    """Return the submission part's JSON and each file part's (name, content type, bytes)."""
    kind, _, boundary = content_type.partition("; boundary=")
    assert kind == "multipart/form-data", content_type
    dash = b"--" + boundary.encode("ascii")
    pieces = body.split(dash)
    assert pieces[0] == b""
    assert pieces[-1] == b"--\r\n"
    parts = []
    for piece in pieces[1:-1]:
        assert piece.startswith(b"\r\n")
        assert piece.endswith(b"\r\n")
        head, _, data = piece[2:-2].partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode("ascii").split("\r\n"))
        parts.append((headers, data))
    first_headers, first = parts[0]
    assert 'name="submission"' in first_headers["Content-Disposition"]
    files = []
    for headers, data in parts[1:]:
        disposition = headers["Content-Disposition"]
        assert 'name="attachment"' in disposition
        encoded = disposition.rsplit("filename*=utf-8''", 1)[1]
        files.append((urllib.parse.unquote(encoded), headers["Content-Type"], data))
    return json.loads(first), files
