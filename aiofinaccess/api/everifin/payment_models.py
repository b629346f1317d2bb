"""Everifin payments (BankConnect's and Paygate's): the order the SDK sends, checked before
sending, and the payment it reads.

The limits are the ones Everifin's Paygate SDKs validate (``everifin_keycloak.md`` A6): a
variable and a specific symbol of at most 10 digits, a constant symbol of at most 4, a
reference of at most 35 characters, a message and a recipient name of at most 140, an
``externalId`` of at most 255; amounts are positive :class:`~aiofinaccess.api.money.Money` and
IBANs pass mod 97. A refusal is a :class:`~aiofinaccess.errors.PaymentFieldError` naming the
field; nothing is sent.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

import attrs

from ...core.errors import PaymentFieldError
from ..json_ready import JsonReady
from ..money import Money, iban, text

__all__ = ["EverifinPayment", "EverifinPaymentStatus", "PaymentOrder"]

NAME_LIMIT: Final = 140
MESSAGE_LIMIT: Final = 140
REFERENCE_LIMIT: Final = 35
_SYMBOLS: Final = {"variable_symbol": 10, "specific_symbol": 10, "constant_symbol": 4}


class EverifinPaymentStatus(enum.StrEnum):
    """A payment's status at Everifin; :attr:`FINAL` ones never change."""

    CREATED = "CREATED"
    SEEN = "SEEN"  # the user opened the authorization page
    PROCESSING = "PROCESSING"  # authorised by the user, at the bank
    CONFIRMED = "CONFIRMED"  # accepted by the bank, not booked yet
    BOOKED = "BOOKED"
    WITHDRAWN = "WITHDRAWN"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    PROCESSING_EXPIRED = "PROCESSING_EXPIRED"


FINAL: Final = frozenset(
    {
        EverifinPaymentStatus.BOOKED,
        EverifinPaymentStatus.WITHDRAWN,
        EverifinPaymentStatus.FAILED,
        EverifinPaymentStatus.EXPIRED,
        EverifinPaymentStatus.PROCESSING_EXPIRED,
    }
)


def _digits(field: str, limit: int) -> Callable[[Any, Any, Any], None]:
    pattern = re.compile(rf"[0-9]{{1,{limit}}}")

    def check(_instance: Any, _attribute: Any, value: str | None) -> None:
        if value is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
            raise PaymentFieldError(field, f"must be 1 to {limit} digits")

    return check


def _text(field: str, limit: int) -> Callable[[Any, Any, Any], None]:
    def check(_instance: Any, _attribute: Any, value: str | None) -> None:
        if value is not None:
            text(value, field, limit)

    return check


def _recipient_iban(value: str) -> str:
    return iban(value, "recipient_iban")


def _positive(value: Money) -> Money:
    if not isinstance(value, Money):
        raise PaymentFieldError("amount", "must be a Money")
    return value.positive()


@attrs.frozen(slots=True)
class PaymentOrder:
    """One payment to a recipient, checked as it is made.

    Raises:
        PaymentFieldError: A field breaks its limit (``InvalidAmountError``,
            ``InvalidIbanError`` for the amount and IBAN).
    """

    amount: Money = attrs.field(converter=_positive)
    recipient_iban: str = attrs.field(converter=_recipient_iban)
    recipient_name: str = attrs.field(validator=_text("recipient_name", NAME_LIMIT))
    message: str | None = attrs.field(default=None, validator=_text("message", MESSAGE_LIMIT))
    reference: str | None = attrs.field(default=None, validator=_text("reference", REFERENCE_LIMIT))
    variable_symbol: str | None = attrs.field(
        default=None, validator=_digits("variable_symbol", _SYMBOLS["variable_symbol"])
    )
    specific_symbol: str | None = attrs.field(
        default=None, validator=_digits("specific_symbol", _SYMBOLS["specific_symbol"])
    )
    constant_symbol: str | None = attrs.field(
        default=None, validator=_digits("constant_symbol", _SYMBOLS["constant_symbol"])
    )

    def body(self) -> dict[str, Any]:
        """Everifin's camelCase fields (the amount a JSON number that reads back exactly)."""
        fields = {
            "amount": self.amount.json_number(),
            "currency": self.amount.currency,
            "recipientIban": self.recipient_iban,
            "recipientName": self.recipient_name,
            "message": self.message,
            "reference": self.reference,
            "variableSymbol": self.variable_symbol,
            "specificSymbol": self.specific_symbol,
            "constantSymbol": self.constant_symbol,
        }
        return {name: value for name, value in fields.items() if value is not None}


@attrs.frozen(slots=True)
class EverifinPayment(JsonReady):
    """A payment as Everifin shows it.

    Attributes:
        external_id: The client reference it was created with.
        link: The page where the user authorises it (while ``CREATED`` or ``SEEN``).
    """

    id: str
    status: str
    amount: Decimal
    currency: str
    external_id: str | None = None
    instruction_id: str | None = None
    recipient_iban: str | None = None
    recipient_name: str | None = None
    sender_iban: str | None = None
    link: str | None = None
    reason_code: str | None = None
    order_id: str | None = None
    created_at: dt.datetime | None = None

    @property
    def final(self) -> bool:
        """Whether the status can no longer change."""
        return self.status in FINAL
