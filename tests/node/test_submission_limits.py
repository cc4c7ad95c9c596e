"""How large a submission a node takes: its ``[limits] max_envelope_bytes``, said in bytes.

The records format allows 1 GiB a file and 2 GiB a CP file; a node takes what fits in its
envelopes. Checked on a node of 1 MiB envelopes: the largest CP file it says it takes is
sealed; one byte more is refused 413 naming the limit and the setting, whether it is over
by its sealed size, by its declared body length (before the body is read) or by a body
sent without a length. Without a node: the body limit holds the base64 of the largest
container a node takes, as ``exchange send`` writes it; the bound on an envelope's length
is exact and holds for a real envelope.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from exchange.cli.upload import FilePart, Upload
from exchange.config import NodeConfig
from exchange.demo.loopback import Deployment
from exchange.envelope import Recipient, Sealer
from exchange.envelope.format import max_content_length, max_envelope_length
from exchange.http.submissions import submission_limit
from exchange.keys.ids import OrgId
from exchange.keys.keypairs import OrgKeyPair
from exchange.records import MAX_ATTACHMENTS
from exchange.sharing.limits import node_limits
from tests.cli.schools import NEW_SCHOOL, REASON, TWO_SCHOOLS
from tests.node.conftest import SCHOOL, deployed
from tests.node.helpers import auth, client
from tests.node.raw import head_only
from tests.node.records import cp_file

LIMIT = 1024 * 1024
SETTING = "[limits] max_envelope_bytes"


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start a school node and an LA node whose envelopes may be 1 MiB."""
    async with deployed(
        tmp_path / "nodes", {SCHOOL: ["dsl"]}, orgs=TWO_SCHOOLS, max_envelope_bytes=LIMIT
    ) as world:
        yield world


def _pdf(size: int) -> bytes:
    return b"%PDF-1.4\n" + b"0" * (size - 16) + b"\n%%EOF\n"


def _cp_submission(*files: bytes) -> dict[str, Any]:
    documents = [{"kind": "chronology", "title": f"Part {i}"} for i in range(len(files))]
    return {
        "recipients": [NEW_SCHOOL],
        "purpose": "cp-file-transfer",
        "record_kind": "cp-file-transfer",
        "record": cp_file(documents=documents),
        "categories": ["identity", "safeguarding-concerns"],
        "reason": REASON,
        "attachments": [
            {
                "name": f"part-{i}.pdf",
                "content_type": "application/pdf",
                "content_base64": base64.b64encode(data).decode(),
            }
            for i, data in enumerate(files)
        ],
    }


async def _post(world: Deployment, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with (
        client(world) as http,
        http.post(
            world.url("school") + "/api/v1/envelopes",
            data=io.BytesIO(json.dumps(body).encode()),
            headers={**auth(world, SCHOOL, "dsl"), "Content-Type": "application/json"},
        ) as resp,
    ):
        return resp.status, await resp.json()


def _says_the_limit(answer: dict[str, Any], limit: int) -> None:
    error = answer["error"]
    assert error["status"] == 413
    assert error["rule"] == "limits.max-envelope-bytes"
    assert f"{limit} bytes" in error["message"]
    assert SETTING in error["message"]


@pytest.mark.network
async def test_the_largest_file_the_node_says_is_sealed_and_one_byte_more_is_413(
    small: Deployment,
) -> None:
    """Exactly the node's per-file limit is taken; a byte more is refused by its sealed size."""
    limits = node_limits(LIMIT).attachments("cp-file-transfer")
    assert 0.6 * LIMIT < limits.per_file == limits.total < LIMIT
    status, answer = await _post(small, _cp_submission(_pdf(limits.per_file)))
    assert status == 202, answer
    # Within the body limit (base64 of 1 MiB and the fields), but over once sealed: the
    # bound assumes the largest record, so it takes a few hundred KiB more to pass it.
    over = node_limits(LIMIT).max_content
    status, answer = await _post(small, _cp_submission(_pdf(over)))
    assert status == 413, answer
    _says_the_limit(answer, over)
    assert str(LIMIT) in answer["error"]["message"]
    sent = await small.nodes["school"].service.store.register_rows(SCHOOL)
    assert len(sent) == 1


@pytest.mark.network
async def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(
    small: Deployment,
) -> None:
    """A Content-Length over the submission limit: 413 naming it, the body still unsent."""
    limit = submission_limit(LIMIT, NodeConfig.max_json_bytes)
    headers = {
        **auth(small, SCHOOL, "dsl"),
        "Content-Type": "application/json",
        "Content-Length": str(limit + 1),
    }
    answer = await head_only(small, "school", "/api/v1/envelopes", headers)
    assert answer.status == 413, answer
    _says_the_limit(json.loads(answer.body), limit)


@pytest.mark.network
async def test_a_body_without_a_length_is_refused_once_it_passes_the_limit(
    small: Deployment,
) -> None:
    """A chunked body is read only up to the limit, then refused 413."""
    limit = submission_limit(LIMIT, NodeConfig.max_json_bytes)
    sent = 0

    async def pieces() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < 8 * limit:
            sent += 64 * 1024
            yield b" " * (64 * 1024)

    status, answer = 0, {}
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        async with (
            client(small) as http,
            http.post(
                small.url("school") + "/api/v1/envelopes",
                data=pieces(),
                headers={**auth(small, SCHOOL, "dsl"), "Content-Type": "application/json"},
            ) as resp,
        ):
            status, answer = resp.status, await resp.json()
    assert status == 413, answer
    _says_the_limit(answer, limit)
    assert sent < 8 * limit


# --- without a node ----------------------------------------------------------------------------


@pytest.mark.parametrize("envelope_limit", [64 * 1024 * 1024, 512 * 1024 * 1024, 1 << 32])
@pytest.mark.parametrize("count", [1, 7, MAX_ATTACHMENTS])
def test_the_body_limit_holds_the_largest_container_in_base64(
    tmp_path: Path, envelope_limit: int, count: int
) -> None:
    """``exchange send``'s body for the most a node takes fits the node's body limit."""
    total = node_limits(envelope_limit).attachments("cp-file-transfer").total
    sizes = [total // count] * (count - 1) + [total - (total // count) * (count - 1)]
    # FilePart's size is all Upload.length needs: no file of that size is written.
    parts = [
        FilePart(
            tmp_path / f"{i}.pdf", f"part {i:02} of the scanned file.pdf", "application/pdf", s
        )
        for i, s in enumerate(sizes)
    ]
    documents = [{"kind": "chronology", "title": "T" * 200} for _ in parts]
    fields = _cp_submission()
    fields["record"] = cp_file(documents=documents)
    del fields["attachments"]
    body = Upload(fields, parts).length
    assert body <= submission_limit(envelope_limit, NodeConfig.max_json_bytes)


@pytest.mark.parametrize("chunk_size", [64, 64 * 1024, 1 << 20])
@pytest.mark.parametrize("limit", [0, 4096, 5000, 1 << 20, (64 << 20) + 12345])
def test_the_content_bound_is_the_inverse_of_the_envelope_bound(
    limit: int, chunk_size: int
) -> None:
    """The most content that fits: its envelope fits, one byte more does not."""
    content = max_content_length(limit, chunk_size)
    if content == 0:
        assert limit < max_envelope_length(1, chunk_size)
        return
    assert max_envelope_length(content, chunk_size) <= limit
    assert max_envelope_length(content + 1, chunk_size) > limit


def test_a_real_envelope_is_within_the_bound() -> None:
    """A sealed envelope to the most recipients is no longer than the bound says."""
    sender = OrgKeyPair.generate(OrgId("urn:106123"))
    recipients = [OrgKeyPair.generate(OrgId(f"urn:2000{i:02}")) for i in range(16)]
    for size in (0, 1, 65536, 65537, 300_000):
        sealer = Sealer(
            sender,
            [Recipient(r.org_id, r.encryption.public) for r in recipients],
            record_kind="cp-file-transfer",
            created=1_767_225_600,
        )
        envelope = sealer.start() + sealer.feed(b"x" * size)
        tail, sealed = sealer.finish()
        envelope += tail
        assert sealed.envelope_length == len(envelope) <= max_envelope_length(size)
