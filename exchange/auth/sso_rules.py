"""Single sign-on providers as a node configures them, and what their claims grant.

One :class:`SsoProvider` per ``[sso.<id>]`` table of the node's configuration (read by
``exchange.config_sso``). Its rules (:class:`RoleRule`) map the provider's claims to roles
of this node: a rule matches a person in one of its group ids (the claim named by
``groups_claim``), with a verified email address in its domain, or both when it names both.
:func:`mapped_roles` returns every role a person's claims map to, in the configuration's
order; a person they map to no role is refused, and an account signs in only with a role
its claims map to. :func:`mfa_asserted` says whether the provider asserted more than one
factor, through ``amr`` (RFC 8176) or ``acr``.

By default only ``amr`` containing ``mfa`` counts: RFC 8176 defines it as "multiple-factor
authentication", while ``otp``, ``sms``, ``hwk`` and the like each name one method, which a
provider may use alone. A node adds its provider's own values (an ``acr`` of assurance
level 3, say) in ``mfa_amr`` and ``mfa_acr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from exchange.auth.oidc import IdToken
from exchange.keys.ids import OrgId
from exchange.model import Role

#: The ``amr`` values that count as a second factor unless a provider's settings say others.
DEFAULT_MFA_AMR: Final = ("mfa",)
#: The scopes asked for unless a provider's settings say others.
DEFAULT_SCOPES: Final = ("openid", "email", "profile")
#: The clock difference allowed with a provider, in seconds, unless its settings say.
DEFAULT_CLOCK_SKEW: Final = 60


@dataclass(frozen=True)
class RoleRule:
    """Who gets ``role``: members of ``group``, people of ``email_domain``, or both at once."""

    role: Role
    group: str | None = None
    email_domain: str | None = None

    def matches(self, token: IdToken, groups_claim: str) -> bool:
        """Whether the person of ``token`` meets every condition this rule names."""
        if self.group is not None and self.group not in token.texts(groups_claim):
            return False
        if self.email_domain is not None:
            email = token.email
            if email is None or token.email_verified is False:
                return False
            if email.rpartition("@")[2].casefold() != self.email_domain.casefold():
                return False
        return self.group is not None or self.email_domain is not None


@dataclass(frozen=True)
class SsoProvider:
    """One provider's settings (``[sso.<id>]``). The client secret itself is never here."""

    id: str
    org: OrgId
    label: str
    issuer: str
    client_id: str
    roles: tuple[RoleRule, ...]
    client_secret_env: str | None = None
    #: The file holding the secret, as an absolute path (this module does no file I/O).
    client_secret_file: str | None = None
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    groups_claim: str = "groups"
    self_provisioning: bool = False
    mfa_amr: tuple[str, ...] = DEFAULT_MFA_AMR
    mfa_acr: tuple[str, ...] = ()
    clock_skew: int = DEFAULT_CLOCK_SKEW

    @property
    def where(self) -> str:
        """The settings' name in errors: ``sso.<id>``."""
        return f"sso.{self.id}"


def mapped_roles(token: IdToken, provider: SsoProvider) -> list[Role]:
    """Return the roles the person's claims map to, first match first, without repeats."""
    roles: list[Role] = []
    for rule in provider.roles:
        if rule.role not in roles and rule.matches(token, provider.groups_claim):
            roles.append(rule.role)
    return roles


def mfa_asserted(token: IdToken, *, amr: Sequence[str], acr: Sequence[str]) -> bool:
    """Whether the provider asserted a sign-in with more than one factor."""
    return any(value in amr for value in token.amr) or (token.acr is not None and token.acr in acr)


@dataclass(frozen=True)
class ClientSecret:
    """A provider's client secret, read from its environment variable or file; never shown."""

    value: str = field(repr=False)
