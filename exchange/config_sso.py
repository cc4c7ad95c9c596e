"""The ``[sso.<id>]`` tables of a node's configuration: one single sign-on provider each.

Read by :func:`exchange.config.parse_config` into :class:`~exchange.auth.sso_rules.SsoProvider`
values, refused with one sentence naming the setting. The client secret is never in the
file: ``client_secret_env`` names an environment variable holding it, or
``client_secret_file`` a file; a ``client_secret`` key is refused. :func:`read_client_secret`
reads it (``exchange config check`` and a node's start both do), naming the variable or
file when it is missing, never the secret.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, get_args

from exchange.auth.oidc import url_allowed
from exchange.auth.sso_rules import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_MFA_AMR,
    DEFAULT_SCOPES,
    ClientSecret,
    RoleRule,
    SsoProvider,
)
from exchange.keys.ids import OrgId
from exchange.model import Role

#: A provider's id: part of the sign-in link (``/sign-in/sso/<id>``), and the detail of the
#: ``sso-linked`` account event, which holds at most 16 characters.
PROVIDER_ID: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,15}")
#: Ids that would clash with the sign-in pages' own paths.
RESERVED_IDS: Final = frozenset({"callback"})
MAX_LABEL_LEN: Final = 60
MAX_TEXT_LEN: Final = 512
MAX_CLOCK_SKEW: Final = 300
#: The longest client secret read from a file.
MAX_SECRET_LEN: Final = 4096
KEYS: Final = frozenset(
    {
        "org", "label", "issuer", "client_id", "client_secret_env", "client_secret_file",
        "scopes", "groups_claim", "roles", "self_provisioning", "mfa_amr", "mfa_acr",
        "clock_skew",
    }
)  # fmt: skip


class SsoConfigError(ValueError):
    """An ``[sso]`` setting is wrong; the message names it."""


def _text(table: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    if key not in table:
        if required:
            raise SsoConfigError(f"{where}.{key} is missing")
        return None
    value = table[key]
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT_LEN:
        raise SsoConfigError(f"{where}.{key} must be text of 1 to {MAX_TEXT_LEN} characters")
    return value


def _texts(
    table: Mapping[str, Any], key: str, where: str, default: tuple[str, ...]
) -> tuple[str, ...]:
    value = table.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SsoConfigError(f"{where}.{key} must be a list of text")
    return tuple(value)


def _role(value: Any, where: str) -> Role:
    for role in get_args(Role):
        if value == role:
            return role  # type: ignore[no-any-return]
    raise SsoConfigError(f"{where}.role must be one of {', '.join(get_args(Role))}")


def _rules(table: Mapping[str, Any], where: str) -> tuple[RoleRule, ...]:
    raw = table.get("roles")
    if not isinstance(raw, list) or not raw:
        raise SsoConfigError(
            f"{where}.roles must list at least one rule, like "
            '[[sso.<id>.roles]] group = "<group id>", role = "dsl"'
        )
    rules = []
    for i, rule in enumerate(raw):
        at = f"{where}.roles[{i}]"
        if not isinstance(rule, dict):
            raise SsoConfigError(f"{at} must be a table")
        unknown = sorted(set(rule) - {"role", "group", "email_domain"})
        if unknown:
            raise SsoConfigError(f"{at}.{unknown[0]} is not a known setting")
        group = _text(rule, "group", at, required=False)
        domain = _text(rule, "email_domain", at, required=False)
        if group is None and domain is None:
            raise SsoConfigError(f"{at} must name a group, an email_domain, or both")
        if domain is not None and ("@" in domain or "." not in domain):
            raise SsoConfigError(f"{at}.email_domain must be a domain, like school.example.org")
        rules.append(RoleRule(role=_role(rule.get("role"), at), group=group, email_domain=domain))
    return tuple(rules)


def _issuer(table: Mapping[str, Any], where: str) -> str:
    issuer = _text(table, "issuer", where)
    assert issuer is not None
    if not url_allowed(issuer, allow_loopback_http=True) or "?" in issuer or "#" in issuer:
        raise SsoConfigError(
            f"{where}.issuer must be an https:// address (http:// only for a loopback host, "
            "in tests), with no query"
        )
    return issuer


def _secret_source(
    table: Mapping[str, Any], where: str, base: Path
) -> tuple[str | None, str | None]:
    if "client_secret" in table:
        raise SsoConfigError(
            f"{where}.client_secret must not be in the configuration file: put the secret in "
            f"an environment variable named by {where}.client_secret_env, or in a file named "
            f"by {where}.client_secret_file"
        )
    env = _text(table, "client_secret_env", where, required=False)
    file = _text(table, "client_secret_file", where, required=False)
    if (env is None) == (file is None):
        raise SsoConfigError(
            f"{where} needs the client secret from exactly one of client_secret_env (an "
            "environment variable) or client_secret_file (a file)"
        )
    if file is None:
        return env, None
    path = Path(file).expanduser()
    return env, str(path if path.is_absolute() else base / path)


def _flag(table: Mapping[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise SsoConfigError(f"{where}.{key} must be true or false")
    return value


def _skew(table: Mapping[str, Any], where: str) -> int:
    value = table.get("clock_skew", DEFAULT_CLOCK_SKEW)
    if type(value) is not int or not 0 <= value <= MAX_CLOCK_SKEW:
        raise SsoConfigError(f"{where}.clock_skew must be whole seconds from 0 to {MAX_CLOCK_SKEW}")
    return value


def parse_provider(
    provider_id: str, table: Any, base: Path, parse_org: Callable[[str, str], OrgId]
) -> SsoProvider:
    """Return the provider of ``[sso.<provider_id>]``; ``parse_org`` checks the org id."""
    where = f"sso.{provider_id}"
    if PROVIDER_ID.fullmatch(provider_id) is None or provider_id in RESERVED_IDS:
        raise SsoConfigError(
            f"{where}: a provider's id must be 1 to 16 lower-case letters, digits and hyphens "
            "(and not callback)"
        )
    if not isinstance(table, dict):
        raise SsoConfigError(f"{where} must be a table")
    env, file = _secret_source(table, where, base)
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise SsoConfigError(f"{where}.{unknown[0]} is not a known setting")
    label = _text(table, "label", where)
    assert label is not None
    if len(label) > MAX_LABEL_LEN:
        raise SsoConfigError(f"{where}.label must be {MAX_LABEL_LEN} characters or fewer")
    scopes = _texts(table, "scopes", where, DEFAULT_SCOPES)
    if "openid" not in scopes:
        raise SsoConfigError(f"{where}.scopes must include openid")
    return SsoProvider(
        id=provider_id,
        org=parse_org(str(_text(table, "org", where)), f"{where}.org"),
        label=label,
        issuer=_issuer(table, where),
        client_id=str(_text(table, "client_id", where)),
        roles=_rules(table, where),
        client_secret_env=env,
        client_secret_file=file,
        scopes=scopes,
        groups_claim=_text(table, "groups_claim", where, required=False) or "groups",
        self_provisioning=_flag(table, "self_provisioning", where),
        mfa_amr=_texts(table, "mfa_amr", where, DEFAULT_MFA_AMR),
        mfa_acr=_texts(table, "mfa_acr", where, ()),
        clock_skew=_skew(table, where),
    )


def read_client_secret(
    provider: SsoProvider, environ: Mapping[str, str] | None = None
) -> ClientSecret:
    """Return the provider's client secret, or refuse naming the variable or file."""
    where = provider.where
    if provider.client_secret_env is not None:
        name = provider.client_secret_env
        value = (os.environ if environ is None else environ).get(name, "")
        if not value.strip():
            raise SsoConfigError(
                f"{where}.client_secret_env: the environment variable {name} holding the "
                "client secret is not set"
            )
        return ClientSecret(value.strip())
    assert provider.client_secret_file is not None
    path = Path(provider.client_secret_file)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SECRET_LEN + 1)
    except OSError as exc:
        raise SsoConfigError(
            f"{where}.client_secret_file: {path} cannot be read ({exc.strerror})"
        ) from None
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        text = ""
    if not text or len(data) > MAX_SECRET_LEN:
        raise SsoConfigError(
            f"{where}.client_secret_file: {path} must hold the client secret as one line of "
            f"text, at most {MAX_SECRET_LEN} bytes"
        )
    return ClientSecret(text)


def provider_to_toml(provider: SsoProvider) -> list[str]:
    """Return the ``[sso.<id>]`` table's lines, read back to the same provider."""

    def text(value: str) -> str:
        return json.dumps(value)  # TOML basic strings share JSON's escapes

    def texts(values: tuple[str, ...]) -> str:
        return "[" + ", ".join(text(v) for v in values) + "]"

    lines = [
        f"[sso.{provider.id}]",
        f"org = {text(provider.org)}",
        f"label = {text(provider.label)}",
        f"issuer = {text(provider.issuer)}",
        f"client_id = {text(provider.client_id)}",
    ]
    if provider.client_secret_env is not None:
        lines.append(f"client_secret_env = {text(provider.client_secret_env)}")
    if provider.client_secret_file is not None:
        lines.append(f"client_secret_file = {text(provider.client_secret_file)}")
    lines += [
        f"scopes = {texts(provider.scopes)}",
        f"groups_claim = {text(provider.groups_claim)}",
        f"self_provisioning = {'true' if provider.self_provisioning else 'false'}",
        f"mfa_amr = {texts(provider.mfa_amr)}",
        f"mfa_acr = {texts(provider.mfa_acr)}",
        f"clock_skew = {provider.clock_skew}",
        "",
    ]
    for rule in provider.roles:
        lines.append(f"[[sso.{provider.id}.roles]]")
        lines.append(f"role = {text(rule.role)}")
        if rule.group is not None:
            lines.append(f"group = {text(rule.group)}")
        if rule.email_domain is not None:
            lines.append(f"email_domain = {text(rule.email_domain)}")
        lines.append("")
    return lines
