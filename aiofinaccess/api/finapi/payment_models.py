"""finAPI payments: the orders the SDK sends, checked before sending, and the payments it reads.

An order's fields are checked against the limits finAPI's specs state and SEPA's: a positive
:class:`~aiofinaccess.api.money.Money` amount, IBANs by mod 97, BICs by shape, a name of at
most 70 characters, a purpose (remittance) of at most 140, an end-to-end id of at most 35.
A refusal is a :class:`~aiofinaccess.errors.PaymentFieldError` naming the field; nothing is sent.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Final

import attrs

from ...core.errors import PaymentFieldError, ValidationError
from ..json_ready import JsonReady
from ..money import Money, bic, iban, text
from .models import Paging

__all__ = [
    "DirectDebit",
    "Payment",
    "PaymentPage",
    "PaymentStatus",
    "StandingOrder",
    "StandingOrderFrequency",
    "StandingOrderRecord",
    "Transfer",
    "check_orders",
]

NAME_LIMIT: Final = 70  # Web Form 2.0: recipient and payer names
PURPOSE_LIMIT: Final = 140  # SEPA's unstructured remittance information
END_TO_END_LIMIT: Final = 35
MANDATE_LIMIT: Final = 270  # Web Form 2.0's DirectDebitOrder.mandateId
CREDITOR_ID_LIMIT: Final = 35
ADDRESS_LIMIT: Final = 140
_PURPOSE_CODE: Final = re.compile(r"[a-zA-Z0-9]{4}")


class PaymentStatus(enum.StrEnum):
    """finAPI's ``OrderInitiationStatus``. The last three are final."""

    OPEN = "OPEN"  # created in finAPI, not yet at the bank
    PENDING = "PENDING"  # submitted (or authorised in the web form), the bank decides
    SUCCESSFUL = "SUCCESSFUL"
    NOT_SUCCESSFUL = "NOT_SUCCESSFUL"
    DISCARDED = "DISCARDED"  # never submitted, or its authorisation expired


class StandingOrderFrequency(enum.StrEnum):
    """How often a standing order runs."""

    MONTHLY = "MONTHLY"
    EVERY_TWO_MONTHS = "EVERY_TWO_MONTHS"
    QUARTERLY = "QUARTERLY"
    SEMI_ANNUAL = "SEMI_ANNUAL"
    ANNUAL = "ANNUAL"


def check_orders(orders: Sequence[_Order]) -> None:
    """Refuse an empty payment, or orders in more than one currency.

    Raises:
        ValidationError: No order.
        PaymentFieldError: Two currencies.
    """
    if not orders:
        raise ValidationError("a payment needs at least one order")
    if len({order.amount.currency for order in orders}) > 1:
        raise PaymentFieldError("amount", "all orders of a payment share one currency")


def _limit(field: str, limit: int) -> Callable[[Any, Any, Any], None]:
    """An attrs validator: ``None`` or 1 to ``limit`` characters."""

    def check(_instance: Any, _attribute: Any, value: Any) -> None:
        if value is not None:
            text(value, field, limit)

    return check


def _purpose_code(_instance: Any, _attribute: Any, value: str | None) -> None:
    if value is not None and not _PURPOSE_CODE.fullmatch(value):
        raise PaymentFieldError("sepa_purpose_code", "must be 4 letters or digits")


def _bic(_instance: Any, _attribute: Any, value: str | None) -> None:
    if value is not None:
        bic(value, "counterpart_bic")


def _positive(_instance: Any, _attribute: Any, amount: Any) -> None:
    if not isinstance(amount, Money):
        raise PaymentFieldError("amount", "must be a Money")
    amount.positive()


def _counterpart_iban(value: str) -> str:
    return iban(value, "counterpart_iban")


def _pruned(body: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if value is not None}


@attrs.frozen(slots=True)
class _Order:
    """What money transfers and direct debits share: the counterpart and the remittance."""

    amount: Money = attrs.field(validator=_positive)
    counterpart_name: str = attrs.field(validator=_limit("counterpart_name", NAME_LIMIT))
    counterpart_iban: str = attrs.field(converter=_counterpart_iban)
    counterpart_bic: str | None = attrs.field(default=None, validator=_bic, kw_only=True)
    purpose: str | None = attrs.field(
        default=None, validator=_limit("purpose", PURPOSE_LIMIT), kw_only=True
    )
    end_to_end_id: str | None = attrs.field(
        default=None, validator=_limit("end_to_end_id", END_TO_END_LIMIT), kw_only=True
    )
    sepa_purpose_code: str | None = attrs.field(default=None, validator=_purpose_code, kw_only=True)

    def access_order(self) -> dict[str, Any]:
        """The order in finAPI Access's shape (``amount`` a number, in the account's currency)."""
        return _pruned(
            {
                "counterpartName": self.counterpart_name,
                "counterpartIban": self.counterpart_iban,
                "counterpartBic": self.counterpart_bic,
                "amount": self.amount.json_number(),
                "purpose": self.purpose,
                "sepaPurposeCode": self.sepa_purpose_code,
                "endToEndId": self.end_to_end_id,
            }
        )

    def form_order(self, party: str) -> dict[str, Any]:
        """The order in Web Form 2.0's shape (``recipient`` or ``payer``)."""
        return _pruned(
            {
                "amount": {"value": self.amount.json_number(), "currency": self.amount.currency},
                "purpose": self.purpose,
                "sepaPurposeCode": self.sepa_purpose_code,
                "endToEndId": self.end_to_end_id,
                party: _pruned(
                    {
                        "name": self.counterpart_name,
                        "iban": self.counterpart_iban,
                        "bic": self.counterpart_bic,
                    }
                ),
            }
        )


@attrs.frozen(slots=True)
class Transfer(_Order):
    """One money transfer order: ``amount`` to ``counterpart_name`` at ``counterpart_iban``.

    Raises:
        PaymentFieldError: A field breaks its limit (``InvalidAmountError`` for an amount not
            above zero, ``InvalidIbanError`` for the IBAN).
    """


@attrs.frozen(slots=True)
class DirectDebit(_Order):
    """One direct debit order: collect ``amount`` from the payer ``counterpart_*`` under a
    SEPA mandate.

    Raises:
        PaymentFieldError: A field breaks its limit.
    """

    mandate_id: str = attrs.field(kw_only=True, validator=_limit("mandate_id", MANDATE_LIMIT))
    mandate_date: dt.date = attrs.field(kw_only=True)
    creditor_id: str = attrs.field(kw_only=True, validator=_limit("creditor_id", CREDITOR_ID_LIMIT))
    counterpart_address: str | None = attrs.field(
        default=None, kw_only=True, validator=_limit("counterpart_address", ADDRESS_LIMIT)
    )
    counterpart_country: str | None = attrs.field(default=None, kw_only=True)

    def access_order(self) -> dict[str, Any]:
        return _pruned(
            {
                **_Order.access_order(self),
                "mandateId": self.mandate_id,
                "mandateDate": self.mandate_date.isoformat(),
                "creditorId": self.creditor_id,
                "counterpartAddress": self.counterpart_address,
                "counterpartCountry": self.counterpart_country,
            }
        )

    def form_order(self, party: str = "payer") -> dict[str, Any]:
        body = _Order.form_order(self, party)
        body[party] = _pruned(
            {
                **body[party],
                "address": self.counterpart_address,
                "country": self.counterpart_country,
            }
        )
        return {
            **body,
            "mandateId": self.mandate_id,
            "mandateDate": self.mandate_date.isoformat(),
            "creditorId": self.creditor_id,
        }


@attrs.frozen(slots=True)
class StandingOrder(_Order):
    """A standing order: ``amount`` to the counterpart every ``frequency`` from ``start_date``."""

    start_date: dt.date = attrs.field(kw_only=True)
    frequency: StandingOrderFrequency = attrs.field(kw_only=True, converter=StandingOrderFrequency)
    end_date: dt.date | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.end_date is not None and self.end_date < self.start_date:
            raise PaymentFieldError("end_date", "must not be before start_date")

    def access_order(self) -> dict[str, Any]:
        body = _Order.access_order(self)
        return _pruned(
            {
                **{k: v for k, v in body.items() if k != "counterpartBic"},
                "currency": self.amount.currency,
                "startDate": self.start_date.isoformat(),
                "endDate": None if self.end_date is None else self.end_date.isoformat(),
                "frequency": self.frequency.value,
            }
        )

    def form_order(self, party: str = "recipient") -> dict[str, Any]:
        body = _Order.form_order(self, party)
        body[party].pop("bic", None)  # the standing order form's Recipient has no BIC
        return _pruned(
            {
                **body,
                "startDate": self.start_date.isoformat(),
                "endDate": None if self.end_date is None else self.end_date.isoformat(),
                "frequency": self.frequency.value,
            }
        )


@attrs.frozen(slots=True)
class Payment(JsonReady):
    """A payment in finAPI Access (``Payment``): one or more orders, created then submitted.

    Attributes:
        id: finAPI's payment id (a web form's ``payload.paymentId``).
        status: A :class:`PaymentStatus` value, kept as the string finAPI sent.
        amount: The sum of the orders.
        type: ``MONEY_TRANSFER`` or ``DIRECT_DEBIT``.
    """

    id: int
    amount: Decimal
    order_count: int
    status: str
    type: str
    account_id: int | None = None
    iban: str | None = None
    bank_message: str | None = None
    request_date: str | None = None
    execution_date: str | None = None
    instructed_execution_date: str | None = None

    @property
    def final(self) -> bool:
        """Whether the bank's answer is in (successful, not successful, discarded)."""
        return self.status in _FINAL


_FINAL: Final = frozenset(
    {PaymentStatus.SUCCESSFUL, PaymentStatus.NOT_SUCCESSFUL, PaymentStatus.DISCARDED}
)


@attrs.frozen(slots=True)
class PaymentPage:
    """One page of payments, with finAPI's paging."""

    payments: tuple[Payment, ...]
    paging: Paging


@attrs.frozen(slots=True)
class StandingOrderRecord:
    """A standing order in finAPI Access (``StandingOrder``)."""

    id: int
    amount: Decimal
    currency: str
    start_date: str
    frequency: str
    status: str
    account_id: int | None = None
    iban: str | None = None
    end_date: str | None = None
    day_of_execution: int | None = None
    request_date: str | None = None
    request_completion_date: str | None = None
    bank_message: str | None = None
