"""The sandbox's finAPI payments as records, and their wire shapes (``Payment``,
``StandingOrder``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from .finapi_records import BERLIN

__all__ = ["SandboxPayment", "payment_json", "positive_amount", "standing_order_json", "wire_date"]


@attrs.define
class SandboxPayment:
    """A payment or standing order as the sandbox holds it."""

    id: int
    user_id: str
    type: str  # MONEY_TRANSFER, DIRECT_DEBIT or STANDING_ORDER
    amount: Decimal
    order_count: int
    reference: str
    requested_at: float
    account_id: int | None = None
    iban: str | None = None
    execution_date: str | None = None
    status: str = "OPEN"
    bank_message: str | None = None
    details: dict[str, Any] = attrs.Factory(dict)


def positive_amount(value: object) -> Decimal | None:
    """A positive JSON number with at most two decimals, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    if not number.is_finite() or number <= 0 or number != number.quantize(Decimal("0.01")):
        return None
    return number


def wire_date(seconds: float, version: str) -> str:
    """A request date as finAPI writes it (v1: German time without offset; v2: RFC 3339)."""
    if version == "v1":
        moment = dt.datetime.fromtimestamp(seconds, BERLIN)
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds")


def payment_json(payment: SandboxPayment, version: str) -> dict[str, Any]:
    """A ``Payment``."""
    return {
        "id": payment.id,
        "accountId": payment.account_id,
        "iban": payment.iban,
        "type": payment.type,
        "amount": float(payment.amount),
        "orderCount": payment.order_count,
        "status": payment.status,
        "bankMessage": payment.bank_message,
        "requestDate": wire_date(payment.requested_at, version),
        "executionDate": payment.execution_date if payment.status == "SUCCESSFUL" else None,
        "instructedExecutionDate": payment.execution_date,
    }


def standing_order_json(order: SandboxPayment, version: str) -> dict[str, Any]:
    """A ``StandingOrder``."""
    return {
        "id": order.id,
        "accountId": order.account_id,
        "iban": order.iban,
        "amount": float(order.amount),
        "currency": order.details.get("currency", "EUR"),
        "startDate": order.details["startDate"],
        "endDate": order.details.get("endDate"),
        "frequency": order.details["frequency"],
        "dayOfExecution": None,
        "requestDate": wire_date(order.requested_at, version),
        "requestCompletionDate": None,
        "status": order.status,
        "bankMessage": order.bank_message,
    }
