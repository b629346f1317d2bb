"""Incremental sync of finAPI transactions, and one worker loop for finAPI and Everifin."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from aiofinaccess import IncrementalSync, SessionManager
from aiofinaccess.api.finapi.data import TransactionFilters
from aiofinaccess.core.errors import NotFoundError, ValidationError
from aiofinaccess.everifin import BankConnect, TransactionSync
from aiofinaccess.finapi import (
    FinApiData,
    FinApiSyncCursor,
    FinApiTransaction,
    FinApiTransactionSync,
    Paging,
    TransactionPage,
)
from aiofinaccess.sandbox import Sandbox, SandboxConfig, headless_login
from aiofinaccess.sandbox.state import Exchange
from tests.support.finapi_journey import import_connection, press, update_form

USER = "finapi-sync"


@pytest.fixture(params=["v2", "v1"])
def sandbox_config(request: pytest.FixtureRequest) -> SandboxConfig:
    return SandboxConfig(
        finapi_version=request.param,
        finapi_transactions_per_account=1100,
        finapi_transactions_per_update=7,
        record_requests=True,
    )


@pytest.fixture
async def data(sandbox_manager: SessionManager) -> FinApiData:
    await import_connection(sandbox_manager, USER)
    return FinApiData(sandbox_manager)


async def drain(sync: IncrementalSync[Any], *, stop_after: int | None = None) -> list[Any]:
    """The app's worker loop: the same for both providers."""
    seen = []
    async for transaction in sync.changes():
        seen.append(transaction)
        if stop_after is not None and len(seen) == stop_after:
            break
    return seen


async def test_first_run_then_an_update_yields_only_the_new_ones(
    data: FinApiData, sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """2,200 on the first run, nothing on a second, the 14 an update imported on a third."""
    sync = FinApiTransactionSync(data, USER)
    first = await drain(sync)
    assert len(first) == 2200
    assert len({t.id for t in first}) == 2200
    assert sync.cursor == FinApiSyncCursor.of(first[-1])
    assert await drain(sync) == []
    [connection] = await data.bank_connections(USER)
    sandbox.advance(90)  # the update happens later: a later import instant
    form = await update_form(sandbox_manager, USER, connection.id)
    assert form.task is None
    await press(form)
    new = await drain(sync)
    assert len(new) == 14
    assert min(t.id for t in new) > max(t.id for t in first)
    assert all(t.import_date and first[-1].import_date < t.import_date for t in new)
    everything = {t.id async for t in data.transactions(USER)}
    assert everything == {t.id for t in first} | {t.id for t in new}
    # The later runs asked from the cursor's day (minus one), ordered by import time.
    runs = [
        e for e in sandbox.state.journal if e.path.endswith("/transactions") and "order" in e.query
    ]
    assert len(runs) == 5 + 1 + 1  # 2,200 in pages of 500, then one page each
    assert "minImportDate" not in runs[0].query
    assert runs[-1].query["minImportDate"]

    def orders(exchange: Exchange) -> list[str]:
        return [value for name, value in exchange.query_pairs if name == "order"]

    assert orders(runs[0]) == ["importDate,asc", "id,asc"]
    assert orders(runs[-1]) == ["importDate,desc", "id,desc"]


async def test_a_stored_cursor_resumes_without_gaps(data: FinApiData) -> None:
    """Stop after 700, store the cursor as text, resume in a new sync: nothing lost, and only
    the item the loop broke on comes again (it counts as processed once the loop asks for the
    next one: at least once, as Everifin's sync)."""
    sync = FinApiTransactionSync(data, USER)
    part = await drain(sync, stop_after=700)
    assert sync.cursor == FinApiSyncCursor.of(part[-2])
    stored = sync.cursor.to_text()
    resumed = FinApiTransactionSync(data, USER, cursor=FinApiSyncCursor.from_text(stored))
    rest = await drain(resumed)
    assert rest[0] == part[-1]
    ids = [t.id for t in part[:-1] + rest]
    assert len(ids) == 2200
    assert len(set(ids)) == 2200
    assert ids == sorted(ids)  # one import instant: the id breaks the tie


async def test_one_account_and_a_booking_date_floor(data: FinApiData) -> None:
    """``account_ids`` and ``booking_date_from`` narrow the first download."""
    accounts = await data.accounts(USER)
    floor = dt.date.today() - dt.timedelta(days=30)
    sync = FinApiTransactionSync(data, USER, account_ids=(accounts[1].id,), booking_date_from=floor)
    seen = await drain(sync)
    assert seen
    assert {t.account_id for t in seen} == {accounts[1].id}
    assert all(t.bank_booking_date and t.bank_booking_date >= floor for t in seen)
    assert len(seen) < 1100


def test_cursor_text_round_trip_and_refusals() -> None:
    """Aware instants only; text that is not a cursor is a ValidationError."""
    moment = dt.datetime(2026, 3, 29, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    cursor = FinApiSyncCursor(moment, 42)
    assert FinApiSyncCursor.from_text(cursor.to_text()) == cursor
    assert FinApiSyncCursor(moment, 41) < cursor
    with pytest.raises(ValidationError):
        FinApiSyncCursor(dt.datetime(2026, 1, 1), 1)
    for text in ("", "2026-01-01T00:00:00+00:00", "yesterday/3", "2026-01-01T00:00:00+00:00/x"):
        with pytest.raises(ValidationError):
            FinApiSyncCursor.from_text(text)


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(record_requests=True)])
async def test_one_worker_loop_serves_both_providers(
    sandbox: Sandbox, sandbox_manager: SessionManager
) -> None:
    """The same ``drain`` runs Everifin's and finAPI's sync; both cursors move; both resume."""
    request = sandbox_manager.authorization_request("everifin", "http://127.0.0.1/callback")
    async with aiohttp.ClientSession() as browser:
        callback = await headless_login(browser, request.url, "alice", "alice-password")
    await sandbox_manager.complete_authorization("everifin", "alice", str(callback), request)
    bank = BankConnect(sandbox_manager)
    account = next(a for a in await bank.accounts("alice") if a.active)
    await import_connection(sandbox_manager, USER)
    syncs: list[IncrementalSync[Any]] = [
        TransactionSync(bank, "alice", account.id),
        FinApiTransactionSync(FinApiData(sandbox_manager), USER),
    ]
    for sync in syncs:
        assert sync.cursor is None
        assert len(await drain(sync)) == 120
        assert sync.cursor is not None
        assert await drain(sync) == []


@pytest.mark.parametrize("sandbox_config", [SandboxConfig()])
async def test_updating_a_connection_that_is_not_yours_is_404(
    data: FinApiData, sandbox_manager: SessionManager
) -> None:
    """The Web Form refuses an update form for someone else's (or no) connection."""
    with pytest.raises(NotFoundError):
        await update_form(sandbox_manager, USER, 4242)
    await import_connection(sandbox_manager, "finapi-other")
    [theirs] = await data.bank_connections("finapi-other")
    with pytest.raises(NotFoundError):
        await update_form(sandbox_manager, USER, theirs.id)


class _Server:
    """A stand-in for FinApiData answering pages of a fixed list, in the list's order (so a
    test can play a server that does not honour ``order``, the UNCERTAIN case)."""

    def __init__(self, transactions: list[FinApiTransaction]) -> None:
        self.items = transactions
        self.filters: list[TransactionFilters] = []
        self.pages_read = 0

    async def transactions_page(
        self, user: str, filters: TransactionFilters, *, page: int, per_page: int
    ) -> TransactionPage:
        self.filters.append(filters)
        self.pages_read += 1
        chunk = self.items[(page - 1) * per_page : page * per_page]
        count = -(-len(self.items) // per_page)
        return TransactionPage(tuple(chunk), Paging(page, per_page, count, len(self.items)))


def _tx(number: int) -> FinApiTransaction:
    moment = dt.datetime(2026, 5, 4, 10, number, tzinfo=dt.UTC)
    return FinApiTransaction(id=number, account_id=1, amount=Decimal(1), import_date=moment)


async def _later_run(order: list[int]) -> tuple[list[int], _Server, FinApiTransactionSync]:
    server = _Server([_tx(n) for n in order])
    sync = FinApiTransactionSync(server, "u", cursor=FinApiSyncCursor.of(_tx(5)))  # type: ignore[arg-type]
    found = [t.id async for t in sync.changes(per_page=2)]
    return found, server, sync


async def test_a_later_run_does_not_stop_early_when_the_order_is_not_honoured() -> None:
    """A page out of newest-first order does not end the scan, even if it holds old items."""
    found, server, sync = await _later_run([3, 7, 5, 6, 8, 1])
    assert found == [6, 7, 8]
    assert server.pages_read == 3
    assert sync.cursor == FinApiSyncCursor.of(_tx(8))
    assert server.filters[0].min_import_date == dt.date(2026, 5, 3)
    assert server.filters[0].order == ("importDate,desc", "id,desc")


async def test_a_later_run_stops_at_the_page_that_reaches_the_cursor() -> None:
    """Newest first: the pages after the one holding the cursor are never read."""
    found, server, _ = await _later_run([9, 8, 7, 5, 4, 3])
    assert found == [7, 8, 9]
    assert server.pages_read == 2
