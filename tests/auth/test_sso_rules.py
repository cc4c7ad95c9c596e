"""What a provider's claims grant: roles by group and email domain, and MFA by amr or acr."""

from __future__ import annotations

from typing import Any

import pytest

from exchange.auth.oidc import IdToken
from exchange.auth.sso_rules import RoleRule, SsoProvider, mapped_roles, mfa_asserted
from exchange.keys.ids import OrgId

DSL = "group-dsl"
STAFF = "group-staff"


def provider(*rules: RoleRule, groups_claim: str = "groups") -> SsoProvider:
    return SsoProvider(
        id="entra", org=OrgId("urn:106123"), label="Entra", issuer="https://login.example",
        client_id="c", roles=rules, client_secret_env="X", groups_claim=groups_claim,  # noqa: S106
    )  # fmt: skip


def person(**claims: Any) -> IdToken:
    return IdToken(issuer="https://login.example", subject="s", claims=claims)


RULES = (
    RoleRule("dsl", group=DSL),
    RoleRule("staff", email_domain="Hillside.example"),
    RoleRule("admin", group=STAFF, email_domain="admin.example"),
)


@pytest.mark.parametrize(
    ("claims", "roles"),
    [
        ({"groups": [DSL], "email": "a@hillside.example"}, ["dsl", "staff"]),
        ({"groups": [DSL]}, ["dsl"]),
        ({"groups": DSL}, ["dsl"]),  # one group as text
        ({"email": "a@HILLSIDE.example"}, ["staff"]),  # domains compare without case
        ({"email": "a@hillside.example", "email_verified": False}, []),
        ({"email": "a@hillside.example", "email_verified": "true"}, ["staff"]),
        ({"email": "a@hillside.example.evil.example"}, []),
        ({"groups": [STAFF], "email": "a@admin.example"}, ["admin"]),  # both conditions
        ({"groups": [STAFF]}, []),  # one of two conditions is not enough
        ({"email": "a@admin.example"}, []),
        ({"groups": ["another"], "email": "a@elsewhere.example"}, []),
        ({"groups": [{"id": DSL}]}, []),  # not text: no group
        ({}, []),
    ],
)
def test_claims_map_to_roles(claims: dict[str, Any], roles: list[str]) -> None:
    assert mapped_roles(person(**claims), provider(*RULES)) == roles


def test_the_groups_claim_is_the_one_configured() -> None:
    settings = provider(RoleRule("dsl", group=DSL), groups_claim="roles")
    assert mapped_roles(person(roles=[DSL]), settings) == ["dsl"]
    assert mapped_roles(person(groups=[DSL]), settings) == []


def test_a_role_named_by_two_rules_is_listed_once() -> None:
    settings = provider(RoleRule("dsl", group=DSL), RoleRule("dsl", group=STAFF))
    assert mapped_roles(person(groups=[DSL, STAFF]), settings) == ["dsl"]


def test_a_rule_naming_nothing_matches_nobody() -> None:
    assert not RoleRule("dsl").matches(person(groups=[DSL]), "groups")


@pytest.mark.parametrize(
    ("claims", "amr", "acr", "asserted"),
    [
        ({"amr": ["pwd", "mfa"]}, ("mfa",), (), True),
        ({"amr": ["pwd"]}, ("mfa",), (), False),
        ({"amr": ["otp"]}, ("mfa",), (), False),  # one method, by default not enough
        ({"amr": ["pwd", "otp"]}, ("mfa", "otp"), (), True),  # a node may count it
        ({"amr": "mfa"}, ("mfa",), (), False),  # amr must be a list
        ({"acr": "AAL3_ANY"}, ("mfa",), ("AAL3_ANY",), True),
        ({"acr": "AAL1_USERPASS"}, ("mfa",), ("AAL3_ANY",), False),
        ({}, ("mfa",), ("AAL3_ANY",), False),
    ],
)
def test_mfa_is_asserted_by_the_values_configured(
    claims: dict[str, Any], amr: tuple[str, ...], acr: tuple[str, ...], asserted: bool
) -> None:
    assert mfa_asserted(person(**claims), amr=amr, acr=acr) is asserted
