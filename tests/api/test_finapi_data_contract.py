"""Contract: the finAPI data calls, as the SDK sends them in v1 mode, and the sandbox's answers,
validate against finAPI's own v1 OpenAPI spec (and the Web Form 2.0 spec for the forms).

The whole journey runs over real HTTP against the sandbox with ``record_requests``; then every
exchange in the journal is validated with openapi-core against
tests/specs/finapi-access-v1-data.yaml (token, users, bank connections, accounts, daily
balances, transactions) or tests/specs/finapi-webform2-update.yaml (import and update forms).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from aiofinaccess import SessionManager
from aiofinaccess.api.finapi.data import AccountFilters, TransactionFilters
from aiofinaccess.api.pipeline import EndUser
from aiofinaccess.core.errors import BadRequestError, NotFoundError, UnprocessableEntityError
from aiofinaccess.finapi import FinApiData, FinApiTransactionSync
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from aiofinaccess.sandbox.state import Exchange
from tests.support.contract import access_spec, spec, validate_exchange
from tests.support.finapi_journey import import_connection, press, update_form

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")

ACCESS_HOST = "https://sandbox.finapi.io"
WEB_FORM_HOST = "https://webform-sandbox.finapi.io"
USER = "contract-data"


ACCESS = access_spec()
WEB_FORMS = spec("finapi-webform2-update.yaml")


def validate(exchange: Exchange, *, request_too: bool = True) -> None:
    """Validate one exchange against the spec of its host."""
    web_form = exchange.path.startswith("/api/webForms")
    spec, host = (WEB_FORMS, WEB_FORM_HOST) if web_form else (ACCESS, ACCESS_HOST)
    validate_exchange(spec, host, exchange, request_too=request_too)


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(
        finapi_version="v1", finapi_transactions_per_account=140, record_requests=True
    )


async def test_every_request_the_sdk_sends_and_every_answer_validates(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """The whole finAPI journey in v1 mode, successes and documented refusals."""
    connection_id = await import_connection(sandbox_manager, USER)
    data = FinApiData(sandbox_manager)
    end_user = EndUser(ip_address="203.0.113.5", user_agent="Mozilla/5.0", device_os="iOS 18")
    await data.bank_connections(USER)
    await data.bank_connections(USER, [connection_id, 777])
    await data.bank_connection(USER, connection_id, end_user=end_user)
    accounts = await data.accounts(USER)
    await data.accounts(
        USER,
        AccountFilters(
            ids=[a.id for a in accounts],
            bank_connection_ids=[connection_id],
            account_types=["Checking", "Savings"],
            search="DE",
            min_balance=Decimal("-100000.5"),
            max_balance=100000,
        ),
    )
    await data.account(USER, accounts[0].id)
    today = dt.date.today()
    await data.daily_balances(
        USER,
        account_ids=[a.id for a in accounts],
        start_date=today - dt.timedelta(days=40),
        end_date=today,
        with_projection=False,
        per_page=10,
    )
    everything = [t async for t in data.transactions(USER, per_page=100, end_user=end_user)]
    await data.transactions_page(
        USER,
        TransactionFilters(
            account_ids=[a.id for a in accounts],
            ids=[t.id for t in everything[:30]],
            view="userView",
            search="online",
            counterpart="bahn",
            purpose="fahrkarte",
            min_bank_booking_date=today - dt.timedelta(days=30),
            max_bank_booking_date=today,
            min_finapi_booking_date=today - dt.timedelta(days=30),
            max_finapi_booking_date=today,
            min_import_date=today - dt.timedelta(days=1),
            max_import_date=today + dt.timedelta(days=1),
            min_amount=Decimal("-250.00"),
            max_amount=Decimal("-0.01"),
            direction="spending",
            is_new=True,
            is_potential_duplicate=False,
            is_adjusting_entry=False,
            order=("bankBookingDate,desc", "id,asc"),
        ),
        per_page=5,
    )
    await data.transaction(USER, everything[0].id)
    sync = FinApiTransactionSync(data, USER)
    assert len([t async for t in sync.changes(per_page=200)]) == 280
    form = await update_form(
        sandbox_manager,
        USER,
        connection_id,
        import_new_accounts=False,
        skip_positions_download=False,
    )
    await press(form)
    assert len([t async for t in sync.changes(per_page=200)]) == 10
    refusals = [
        (NotFoundError, data.transaction(USER, 999_999)),
        (NotFoundError, data.account(USER, 999_999)),
        (NotFoundError, data.bank_connection(USER, 999_999)),
        (BadRequestError, data.transactions_page(USER, TransactionFilters(order=("x,asc",)))),
        (
            UnprocessableEntityError,
            data.daily_balances(USER, start_date=today, end_date=today - dt.timedelta(days=1)),
        ),
        (NotFoundError, data.daily_balances(USER, account_ids=[999_999])),
    ]
    for error, call in refusals:
        with pytest.raises(error):
            await call
    await data.delete_bank_connection(USER, connection_id)
    journal = sandbox.state.journal
    sent = {(e.method, e.path.rstrip("0123456789"), e.status) for e in journal}
    assert sent >= {
        ("GET", "/api/v1/bankConnections", 200),
        ("GET", "/api/v1/bankConnections/", 200),
        ("GET", "/api/v1/bankConnections/", 404),
        ("DELETE", "/api/v1/bankConnections/", 200),
        ("GET", "/api/v1/accounts", 200),
        ("GET", "/api/v1/accounts/", 200),
        ("GET", "/api/v1/accounts/", 404),
        ("GET", "/api/v1/accounts/dailyBalances", 200),
        ("GET", "/api/v1/accounts/dailyBalances", 404),
        ("GET", "/api/v1/accounts/dailyBalances", 422),
        ("GET", "/api/v1/transactions", 200),
        ("GET", "/api/v1/transactions", 400),
        ("GET", "/api/v1/transactions/", 200),
        ("GET", "/api/v1/transactions/", 404),
        ("POST", "/api/webForms/bankConnectionImport", 201),
        ("POST", "/api/webForms/bankConnectionUpdate", 201),
    }
    api = [e for e in journal if not e.path.startswith("/wf/")]  # the end user's page is no API
    for exchange in api:
        validate(exchange)
    assert len(api) >= 30


async def test_refusals_outside_the_sdk_validate(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """What the SDK never sends (it checks first) still gets finAPI's documented answers."""
    await import_connection(sandbox_manager, USER)
    user = await sandbox_manager.access_token("finapi", USER)
    client = await sandbox_manager.access_token("finapi")
    cases: list[tuple[str, dict[str, Any], str | None, int, bool]] = [
        ("/api/v1/transactions", {"view": "bankView", "perPage": "501"}, user, 400, False),
        ("/api/v1/transactions", {}, user, 400, False),
        (
            "/api/v1/transactions",
            {"view": "bankView", "ids": ",".join(["1"] * 1001)},
            user,
            400,
            False,
        ),
        ("/api/v1/transactions", {"view": "bankView"}, client, 403, True),
        ("/api/v1/transactions", {"view": "bankView"}, None, 401, True),
        ("/api/v1/accounts", {}, "expired-or-unknown", 401, True),
        ("/api/v1/bankConnections", {}, client, 403, True),
        ("/api/v1/accounts/dailyBalances", {"perPage": "0"}, user, 400, False),
    ]
    async with aiohttp.ClientSession() as http:
        for path, query, token, status, valid_request in cases:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.get(sandbox.base_url + path, params=query, headers=headers) as response:
                assert response.status == status, (path, query, await response.text())
            exchange = sandbox.state.journal[-1]
            body = exchange.response_body
            assert (b'"errors"' in body) or (b'"error"' in body)
            validate(exchange, request_too=valid_request)
        update = sandbox.base_url + "/api/webForms/bankConnectionUpdate"
        headers = {"Authorization": f"Bearer {user}"}
        for body, status in (
            ({"importNewAccounts": "yes"}, 400),
            ({"bank": {"bankConnectionId": 99}}, 404),
        ):
            async with http.post(update, json=body, headers=headers) as response:
                assert response.status == status
            validate(sandbox.state.journal[-1], request_too=status != 400)
        refused = json.loads(sandbox.state.journal[-2].response_body)
        assert {e["field"] for e in refused["errors"]} == {
            "bank.bankConnectionId",
            "importNewAccounts",
        }
    codes = [e.response_body for e in sandbox.state.journal if e.status == 400]
    assert any(b"ILLEGAL_PAGE_SIZE" in body for body in codes)
    assert any(b"TOO_MANY_IDS" in body for body in codes)
