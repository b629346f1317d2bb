"""Everifin BankConnect against the sandbox's Everifin: calls, paging, sync, failures."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import aiohttp
import attrs
import pytest

from aiofinaccess import SessionManager
from aiofinaccess.api.pipeline import Endpoint, EndUser
from aiofinaccess.core.errors import ConflictError, NotFoundError, ValidationError
from aiofinaccess.everifin import BankConnect, BankConnectRoutes, TransactionSync
from aiofinaccess.sandbox import Sandbox, SandboxConfig, headless_login

USER = "alice"


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    return SandboxConfig(transactions_per_account=1200, record_requests=True)


@pytest.fixture
async def bank(sandbox: Sandbox, sandbox_manager: SessionManager) -> BankConnect:
    request = sandbox_manager.authorization_request("everifin", "http://127.0.0.1/callback")
    async with aiohttp.ClientSession() as browser:
        callback = await headless_login(browser, request.url, USER, "alice-password")
    await sandbox_manager.complete_authorization("everifin", USER, str(callback), request)
    return BankConnect(sandbox_manager)


async def test_accounts_activation_detail_balances(bank: BankConnect) -> None:
    """Typed models out of the {data, meta} envelope; an inactive account refuses reads."""
    accounts = await bank.accounts(USER)
    assert len(accounts) == 3
    inactive = next(account for account in accounts if not account.active)
    assert inactive.raw["id"] == inactive.id
    with pytest.raises(ConflictError) as info:
        await bank.balances(USER, inactive.id)
    assert info.value.code == "ACCOUNT_NOT_ACTIVE"
    activated = await bank.activate_accounts(USER, [inactive.id])
    assert activated[0].active
    balances = await bank.balances(USER, inactive.id)
    assert {balance.type for balance in balances} == {"CLBD", "CLAV"}
    assert all(isinstance(balance.amount, Decimal) for balance in balances)
    assert (await bank.account(USER, inactive.id)).iban == inactive.iban


async def test_paging_through_1200_transactions(bank: BankConnect, sandbox: Sandbox) -> None:
    """Twelve pages of 100, every transaction once, in lastUpdated order."""
    account = (await bank.accounts(USER))[0]
    seen = [tx async for tx in bank.transactions(USER, account.id, per_page=100)]
    assert len(seen) == 1200
    assert len({tx.id for tx in seen}) == 1200
    assert [tx.last_updated for tx in seen] == sorted(tx.last_updated for tx in seen)
    pages = [e for e in sandbox.state.journal if e.path.endswith("/transactions")]
    assert len(pages) == 12
    detail = await bank.transaction(USER, seen[5].id)
    assert detail == seen[5]


async def test_an_expired_token_mid_iteration_is_renewed_transparently(
    bank: BankConnect, sandbox: Sandbox
) -> None:
    """The sandbox expires the token between pages; the pipeline renews once and goes on."""
    account = (await bank.accounts(USER))[0]
    count = 0
    async for _ in bank.transactions(USER, account.id, per_page=100):
        count += 1
        if count == 550:
            sandbox.advance(sandbox.config.keycloak_access_ttl + 1)
    assert count == 1200
    stats = sandbox.stats()
    assert stats["api_calls"]["401"] == 1
    assert stats["token_requests"]["everifin_refresh_token"] == 1


async def test_429_with_retry_after_is_waited_out(bank: BankConnect, sandbox: Sandbox) -> None:
    """Two 429s in a row, then success; the waits follow Retry-After."""
    sandbox.set_faults(burst=2, kinds=("429",), scope="api", retry_after=1)
    accounts = await bank.accounts(USER)
    assert len(accounts) == 3
    assert sandbox.stats()["api_calls"]["429"] == 2


async def test_typed_errors(bank: BankConnect) -> None:
    """Unknown ids are NotFoundError; bad arguments never leave the process."""
    with pytest.raises(NotFoundError) as info:
        await bank.account(USER, "acc-unknown")
    assert info.value.code == "ACCOUNT_NOT_FOUND"
    assert info.value.request_id
    with pytest.raises(NotFoundError):
        await bank.transaction(USER, "tx-unknown")
    with pytest.raises(ValidationError):
        await bank.activate_accounts(USER, [])
    with pytest.raises(ValidationError):
        _ = [tx async for tx in bank.transactions(USER, "acc", per_page=501)]


async def test_filters_and_end_user_headers(bank: BankConnect, sandbox: Sandbox) -> None:
    """Booking-date filters reach the API; the end user's context goes in Everifin's headers."""
    account = (await bank.accounts(USER))[0]
    first_month = [
        tx
        async for tx in bank.transactions(
            USER,
            account.id,
            booking_date_from=dt.date(2026, 1, 1),
            booking_date_to=dt.date(2026, 1, 31),
            end_user=EndUser(ip_address="198.51.100.4", user_agent="App/1.0"),
        )
    ]
    assert first_month
    assert all(tx.booking_date is not None and tx.booking_date.month == 1 for tx in first_month)
    last = sandbox.state.journal[-1]
    assert last.query["bookingDateFrom"] == "2026-01-01"
    assert last.headers["client-ip-address"] == "198.51.100.4"
    assert last.headers["User-Agent"] == "App/1.0"


async def test_incremental_sync(bank: BankConnect, sandbox: Sandbox) -> None:
    """First run sees everything; after a bank refresh, the next run sees only what changed."""
    account = (await bank.accounts(USER))[0]
    sync = TransactionSync(bank, USER, account.id)
    first = [tx async for tx in sync.changes(per_page=500)]
    assert len(first) == 1200
    cursor = sync.cursor
    assert cursor == max(tx.last_updated for tx in first)
    assert [tx async for tx in sync.changes()] == []
    sandbox.advance(60)
    await bank.refresh_transactions(USER)
    changed = [tx async for tx in sync.changes()]
    assert len(changed) == 4  # three new, one corrected by the bank
    assert sync.cursor is not None
    assert sync.cursor > cursor
    updated_from = sandbox.state.journal[-1].query["updatedFrom"]
    assert updated_from.endswith("Z")


async def test_routes_can_be_moved(bank: BankConnect, sandbox_manager: SessionManager) -> None:
    """One route table: moving a path is data, not code."""
    routes = attrs.evolve(BankConnectRoutes(), accounts=Endpoint("GET", "/accounts-moved"))
    moved = BankConnect(sandbox_manager, routes=routes)
    with pytest.raises(NotFoundError):
        await moved.accounts(USER)
