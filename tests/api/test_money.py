"""Money and bank identifiers: exact amounts, IBANs by mod 97 and length, BICs, limits."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiofinaccess.api.money import IBAN_LENGTHS, Money, bic, iban, text
from aiofinaccess.errors import InvalidAmountError, InvalidIbanError, PaymentFieldError

GOOD_IBANS = (
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "SK3112000000198742637541",
    "NL91ABNA0417164300",
    "NO9386011117947",
)


def with_check_digits(country: str, bban: str) -> str:
    """An IBAN for ``bban`` with the check digits computed (ISO 13616)."""
    digits = int("".join(str(int(char, 36)) for char in bban + country + "00"))
    return f"{country}{98 - digits % 97:02d}{bban}"


def test_amounts_are_quantised_to_the_currency() -> None:
    assert Money("12.5").value == Decimal("12.50")
    assert str(Money(3)) == "3.00 EUR"
    assert Money("1000", "JPY").value == Decimal("1000")
    assert Money("1.234", "KWD").value == Decimal("1.234")


@pytest.mark.parametrize(
    ("value", "currency"),
    [(1.5, "EUR"), ("1.001", "EUR"), ("1.5", "JPY"), ("NaN", "EUR"), ("x", "EUR"), (True, "EUR")],
)
def test_what_is_not_an_amount_is_refused(value: object, currency: str) -> None:
    with pytest.raises(InvalidAmountError) as refused:
        Money(value, currency)  # type: ignore[arg-type]
    assert refused.value.field == "amount"


@pytest.mark.parametrize("value", ["0", "-0.01", "-5"])
def test_a_payment_needs_a_positive_amount(value: str) -> None:
    with pytest.raises(InvalidAmountError, match="more than zero"):
        Money(value).positive()


def test_a_currency_is_three_capitals() -> None:
    with pytest.raises(PaymentFieldError) as refused:
        Money("1", "eur")
    assert refused.value.field == "currency"


@given(
    st.decimals(
        min_value=Decimal("-999999999999.99"), max_value=Decimal("999999999999.99"), places=2
    )
)
def test_an_amount_travels_as_a_json_number_without_rounding(value: Decimal) -> None:
    money = Money(value)
    assert Decimal(json.dumps(money.json_number())) == money.value


@given(st.decimals(allow_nan=False, allow_infinity=False, places=3))
def test_more_places_than_cents_are_refused_never_rounded(value: Decimal) -> None:
    if abs(value) >= Decimal(10) ** 12 or value != value.quantize(Decimal("0.01")):
        with pytest.raises(InvalidAmountError):
            Money(value)
    else:
        assert Money(value).value == value


@pytest.mark.parametrize("good", GOOD_IBANS)
def test_valid_ibans_pass_compacted(good: str) -> None:
    spaced = " ".join(good[i : i + 4] for i in range(0, len(good), 4)).lower()
    assert iban(spaced) == good


@given(
    st.sampled_from(sorted(IBAN_LENGTHS)),
    st.data(),
)
def test_every_country_length_with_right_check_digits_passes(
    country: str, data: st.DataObject
) -> None:
    length = IBAN_LENGTHS[country] - 4
    bban = data.draw(
        st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=length, max_size=length)
    )
    assert iban(with_check_digits(country, bban)) == with_check_digits(country, bban)


@given(st.sampled_from(GOOD_IBANS), st.integers(min_value=4), st.sampled_from("0123456789"))
def test_a_changed_digit_fails_mod_97(good: str, position: int, digit: str) -> None:
    index = 4 + position % (len(good) - 4)
    if not good[index].isdigit() or good[index] == digit:
        digit = str((int(good[index], 36) + 1) % 10)
    changed = good[:index] + digit + good[index + 1 :]
    with pytest.raises(InvalidIbanError, match="mod 97"):
        iban(changed)


@given(st.text(max_size=40))
def test_any_text_is_an_iban_or_an_invalid_iban_error(value: str) -> None:
    compact = value.replace(" ", "").upper()
    try:
        assert iban(value) == compact
    except InvalidIbanError as refused:
        assert refused.field == "iban"  # noqa: PT017  (either outcome is checked)


def test_a_wrong_country_length_is_named() -> None:
    with pytest.raises(InvalidIbanError, match="DE IBAN has 22"):
        iban(with_check_digits("DE", "3704004405320130001"))


def test_bic_shape() -> None:
    assert bic("DRESDEFF700") == "DRESDEFF700"
    assert bic("COBADEFF") == "COBADEFF"
    for wrong in ("COBADEF", "cobadeff", "COBADEFF70", "COBADE1F"):
        with pytest.raises(PaymentFieldError):
            bic(wrong, "recipient_bic")


def test_text_limits_name_the_field() -> None:
    assert text("x" * 140, "purpose", 140) == "x" * 140
    for wrong in ("", "x" * 141):
        with pytest.raises(PaymentFieldError) as refused:
            text(wrong, "purpose", 140)
        assert refused.value.field == "purpose"
