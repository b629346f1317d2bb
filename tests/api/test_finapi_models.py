"""finAPI data models and filters: both versions' shapes, exact amounts, refusals before sending."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from aiofinaccess.api.finapi.data import AccountFilters, TransactionFilters
from aiofinaccess.api.finapi.models import decode, read_finapi, read_list
from aiofinaccess.core.errors import UnexpectedResponseError, ValidationError
from aiofinaccess.finapi import BankConnection, DailyBalance, FinApiAccount, FinApiTransaction

V1_TRANSACTION = (
    b'{"id": 7, "accountId": 3, "amount": -1234.56, "currency": "EUR",'
    b' "valueDate": "2026-03-29 00:00:00.000", "bankBookingDate": "2026-03-30 00:00:00.000",'
    b' "finapiBookingDate": "2026-03-30 00:00:00.000", "importDate": "2026-03-29 04:30:00.125",'
    b' "purpose": "Miete", "isNew": true, "accountTypeId": 1, "category": null, "labels": []}'
)
V2_TRANSACTION = (
    b'{"id": 7, "accountId": 3, "amount": -1234.56, "currency": "EUR",'
    b' "valueDate": "2026-03-29", "bankBookingDate": "2026-03-30",'
    b' "finapiBookingDate": "2026-03-30", "importDate": "2026-03-29T04:30:00.125+02:00",'
    b' "purpose": "Miete", "isNew": true, "bankTransactionCodeDescription": "new in v2"}'
)


def test_v1_and_v2_transactions_read_the_same() -> None:
    """v1's German-time timestamps and v2's RFC 3339 give the same instant and dates."""
    v1 = read_finapi(decode(V1_TRANSACTION, "t"), FinApiTransaction, what="t")
    v2 = read_finapi(decode(V2_TRANSACTION, "t"), FinApiTransaction, what="t")
    assert v1 == v2
    assert v1.value_date == dt.date(2026, 3, 29)
    assert v1.bank_booking_date == dt.date(2026, 3, 30)
    assert v1.import_date == dt.datetime(2026, 3, 29, 2, 30, 0, 125000, tzinfo=dt.UTC)
    assert v1.import_date is not None
    assert v1.import_date.tzinfo == ZoneInfo("Europe/Berlin")
    assert v1.raw["accountTypeId"] == 1  # kept, though not modelled
    assert "bankTransactionCodeDescription" in v2.raw


def test_amounts_are_exact_decimals() -> None:
    """Read from the JSON text, never through a binary float."""
    body = b'{"id": 1, "accountId": 1, "amount": 0.1, "compensationAmount": 1e-2}'
    transaction = read_finapi(decode(body, "t"), FinApiTransaction, what="t")
    assert transaction.amount == Decimal("0.1")
    assert str(transaction.amount) == "0.1"
    account = read_finapi(
        decode(b'{"id": 1, "bankConnectionId": 2, "balance": 1234567890.12}', "a"),
        FinApiAccount,
        what="a",
    )
    assert account.balance == Decimal("1234567890.12")
    day = read_finapi(
        decode(b'{"date": "2026-01-01 00:00:00.000", "balance": 10, "transactions": [1]}', "d"),
        DailyBalance,
        what="d",
    )
    assert day == DailyBalance(dt.date(2026, 1, 1), Decimal(10), transactions=(1,))


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"id": "seven", "accountId": 1, "amount": 1}',
        b'{"accountId": 1, "amount": 1}',
        b'{"id": 1, "accountId": 1, "amount": 1, "valueDate": "29.03.2026"}',
        b"[]",
        b'{"id": 1, "accountId": 1, "amount": NaN}',
        b'{"id": 1, "accountId": 1, "amount": "Infinity"}',
        b'{"id": 1, "accountId": 1, "amount": true}',
    ],
)
def test_unreadable_bodies_are_typed_errors(body: bytes) -> None:
    with pytest.raises(UnexpectedResponseError):
        read_finapi(decode(body, "t"), FinApiTransaction, what="t")


def test_lists_need_their_key() -> None:
    with pytest.raises(UnexpectedResponseError):
        read_list({"accounts": []}, "connections", BankConnection, what="bank connections")
    assert read_list({"connections": []}, "connections", BankConnection, what="x") == []


def test_transaction_filters_become_finapis_query() -> None:
    """camelCase names, ``true``/``false``, ISO dates, ids repeated or comma-separated."""
    filters = TransactionFilters(
        account_ids=[3, 4],
        min_bank_booking_date=dt.date(2026, 1, 1),
        min_amount="-10.5",
        direction="income",
        is_new=False,
        order=("amount,desc", "id"),
    )
    repeated = filters.query("repeat")
    assert repeated.getall("accountIds") == ["3", "4"]
    assert repeated["view"] == "bankView"
    assert repeated["minBankBookingDate"] == "2026-01-01"
    assert repeated["minAmount"] == "-10.5"
    assert repeated["isNew"] == "false"
    assert repeated.getall("order") == ["amount,desc", "id"]
    assert "search" not in repeated
    assert filters.query("comma").getall("accountIds") == ["3,4"]
    accounts = AccountFilters(account_types=["Checking", "Savings"], ids=[1]).query("comma")
    assert accounts["accountTypes"] == "Checking,Savings"


@pytest.mark.parametrize(
    "make",
    [
        lambda: TransactionFilters(account_ids=range(1001)),
        lambda: TransactionFilters(account_ids=[]),
        lambda: TransactionFilters(account_ids="12"),
        lambda: TransactionFilters(ids=[1, True]),
        lambda: TransactionFilters(min_amount="1.005"),
        lambda: TransactionFilters(max_amount="NaN"),
        lambda: TransactionFilters(view="allView"),  # type: ignore[arg-type]
        lambda: TransactionFilters(direction="up"),  # type: ignore[arg-type]
        lambda: TransactionFilters(order="id,asc"),
        lambda: AccountFilters(account_types="Checking"),
        lambda: AccountFilters(min_balance=Decimal("0.001")),
    ],
)
def test_filters_refuse_what_finapi_would(make: object) -> None:
    """Checked before anything is sent, with the field named."""
    with pytest.raises(ValidationError):
        make()  # type: ignore[operator]
