"""Nothing the receipts package prints, raises or returns shows private key material."""

from __future__ import annotations

from exchange.receipts import ReceiptError, parse_signed, sign_receipt, verify_receipt
from tests.receipts.conftest import (
    NEGATIVE,
    POSITIVE,
    fixture_for,
    load,
    signing_keys,
    verify_kwargs,
)


def _secret_forms(seed: bytes) -> list[str]:
    return [seed.hex(), seed.hex().upper(), repr(seed)[2:-1], seed.hex()[:16]]


def test_reprs_show_no_key_material() -> None:
    """The repr and str of keys, receipts, signed receipts and results hold no seed in any form."""
    for path in POSITIVE:
        fx = fixture_for(path.stem)
        seed = fx.key.secret_bytes_for_storage()
        signed = sign_receipt(fx.receipt, fx.key)
        verified = verify_receipt(fx.signed, **fx.kwargs)
        shown = [repr(x) + str(x) for x in (fx.key, fx.receipt, signed, parse_signed(fx.signed))]
        shown.append(repr(verified))
        for text in shown:
            for form in _secret_forms(seed):
                assert form not in text


def test_errors_show_no_key_material() -> None:
    """The message, repr and hint of every negative vector's error hold no seed."""
    for path in NEGATIVE:
        vector = load(path)
        seeds = [k.secret_bytes_for_storage() for k in signing_keys(vector).values()]
        kwargs = verify_kwargs(vector)
        try:
            verify_receipt(bytes.fromhex(vector["signed"]), **kwargs)
        except ReceiptError as exc:
            text = f"{exc!s} {exc!r} {exc.hint} {exc.__cause__!r}"
        else:
            continue  # receipt.final-disposition: the receipt itself is valid
        for seed in seeds:
            for form in _secret_forms(seed):
                assert form not in text
