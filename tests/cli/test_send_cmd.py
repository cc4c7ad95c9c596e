"""``exchange send``: a record and its documents, streamed to a real node over TLS.

Checked: a CP file with a 12 MB scanned PDF reaches the new school whole while the sending
process's memory stays flat (traced peak far below the file's size); what it prints (the
reference, the digest, the deadline in Europe/London, the recipient by name) and its
``--json``; the token from the environment, a file (refused when others can read it) or
standard input, never from the command line; each refusal (the node's rule, a bad address,
a CA it cannot verify, a wrong token, a wrong file) as one line. A 503 is asked again with
the same ``Idempotency-Key`` and the same body; each run makes a new key, unless
``--idempotency-key`` gives one: then a retried run is sent once, and a failure to reach
the node names the key to retry with. The body the command streams is the JSON the API
expects, of exactly the announced length.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from exchange.cli.errors import CliError, UsageError
from exchange.cli.main import build_parser
from exchange.cli.progress import Progress
from exchange.cli.staff_options import RefuseToken
from exchange.cli.upload import READ_SIZE, FilePart, Upload, attachment_parts
from exchange.demo.loopback import Deployment
from exchange.records import MAX_ATTACHMENT_SIZE, decode_container
from tests.cli.conftest import assert_refused, run
from tests.cli.processes import base_env, exchange, refused
from tests.cli.schools import (
    MB,
    NEW_SCHOOL,
    SCHOOL,
    delivered,
    send_argv,
    send_cp_file,
    staff_env,
    write_cp_record,
    write_pdf,
)
from tests.multipart_body import parse_submission
from tests.node.helpers import auth, client

network = pytest.mark.network
subprocess = pytest.mark.subprocess

#: Runs the command under tracemalloc and writes its peak of traced memory to $PEAK_FILE.
TRACED = (
    "-c",
    (
        "import os, sys, tracemalloc\n"
        "from exchange.cli.main import build_parser, main\n"
        # The commands load inside main(): loaded first, they are not counted as the upload's.
        "build_parser()\n"
        "tracemalloc.start()\n"
        "status = main(sys.argv[1:])\n"
        "with open(os.environ['PEAK_FILE'], 'w') as f:\n"
        "    f.write(str(tracemalloc.get_traced_memory()[1]))\n"
        "sys.exit(status)\n"
    ),
)


async def _opened(world: Deployment, digest: str) -> bytes:
    async with (
        client(world) as http,
        http.post(
            world.url("la") + f"/api/v1/inbox/{digest}/open", headers=auth(world, NEW_SCHOOL, "dsl")
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.read()


@network
@subprocess
async def test_a_large_document_is_streamed_in_flat_memory_and_arrives_whole(
    schools: Deployment, tmp_path: Path
) -> None:
    """A 12 MB PDF is sent with a traced peak under 4 MiB and opens byte for byte."""
    record = tmp_path / "cp-file.json"
    write_cp_record(record)
    data = write_pdf(tmp_path / "chronology.pdf", 12 * MB)
    env = {**staff_env(schools, SCHOOL), "PEAK_FILE": str(tmp_path / "peak")}
    ran = await exchange(*send_argv(record, tmp_path / "chronology.pdf"), env=env, start=TRACED)
    assert ran.status == 0, ran
    peak = int((tmp_path / "peak").read_text())
    assert peak < 4 * 1024 * 1024, f"peak traced memory {peak:,} bytes for a 12 MB file"

    lines = dict(line.split(None, 1) for line in ran.lines)
    assert lines["sent"] == "Child protection file"
    assert lines["to"] == "Moorside Academy (urn:106124)"
    assert lines["deadline"] == ("by 5pm on Friday 27 November 2026 (deadlines.cp-file-transfer)")
    assert len(lines["digest"]) == 64
    assert lines["reference"][4] == "-"
    assert ran.err == ""  # no progress bar: standard error is not a terminal

    await delivered(schools, lines["digest"])
    container = decode_container(await _opened(schools, lines["digest"]))
    assert [a.data for a in container.attachments] == [data]
    assert container.record.data["documents"][0]["sha256"] == hashlib.sha256(data).hexdigest()


@network
@subprocess
async def test_json_prints_the_nodes_answer(schools: Deployment, tmp_path: Path) -> None:
    """``--json`` prints the node's 202 answer as it is."""
    ran, _ = await send_cp_file(schools, tmp_path, 50_000, "--json")
    answer = json.loads(ran.out)
    assert set(answer) == {"envelope_id", "digest", "lawful_basis", "deadline"}
    assert answer["deadline"] == {"due": "2026-11-27", "rule": "deadlines.cp-file-transfer"}


@network
@subprocess
async def test_the_token_from_a_file_or_standard_input(schools: Deployment, tmp_path: Path) -> None:
    """A token file of mode 0600 and a token on standard input work; a shared file is refused."""
    record = tmp_path / "cp-file.json"
    write_cp_record(record)
    write_pdf(tmp_path / "chronology.pdf", 10_000)
    argv = send_argv(record, tmp_path / "chronology.pdf")
    token = schools.tokens[(SCHOOL, "dsl")]
    env = staff_env(schools, SCHOOL, token=False)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o644)
    ran = await exchange(*argv, "--token-file", str(token_file), env=env, secrets=(token,))
    line = refused(ran, 1, f"token file {token_file} can be read or changed by other users")
    assert "(mode 0644)" in line
    assert "chmod 600" in line
    token_file.chmod(0o600)
    ran = await exchange(*argv, "--token-file", str(token_file), env=env, secrets=(token,))
    assert ran.status == 0, ran
    ran = await exchange(*argv, "--token-stdin", env=env, secrets=(token,),
                         stdin=token.encode() + b"\n")  # fmt: skip
    assert ran.status == 0, ran
    # Without any of the three, the command says where a token may come from.
    ran = await exchange(*argv, env=env)
    refused(ran, 2, "no API token", "EXCHANGE_TOKEN", "--token-file", "--token-stdin")
    # The record and the token cannot both come from standard input.
    ran = await exchange(*argv[:-2], "--record", "-", "--token-stdin", env=env, stdin=b"{}")
    refused(ran, 2, "--record - and --token-stdin")


@network
@subprocess
async def test_refusals_are_one_plain_line(schools: Deployment, tmp_path: Path) -> None:
    """The node's rule, a wrong token, a wrong CA, a bad or dead address: one line each."""
    record = tmp_path / "cp-file.json"
    write_cp_record(record, titles=("Chronology", "Notes"))  # two documents listed, one sent
    write_pdf(tmp_path / "chronology.pdf", 10_000)
    argv = send_argv(record, tmp_path / "chronology.pdf")
    env = staff_env(schools, SCHOOL)
    refused(await exchange(*argv, env=env), 1, "the node refused: ", "[record]", "documents[1]")

    write_cp_record(record)
    wrong = {**env, "EXCHANGE_TOKEN": "not-the-token-of-anyone-0123456789"}
    refused(await exchange(*argv, env=wrong, secrets=(wrong["EXCHANGE_TOKEN"],)), 1,
            "the node refused: the bearer token is not valid")  # fmt: skip
    no_ca = {k: v for k, v in env.items() if k != "EXCHANGE_CACERT"}
    refused(await exchange(*argv, env=no_ca), 1, "could not verify the TLS certificate of "
            f"{schools.url('school')} (for a private CA, give --cacert FILE)")  # fmt: skip
    refused(await exchange(*argv, "--node", "ftp://127.0.0.1/", env=env), 2,
            "--node is not an https:// URL")  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{sock.getsockname()[1]}"
    refused(await exchange(*argv, "--node", dead, env=env), 1,
            f"could not connect to {dead}: the connection was refused")  # fmt: skip
    refused(await exchange(*argv[:-1], str(tmp_path / "missing.pdf"), env=env), 1,
            "missing.pdf: no such file or directory")  # fmt: skip
    (tmp_path / "tool.exe").write_bytes(b"MZ")
    refused(await exchange(*argv[:-1], str(tmp_path / "tool.exe"), env=env), 1,
            "only .docx, .jpeg, .jpg, .odt, .pdf, .png, .txt files can be attached")  # fmt: skip


# --- a retried run: --idempotency-key ---------------------------------------------------------

KEY = "hillside-cp-file-2026-11-20-1"


@network
@subprocess
async def test_a_retried_run_with_the_same_key_is_sent_once(
    schools: Deployment, tmp_path: Path
) -> None:
    """Two runs with one --idempotency-key get the same answer; the node holds one item."""
    record = tmp_path / "cp-file.json"
    write_cp_record(record)
    write_pdf(tmp_path / "chronology.pdf", 20_000)
    argv = [*send_argv(record, tmp_path / "chronology.pdf"), "--idempotency-key", KEY, "--json"]
    env = staff_env(schools, SCHOOL)
    first = await exchange(*argv, env=env)
    assert first.status == 0, first
    again = await exchange(*argv, env=env)
    assert again.status == 0, again
    assert json.loads(again.out) == json.loads(first.out)
    listed = await exchange("sent", "--json", env=env)
    digests = [item["digest"] for item in json.loads(listed.out)["items"]]
    assert digests == [json.loads(first.out)["digest"]]

    # The same key with another record is refused by the node, and sends nothing.
    write_cp_record(record, titles=("Chronology of concerns",))
    line = refused(await exchange(*argv, env=env), 1, "the node refused: ")
    assert "Idempotency-Key" in line
    listed = await exchange("sent", "--json", env=env)
    assert len(json.loads(listed.out)["items"]) == 1


@network
@subprocess
async def test_a_failed_run_names_the_key_to_retry_with(tmp_path: Path) -> None:
    """Without --idempotency-key, a node that cannot be reached is named with the run's key."""
    record = tmp_path / "cp-file.json"
    write_cp_record(record)
    write_pdf(tmp_path / "chronology.pdf", 1_000)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"https://127.0.0.1:{sock.getsockname()[1]}"
    env = {**base_env(), "EXCHANGE_TOKEN": "synthetic-token-0123456789abcdef"}
    argv = [*send_argv(record, tmp_path / "chronology.pdf"), "--node", dead]
    line = refused(await exchange(*argv, env=env), 1, f"could not connect to {dead}")
    key = line.split("--idempotency-key ", 1)[1].split()[0]
    assert len(key) == 36  # a UUID, which the next run can give
    line = refused(await exchange(*argv, "--idempotency-key", key, env=env), 1, dead)
    assert "--idempotency-key" not in line


@pytest.mark.parametrize(
    "key",
    ["", "two words", "x" * 129, "caf\u00e9", "tab\there", "line\nbreak"],
    ids=["empty", "space", "too-long", "not-ascii", "tab", "newline"],
)
def test_a_malformed_key_is_a_usage_error(key: str, tmp_path: Path) -> None:
    """A key the node would refuse is refused first, in one line, exit status 2."""
    record = tmp_path / "cp-file.json"
    write_cp_record(record)
    result = run(*send_argv(record), "--idempotency-key", key, "--node", "https://127.0.0.1:1")
    line = assert_refused(result, 2, "--idempotency-key", "1 to 128 visible ASCII characters")
    assert result.out == b""
    assert line.count("\n") == 0


# --- asking again: a node briefly unavailable -----------------------------------------------


@pytest.fixture
async def busy_node() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Run a plain-HTTP stand-in that answers 503 (Retry-After: 0) once, then 202."""
    seen: list[dict[str, Any]] = []

    async def submit(request: web.Request) -> web.Response:
        raw = await request.read()
        seen.append(
            {"key": request.headers.get("Idempotency-Key"), "body": raw,
             "type": request.headers["Content-Type"]}
        )  # fmt: skip
        if len(seen) % 2 == 1:
            return web.json_response({"error": {"status": 503, "message": "busy"}}, status=503,
                                     headers={"Retry-After": "0"})  # fmt: skip
        answer = {"envelope_id": "ab" * 16, "digest": "cd" * 32, "lawful_basis": None,
                  "deadline": None}  # fmt: skip
        return web.json_response(answer, status=202)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/api/v1/envelopes", submit)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


@network
@subprocess
async def test_a_503_is_asked_again_with_the_same_key_and_body(
    busy_node: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """The retry repeats the key and the bytes; a second run makes a new key."""
    base, seen = busy_node
    record = tmp_path / "cp-file.json"
    write_cp_record(record)
    data = write_pdf(tmp_path / "chronology.pdf", READ_SIZE * 2 + 1)
    env = {**base_env(), "EXCHANGE_TOKEN": "synthetic-token-0123456789abcdef"}
    argv = [*send_argv(record, tmp_path / "chronology.pdf"), "--node", base, "--allow-http"]
    for _ in range(2):
        ran = await exchange(*argv, "--json", env=env)
        assert ran.status == 0, ran
        assert json.loads(ran.out)["digest"] == "cd" * 32
    assert len(seen) == 4
    assert seen[0] == seen[1]
    assert seen[2] == seen[3]
    assert seen[0]["key"] != seen[2]["key"]
    assert seen[0]["body"] == seen[2]["body"]
    _, files = parse_submission(seen[0]["type"], seen[0]["body"])
    assert files == [("chronology.pdf", "application/pdf", data)]


# --- the parts, without a node --------------------------------------------------------------


def test_the_streamed_body_is_the_multipart_body_the_api_expects(tmp_path: Path) -> None:
    """Pieces join into the documented multipart body, of exactly the announced length."""
    sizes = [1, 2, 3, READ_SIZE, READ_SIZE + 1, 2 * READ_SIZE + 2]
    parts = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"doc {i} \u00e9.pdf"
        path.write_bytes(os.urandom(size))
        parts.append(FilePart.of(str(path), "application/pdf"))
    fields = {"recipients": ["urn:106124"], "record": {"note": "caf\u00e9 \u2603"}, "reason": "x"}
    upload = Upload(fields, parts)
    body = b"".join(upload.pieces())
    assert len(body) == upload.length
    assert body == b"".join(upload.pieces())  # the same bytes every time
    doc, files = parse_submission(upload.content_type, body)
    assert doc == fields
    assert [name for name, _, _ in files] == [p.name for p in parts]
    for part, (_, content_type, data) in zip(parts, files, strict=True):
        assert content_type == "application/pdf"
        assert data == part.path.read_bytes()
    bare = Upload(fields, [])
    assert bare.content_type == "application/json"
    assert json.loads(b"".join(bare.pieces())) == fields
    assert bare.length == len(b"".join(bare.pieces()))


def test_a_file_that_changes_size_is_refused(tmp_path: Path) -> None:
    """A document that grew after it was checked stops the upload with a sentence."""
    path = tmp_path / "notes.pdf"
    path.write_bytes(b"x" * 10)
    upload = Upload({"reason": "x"}, [FilePart.of(str(path), "application/pdf")])
    path.write_bytes(b"x" * 11)
    with pytest.raises(Exception, match="changed size while it was being sent"):
        b"".join(upload.pieces())


def test_the_progress_bar_shows_only_on_a_terminal() -> None:
    """Nothing is written to a pipe; a terminal gets one line that ends at 100%."""
    piped = io.StringIO()
    bar = Progress("sending", 2 * MB, stream=piped)
    bar.advance(MB)
    bar.finish()
    assert piped.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown = Terminal()
    bar = Progress("sending", 2 * MB, stream=shown, clock=iter(range(100)).__next__)
    bar.advance(MB)
    bar.advance(MB)
    bar.finish()
    assert shown.getvalue().endswith("sending 100% [########################] 2.0 of 2.0 MB\n")
    assert "\rsending  50% [############            ] 1.0 of 2.0 MB" in shown.getvalue()


def test_no_option_takes_a_token() -> None:
    """Every staff command has no option that keeps a token: --token is refused unrepeated."""
    secret = "synthetic-secret-token-0123456789"  # noqa: S105 - a test value
    parser = build_parser()
    commands = [["send"], ["inbox", "list"], ["inbox", "open"], ["inbox", "acknowledge"],
                ["inbox", "reject"]]  # fmt: skip
    sub = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for words in commands:
        command = sub[words[0]]
        if len(words) > 1:
            command = command._subparsers._group_actions[0].choices[words[1]]  # type: ignore[union-attr]
        tokenish = {
            s: a for a in command._actions for s in a.option_strings if "token" in s.lower()
        }
        assert set(tokenish) == {"--token", "--token-env", "--token-file", "--token-stdin"}
        assert isinstance(tokenish["--token"], RefuseToken)
        assert tokenish["--token-stdin"].nargs == 0
        with pytest.raises(UsageError) as refusal:
            parser.parse_args([*words, "--token", secret])
        assert secret not in str(refusal.value)


def test_token_file_mode_is_checked_before_reading(tmp_path: Path) -> None:
    """A group-readable token file is refused on POSIX whatever it holds."""
    if sys.platform == "win32":  # pragma: no cover - Windows has no mode bits to check
        pytest.skip("Windows has no group and other permission bits")
    from exchange.cli.errors import CliError
    from exchange.cli.staff_options import _token_from_file

    path = tmp_path / "token"
    path.write_text("synthetic-token-0123456789abcdef\n")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP)
    with pytest.raises(CliError, match="other users"):
        _token_from_file(str(path))
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert _token_from_file(str(path)) == "synthetic-token-0123456789abcdef"


def test_a_file_over_the_formats_ceiling_is_refused_before_sending(tmp_path: Path) -> None:
    """Over 1 GiB for one file is refused by the command; up to it, the node decides."""
    scan = tmp_path / "scan.pdf"
    with scan.open("wb") as handle:  # sparse: no gigabyte is written
        handle.truncate(MAX_ATTACHMENT_SIZE)
    assert attachment_parts([str(scan)])[0].size == MAX_ATTACHMENT_SIZE
    with scan.open("r+b") as handle:
        handle.truncate(MAX_ATTACHMENT_SIZE + 1)
    with pytest.raises(CliError, match=r"larger than the records format allows .*1,073,741,824"):
        attachment_parts([str(scan)])
