"""Passkeys' pure rules and ceremonies, verified by py_webauthn on answers a soft passkey makes."""

from __future__ import annotations

import json

import pytest

from exchange.auth.errors import PasskeyRefusedError
from exchange.auth.passkey import (
    MAX_NAME_LEN,
    NewPasskey,
    Passkey,
    PasskeyChallenge,
    RelyingParty,
    challenge_key,
    check_passkey_name,
    check_sign_count,
    new_challenge,
    user_handle,
)
from exchange.auth.passkey_ceremony import (
    MAX_ANSWER_LEN,
    authentication_options,
    read_registration,
    read_sign_in,
    registration_options,
    verify_registration,
    verify_sign_in,
)
from tests.auth.webauthn_device import SoftPasskey, b64url, unb64url

RP = RelyingParty(id="exchange.hillside.example", origin="https://exchange.hillside.example")
CHALLENGE = bytes(range(32))
T0 = 1_800_000_000.0


def _device() -> SoftPasskey:
    return SoftPasskey(rp_id=RP.id, origin=RP.origin)


def _registered(device: SoftPasskey, **wrong: object) -> NewPasskey:
    options = registration_options(
        RP, user_id="u-1", user_name="dsl@hillside.example", display_name="Dee Ess",
        challenge=CHALLENGE, exclude=(),
    )  # fmt: skip
    answer = read_registration(device.register(options, **wrong))  # type: ignore[arg-type]
    return verify_registration(RP, answer, challenge=CHALLENGE)


def _stored(new: NewPasskey, sign_count: int | None = None) -> Passkey:
    return Passkey(
        id=1, account_id=1, user_id="u-1", credential_id=new.credential_id,
        public_key=new.public_key,
        sign_count=new.sign_count if sign_count is None else sign_count,
        transports=new.transports, name="Work laptop", created=T0,
    )  # fmt: skip


def _signed_in(device: SoftPasskey, passkey: Passkey, **wrong: object) -> int:
    options = authentication_options(RP, challenge=CHALLENGE)
    answer = read_sign_in(device.sign_in(options, **wrong))  # type: ignore[arg-type]
    return verify_sign_in(RP, answer, challenge=CHALLENGE, passkey=passkey)


def _reason(excinfo: pytest.ExceptionInfo[PasskeyRefusedError]) -> str:
    return excinfo.value.reason


# --- the relying party -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "rp_id", "origin"),
    [
        ("https://exchange.hillside.example", "exchange.hillside.example", "https://exchange.hillside.example"),
        ("https://Exchange.Hillside.example:443/", "exchange.hillside.example", "https://exchange.hillside.example"),
        ("https://node.la.example:8443/x", "node.la.example", "https://node.la.example:8443"),
        ("http://localhost:8080", "localhost", "http://localhost:8080"),
    ],
)  # fmt: skip
def test_the_relying_party_is_the_public_urls_host_and_origin(
    url: str, rp_id: str, origin: str
) -> None:
    """The RP ID is the host; the origin is scheme, host and any port that is not the default."""
    assert RelyingParty.from_public_url(url) == RelyingParty(id=rp_id, origin=origin)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8443",
        "https://[::1]:8443",
        "http://node.la.example",
        "ftp://x.example",
        "",
        "https://x.example:99999",
    ],
)
def test_an_address_or_plain_http_is_no_relying_party(url: str) -> None:
    """An IP address is not a domain, and plain HTTP is not a secure context: no passkeys."""
    assert RelyingParty.from_public_url(url) is None


# --- names, challenges, counters --------------------------------------------------------


def test_a_name_is_tidied_and_must_be_short_and_not_empty() -> None:
    """Spaces are tidied; an empty name and a name too long are refused in plain words."""
    assert check_passkey_name("  Work   laptop ") == "Work laptop"
    with pytest.raises(ValueError, match="Enter a name for your passkey"):
        check_passkey_name("   ")
    with pytest.raises(ValueError, match=f"{MAX_NAME_LEN} characters or fewer"):
        check_passkey_name("x" * (MAX_NAME_LEN + 1))


def test_a_challenge_comes_from_the_injected_randomness_and_is_kept_hashed() -> None:
    """The challenge is the random bytes given; the store's key is a hash of it."""
    assert new_challenge(lambda n: b"\x07" * n) == b"\x07" * 32
    assert challenge_key(CHALLENGE) not in {CHALLENGE, challenge_key(b"\x00" * 32)}
    with pytest.raises(ValueError, match="random must return 32 bytes"):
        new_challenge(lambda _: b"short")


def test_a_challenge_answers_only_its_browser_and_purpose_in_time() -> None:
    """Another browser's binding, another purpose, or a late answer: all refused."""
    issued = PasskeyChallenge(
        key=b"k", binding=b"b", purpose="sign-in", user_id=None, expires=T0 + 300
    )
    issued.check(binding=b"b", purpose="sign-in", now=T0 + 299)
    wrong = ((b"x", "sign-in", T0), (b"b", "register", T0), (b"b", "sign-in", T0 + 300))
    for binding, purpose, now in wrong:
        with pytest.raises(PasskeyRefusedError) as excinfo:
            issued.check(binding=binding, purpose=purpose, now=now)  # type: ignore[arg-type]
        assert _reason(excinfo) == "challenge"


@pytest.mark.parametrize(("stored", "new"), [(0, 0), (0, 1), (5, 6), (5, 900)])
def test_a_counter_that_moves_on_or_stays_at_zero_is_accepted(stored: int, new: int) -> None:
    """No counter (0 and 0) or a greater one: accepted."""
    check_sign_count(stored, new)


@pytest.mark.parametrize(("stored", "new"), [(5, 5), (5, 4), (5, 0), (1, 0)])
def test_a_counter_that_does_not_move_on_is_refused(stored: int, new: int) -> None:
    """A counter equal to or below the stored one may be a copied passkey: refused."""
    with pytest.raises(PasskeyRefusedError) as excinfo:
        check_sign_count(stored, new)
    assert _reason(excinfo) == "sign-count"


def test_the_user_handle_is_opaque_and_the_same_for_one_account() -> None:
    """The handle holds no id or address, and every passkey of one account shares it."""
    handle = user_handle("dsl@hillside.example")
    assert handle == user_handle("dsl@hillside.example") != user_handle("other")
    assert b"hillside" not in handle
    assert len(handle) == 32


# --- the options ------------------------------------------------------------------------


def test_registration_asks_for_user_verification_and_a_discoverable_key() -> None:
    """The options require user verification, prefer a resident key and exclude the known ones."""
    known = _stored(_registered(_device()))
    options = json.loads(
        registration_options(
            RP, user_id="u-1", user_name="dsl@hillside.example", display_name="Dee Ess",
            challenge=CHALLENGE, exclude=[known],
        )
    )  # fmt: skip
    assert options["rp"] == {"id": RP.id, "name": "Secure exchange"}
    assert unb64url(options["challenge"]) == CHALLENGE
    assert unb64url(options["user"]["id"]) == user_handle("u-1")
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["attestation"] == "none"
    (excluded,) = options["excludeCredentials"]
    assert excluded == {
        "id": b64url(known.credential_id),
        "type": "public-key",
        "transports": ["internal", "hybrid"],
    }


def test_sign_in_options_name_nobody_unless_confirming() -> None:
    """Signing in allows any passkey; confirming it's the person allows only theirs."""
    anyone = json.loads(authentication_options(RP, challenge=CHALLENGE))
    assert (anyone["rpId"], anyone["userVerification"], anyone["allowCredentials"]) == (
        RP.id, "required", []
    )  # fmt: skip
    known = _stored(_registered(_device()))
    theirs = json.loads(authentication_options(RP, challenge=CHALLENGE, allow=[known]))
    assert [c["id"] for c in theirs["allowCredentials"]] == [b64url(known.credential_id)]


# --- the ceremonies ---------------------------------------------------------------------


def test_a_passkey_registers_and_then_signs_in() -> None:
    """py_webauthn verifies the soft passkey's attestation, then its signature."""
    device = _device()
    new = _registered(device)
    assert (new.credential_id, new.sign_count, new.transports) == (
        device.credential_id, 0, ("internal", "hybrid")
    )  # fmt: skip
    assert _signed_in(device, _stored(new)) == 1


@pytest.mark.parametrize(
    ("wrong", "reason"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"origin": "http://exchange.hillside.example"}, "origin"),
        ({"rp_id": "evil.example"}, "rp-id"),
        ({"verified": False}, "not-verified"),
        ({"challenge": b"\x01" * 32}, "challenge"),
    ],
)
def test_a_registration_with_a_wrong_context_is_refused(
    wrong: dict[str, object], reason: str
) -> None:
    """Another origin or RP ID, no user verification, or another challenge: refused, named."""
    with pytest.raises(PasskeyRefusedError) as excinfo:
        _registered(_device(), **wrong)
    assert _reason(excinfo) == reason


@pytest.mark.parametrize(
    ("wrong", "reason"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"rp_id": "evil.example"}, "rp-id"),
        ({"verified": False}, "not-verified"),
    ],
)
def test_a_sign_in_with_a_wrong_context_is_refused(wrong: dict[str, object], reason: str) -> None:
    """A sign-in from another origin, for another RP ID, or without verification: refused."""
    device = _device()
    passkey = _stored(_registered(device))
    with pytest.raises(PasskeyRefusedError) as excinfo:
        _signed_in(device, passkey, **wrong)
    assert _reason(excinfo) == reason


def test_a_sign_in_answering_another_challenge_is_refused() -> None:
    """The answer's challenge must be the one expected."""
    device = _device()
    passkey = _stored(_registered(device))
    answer = read_sign_in(device.sign_in(authentication_options(RP, challenge=b"\x02" * 32)))
    with pytest.raises(PasskeyRefusedError) as excinfo:
        verify_sign_in(RP, answer, challenge=CHALLENGE, passkey=passkey)
    assert _reason(excinfo) == "challenge"


def test_a_signature_by_another_key_is_refused() -> None:
    """An answer signed by a different key for the same credential id fails py_webauthn's check."""
    device = _device()
    passkey = _stored(_registered(device))
    impostor = SoftPasskey(rp_id=RP.id, origin=RP.origin, credential_id=device.credential_id)
    with pytest.raises(PasskeyRefusedError) as excinfo:
        _signed_in(impostor, passkey)
    assert _reason(excinfo) == "signature"


def test_a_counter_going_back_is_refused_after_a_good_signature() -> None:
    """A well-signed answer whose counter is not above the stored one is refused as such."""
    device = _device()
    passkey = _stored(_registered(device), sign_count=7)
    with pytest.raises(PasskeyRefusedError) as excinfo:
        _signed_in(device, passkey, sign_count=7)
    assert _reason(excinfo) == "sign-count"
    assert _signed_in(device, passkey, sign_count=8) == 8


def test_an_answer_for_another_passkey_is_refused() -> None:
    """The answer must come from the credential the node looked up."""
    device, other = _device(), _device()
    passkey = _stored(_registered(device))
    options = authentication_options(RP, challenge=CHALLENGE)
    answer = read_sign_in(other.sign_in(options))
    with pytest.raises(PasskeyRefusedError) as excinfo:
        verify_sign_in(RP, answer, challenge=CHALLENGE, passkey=passkey)
    assert _reason(excinfo) == "credential"


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"id": "x"}', "{" + " " * MAX_ANSWER_LEN + "}",
     json.dumps({"id": "AA", "rawId": "AA", "type": "public-key", "response": {
         "clientDataJSON": "!!", "authenticatorData": "AA", "signature": "AA"}})],
)  # fmt: skip
def test_what_is_not_an_answer_is_refused_as_malformed(text: str) -> None:
    """Empty, not JSON, the wrong shape, too long, or undecodable: ``malformed``, nothing more."""
    for read in (read_sign_in, read_registration):
        with pytest.raises(PasskeyRefusedError) as excinfo:
            read(text)
        assert _reason(excinfo) == "malformed"
        assert str(excinfo.value) == "malformed"
