"""Money and bank identifiers, checked before a payment is sent.

:class:`Money` is a :class:`~decimal.Decimal` with an ISO 4217 currency, quantised to the
currency's minor units (``Money("12.5")`` is ``12.50 EUR``); floats are refused, because
``0.1 + 0.2`` is not ``0.3``, and so is more precision than the currency has (rounding
someone's money silently is not the SDK's call). :func:`iban` checks an IBAN's country length
and mod 97 check digits (ISO 13616); :func:`bic` a BIC's shape (ISO 9362); :func:`text` a
length limit. Every refusal is a :class:`~aiofinaccess.errors.PaymentFieldError` naming the
field.

>>> Money("12.5").value
Decimal('12.50')
>>> iban("de89 3704 0044 0532 0130 00")
'DE89370400440532013000'
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

import attrs

from ..core.errors import InvalidAmountError, InvalidIbanError, PaymentFieldError

__all__ = ["IBAN_LENGTHS", "Money", "bic", "iban", "text"]

#: ISO 4217 currencies whose minor unit is not 2 (all others have cents), by decimal places.
_PLACES: Final = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}
_MINOR_UNITS: Final = {code: n for n, codes in _PLACES.items() for code in codes.split()}
# A float's shortest repr gives back the decimal exactly up to 15 significant digits, so an
# amount below this travels as a JSON number without rounding.
_LARGEST: Final = Decimal(10) ** 12

# IBAN lengths by country (SWIFT's IBAN registry).
_IBAN_BY_LENGTH: Final = {
    15: "NO",
    16: "BE",
    18: "DK FI FO GL NL SD FK",
    19: "MK SI",
    20: "AT BA EE KZ LT LU MN XK",
    21: "CH HR LI LV",
    22: "BG BH CR DE GB GE IE ME RS VA",
    23: "AE GI IL IQ OM SO TL",
    24: "AD CZ ES MD PK RO SA SE SK TN VG",
    25: "LY PT ST",
    26: "IS TR",
    27: "BI DJ FR GR IT MC MR SM",
    28: "AL AZ BY CY DO GT HU LB NI PL SV",
    29: "BR EG PS QA UA",
    30: "JO KW MU YE",
    31: "MT SC",
    32: "LC",
    33: "RU",
}
#: IBAN length by country.
IBAN_LENGTHS: Final = {
    country: n for n, countries in _IBAN_BY_LENGTH.items() for country in countries.split()
}
_CURRENCY: Final = re.compile(r"[A-Z]{3}")
_IBAN: Final = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
# The Web Form 2.0 spec's pattern for a recipient's BIC.
_BIC: Final = re.compile(r"[A-Z]{6}[2-9A-Z][0-9A-NP-Z](XXX|[0-9A-WYZ][0-9A-Z]{2})?")


def _amount(value: object) -> Decimal:
    if isinstance(value, (float, bool)):
        raise InvalidAmountError("amount", "must be a Decimal, an int or a str, not a float")
    try:
        number = Decimal(value) if isinstance(value, (int, str)) else value
    except InvalidOperation:
        raise InvalidAmountError("amount", f"{value!r} is not a number") from None
    if not isinstance(number, Decimal):
        raise InvalidAmountError("amount", f"must be a Decimal, not {type(value).__name__}")
    if not number.is_finite():
        raise InvalidAmountError("amount", "must be finite")
    return number


@attrs.frozen(slots=True)
class Money:
    """An amount in a currency, exact to the currency's minor units.

    Args:
        value: A :class:`~decimal.Decimal`, an ``int`` or a decimal string; not a float.
        currency: ISO 4217 code (``EUR`` by default).

    Raises:
        InvalidAmountError: A float, not finite, more decimals than the currency has, or
            ``1e12`` or more.
        PaymentFieldError: ``currency`` is not three capital letters.
    """

    value: Decimal = attrs.field(converter=_amount)
    currency: str = "EUR"

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.currency, str) or not _CURRENCY.fullmatch(self.currency):
            raise PaymentFieldError("currency", "must be an ISO 4217 code such as EUR")
        if abs(self.value) >= _LARGEST:  # checked first: quantize fails on larger numbers
            raise InvalidAmountError("amount", "must be less than 1e12")
        quantised = self.value.quantize(Decimal(1).scaleb(-self.minor_units))
        if quantised != self.value:
            raise InvalidAmountError(
                "amount", f"{self.currency} has {self.minor_units} decimal places"
            )
        object.__setattr__(self, "value", quantised)

    @property
    def minor_units(self) -> int:
        """The currency's decimal places (2 for EUR, 0 for JPY)."""
        return _MINOR_UNITS.get(self.currency, 2)

    def positive(self) -> Money:
        """This amount, if more than zero (a payment's amount).

        Raises:
            InvalidAmountError: Zero or negative.
        """
        if self.value <= 0:
            raise InvalidAmountError("amount", "must be more than zero")
        return self

    def json_number(self) -> float:
        """The value as a JSON number that reads back as exactly this decimal."""
        return float(self.value)

    def __str__(self) -> str:
        return f"{self.value} {self.currency}"


def iban(value: str, field: str = "iban") -> str:
    """``value`` as an electronic IBAN (spaces dropped, capitals), if it is one.

    Raises:
        InvalidIbanError: Wrong characters, a length other than its country's, or a mod 97
            remainder other than 1.
    """
    if not isinstance(value, str):
        raise InvalidIbanError(field, "must be a string")
    compact = value.replace(" ", "").upper()
    if not _IBAN.fullmatch(compact):
        raise InvalidIbanError(field, "must be a country code, 2 check digits and 11-30 letters")
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is not None and len(compact) != expected:
        raise InvalidIbanError(field, f"a {compact[:2]} IBAN has {expected} characters")
    rotated = compact[4:] + compact[:4]
    if int("".join(str(int(char, 36)) for char in rotated)) % 97 != 1:
        raise InvalidIbanError(field, "check digits do not match (mod 97)")
    return compact


def bic(value: str, field: str = "bic") -> str:
    """``value`` if it has a BIC's shape (8 or 11 characters, ISO 9362).

    Raises:
        PaymentFieldError: It does not.
    """
    if not isinstance(value, str) or not _BIC.fullmatch(value):
        raise PaymentFieldError(field, "must be a BIC of 8 or 11 capitals and digits")
    return value


def text(value: str, field: str, limit: int) -> str:
    """``value`` if it has 1 to ``limit`` characters.

    Raises:
        PaymentFieldError: Empty, longer, or not a string.
    """
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise PaymentFieldError(field, f"must have 1 to {limit} characters")
    return value
