"""The two WebAuthn ceremonies, with py_webauthn: adding a passkey, and signing in with one.

Each ceremony has its options (the JSON the page's script hands to
``navigator.credentials.create`` or ``.get``) and its verification of the browser's answer.
The options always ask for **user verification** (the fingerprint, face or PIN that makes
the passkey count as both factors) and prefer a **discoverable** credential, so that signing
in needs no email address; adding one excludes the account's passkeys already registered, so
an authenticator is not registered twice. No attestation is asked for: the node trusts the
key it is given at registration, made in a signed-in session with a recent second factor.

Verification reads the answer (:func:`read_registration`, :func:`read_sign_in`, which also
give the service the challenge and credential id to look up), then checks in this order and
names the first failure in :class:`~exchange.auth.errors.PasskeyRefusedError`: the challenge,
the origin, the RP ID hash, user presence and verification; then py_webauthn verifies the
whole answer again with the same expectations (the type, the attestation or the signature),
and the signature counter must move forward (:func:`~exchange.auth.passkey.check_sign_count`).
Pure: values in, values out; the challenge comes from the caller.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    parse_attestation_object,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorData,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from exchange.auth.errors import PasskeyRefusedError
from exchange.auth.passkey import (
    CEREMONY_TIMEOUT_MS,
    NewPasskey,
    Passkey,
    RelyingParty,
    check_sign_count,
    user_handle,
)

#: The longest answer read: one with no attestation is well under 2 KiB; a few KiB more
#: leave room for extensions and long transports lists, never for a megabyte of JSON.
MAX_ANSWER_LEN: Final = 16 * 1024
#: What parsing a hostile answer may raise inside py_webauthn and its CBOR and JSON readers.
_UNREADABLE: Final = (WebAuthnException, ValueError, TypeError, KeyError, IndexError)
_KNOWN_TRANSPORTS: Final = frozenset(t.value for t in AuthenticatorTransport)


@dataclass(frozen=True)
class RegistrationAnswer:
    """The browser's answer to adding a passkey, read but not yet verified."""

    credential: RegistrationCredential = field(repr=False)
    challenge: bytes = field(repr=False)


@dataclass(frozen=True)
class SignInAnswer:
    """The browser's answer to signing in with a passkey, read but not yet verified."""

    credential: AuthenticationCredential = field(repr=False)
    challenge: bytes = field(repr=False)

    @property
    def credential_id(self) -> bytes:
        """The id of the credential that answered: how the node finds the passkey."""
        return self.credential.raw_id


def _json(text: str) -> dict[str, object]:
    if len(text) > MAX_ANSWER_LEN:
        raise PasskeyRefusedError("malformed")
    try:
        value = json.loads(text)
    except ValueError:
        raise PasskeyRefusedError("malformed") from None
    if not isinstance(value, dict):
        raise PasskeyRefusedError("malformed")
    return value


def read_registration(text: str) -> RegistrationAnswer:
    """Read the answer to ``navigator.credentials.create`` as the page's script sent it."""
    try:
        credential = parse_registration_credential_json(_json(text))
        client = parse_client_data_json(credential.response.client_data_json)
    except _UNREADABLE:
        raise PasskeyRefusedError("malformed") from None
    return RegistrationAnswer(credential, client.challenge)


def read_sign_in(text: str) -> SignInAnswer:
    """Read the answer to ``navigator.credentials.get`` as the page's script sent it."""
    try:
        credential = parse_authentication_credential_json(_json(text))
        client = parse_client_data_json(credential.response.client_data_json)
    except _UNREADABLE:
        raise PasskeyRefusedError("malformed") from None
    return SignInAnswer(credential, client.challenge)


def _descriptors(passkeys: Sequence[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(
            id=p.credential_id,
            transports=[AuthenticatorTransport(t) for t in p.transports if t in _KNOWN_TRANSPORTS],
        )
        for p in passkeys
    ]


def registration_options(
    rp: RelyingParty,
    *,
    user_id: str,
    user_name: str,
    display_name: str,
    challenge: bytes,
    exclude: Sequence[Passkey],
) -> str:
    """Return the options (JSON) for ``navigator.credentials.create``."""
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_id=user_handle(user_id),
        user_name=user_name,
        user_display_name=display_name,
        challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=_descriptors(exclude),
    )
    return options_to_json(options)


def authentication_options(
    rp: RelyingParty, *, challenge: bytes, allow: Sequence[Passkey] = ()
) -> str:
    """Return the options (JSON) for ``navigator.credentials.get``.

    With no ``allow``, any passkey of this node may answer (a sign-in that names nobody);
    with it, only those (a person confirming it is them).
    """
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS,
        allow_credentials=_descriptors(allow),
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options)


def _check_context(
    rp: RelyingParty, client_data_json: bytes, auth_data: AuthenticatorData, challenge: bytes
) -> None:
    """Check the challenge, origin, RP ID hash and user verification, naming the first failure."""
    try:
        client = parse_client_data_json(client_data_json)
    except _UNREADABLE:
        raise PasskeyRefusedError("malformed") from None
    if client.challenge != challenge:
        raise PasskeyRefusedError("challenge")
    if client.origin != rp.origin:
        raise PasskeyRefusedError("origin")
    if auth_data.rp_id_hash != hashlib.sha256(rp.id.encode("utf-8")).digest():
        raise PasskeyRefusedError("rp-id")
    if not (auth_data.flags.up and auth_data.flags.uv):
        raise PasskeyRefusedError("not-verified")


def verify_registration(
    rp: RelyingParty, answer: RegistrationAnswer, *, challenge: bytes
) -> NewPasskey:
    """Verify the answer to adding a passkey; return the credential to store."""
    response = answer.credential.response
    try:
        auth_data = parse_attestation_object(response.attestation_object).auth_data
    except _UNREADABLE:
        raise PasskeyRefusedError("malformed") from None
    _check_context(rp, response.client_data_json, auth_data, challenge)
    try:
        verified = verify_registration_response(
            credential=answer.credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except _UNREADABLE:
        raise PasskeyRefusedError("attestation") from None
    transports = tuple(t.value for t in response.transports or ())
    return NewPasskey(
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=transports,
    )


def verify_sign_in(
    rp: RelyingParty, answer: SignInAnswer, *, challenge: bytes, passkey: Passkey
) -> int:
    """Verify the answer to signing in with ``passkey``; return its new signature counter."""
    response = answer.credential.response
    if answer.credential_id != passkey.credential_id:
        raise PasskeyRefusedError("credential")
    try:
        auth_data = parse_authenticator_data(response.authenticator_data)
    except _UNREADABLE:
        raise PasskeyRefusedError("malformed") from None
    _check_context(rp, response.client_data_json, auth_data, challenge)
    try:
        # The counter is checked below, by our own rule, so that a counter going back is
        # told apart from a bad signature: it may mean the passkey was copied.
        verified = verify_authentication_response(
            credential=answer.credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except _UNREADABLE:
        raise PasskeyRefusedError("signature") from None
    check_sign_count(passkey.sign_count, verified.new_sign_count)
    return verified.new_sign_count
