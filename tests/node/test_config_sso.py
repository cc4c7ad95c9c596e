"""The ``[sso.<id>]`` settings: read back, refused with a sentence naming the setting."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from exchange.auth.sso_rules import RoleRule
from exchange.config import ConfigError, config_to_toml, load_config, parse_config
from exchange.config_sso import SsoConfigError, read_client_secret
from exchange.node.config_check import CheckReport, check_sso

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "node.example.toml"
ISSUER = 'issuer = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0"'
SECRET_LINE = 'client_secret_env = "EXCHANGE_ENTRA_SECRET"'  # noqa: S105 - a variable's name


def _with(old: str, new: str) -> str:
    text = EXAMPLE.read_text()
    assert old in text
    return text.replace(old, new, 1)


def test_the_example_provider_reads_back() -> None:
    config = load_config(EXAMPLE)
    (entra,) = config.sso
    assert (entra.id, entra.org, entra.label) == ("entra", "la:356", "Microsoft Entra ID")
    assert entra.client_secret_env == "EXCHANGE_ENTRA_SECRET"  # noqa: S105 - a name
    assert entra.roles == (
        RoleRule("dsl", group="22222222-2222-2222-2222-222222222222"),
        RoleRule("staff", email_domain="stockport.example"),
    )
    assert (entra.self_provisioning, entra.mfa_amr, entra.mfa_acr) == (False, ("mfa",), ())
    assert parse_config(config_to_toml(config), Path("/elsewhere")) == config


def test_defaults_and_a_secret_file_from_the_files_folder() -> None:
    text = _with(SECRET_LINE, 'client_secret_file = "secrets/entra"')
    for line in ("scopes = ", "groups_claim = ", "self_provisioning = ", "mfa_amr = "):
        text = "\n".join(t for t in text.splitlines() if not t.startswith(line))
    (entra,) = parse_config(text, Path("/etc/exchange")).sso
    assert entra.client_secret_file == "/etc/exchange/secrets/entra"  # noqa: S105 - a path
    assert (entra.scopes, entra.groups_claim) == (("openid", "email", "profile"), "groups")
    assert (entra.self_provisioning, entra.mfa_amr, entra.clock_skew) == (False, ("mfa",), 60)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (SECRET_LINE, 'client_secret = "s3cret-value"', "sso.entra.client_secret must not be in"),
        (SECRET_LINE, "", "sso.entra needs the client secret from exactly one of"),
        (
            SECRET_LINE,
            SECRET_LINE + '\nclient_secret_file = "x"',
            "sso.entra needs the client secret from exactly one of",
        ),
        (ISSUER, 'issuer = "http://login.example.org"', "sso.entra.issuer must be an https://"),
        (ISSUER, 'issuer = "https://login.example.org/?x=1"', "sso.entra.issuer must be"),
        (
            'org = "la:356"                              # the',
            'org = "la:999" #',
            "sso.entra.org is not",
        ),
        ("[sso.entra]", "[sso.Entra]", "a provider's id must be"),
        ("[sso.entra]", "[sso.callback]", "a provider's id must be"),
        ("[sso.entra]", "[sso.stockport-entra-id]", "a provider's id must be 1 to 16"),
        ('role = "dsl"', 'role = "headteacher"', "sso.entra.roles[0].role must be one of"),
        ('group = "2222', 'team = "2222', "sso.entra.roles[0].team is not a known setting"),
        ('email_domain = "stockport.example"', 'email_domain = "@x"', "must be a domain"),
        ('scopes = ["openid", ', "scopes = [", "sso.entra.scopes must include openid"),
        ("self_provisioning = false", 'self_provisioning = "no"', "must be true or false"),
        ("mfa_acr = []", "clock_skew = 3600", "sso.entra.clock_skew must be whole seconds"),
        ("mfa_acr = []", "mfa_acr = [1]", "sso.entra.mfa_acr must be a list of text"),
        ("mfa_acr = []", 'prompt = "login"', "sso.entra.prompt is not a known setting"),
        ('label = "Microsoft Entra ID"', 'label = ""', "sso.entra.label must be text"),
    ],
)
def test_each_mistake_names_its_setting(old: str, new: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(_with(old, new), EXAMPLE.parent)
    assert message in str(refused.value)
    assert "s3cret-value" not in str(refused.value)


def test_a_provider_needs_at_least_one_rule() -> None:
    text = EXAMPLE.read_text()
    text = text[: text.index("[[sso.entra.roles]]")]
    with pytest.raises(ConfigError, match=r"sso\.entra\.roles must list at least one rule"):
        parse_config(text, EXAMPLE.parent)


def test_the_secret_comes_from_its_variable_or_file(tmp_path: Path) -> None:
    (entra,) = load_config(EXAMPLE).sso
    secret = read_client_secret(entra, {"EXCHANGE_ENTRA_SECRET": " s3cret-value\n"})
    assert secret.value == "s3cret-value"
    assert "s3cret" not in repr(secret)
    with pytest.raises(SsoConfigError) as missing:
        read_client_secret(entra, {})
    assert str(missing.value) == (
        "sso.entra.client_secret_env: the environment variable EXCHANGE_ENTRA_SECRET holding "
        "the client secret is not set"
    )
    path = tmp_path / "entra-secret"
    from_file = replace(entra, client_secret_env=None, client_secret_file=str(path))
    with pytest.raises(SsoConfigError, match=r"client_secret_file: .* cannot be read"):
        read_client_secret(from_file)
    path.write_text("file-secret\n")
    assert read_client_secret(from_file).value == "file-secret"
    path.write_text("")
    with pytest.raises(SsoConfigError, match="must hold the client secret"):
        read_client_secret(from_file)


def test_config_check_names_the_missing_variable_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = load_config(EXAMPLE)
    monkeypatch.delenv("EXCHANGE_ENTRA_SECRET", raising=False)
    report = CheckReport()
    check_sso(config, report)
    assert report.problems == [
        (
            "sso.entra.client_secret_env: the environment variable EXCHANGE_ENTRA_SECRET "
            "holding the client secret is not set"
        )
    ]
    monkeypatch.setenv("EXCHANGE_ENTRA_SECRET", "s3cret-value")
    report = CheckReport()
    check_sso(config, report)
    assert report.problems == []
    assert "s3cret" not in repr(report)
