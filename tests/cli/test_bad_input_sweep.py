"""Every command added for running a node, given bad input: one plain line, nothing changed.

The commands are ``init``, ``config check``, ``directory add-org|set-routes|add-key|
revoke-key|publish|refresh``, ``backup create|verify|restore``, ``subject-access`` (and its
``export``), ``send`` and ``inbox``. Each file they read is given, in turn, as a path that
does not exist, a folder, a file nobody may read, random bytes, a 64 MiB file and an empty
file; each output as a file or folder that is in the way; each standard input as nothing and
as random bytes. Every run must end with exactly one ``exchange: `` line on standard error,
exit status 1 (2 where the command line itself is wrong), no traceback, no passphrase or
token, and no file of the deployment created, changed or removed. The staff commands are
pointed at an address nothing listens on, and these tests may not open sockets: a refusal
that waited for the node would fail here. Run as processes: Ctrl-C while a command waits
for its input or is still loading, and standard output closed (``| head -0``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from exchange.records import MAX_ATTACHMENT_SIZE
from tests.cli.conftest import (
    AUTHORITY_PASSPHRASE,
    PASSPHRASE,
    T0,
    Result,
    assert_refused,
    run,
)
from tests.node_folder import LEDGER_PASSPHRASE, ready_node_folder, set_passphrases

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "synthetic-token-for-the-sweep-0123456789"  # noqa: S105 - a test value
#: An address nothing listens on: a staff command must refuse before it is contacted.
DEAD_NODE = "https://127.0.0.1:1"
HUGE = 64 * 1024 * 1024
SECRETS = (PASSPHRASE, AUTHORITY_PASSPHRASE, LEDGER_PASSPHRASE, TOKEN)
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass(frozen=True)
class Deployment:
    """A node folder made by ``exchange init``, its authority, and a backup of the node."""

    root: Path
    config: Path
    authority: Path
    note: Path
    entry: Path
    vkey: Path
    backup: Path

    def fill(self, text: str, bad: Path) -> str:
        """Return ``text`` with its placeholders replaced."""
        return text.format(
            bad=bad, config=self.config, authority=self.authority, note=self.note,
            entry=self.entry, vkey=self.vkey, backup=self.backup, node=DEAD_NODE,
        )  # fmt: skip


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    """Make the deployment once for the module (``exchange init`` is not instant)."""
    root = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("EXCHANGE_STATE_DIR", str(root / "state"))
        monkeypatch.setenv("EXCHANGE_NOW", str(T0))
        node = ready_node_folder(
            root, monkeypatch, "--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0"
        )
        backup = root / "backup"
        made = run("backup", "create", "--config", str(node.config), "--out", str(backup))
        assert made.status == 0, made
    return Deployment(
        root=root,
        config=node.config,
        authority=node.authority / "authority.key",
        note=node.folder / "directory" / "directory.note",
        entry=sorted(node.folder.glob("*.pub.json"))[0],
        vkey=node.authority / "authority.key.vkey",
        backup=backup,
    )


@pytest.fixture(autouse=True)
def environment(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give every run the passphrases and a token, as a real operator's shell would."""
    set_passphrases(monkeypatch)
    monkeypatch.setenv("EXCHANGE_TOKEN", TOKEN)
    return isolated


def snapshot(*folders: Path) -> dict[str, tuple[int, int, int]]:
    """Return every path under ``folders`` with its size, mode and modification time."""
    found = {}
    for folder in folders:
        for path in [folder, *folder.rglob("*")]:
            facts = path.lstat()
            found[str(path)] = (facts.st_size, facts.st_mode, facts.st_mtime_ns)
    return found


def refused_cleanly(result: Result, status: int, *fragments: str) -> str:
    """Check one plain line with ``status``, naming ``fragments``, with no secret in it."""
    line = assert_refused(result, status, *fragments)
    assert "internal error" not in line
    for secret in SECRETS:
        assert secret not in result.err
        assert secret.encode() not in result.out
    return line


# --- the bad files -------------------------------------------------------------------------

BAD_FILES = ("missing", "folder", "unreadable", "garbage", "huge", "empty")


def make_bad(kind: str, where: Path, suffix: str = "") -> Path:
    """Make the bad input ``kind`` in ``where``; return its path."""
    path = where / f"{kind}{suffix}"
    if kind == "folder":
        path.mkdir()
    elif kind == "garbage":
        path.write_bytes(random.Random(12).randbytes(4096))
    elif kind == "huge":
        with path.open("wb") as sparse:
            sparse.truncate(HUGE)
    elif kind in {"empty", "unreadable"}:
        path.write_bytes(b"" if kind == "empty" else b"{}\n")
    if kind == "unreadable":
        path.chmod(0)
    elif path.is_file():
        path.chmod(0o600)  # a token file must be private to be read at all
    return path


#: A command and the option whose file is bad (``{bad}``); the kinds of bad file that are a
#: command-line mistake (status 2) rather than a refused input; the file name's ending.
FILE_CASES: dict[str, tuple[list[str], frozenset[str], str]] = {
    "config check --config": (["config", "check", "--config", "{bad}"], frozenset(), ""),
    "directory refresh --config": (["directory", "refresh", "--config", "{bad}"], frozenset(), ""),
    "backup create --config": (
        ["backup", "create", "--config", "{bad}", "--out", "new-backup"], frozenset(), ""
    ),
    "backup verify": (["backup", "verify", "{bad}"], frozenset(), ""),
    "backup restore BACKUP": (
        ["backup", "restore", "--config", "{config}", "{bad}"], frozenset(), ""
    ),
    "backup restore --register-key": (
        ["backup", "restore", "--config", "{config}", "--register-key", "{bad}", "{backup}"],
        frozenset(), "",
    ),
    "subject-access export --config": (
        ["subject-access", "export", "--config", "{bad}", "--out", "sar"], frozenset(), ""
    ),
    "directory add-org --authority": (
        ["directory", "add-org", "--authority", "{bad}", "--from", "{note}", "--out", "v2.note",
         "--entry", "{entry}"], frozenset(), "",
    ),
    "directory add-org --from": (
        ["directory", "add-org", "--authority", "{authority}", "--from", "{bad}", "--out",
         "v2.note", "--entry", "{entry}"], frozenset(), "",
    ),
    "directory add-org --entry": (
        ["directory", "add-org", "--authority", "{authority}", "--from", "{note}", "--out",
         "v2.note", "--entry", "{bad}"], frozenset(), "",
    ),
    "directory add-key --entry": (
        ["directory", "add-key", "--authority", "{authority}", "--from", "{note}", "--out",
         "v2.note", "--entry", "{bad}"], frozenset(), "",
    ),
    "directory set-routes --from": (
        ["directory", "set-routes", "--authority", "{authority}", "--from", "{bad}", "--out",
         "v2.note", "--org", "urn:106123", "--route", "https=https://oak.example"],
        frozenset(), "",
    ),
    "directory revoke-key --from": (
        ["directory", "revoke-key", "--authority", "{authority}", "--from", "{bad}", "--out",
         "v2.note", "--key-id", "ab" * 32], frozenset(), "",
    ),
    "directory publish --in": (
        ["directory", "publish", "--in", "{bad}", "--to", "published", "--trust", "{vkey}"],
        frozenset(), "",
    ),
    # --trust takes a verifier key or a file: a name that is no file is a wrong argument.
    "directory publish --trust": (
        ["directory", "publish", "--in", "{note}", "--to", "published", "--trust", "{bad}"],
        frozenset({"missing", "folder", "unreadable"}), "",
    ),
    "init --trust": (
        ["init", "new-node", "--public-url", "https://localhost:8443", "--org", "urn:106124",
         "--name", "Moorside Academy", "--kind", "school", "--trust", "{bad}", "--tls",
         "test-ca", "--admin-email", "head@moorside.example", "--admin-name", "Head",
         "--admin-password-stdin", "--kdf-profile", "test"],
        frozenset({"missing", "folder", "unreadable"}), "",
    ),
    "init --tls-cert": (
        ["init", "new-node", "--public-url", "https://localhost:8443", "--org", "urn:106124",
         "--name", "Moorside Academy", "--kind", "school", "--trust", "{vkey}", "--tls-cert",
         "{bad}", "--tls-key", "{bad}", "--admin-email", "head@moorside.example",
         "--admin-name", "Head", "--admin-password-stdin", "--kdf-profile", "test"],
        frozenset(), "",
    ),
    "send --record": (
        ["send", "--kind", "referral", "--to", "la:356", "--record", "{bad}", "--purpose",
         "safeguarding-referral", "--category", "identity", "--reason", "A concern.",
         "--node", "{node}"], frozenset(), "",
    ),
    "send --attach": (
        ["send", "--kind", "referral", "--to", "la:356", "--record", "record.json", "--attach",
         "{bad}", "--purpose", "safeguarding-referral", "--category", "identity", "--reason",
         "A concern.", "--node", "{node}"], frozenset(), ".pdf",
    ),
    "send --token-file": (
        ["send", "--kind", "referral", "--to", "la:356", "--record", "record.json",
         "--token-file", "{bad}", "--purpose", "safeguarding-referral", "--category",
         "identity", "--reason", "A concern.", "--node", "{node}"], frozenset(), "",
    ),
    "inbox list --token-file": (
        ["inbox", "list", "--token-file", "{bad}", "--node", "{node}"], frozenset(), ""
    ),
}  # fmt: skip


def _file_cases() -> list[tuple[str, str]]:
    """Return each (command, bad file) pair that applies here.

    Left out rather than skipped: an unreadable file when the tests run as root (root reads
    any file), and garbage bytes as an attachment (only the type by extension and the size
    are checked by the command; whether the bytes are a PDF is the node's to judge: it
    refuses and stores nothing, tests/node/test_register.py).
    """
    return [
        (case, kind)
        for case in sorted(FILE_CASES)
        for kind in BAD_FILES
        if not (kind == "unreadable" and IS_ROOT) and (case, kind) != ("send --attach", "garbage")
    ]


@pytest.mark.parametrize(("case", "kind"), _file_cases())
def test_a_bad_file(case: str, kind: str, deployment: Deployment, isolated: Path) -> None:
    """Each bad file is refused in one plain line, and nothing is created or changed."""
    argv, usage, suffix = FILE_CASES[case]
    (isolated / "record.json").write_text('{"kind": "referral"}\n')
    bad = make_bad(kind, isolated, suffix)
    if (case, kind) == ("send --attach", "huge"):
        # 64 MiB is a file the node may take: huge for an attachment is past the format's
        # ceiling, which the command refuses before it calls the node (sparse: no disk).
        with bad.open("r+b") as sparse:
            sparse.truncate(MAX_ATTACHMENT_SIZE + 1)
    before = snapshot(deployment.root, isolated)
    result = run(*(deployment.fill(arg, bad) for arg in argv))
    line = refused_cleanly(result, 2 if kind in usage else 1)
    # The line says which input was wrong: the file, or the option that named it.
    named = [bad.name, *(word for word in case.split() if word.startswith("--"))]
    assert any(name in line for name in named), line
    assert snapshot(deployment.root, isolated) == before


# --- outputs in the way ----------------------------------------------------------------------

OUT_CASES: dict[str, tuple[list[str], str]] = {
    "init into a file": (
        ["init", "a-file", "--public-url", "https://localhost:8443", "--org", "urn:106124",
         "--name", "Moorside Academy", "--kind", "school", "--trust", "{vkey}", "--tls",
         "test-ca", "--admin-email", "head@moorside.example", "--admin-name", "Head",
         "--admin-password-stdin", "--kdf-profile", "test"], "a-file",
    ),
    "init into a folder that holds files": (
        ["init", "a-folder", "--public-url", "https://localhost:8443", "--org", "urn:106124",
         "--name", "Moorside Academy", "--kind", "school", "--trust", "{vkey}", "--tls",
         "test-ca", "--admin-email", "head@moorside.example", "--admin-name", "Head",
         "--admin-password-stdin", "--kdf-profile", "test"], "a-folder",
    ),
    "backup create --out under a file": (
        ["backup", "create", "--config", "{config}", "--out", "a-file/backup"], "a-file"
    ),
    "backup create --out in a missing folder": (
        ["backup", "create", "--config", "{config}", "--out", "nowhere/backup"], "nowhere"
    ),
    "subject-access export --out a file": (
        ["subject-access", "export", "--config", "{config}", "--out", "a-file"], "a-file"
    ),
    "inbox open --out a file": (
        ["inbox", "open", "ab" * 32, "--out", "a-file", "--node", "{node}"], "a-file"
    ),
    "inbox open --out in a missing folder": (
        ["inbox", "open", "ab" * 32, "--out", "nowhere/opened", "--node", "{node}"], "nowhere"
    ),
    "inbox open --out that holds record.json": (
        ["inbox", "open", "ab" * 32, "--out", "a-folder", "--node", "{node}"], "a-folder"
    ),
    "directory add-org --out an existing file": (
        ["directory", "add-org", "--authority", "{authority}", "--from", "{note}", "--out",
         "a-file", "--entry", "{entry}"], "a-file",
    ),
    "directory publish --to a file": (
        ["directory", "publish", "--in", "{note}", "--to", "a-file", "--trust", "{vkey}"],
        "a-file",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(OUT_CASES))
def test_an_output_in_the_way(case: str, deployment: Deployment, isolated: Path) -> None:
    """A file or folder in the way is named, and left as it was."""
    (isolated / "a-file").write_text("kept as it is\n")
    (isolated / "a-folder").mkdir()
    (isolated / "a-folder" / "record.json").write_text("kept as it is\n")
    argv, named = OUT_CASES[case]
    before = snapshot(deployment.root, isolated)
    result = run(*(deployment.fill(arg, isolated) for arg in argv), stdin=b"a password to init\n")
    refused_cleanly(result, 1, named)
    assert snapshot(deployment.root, isolated) == before


# --- standard input: nothing, or random bytes ------------------------------------------------

#: Commands that read standard input (a record, a token, identifiers, a password).
STDIN_CASES: dict[str, list[str]] = {
    "send --record -": [
        "send", "--kind", "referral", "--to", "la:356", "--record", "-", "--purpose",
        "safeguarding-referral", "--category", "identity", "--reason", "A concern.",
        "--node", "{node}",
    ],
    "inbox list --token-stdin": ["inbox", "list", "--token-stdin", "--node", "{node}"],
    "subject-access (identifiers as JSON)": ["subject-access", "--config", "{config}"],
    "subject-access --upn -": ["subject-access", "--config", "{config}", "--upn", "-"],
    "init --admin-password-stdin": [
        "init", "new-node", "--public-url", "https://localhost:8443", "--org", "urn:106124",
        "--name", "Moorside Academy", "--kind", "school", "--trust", "{vkey}", "--tls",
        "test-ca", "--admin-email", "head@moorside.example", "--admin-name", "Head",
        "--admin-password-stdin", "--kdf-profile", "test",
    ],
}  # fmt: skip


@pytest.mark.parametrize("stdin", [b"", random.Random(7).randbytes(512)], ids=["empty", "garbage"])
@pytest.mark.parametrize("case", sorted(STDIN_CASES))
def test_bad_standard_input(
    case: str, stdin: bytes, deployment: Deployment, isolated: Path
) -> None:
    """Nothing, or bytes that are not text, on standard input: one line, nothing changed."""
    before = snapshot(deployment.root, isolated)
    result = run(*(deployment.fill(arg, isolated) for arg in STDIN_CASES[case]), stdin=stdin)
    # Nothing at all may be a usage error (a password or a token that must be given);
    # bytes that are not text are an input refused.
    assert result.status in ({1, 2} if not stdin else {1}), result
    line = refused_cleanly(result, result.status)
    named = "record -" if case == "send --record -" else "standard input"
    assert named in line or (not stdin and "--" in line), line
    assert snapshot(deployment.root, isolated) == before


# --- as processes: Ctrl-C, and standard output closed ----------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXCHANGE_")}
    env.update(
        PYTHONPATH=str(ROOT), EXCHANGE_PASSPHRASE=PASSPHRASE, EXCHANGE_TOKEN=TOKEN,
        EXCHANGE_LEDGER_PASSPHRASE=LEDGER_PASSPHRASE, EXCHANGE_NOW=str(T0),
        EXCHANGE_AUTHORITY_PASSPHRASE=AUTHORITY_PASSPHRASE,
    )  # fmt: skip
    return env


#: Starts ``exchange`` and delivers a real SIGINT the moment the commands begin to load.
INTERRUPT_WHILE_LOADING = (
    "import os, signal, sys\n"
    "class Interrupt:\n"
    "    def find_spec(self, name, path, target=None):\n"
    "        if name == 'exchange.cli.init_cmd':\n"
    "            os.kill(os.getpid(), signal.SIGINT)\n"
    "sys.meta_path.insert(0, Interrupt())\n"
    "from exchange.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.subprocess
@pytest.mark.parametrize("case", sorted(STDIN_CASES))
def test_ctrl_c_while_waiting_for_input(case: str, deployment: Deployment, isolated: Path) -> None:
    """Ctrl-C while a command waits on standard input: ``interrupted``, 130, nothing made."""
    argv = [deployment.fill(arg, isolated) for arg in STDIN_CASES[case]]
    before = snapshot(deployment.root, isolated)
    proc = subprocess.Popen(
        [sys.executable, "-m", "exchange.cli.main", *argv], cwd=isolated, env=_env(),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        # It waits for a line that never comes; the interrupt arrives once it is loaded.
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert (proc.returncode, err.decode(), out) == (130, "exchange: interrupted\n", b"")
    assert snapshot(deployment.root, isolated) == before


@pytest.mark.subprocess
def test_ctrl_c_while_the_commands_load(isolated: Path) -> None:
    """Ctrl-C before the commands have loaded is ``interrupted`` too, not a traceback."""
    ran = subprocess.run(
        [sys.executable, "-c", INTERRUPT_WHILE_LOADING, "config", "check", "--config", "x"],
        cwd=isolated, env=_env(), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert (ran.returncode, ran.stderr.decode(), ran.stdout) == (
        130,
        "exchange: interrupted\n",
        b"",
    )


CLOSED_CASES: dict[str, tuple[list[str], bytes]] = {
    "subject-access": (["subject-access", "--config", "{config}"], b'{"upn": "A123456789012"}'),
    "init": (STDIN_CASES["init --admin-password-stdin"], b"a password to init\n"),
    "directory publish": (
        ["directory", "publish", "--in", "{note}", "--to", "published", "--trust", "{vkey}"], b""
    ),
}  # fmt: skip


@pytest.mark.subprocess
@pytest.mark.parametrize("case", sorted(CLOSED_CASES))
def test_standard_output_closed(case: str, deployment: Deployment, isolated: Path) -> None:
    """``| head -0``: one line saying the output was closed, no traceback, exit 1."""
    argv, stdin = CLOSED_CASES[case]
    (isolated / "published").mkdir()
    reader, writer = os.pipe()
    os.close(reader)
    try:
        ran = subprocess.run(
            [sys.executable, "-m", "exchange.cli.main",
             *(deployment.fill(arg, isolated) for arg in argv)],
            cwd=isolated, env=_env(), input=stdin, stdout=writer, stderr=subprocess.PIPE,
            timeout=120, check=False,
        )  # fmt: skip
    finally:
        os.close(writer)
    err = ran.stderr.decode()
    assert "Traceback" not in err
    assert "Exception ignored" not in err
    errors = [line for line in err.splitlines() if line.startswith("exchange: ")]
    assert errors == ["exchange: the output was closed before everything was written"], err
    assert ran.returncode == 1
