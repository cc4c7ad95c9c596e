"""Large files through the ends of the journey: a multipart submission in, a streamed download out.

Real nodes on loopback (a school node; the LA node serves the receiving school). A CP file
is submitted as ``multipart/form-data`` (the submission's JSON, then one part per file,
streamed to unnamed spool files), sealed, delivered, opened and downloaded a piece at a
time, verified as it streams. Each refusal names the part or field and the rule, seals
nothing and leaves no spool file open; a body damaged on disk after opening cuts the
download's connection rather than handing out a file that looks complete; and the node's
Python memory stays far below the file's size while it is submitted, opened and downloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from exchange.config import NodeConfig
from exchange.demo.loopback import Deployment
from exchange.http.submissions import multipart_limit
from exchange.model import OutboxItem
from exchange.records import decode_container
from exchange.sharing.limits import node_limits
from tests.cli.schools import NEW_SCHOOL, REASON, TWO_SCHOOLS
from tests.node.conftest import SCHOOL, deployed
from tests.node.helpers import auth, client, until
from tests.node.raw import close, connect, head_only, read_answer, request_head
from tests.node.records import cp_file
from tests.stored_bodies import damage

pytestmark = pytest.mark.network

T = TypeVar("T")
SETTING = "[limits] max_envelope_bytes"
SMALL_LIMIT = 1024 * 1024
MIB = 1024 * 1024


def pdf(size: int, seed: bytes = b"scan") -> bytes:
    """Return a PDF-typed file of ``size`` bytes that the content checks accept."""
    head, tail = b"%PDF-1.7\n% synthetic\n", b"\n%%EOF\n"
    filler = (hashlib.sha256(seed).digest() * (size // 32 + 1)).replace(b"MZ", b"mz")
    return head + filler[: size - len(head) - len(tail)] + tail


def fields(count: int = 1, **extra: Any) -> dict[str, Any]:
    """Return a CP-file submission's fields for ``count`` documents (no files)."""
    documents = [{"kind": "chronology", "title": f"Part {i}"} for i in range(count)]
    return {
        "recipients": [NEW_SCHOOL],
        "purpose": "cp-file-transfer",
        "record_kind": "cp-file-transfer",
        "record": cp_file(documents=documents),
        "categories": ["identity", "family", "safeguarding-concerns"],
        "reason": REASON,
        **extra,
    }


Part = tuple[dict[str, str], bytes]
BOUNDARY = "test-boundary-0123456789"


def submission_part(doc: dict[str, Any] | bytes) -> Part:
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    headers = {
        "Content-Disposition": 'form-data; name="submission"',
        "Content-Type": "application/json",
    }
    return headers, data


def file_part(name: str, data: bytes, content_type: str | None = "application/pdf") -> Part:
    headers = {"Content-Disposition": f'form-data; name="attachment"; filename="{name}"'}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers, data


def multipart(*parts: Part) -> bytes:
    """Return a multipart/form-data body of ``parts`` (with :data:`BOUNDARY`)."""
    body = b""
    for headers, data in parts:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        body += f"--{BOUNDARY}\r\n{head}\r\n".encode() + data + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


async def post(
    world: Deployment, body: bytes | aiohttp.MultipartWriter, **headers: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST a submission to the school node; return the status, the JSON answer, headers."""
    data: io.BytesIO | aiohttp.MultipartWriter = body
    if isinstance(body, bytes):
        headers = {"Content-Type": MULTIPART, **headers}
        data = io.BytesIO(body)
    async with (
        client(world) as http,
        http.post(
            world.url("school") + "/api/v1/envelopes",
            data=data,
            headers={**auth(world, SCHOOL, "dsl"), **headers},
        ) as resp,
    ):
        return resp.status, await resp.json(), dict(resp.headers)


def spool_files(world: Deployment, node: str = "school") -> list[str]:
    """Return the files this process holds open in a node's data folder that have no name."""
    folder = str(world.nodes[node].service.store.folder)
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith(folder) and target.endswith("(deleted)"):
            found.append(target)
    return found


async def registered(world: Deployment) -> int:
    return len(await world.nodes["school"].service.store.register_rows(SCHOOL))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start a school node and an LA node serving the new school, with default limits."""
    async with deployed(
        tmp_path / "nodes", {SCHOOL: ["dsl"], NEW_SCHOOL: ["dsl"]}, orgs=TWO_SCHOOLS
    ) as deployment:
        yield deployment


@pytest.fixture
async def small(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Start the same nodes with envelopes of at most 1 MiB."""
    async with deployed(
        tmp_path / "small", {SCHOOL: ["dsl"]}, orgs=TWO_SCHOOLS, max_envelope_bytes=SMALL_LIMIT
    ) as deployment:
        yield deployment


async def until_received(world: Deployment, digest: str) -> None:
    reader = auth(world, NEW_SCHOOL, "dsl")

    async def arrived() -> bool:
        async with (
            client(world) as http,
            http.get(world.url("la") + "/api/v1/inbox", headers=reader) as resp,
        ):
            return digest in {item["digest"] for item in (await resp.json())["items"]}

    await until(arrived, timeout=60)


async def open_json(world: Deployment, digest: str) -> dict[str, Any]:
    headers = {**auth(world, NEW_SCHOOL, "dsl"), "Accept": "application/json"}
    async with (
        client(world) as http,
        http.post(world.url("la") + f"/api/v1/inbox/{digest}/open", headers=headers) as resp,
    ):
        assert resp.status == 200
        answer: dict[str, Any] = await resp.json()
        return answer


@contextlib.asynccontextmanager
async def attachment(
    world: Deployment, digest: str, number: int
) -> AsyncIterator[aiohttp.ClientResponse]:
    """Yield the answer to a download of an item's file, its body not yet read."""
    async with (
        client(world) as http,
        http.get(
            world.url("la") + f"/api/v1/inbox/{digest}/attachments/{number}",
            headers=auth(world, NEW_SCHOOL, "dsl"),
        ) as resp,
    ):
        yield resp


async def download(world: Deployment, digest: str, number: int) -> tuple[int, bytes, str]:
    async with attachment(world, digest, number) as resp:
        return resp.status, await resp.read(), resp.headers.get("Content-Disposition", "")


# --- the happy path --------------------------------------------------------------------------


async def test_a_multipart_cp_file_is_sealed_delivered_opened_and_downloaded(
    world: Deployment,
) -> None:
    """Two files of several envelope chunks each arrive, listed and downloaded exactly."""
    files = [("chronology.pdf", pdf(3 * MIB + 17, b"one")), ("minutes.pdf", pdf(200_001, b"two"))]
    body = multipart(submission_part(fields(2)), *(file_part(n, d) for n, d in files))
    status, answer, _ = await post(world, body, **{"Idempotency-Key": "large-1"})
    assert status == 202, answer
    assert spool_files(world) == []
    # The same submission again, framed by another boundary, is the same request.
    again = body.replace(BOUNDARY.encode(), b"another-boundary-42")
    status, replayed, headers = await post(
        world, again, **{"Idempotency-Key": "large-1",
                         "Content-Type": "multipart/form-data; boundary=another-boundary-42"}
    )  # fmt: skip
    assert (status, replayed["digest"], headers.get("Idempotent-Replayed")) == (
        202, answer["digest"], "true",
    )  # fmt: skip
    digest = answer["digest"]
    await until_received(world, digest)
    opened = await open_json(world, digest)
    assert opened["record_kind"] == "cp-file-transfer"
    assert [(a["number"], a["name"], a["size"], a["sha256"]) for a in opened["attachments"]] == [
        (i, name, len(data), hashlib.sha256(data).hexdigest())
        for i, (name, data) in enumerate(files, start=1)
    ]
    assert opened["record"]["documents"][0]["sha256"] == hashlib.sha256(files[0][1]).hexdigest()
    for number, (name, data) in enumerate(files, start=1):
        status, got, disposition = await download(world, digest, number)
        assert status == 200
        assert got == data
        assert name in disposition
    status, _, _ = await download(world, digest, 3)
    assert status == 404
    # The whole content, streamed, is the record container the school sealed.
    async with (
        client(world) as http,
        http.post(
            world.url("la") + f"/api/v1/inbox/{digest}/open", headers=auth(world, NEW_SCHOOL, "dsl")
        ) as resp,
    ):
        content = await resp.read()
    container = decode_container(content)
    assert [a.data for a in container.attachments] == [data for _, data in files]


# --- refusals ----------------------------------------------------------------------------------


REFUSALS: list[tuple[str, Callable[[], bytes], int, str]] = [
    (
        "no submission part",
        lambda: multipart(file_part("a.pdf", pdf(5000))),
        400,
        "the first part of a multipart submission must be the submission",
    ),
    (
        "the file first",
        lambda: multipart(file_part("a.pdf", pdf(5000)), submission_part(fields())),
        400,
        "the first part of a multipart submission must be the submission",
    ),
    (
        "the submission twice",
        lambda: multipart(submission_part(fields()), submission_part(fields())),
        400,
        "part 2 of the multipart submission must be a file named 'attachment'",
    ),
    (
        "bad JSON",
        lambda: multipart(submission_part(b'{"recipients": ['), file_part("a.pdf", pdf(5000))),
        400,
        "the submission part: ",
    ),
    (
        "a field missing",
        lambda: multipart(submission_part({**fields(), "reason": None} | {"reason": 5})),
        400,
        "the submission part: ",
    ),
    (
        "files in the JSON",
        lambda: multipart(submission_part(fields(attachments=[]))),
        400,
        "the submission part must not hold attachments",
    ),
    (
        "a file without a type",
        lambda: multipart(submission_part(fields()), file_part("a.pdf", pdf(5000), None)),
        400,
        "attachments[0] (part 2) has no Content-Type",
    ),
    (
        "not multipart",
        lambda: b"this is not a multipart body at all",
        400,
        "not well-formed multipart/form-data",
    ),
    (
        "a PDF without its end",
        lambda: multipart(submission_part(fields()), file_part("a.pdf", b"%PDF-1.7\n" * 9000)),
        422,
        "attachments[0]: a PDF must end with %%EOF",
    ),
    (
        "a PDF sent as a PNG",
        lambda: multipart(submission_part(fields()), file_part("a.png", pdf(5000), "image/png")),
        422,
        "attachments[0]: the content does not look like image/png",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "sentence"),
    [pytest.param(body, status, sentence, id=name) for name, body, status, sentence in REFUSALS],
)
async def test_a_refused_multipart_submission_names_the_part_and_leaves_nothing(
    world: Deployment, body: Callable[[], bytes], status: int, sentence: str
) -> None:
    """Each refusal: its status, a sentence naming the part or field, nothing sealed or kept."""
    got, answer, _ = await post(world, body())
    assert got == status, answer
    assert sentence in answer["error"]["message"]
    assert REASON not in json.dumps(answer)  # nothing sent is echoed
    assert spool_files(world) == []
    assert await registered(world) == 0


async def test_a_file_over_the_node_limit_is_413_as_it_streams(small: Deployment) -> None:
    """A file one byte over what one file may be: 413 naming the part and the setting."""
    per_file = node_limits(SMALL_LIMIT).attachments("cp-file-transfer").per_file
    status, answer, _ = await post(
        small, multipart(submission_part(fields()), file_part("big.pdf", pdf(per_file + 1)))
    )
    assert status == 413, answer
    message = answer["error"]["message"]
    assert answer["error"]["rule"] == "limits.max-envelope-bytes"
    assert "attachments[0] (part 2)" in message
    assert f"{per_file} bytes" in message
    assert SETTING in message
    assert spool_files(small) == []
    assert await registered(small) == 0
    # Exactly the limit is taken.
    status, answer, _ = await post(
        small, multipart(submission_part(fields()), file_part("big.pdf", pdf(per_file)))
    )
    assert status == 202, answer


async def test_a_declared_multipart_body_over_the_limit_is_refused_before_it_is_read(
    small: Deployment,
) -> None:
    """A Content-Length over the multipart limit: 413 naming it, the body never sent."""
    limit = multipart_limit(SMALL_LIMIT, NodeConfig.max_json_bytes)
    headers = {
        **auth(small, SCHOOL, "dsl"),
        "Content-Type": MULTIPART,
        "Content-Length": str(limit + 1),
    }
    answer = await head_only(small, "school", "/api/v1/envelopes", headers)
    assert answer.status == 413, answer
    message = json.loads(answer.body)["error"]["message"]
    assert f"{limit} bytes" in message
    assert SETTING in message
    assert spool_files(small) == []


# --- a download cut when the body fails part-way ----------------------------------------------


async def test_a_body_damaged_after_opening_cuts_the_download(world: Deployment) -> None:
    """A byte changed in the middle of the stored body: the transfer breaks, never completes."""
    data = pdf(4 * MIB, b"cut")
    status, answer, _ = await post(
        world, multipart(submission_part(fields()), file_part("scan.pdf", data))
    )
    assert status == 202, answer
    digest = answer["digest"]
    await until_received(world, digest)
    await open_json(world, digest)
    # In the body's bytes, well after the first piece is sent.
    await damage(world.nodes["la"].service.store, bytes.fromhex(digest), 3 * MIB)
    async with attachment(world, digest, 1) as resp:
        assert resp.status == 200
        assert resp.content_length == len(data)
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    # Found damaged part-way, the item is recorded so: the next reading is refused at once.
    status, _, _ = await download(world, digest, 1)
    assert status == 409
    assert await world.nodes["la"].service.store.is_damaged(bytes.fromhex(digest))


# --- memory ------------------------------------------------------------------------------------


async def test_submitting_opening_and_downloading_hold_far_less_than_the_file(
    world: Deployment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A 48 MiB file: the node's Python memory peaks a few MiB above its start, each way.

    Measured with tracemalloc in this process, which runs both nodes and the client: the
    submission until its 202 (the school's delivery held back meanwhile, since pushing a
    body is measured by the delivery's own tests), then the opening and the download.
    """
    size = 48 * MIB
    source = tmp_path / "scan.pdf"
    source.write_bytes(pdf(size, b"memory"))
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    worker = world.nodes["school"].worker
    attempt = worker.attempt
    release = asyncio.Event()

    async def held(item: OutboxItem) -> None:
        await release.wait()
        await attempt(item)

    monkeypatch.setattr(worker, "attempt", held)
    with source.open("rb") as handle:
        writer = aiohttp.MultipartWriter("form-data")
        part = writer.append_json(fields())
        part.set_content_disposition("form-data", name="submission")
        part = writer.append(handle, {"Content-Type": "application/pdf"})
        part.set_content_disposition("form-data", name="attachment", filename="scan.pdf")
        submitted = await _traced(post(world, writer))
    (status, answer, _), submit_peak = submitted
    assert status == 202, answer
    release.set()
    digest = answer["digest"]
    await until_received(world, digest)

    async def open_and_download() -> str:
        await open_json(world, digest)
        hasher = hashlib.sha256()
        async with attachment(world, digest, 1) as resp:
            async for piece in resp.content.iter_chunked(MIB):
                hasher.update(piece)
        return hasher.hexdigest()

    got, read_peak = await _traced(open_and_download())
    assert got == expected
    assert submit_peak < 12 * MIB, f"submitting peaked {submit_peak / MIB:.1f} MiB"
    assert read_peak < 12 * MIB, f"opening and downloading peaked {read_peak / MIB:.1f} MiB"


async def _traced(work: Awaitable[T]) -> tuple[T, int]:
    """Return ``work``'s result and the peak of memory traced while it ran, above its start."""
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        result = await work
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak - start


# --- what a handler reads whole ------------------------------------------------------------------


async def test_a_gigabyte_envelope_limit_does_not_let_a_json_request_be_read_whole(
    tmp_path: Path,
) -> None:
    """With envelopes of 1 GiB, a JSON request is still refused after 64 MiB, not read on.

    The request declares 200 MiB and sends a little over 64 MiB, then waits: the node
    answers 413 as soon as it has read its bound, rather than waiting for the rest.
    """
    async with deployed(
        tmp_path / "gib", {SCHOOL: ["dsl"]}, orgs=TWO_SCHOOLS, max_envelope_bytes=1024 * MIB
    ) as large:
        reader, writer = await connect(large, "school")
        headers = {
            **auth(large, SCHOOL, "dsl"),
            "Content-Type": "application/json",
            "Content-Length": str(200 * MIB),
        }
        path = f"/api/v1/inbox/{'ab' * 32}/reject"
        writer.write(request_head(path, large.nodes["school"].port, headers))
        piece = b" " * MIB
        try:
            for _ in range(65):
                writer.write(piece)
                await asyncio.wait_for(writer.drain(), timeout=10)
        except (ConnectionError, TimeoutError):
            pass  # the node stopped reading: its answer is waiting
        try:
            answer = await read_answer(reader, timeout=10)
        finally:
            await close(writer)
        assert answer.status == 413, answer
