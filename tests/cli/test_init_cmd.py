"""``exchange init``: a node folder that passes ``exchange config check`` with its directory."""

from __future__ import annotations

import asyncio
import io
import stat
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from exchange.auth.passwords import verify_password
from exchange.cli.main import main
from exchange.node import init_folder
from exchange.node.tls_material import make_test_ca, names_host
from exchange.store import SqliteStore
from tests.cli.conftest import PASSPHRASE, T0, assert_refused, run
from tests.node_folder import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    LA,
    LEDGER_PASSPHRASE,
    OAK,
    init,
    init_argv,
    make_authority,
    place_directory,
    set_passphrases,
    sign_directory,
)

NOW = datetime.fromtimestamp(T0, UTC)


@pytest.fixture
def trust(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return the authority's verifier key file, with every passphrase in the environment."""
    set_passphrases(monkeypatch)
    return make_authority(isolated)


def _check(folder: Path) -> tuple[int, list[str]]:
    result = run("config", "check", "--config", str(folder / "node.toml"))
    return result.status, result.err_lines


def _sign_and_place(work: Path, folder: Path) -> None:
    place_directory(folder, sign_directory(work, *sorted(folder.glob("*.pub.json"))))


def _nothing_left(work: Path, before: set[str]) -> None:
    """Check the folder holds what it held before: no node folder, no temporary sibling."""
    assert {p.name for p in work.iterdir()} == before


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_test_ca_node_is_ready_once_the_directory_arrives(isolated: Path, trust: Path) -> None:
    """Before the directory: one line saying so. With it: the check passes."""
    made = init(isolated / "oak", trust)
    assert made.status == 0, made
    status, lines = _check(isolated / "oak")
    assert status == 1
    assert len(lines) == 1, lines
    assert "directory/directory.note does not exist yet" in lines[0]
    assert "directory authority signs" in lines[0]
    _sign_and_place(isolated, isolated / "oak")
    status, lines = _check(isolated / "oak")
    assert status == 0, lines
    assert "configuration is ready: 1 organisations" in lines[0]
    assert "TLS" in lines[0]


@pytest.mark.usefixtures("isolated")
def test_the_next_steps_and_no_secret(trust: Path) -> None:
    """The steps name the public entry, the directory file, the check and serve; no secret."""
    made = init(Path("oak"), trust)
    text = made.text
    assert "Send oak/urn-106123.pub.json, the public entry of Oak Primary School" in text
    assert "put it at oak/directory/directory.note" in text
    assert "exchange config check --config oak/node.toml" in text
    assert "exchange serve --config oak/node.toml" in text
    assert "oak/tls/ca.pem" in text
    for secret in (PASSPHRASE, LEDGER_PASSPHRASE, ADMIN_PASSWORD):
        assert secret not in made.text + made.err


def test_modes_of_files_and_folders(isolated: Path, trust: Path) -> None:
    """Folders holding secrets are 0700, key files 0600, public files 0644."""
    assert init(isolated / "oak", trust).status == 0
    oak = isolated / "oak"
    for folder in ("", "keys", "tls", "data"):
        assert _mode(oak / folder) == 0o700, folder
    assert _mode(oak / "directory") == 0o755
    for secret in ("keys/urn-106123.key", "keys/ledger.key", "tls/server.key"):
        assert _mode(oak / secret) == 0o600, secret
    for public in ("node.toml", "urn-106123.pub.json", "tls/server.crt", "tls/ca.pem",
                   "tls/peers-ca.pem", "directory/authority.vkey"):  # fmt: skip
        assert _mode(oak / public) == 0o644, public


def test_the_first_administrator_can_sign_in(isolated: Path, trust: Path) -> None:
    """The account holds the password read from stdin (as a hash) and the admin role."""
    assert init(isolated / "oak", trust).status == 0

    async def account() -> tuple[str, str, str]:
        store = await SqliteStore.open(isolated / "oak" / "data")
        try:
            found = await store.account_by_email(ADMIN_EMAIL)
        finally:
            await store.close()
        assert found is not None
        return found.user.role, found.user.org, found.password_hash

    role, org, hashed = asyncio.run(account())
    assert (role, org) == ("admin", "urn:106123")
    verify_password(ADMIN_PASSWORD, hashed)


def test_several_tenants(isolated: Path, trust: Path) -> None:
    """Each organisation gets its keys and public entry; the check passes with both listed."""
    made = init(isolated / "host", trust, orgs=(LA, ("ods:X26ABC", "School nursing", "nhs")),
                public_url="https://exchange.la.example")  # fmt: skip
    assert made.status == 0, made
    host = isolated / "host"
    assert {p.name for p in host.glob("*.pub.json")} == {"la-356.pub.json", "ods-X26ABC.pub.json"}
    config = tomllib.loads((host / "node.toml").read_text())
    assert [t["org"] for t in config["tenants"]] == ["la:356", "ods:X26ABC"]
    assert config["node"]["listen"] == "0.0.0.0:8443"
    _sign_and_place(isolated, host)
    status, lines = _check(host)
    assert status == 0, lines
    assert "2 organisations, 2 key files" in lines[0]


def _pair(host: str) -> tuple[bytes, bytes]:
    made = make_test_ca(host, NOW)
    return made.cert_pem, made.key_pem


def test_an_existing_certificate_and_key(isolated: Path, trust: Path) -> None:
    """A pair naming the host is copied in (the key 0600) and the check passes."""
    cert, key = _pair("localhost")
    (isolated / "given.crt").write_bytes(cert)
    (isolated / "given.key").write_bytes(key)
    made = init(isolated / "oak", trust, tls=("--tls-cert", "given.crt", "--tls-key", "given.key"))
    assert made.status == 0, made
    oak = isolated / "oak"
    assert (oak / "tls" / "server.crt").read_bytes() == cert
    assert (oak / "tls" / "server.key").read_bytes() == key
    assert _mode(oak / "tls" / "server.key") == 0o600
    assert "ca" not in tomllib.loads((oak / "node.toml").read_text())["tls"]
    _sign_and_place(isolated, oak)
    assert _check(oak)[0] == 0


def _sign_request(request_pem: bytes) -> bytes:
    """Sign a certificate request as an organisation's CA would."""
    request = x509.load_pem_x509_csr(request_pem)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "An organisation CA")])
    san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    cert = (
        x509.CertificateBuilder().subject_name(request.subject).issuer_name(name)
        .public_key(request.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW).not_valid_after(NOW + timedelta(days=90))
        .add_extension(san.value, critical=False).sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM)


def test_a_certificate_signing_request(isolated: Path, trust: Path) -> None:
    """A key and a request for the host; the check names the missing certificate until it comes."""
    made = init(Path("oak"), trust, tls=("--tls", "csr"),
                public_url="https://exchange.oak.example:8443")  # fmt: skip
    assert made.status == 0, made
    oak = isolated / "oak"
    assert "Have oak/tls/server.csr signed" in made.text
    request = x509.load_pem_x509_csr((oak / "tls" / "server.csr").read_bytes())
    names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["exchange.oak.example"]
    assert _mode(oak / "tls" / "server.key") == 0o600
    _sign_and_place(isolated, oak)
    status, lines = _check(oak)
    assert status == 1
    missing = f"tls.cert: {oak / 'tls/server.crt'} does not exist"
    assert lines == [f"exchange: config {oak / 'node.toml'}: {missing}"]
    (oak / "tls" / "server.crt").write_bytes(_sign_request((oak / "tls/server.csr").read_bytes()))
    assert _check(oak)[0] == 0


def test_the_test_ca_names_the_host(isolated: Path, trust: Path) -> None:
    """The server certificate names the host and is signed by the CA file peers are given."""
    assert init(isolated / "oak", trust, public_url="https://10.0.0.7:8443").status == 0
    tls = isolated / "oak" / "tls"
    cert = x509.load_pem_x509_certificate((tls / "server.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((tls / "ca.pem").read_bytes())
    assert names_host(cert, "10.0.0.7")
    assert not names_host(cert, "10.0.0.8")
    cert.verify_directly_issued_by(ca)
    assert (tls / "peers-ca.pem").read_bytes() == (tls / "ca.pem").read_bytes()


def test_behind_a_proxy_the_config_says_so(isolated: Path, trust: Path) -> None:
    """``--tls proxy`` writes server.behind_proxy and no [tls] table, and listens on loopback."""
    assert init(isolated / "oak", trust, tls=("--tls", "proxy")).status == 0
    config = tomllib.loads((isolated / "oak" / "node.toml").read_text())
    assert config["server"] == {"behind_proxy": True}
    assert "tls" not in config
    assert config["node"]["listen"] == "127.0.0.1:8080"
    assert not (isolated / "oak" / "tls").exists() or not any((isolated / "oak" / "tls").iterdir())


def test_behind_a_proxy_the_check_passes(isolated: Path, trust: Path) -> None:
    """Once the parser knows server.behind_proxy, a proxied node passes the check."""
    assert init(isolated / "oak", trust, tls=("--tls", "proxy")).status == 0
    _sign_and_place(isolated, isolated / "oak")
    assert _check(isolated / "oak")[0] == 0


def test_ops_listen_writes_the_ops_table(isolated: Path, trust: Path) -> None:
    """Without --ops-listen the [ops] table is a comment (its default); with it, a table."""
    assert init(isolated / "a", trust).status == 0
    assert "ops" not in tomllib.loads((isolated / "a" / "node.toml").read_text())
    assert init(isolated / "b", trust, "--ops-listen", "127.0.0.1:0").status == 0
    config = tomllib.loads((isolated / "b" / "node.toml").read_text())
    assert config["ops"] == {"listen": "127.0.0.1:0"}


def test_a_directory_url_node_waits_for_its_listing(isolated: Path, trust: Path) -> None:
    """With --directory-url, a directory that does not list the node yet is a note only."""
    ca = isolated / "directory-ca.pem"
    ca.write_bytes(make_test_ca("directory.example", NOW).ca_pem)
    url = "https://directory.example/directory.note"
    made = init(
        isolated / "la", trust, "--directory-url", url, "--directory-ca", str(ca), orgs=(LA,)
    )
    assert made.status == 0, made
    table = tomllib.loads((isolated / "la" / "node.toml").read_text())["directory"]
    assert (table["url"], table["ca"]) == (url, "directory/ca.pem")
    assert (isolated / "la" / "directory" / "ca.pem").read_bytes() == ca.read_bytes()
    # The authority's first version lists another organisation only (Oak's).
    assert init(isolated / "oak", trust).status == 0
    _sign_and_place(isolated, isolated / "oak")
    place_directory(isolated / "la", isolated / "directory-v1.note")
    status, lines = _check(isolated / "la")
    assert status == 0, lines
    assert "directory version 1 does not list la:356 yet" in lines[0]
    assert "configuration is ready" in lines[-1]


def test_a_directory_url_must_be_https_and_its_ca_needs_it(isolated: Path, trust: Path) -> None:
    """Plain HTTP is refused, and so is --directory-ca alone; nothing is written."""
    before = {p.name for p in isolated.iterdir()}
    assert_refused(init(isolated / "oak", trust, "--directory-url", "http://d.example/n"), 2,
                   "--directory-url")  # fmt: skip
    ca = isolated / "ca.pem"
    ca.write_bytes(make_test_ca("d.example", NOW).ca_pem)
    before.add("ca.pem")
    assert_refused(init(isolated / "oak", trust, "--directory-ca", str(ca)), 2, "--directory-url")
    _nothing_left(isolated, before)


def test_an_existing_empty_folder_is_used(isolated: Path, trust: Path) -> None:
    """An empty folder is filled in place (no temporary folder is left beside it)."""
    (isolated / "oak").mkdir()
    before = {p.name for p in isolated.iterdir()}
    assert init(isolated / "oak", trust).status == 0
    assert {p.name for p in isolated.iterdir()} == before
    assert (isolated / "oak" / "node.toml").is_file()


def test_a_folder_that_is_not_empty_is_refused(isolated: Path, trust: Path) -> None:
    """Nothing is changed in it or beside it."""
    (isolated / "oak").mkdir()
    (isolated / "oak" / "notes.txt").write_text("mine")
    before = {p.name for p in isolated.iterdir()}
    assert_refused(init(isolated / "oak", trust), 1, "is not empty")
    _nothing_left(isolated, before)
    assert [p.name for p in (isolated / "oak").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    ("change", "status", "named"),
    [
        ({"orgs": (("URN:1", "Oak", "school"),)}, 2, "--org"),
        ({"orgs": (("urn:106123", "Oak", "academy"),)}, 2, "--kind"),
        ({"public_url": "http://oak.example"}, 2, "--public-url"),
        ({"public_url": "https://oak.example/exchange"}, 2, "--public-url"),
        ({"orgs": (OAK, OAK)}, 2, "different organisation"),
    ],
    ids=["org id", "kind", "plain http", "path", "same org twice"],
)
def test_bad_options_write_nothing(
    isolated: Path, trust: Path, change: dict[str, object], status: int, named: str
) -> None:
    """A bad value is one line naming the option, and nothing is written."""
    before = {p.name for p in isolated.iterdir()}
    assert_refused(init(isolated / "oak", trust, **change), status, named)
    _nothing_left(isolated, before)


def test_a_certificate_and_key_that_are_not_a_pair(isolated: Path, trust: Path) -> None:
    """The certificate of one pair with the key of another is refused; nothing is written."""
    (isolated / "a.crt").write_bytes(_pair("localhost")[0])
    (isolated / "b.key").write_bytes(_pair("localhost")[1])
    before = {p.name for p in isolated.iterdir()}
    result = init(isolated / "oak", trust, tls=("--tls-cert", "a.crt", "--tls-key", "b.key"))
    assert_refused(result, 1, "--tls-cert and --tls-key are not a pair")
    _nothing_left(isolated, before)


def test_a_certificate_for_another_host(isolated: Path, trust: Path) -> None:
    """A pair that does not name the public_url's host is refused, naming the host."""
    cert, key = _pair("elsewhere.example")
    (isolated / "c.crt").write_bytes(cert)
    (isolated / "c.key").write_bytes(key)
    result = init(isolated / "oak", trust, tls=("--tls-cert", "c.crt", "--tls-key", "c.key"))
    assert_refused(result, 1, "does not name localhost")
    assert not (isolated / "oak").exists()


def test_without_a_terminal_nothing_is_asked(isolated: Path, trust: Path) -> None:
    """A missing option is a usage error naming it; a missing passphrase likewise."""
    before = {p.name for p in isolated.iterdir()}
    assert_refused(init(isolated / "oak", trust, tls=()), 2, "--tls")
    result = run("init", "oak", "--trust", str(trust))
    assert_refused(result, 2, "--public-url is missing")
    _nothing_left(isolated, before)


def test_a_missing_passphrase_is_refused(
    isolated: Path, trust: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ledger passphrase in the environment and no terminal: refused, nothing written."""
    monkeypatch.delenv("EXCHANGE_LEDGER_PASSPHRASE")
    before = {p.name for p in isolated.iterdir()}
    assert_refused(init(isolated / "oak", trust), 2, "EXCHANGE_LEDGER_PASSPHRASE")
    _nothing_left(isolated, before)


def test_a_weak_initial_password_is_refused(isolated: Path, trust: Path) -> None:
    """The password rules apply before anything is made."""
    before = {p.name for p in isolated.iterdir()}
    result = run(*init_argv(isolated / "oak", trust), stdin=b"short\n")
    assert_refused(result, 1, "12 characters")
    _nothing_left(isolated, before)


def test_a_failure_part_way_leaves_nothing(
    isolated: Path, trust: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If making the folder fails after keys were written, the temporary folder goes too."""

    def broken(*_: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(init_folder, "render_config", broken)
    before = {p.name for p in isolated.iterdir()}
    result = init(isolated / "oak", trust)
    assert result.status == 1
    _nothing_left(isolated, before)


class _Terminal(io.StringIO):
    """Standard input that says it is a terminal, holding the answers typed."""

    def isatty(self) -> bool:
        return True


def test_in_a_terminal_what_is_missing_is_asked(
    isolated: Path, trust: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each missing value is asked for (a bad answer again); secrets are read without echo."""
    monkeypatch.delenv("EXCHANGE_PASSPHRASE")
    monkeypatch.delenv("EXCHANGE_LEDGER_PASSPHRASE")
    answers = [
        "http://oak.example",  # refused: not https, asked again
        "https://localhost:8443",
        "urn:106123", "Oak Primary School", "school", "n",
        str(trust), "3", ADMIN_EMAIL, "Oak Administrator",
    ]  # fmt: skip
    monkeypatch.setattr("sys.stdin", _Terminal("\n".join(answers) + "\n"))
    hidden = iter([PASSPHRASE, PASSPHRASE, LEDGER_PASSPHRASE, LEDGER_PASSPHRASE, ADMIN_PASSWORD])
    prompts: list[str] = []

    def getpass(prompt: str) -> str:
        prompts.append(prompt)
        return next(hidden)

    monkeypatch.setattr("getpass.getpass", getpass)
    assert main(["init", "oak", "--kdf-profile", "test"]) == 0
    err = capsys.readouterr().err
    assert "--public-url must be an https address" in err
    assert len(prompts) == 5
    monkeypatch.setenv("EXCHANGE_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("EXCHANGE_LEDGER_PASSPHRASE", LEDGER_PASSPHRASE)
    _sign_and_place(isolated, isolated / "oak")
    assert _check(isolated / "oak")[0] == 0


def test_peers_ca_is_trusted_beside_the_test_ca(isolated: Path, trust: Path) -> None:
    """``--peers-ca`` certificates follow the node's own test CA in tls/peers-ca.pem."""
    other = make_test_ca("la.example", NOW).ca_pem
    assert other is not None
    (isolated / "la-ca.pem").write_bytes(other)
    assert init(isolated / "oak", trust, "--peers-ca", "la-ca.pem").status == 0
    tls = isolated / "oak" / "tls"
    assert (tls / "peers-ca.pem").read_bytes() == (tls / "ca.pem").read_bytes() + other
    before = {p.name for p in isolated.iterdir()}
    result = init(isolated / "proxied", trust, "--peers-ca", "la-ca.pem", tls=("--tls", "proxy"))
    assert_refused(result, 2, "--peers-ca")
    (isolated / "junk.pem").write_text("not a certificate")
    assert_refused(init(isolated / "junk", trust, "--peers-ca", "junk.pem"), 1, "--peers-ca")
    _nothing_left(isolated, before | {"junk.pem"})
