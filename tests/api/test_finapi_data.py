"""aiofinaccess.api.finapi.data against the sandbox: the data a Web Form import leaves in finAPI.

Everything here runs over real HTTP against the sandbox (never mocks): paging over 2,200
transactions, a token expiring mid-iteration, every filter (compared with the same filter
applied locally to the unfiltered list), both API versions and both id-list styles.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import aiohttp
import attrs
import pytest

from aiofinaccess import SessionManager
from aiofinaccess.api.finapi.data import AccountFilters, TransactionFilters
from aiofinaccess.api.pipeline import Endpoint, EndUser
from aiofinaccess.core.errors import (
    BadRequestError,
    NotFoundError,
    UnprocessableEntityError,
    ValidationError,
)
from aiofinaccess.finapi import FinApiData, FinApiDataRoutes, FinApiTransaction, NewUser, Users
from aiofinaccess.sandbox import Sandbox, SandboxConfig
from tests.support.finapi_journey import PASSWORD, import_connection

USER = "finapi-alice"
BIG = 1100  # per account; two accounts: 2,200 transactions


@pytest.fixture(params=["v2", "v1"])
def sandbox_config(request: pytest.FixtureRequest) -> SandboxConfig:
    return SandboxConfig(finapi_version=request.param, record_requests=True)


@pytest.fixture
async def data(sandbox_manager: SessionManager) -> FinApiData:
    await import_connection(sandbox_manager, USER)
    return FinApiData(sandbox_manager)


async def test_an_import_leaves_a_connection_with_accounts_and_transactions(
    data: FinApiData, sandbox: Sandbox
) -> None:
    """Web Form import -> connection -> accounts -> transactions, typed, in either version."""
    version = sandbox.config.finapi_version
    [connection] = await data.bank_connections(USER)
    assert connection.update_status == "READY"
    assert len(connection.account_ids) == 2
    assert connection.bank is not None
    assert connection.bank.is_test_bank is True
    assert await data.bank_connection(USER, connection.id) == connection
    assert await data.bank_connections(USER, [connection.id + 999]) == []
    accounts = await data.accounts(USER)
    assert [a.id for a in accounts] == list(connection.account_ids)
    assert {a.account_type for a in accounts} == {"Checking", "Savings"}
    assert all(isinstance(a.balance, Decimal) for a in accounts)
    assert await data.account(USER, accounts[0].id) == accounts[0]
    transactions = [t async for t in data.transactions(USER)]
    assert len(transactions) == 120
    first = transactions[0]
    assert isinstance(first.amount, Decimal)
    assert first.amount == first.amount.quantize(Decimal("0.01"))
    assert isinstance(first.bank_booking_date, dt.date)
    assert first.import_date is not None
    assert first.import_date.tzinfo is not None
    assert await data.transaction(USER, first.id) == first
    # Each account's balance is its opening balance plus its transactions: the same both ways.
    page = await data.transactions_page(USER)
    assert page.balance == sum(t.amount for t in transactions)
    assert page.income - (-page.spending) == page.balance
    assert page.paging.total_count == 120
    sent = [e for e in sandbox.state.journal if e.path.startswith(f"/api/{version}/")]
    assert sent, "requests went to the configured version's paths"


async def test_the_sandbox_refuses_the_other_versions_paths(
    data: FinApiData, sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """A v2 client on a v1 mandator (or the reverse) gets finAPI's 403 version mismatch."""
    other = "v1" if sandbox.config.finapi_version == "v2" else "v2"
    token = await sandbox_manager.access_token("finapi", USER)
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{sandbox.base_url}/api/{other}/accounts",
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status == 403
        assert (await response.json())["errors"][0]["message"] == "API Version mismatch"


@pytest.mark.parametrize(
    "sandbox_config",
    [
        SandboxConfig(
            finapi_version=version, finapi_transactions_per_account=BIG, record_requests=True
        )
        for version in ("v2", "v1")
    ],
    ids=["v2", "v1"],
)
async def test_paging_through_2200_transactions(data: FinApiData, sandbox: Sandbox) -> None:
    """Eight pages of 300: every transaction once, in id order, no page asked twice."""
    seen = [t.id async for t in data.transactions(USER, per_page=300)]
    assert len(seen) == 2 * BIG
    assert len(set(seen)) == len(seen)
    assert seen == sorted(seen)
    pages = [e for e in sandbox.state.journal if e.path.endswith("/transactions")]
    assert [e.query["page"] for e in pages] == [str(n) for n in range(1, 9)]
    assert {e.query["perPage"] for e in pages} == {"300"}


@pytest.mark.parametrize(
    "sandbox_config",
    [
        SandboxConfig(
            finapi_transactions_per_account=BIG, finapi_user_token_ttl=600, record_requests=True
        )
    ],
)
async def test_an_expired_user_token_mid_iteration_is_renewed_once(
    data: FinApiData, sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """The sandbox expires the user's token between pages: one 401, one refresh, no gap."""
    before = sandbox.stats()["token_requests"]
    assert before.get("finapi_refresh_token", 0) == 0
    seen: list[int] = []
    async for transaction in data.transactions(USER, per_page=250):
        seen.append(transaction.id)
        if len(seen) == 600:
            sandbox.advance(601)
    assert len(seen) == 2 * BIG
    assert seen == sorted(set(seen))
    stats = sandbox.stats()
    assert stats["api_calls"]["401"] == 1
    assert stats["token_requests"]["finapi_refresh_token"] == 1
    assert stats["token_requests"]["finapi_password"] == before["finapi_password"] == 1
    pages = [e for e in sandbox.state.journal if e.path.endswith("/transactions")]
    # Nine pages of 250; the one after the expiry was refused once (401) and replayed.
    assert [(e.query["page"], e.status) for e in pages] == [
        *((str(n), 200) for n in range(1, 4)),
        ("4", 401),
        *((str(n), 200) for n in range(4, 10)),
    ]


def _local(transactions: list[FinApiTransaction], filters: TransactionFilters) -> list[int]:
    """The filter applied here, independently of the sandbox's code."""

    def keep(t: FinApiTransaction) -> bool:
        text = f"{t.purpose} {t.counterpart_name} {t.counterpart_iban} {t.end_to_end_reference}"
        checks = [
            filters.account_ids is None or t.account_id in filters.account_ids,
            filters.ids is None or t.id in filters.ids,
            all(w in text.lower() for w in (filters.search or "").lower().split()),
            all(w in (t.purpose or "").lower() for w in (filters.purpose or "").lower().split()),
            all(
                w in f"{t.counterpart_name} {t.counterpart_iban}".lower()
                for w in (filters.counterpart or "").lower().split()
            ),
            filters.min_bank_booking_date is None
            or (t.bank_booking_date or dt.date.min) >= filters.min_bank_booking_date,
            filters.max_bank_booking_date is None
            or (t.bank_booking_date or dt.date.max) <= filters.max_bank_booking_date,
            filters.min_amount is None or t.amount >= filters.min_amount,
            filters.max_amount is None or t.amount <= filters.max_amount,
            filters.direction in (None, "all")
            or (t.amount >= 0) == (filters.direction == "income"),
        ]
        return all(checks)

    return [t.id for t in transactions if keep(t)]


@pytest.mark.parametrize("id_lists", ["repeat", "comma"])
async def test_every_transaction_filter_matches_the_same_filter_applied_locally(
    data: FinApiData, sandbox_manager: SessionManager, id_lists: str
) -> None:
    """Server-side filtering, compared with an independent local filter over everything."""
    client = FinApiData(sandbox_manager, routes=FinApiDataRoutes(id_lists=id_lists))
    everything = [t async for t in client.transactions(USER)]
    accounts = sorted({t.account_id for t in everything})
    days = sorted({t.bank_booking_date for t in everything if t.bank_booking_date})
    middle = days[len(days) // 2]
    cases = [
        TransactionFilters(account_ids=accounts[:1]),
        TransactionFilters(account_ids=accounts),
        TransactionFilters(ids=[t.id for t in everything[::7]]),
        TransactionFilters(direction="income"),
        TransactionFilters(direction="spending", account_ids=accounts[1:]),
        TransactionFilters(min_bank_booking_date=middle),
        TransactionFilters(max_bank_booking_date=middle, min_bank_booking_date=days[1]),
        TransactionFilters(min_amount=Decimal("-50.00"), max_amount="20"),
        TransactionFilters(search="gehalt employer"),
        TransactionFilters(search="ONLINE"),
        TransactionFilters(purpose="miete"),
        TransactionFilters(counterpart="DE89370400440532013000"),
        TransactionFilters(search="nothing-matches-this"),
    ]
    for filters in cases:
        found = [t.id async for t in client.transactions(USER, filters, per_page=17)]
        expected = _local(everything, filters)
        assert found == expected, filters
    assert sum(1 for case in cases if _local(everything, case)) >= 11  # the cases bite


async def test_import_date_flags_and_order(data: FinApiData) -> None:
    """Import-date bounds, ``isNew``, and an order the SDK passes through unchanged."""
    everything = [t async for t in data.transactions(USER)]
    imported = everything[0].import_date
    assert imported is not None
    today = imported.date()
    assert (
        len([t async for t in data.transactions(USER, TransactionFilters(min_import_date=today))])
        == 120
    )
    later = today + dt.timedelta(days=2)
    assert [
        t async for t in data.transactions(USER, TransactionFilters(min_import_date=later))
    ] == []
    assert [t async for t in data.transactions(USER, TransactionFilters(is_new=False))] == []
    by_amount = [
        t.amount
        async for t in data.transactions(
            USER, TransactionFilters(order=("amount,desc", "id")), per_page=50
        )
    ]
    assert by_amount == sorted((t.amount for t in everything), reverse=True)


async def test_account_filters(data: FinApiData) -> None:
    """Ids, bank connection ids, types, search and balance bounds."""
    accounts = await data.accounts(USER)
    checking = next(a for a in accounts if a.account_type == "Checking")
    assert await data.accounts(USER, AccountFilters(account_types=["Savings"])) == [
        a for a in accounts if a.account_type == "Savings"
    ]
    assert await data.accounts(USER, AccountFilters(ids=[checking.id])) == [checking]
    assert await data.accounts(USER, AccountFilters(search=checking.iban)) == [checking]
    assert (
        await data.accounts(USER, AccountFilters(bank_connection_ids=[checking.bank_connection_id]))
        == accounts
    )
    assert await data.accounts(USER, AccountFilters(bank_connection_ids=[99999])) == []
    assert checking.balance is not None
    above = AccountFilters(min_balance=checking.balance)
    assert checking in await data.accounts(USER, above)
    below = AccountFilters(max_balance=checking.balance - Decimal("0.01"))
    assert checking not in await data.accounts(USER, below)


async def test_daily_balances_add_up(data: FinApiData) -> None:
    """The last day's balance is the accounts' balance; a day's income and spending are its
    transactions'; paging (perPage 7) loses no day."""
    accounts = await data.accounts(USER)
    everything = [t async for t in data.transactions(USER)]
    today = max(t.bank_booking_date for t in everything if t.bank_booking_date)
    start = today - dt.timedelta(days=20)
    report = await data.daily_balances(USER, start_date=start, end_date=today, per_page=7)
    assert [b.date for b in report.balances] == [start + dt.timedelta(days=n) for n in range(21)]
    assert report.balances[-1].balance == sum(a.balance or 0 for a in accounts)
    assert report.latest_common_balance_timestamp is not None
    for day in report.balances:
        booked = [t for t in everything if t.bank_booking_date == day.date]
        assert set(day.transactions) == {t.id for t in booked}
        assert day.income == sum(t.amount for t in booked if t.amount >= 0)
        assert day.spending == -sum(t.amount for t in booked if t.amount < 0)
    one = await data.daily_balances(
        USER, account_ids=[accounts[0].id], start_date=start, end_date=today
    )
    assert one.balances[-1].balance == accounts[0].balance
    with pytest.raises(UnprocessableEntityError) as info:
        await data.daily_balances(USER, start_date=today, end_date=start)
    assert info.value.code == "ILLEGAL_FIELD_VALUE"


async def test_documented_refusals_are_typed(
    data: FinApiData, sandbox_manager: SessionManager
) -> None:
    """Unknown ids are 404 UNKNOWN_ENTITY; a bad order is 400 UNSUPPORTED_ORDER; another
    user's data is as invisible as missing data."""
    with pytest.raises(NotFoundError) as info:
        await data.transaction(USER, 987654)
    assert info.value.code == "UNKNOWN_ENTITY"
    assert info.value.request_id
    with pytest.raises(NotFoundError):
        await data.account(USER, 987654)
    with pytest.raises(BadRequestError) as bad:
        await data.transactions_page(USER, TransactionFilters(order=("colour,asc",)))
    assert bad.value.code == "UNSUPPORTED_ORDER"
    mine = (await data.bank_connections(USER))[0]
    await import_connection(sandbox_manager, "finapi-bob")
    with pytest.raises(NotFoundError):
        await data.bank_connection("finapi-bob", mine.id)
    assert {a.id for a in await data.accounts("finapi-bob")}.isdisjoint(mine.account_ids)


async def test_delete_bank_connection_removes_its_data(data: FinApiData) -> None:
    """Deleting the connection deletes its accounts and transactions; it is then 404."""
    [connection] = await data.bank_connections(USER)
    await data.delete_bank_connection(USER, connection.id)
    assert await data.bank_connections(USER) == []
    assert await data.accounts(USER) == []
    assert [t async for t in data.transactions(USER)] == []
    with pytest.raises(NotFoundError):
        await data.bank_connection(USER, connection.id)
    with pytest.raises(NotFoundError):
        await data.delete_bank_connection(USER, connection.id)


async def test_deleting_the_user_deletes_their_data(
    data: FinApiData, sandbox_manager: SessionManager
) -> None:
    """finAPI deletes a user's data with the user: a new user of the same id starts empty."""
    await Users(sandbox_manager).delete(USER)
    await Users(sandbox_manager).create_and_login(NewUser(id=USER, password=PASSWORD))
    assert await data.bank_connections(USER) == []
    assert [t async for t in data.transactions(USER)] == []


async def test_client_side_limits_send_nothing(data: FinApiData, sandbox: Sandbox) -> None:
    """Page sizes outside 1..500 and page 0 are refused before any request."""
    before = len(sandbox.state.journal)
    with pytest.raises(ValidationError):
        [t async for t in data.transactions(USER, per_page=501)]
    with pytest.raises(ValidationError):
        await data.transactions_page(USER, page=0)
    with pytest.raises(ValidationError):
        await data.daily_balances(USER, per_page=0)
    assert len(sandbox.state.journal) == before


async def test_end_user_context_goes_out_as_psu_headers(
    data: FinApiData, sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """``EndUser`` becomes finAPI's PSU-* headers; every data call carries the user's token."""
    end_user = EndUser(ip_address="203.0.113.9", user_agent="Mozilla/5.0", device_os="Android 14")
    await data.transactions_page(USER, end_user=end_user)
    sent = [e for e in sandbox.state.journal if e.path.endswith("/transactions")][-1]
    assert sent.headers["PSU-IP-Address"] == "203.0.113.9"
    assert sent.headers["PSU-User-Agent"] == "Mozilla/5.0"
    assert sent.headers["PSU-Device-OS"] == "Android 14"
    user_token = await sandbox_manager.access_token("finapi", USER)
    client_token = await sandbox_manager.access_token("finapi")
    data_calls = [e for e in sandbox.state.journal if e.path.startswith("/api/v")]
    data_calls = [e for e in data_calls if "/users" not in e.path and "/oauth/" not in e.path]
    assert data_calls
    assert {e.headers["Authorization"] for e in data_calls} == {f"Bearer {user_token}"}
    assert user_token != client_token


async def test_routes_are_configurable(data: FinApiData, sandbox_manager: SessionManager) -> None:
    """A moved route is used as given (here: to a path the sandbox does not serve)."""
    moved = attrs.evolve(FinApiDataRoutes(), accounts=Endpoint("GET", "/accountsMoved"))
    with pytest.raises(NotFoundError):
        await FinApiData(sandbox_manager, routes=moved).accounts(USER)
    assert len(await data.accounts(USER)) == 2
