"""Models leave the SDK as JSON (issue 24, item 4): a FastAPI route returning an ``Account``
failed in ``jsonable_encoder`` (``'Account' object is not iterable``). ``to_dict()`` gives
plain JSON values: dates and times in ISO 8601, amounts as decimal strings (never a float),
secrets left out; FastAPI returns a model as it is."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from fastapi import FastAPI
from fastapi.testclient import TestClient

from aiofinaccess import Secret
from aiofinaccess.everifin import Account, Balance, Transaction
from aiofinaccess.finapi import DailyBalance, DailyBalances, FinApiAccount, User

ACCOUNT = Account("acc-1", iban="SK3112000000198742637541", currency="EUR", raw={"x": 1})
BALANCE = Balance("CLBD", Decimal("1234.50"), "EUR", dt.date(2026, 12, 6))
TRANSACTION = Transaction(
    "tx-1",
    "acc-1",
    Decimal("-0.10"),
    "EUR",
    dt.datetime(2026, 12, 6, 9, 30, tzinfo=dt.UTC),
    booking_date=dt.date(2026, 12, 5),
)


def test_to_dict_gives_plain_json_values() -> None:
    assert BALANCE.to_dict() == {
        "type": "CLBD",
        "amount": "1234.50",
        "currency": "EUR",
        "reference_date": "2026-12-06",
    }
    record = TRANSACTION.to_dict()
    assert record["amount"] == "-0.10"
    assert record["last_updated"] == "2026-12-06T09:30:00+00:00"
    assert record["booking_date"] == "2026-12-05"
    assert "raw" not in record  # the provider's own fields: ``raw`` on the model
    assert json.loads(json.dumps(record)) == record


def test_nested_models_and_lists_are_plain_too() -> None:
    day = DailyBalance(dt.date(2026, 12, 1), Decimal("5"), transactions=(7, 8))
    daily = DailyBalances((day,))
    assert daily.to_dict() == {
        "balances": [
            {
                "date": "2026-12-01",
                "balance": "5",
                "income": "0",
                "spending": "0",
                "internal_adjusting_entries": "0",
                "transactions": [7, 8],
            }
        ],
        "latest_common_balance_timestamp": None,
    }


def test_secrets_are_left_out() -> None:
    user = User("alice", password=Secret("pw-alice"), email="a@example.com")
    record = user.to_dict()
    assert "password" not in record
    assert "pw-alice" not in json.dumps(record)


def test_fastapi_returns_a_model_as_it_is() -> None:
    """Without a return type (``jsonable_encoder``) and with the model as the return type
    (FastAPI's response model, through pydantic)."""
    app = FastAPI()

    @app.get("/account", response_model=None)
    async def account() -> Account:
        return ACCOUNT

    @app.get("/accounts")
    async def accounts() -> list[FinApiAccount]:
        return [FinApiAccount(1, 2, balance=Decimal("10.00"))]

    @app.get("/balance")
    async def balance() -> Balance:
        return BALANCE

    with TestClient(app) as client:
        answers = [client.get(path) for path in ("/account", "/accounts", "/balance")]
    assert [answer.status_code for answer in answers] == [200, 200, 200], answers[0].text
    assert answers[0].json() == ACCOUNT.to_dict()
    assert answers[1].json()[0]["balance"] == "10.00"
    assert answers[2].json() == {
        "type": "CLBD",
        "amount": "1234.50",
        "currency": "EUR",
        "reference_date": "2026-12-06",
    }
