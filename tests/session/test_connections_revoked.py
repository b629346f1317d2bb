"""A user's revoked tokens or deletion turn their connections REVOKED; delivered notices are
pruned after the retention; the registry's unattended-update budget raises a typed error."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from aiofinaccess import ClientCredentials, FinApi, SessionManager, TokenSet
from aiofinaccess.connections import (
    ConnectionEvent,
    ConnectionRegistry,
    ConnectionState,
    Observation,
    ReconnectRequired,
    UpdateBudget,
)
from aiofinaccess.errors import ConfigurationError, UpdateBudgetExhausted
from aiofinaccess.stores.memory import MemoryStore
from tests.support.fakes import FakeClock

DAY = 86_400.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_revoke_turns_every_connection_of_the_user_revoked_once(clock: FakeClock) -> None:
    registry = ConnectionRegistry(MemoryStore(), clock)
    seen: list[ConnectionEvent] = []
    registry.subscribe(seen.append)
    end = clock.wall() + 90 * DAY
    await registry.observe("finapi", "alice", "", Observation())
    await registry.observe("finapi", "alice", "7", Observation(expires_at=end))
    await registry.observe("finapi", "bob", "8", Observation(expires_at=end))
    await registry.observe("everifin", "alice", "", Observation())
    assert await registry.revoke("finapi", "alice") == 2
    assert await registry.revoke("finapi", "alice") == 2  # again: no second event
    assert [(e.connection, e.state) for e in seen if isinstance(e, ReconnectRequired)] == [
        ("", ConnectionState.REVOKED),
        ("7", ConnectionState.REVOKED),
    ]
    states = {(i.provider, i.subject, i.connection): i.state for i in await registry.list()}
    assert states == {
        ("everifin", "alice", ""): ConnectionState.ACTIVE,
        ("finapi", "alice", ""): ConnectionState.REVOKED,
        ("finapi", "alice", "7"): ConnectionState.REVOKED,
        ("finapi", "bob", "8"): ConnectionState.ACTIVE,
    }
    revoked = await registry.get("finapi", "alice", "7")
    assert revoked is not None
    assert revoked.expires_at == dt.datetime.fromtimestamp(end, dt.UTC)  # the end is kept


async def test_the_manager_revokes_on_forget_only_when_told(clock: FakeClock) -> None:
    """``forget(..., revoked=True)`` (a deleted user) turns the connections REVOKED; a plain
    ``forget`` (a changed password) leaves them as they are."""
    async with SessionManager(clock=clock) as manager:
        manager.register(FinApi.sandbox(), ClientCredentials("id", "secret"))
        for user in ("alice", "bob"):
            await manager.store_token_set("finapi", user, TokenSet(access_token="AT"))
        await manager.forget("finapi", "bob")
        await manager.forget("finapi", "alice", revoked=True)
        states = {i.subject: i.state for i in await manager.connections.list()}
    assert states == {"alice": ConnectionState.REVOKED, "bob": ConnectionState.ACTIVE}


async def test_delivered_notices_are_pruned_after_the_retention(clock: FakeClock) -> None:
    store = MemoryStore()
    registry = ConnectionRegistry(store, clock, retention=dt.timedelta(seconds=0.2))
    await registry.observe("finapi", "a", "1", Observation(blocked=ConnectionState.EXPIRED))
    assert await registry.prune() == 0
    await asyncio.sleep(0.3)  # the store's clock is the machine's
    assert await registry.prune() == 1
    with pytest.raises(ConfigurationError, match="retention"):
        ConnectionRegistry(store, clock, retention=dt.timedelta(0))


async def test_the_budget_refuses_with_when_the_next_is_allowed(clock: FakeClock) -> None:
    registry = ConnectionRegistry(MemoryStore(), clock, budget=UpdateBudget(limit=2, window=60))
    await registry.take_unattended_update("finapi", "a", "1")
    await registry.take_unattended_update("finapi", "a", "1")
    before = dt.datetime.now(dt.UTC)
    with pytest.raises(UpdateBudgetExhausted) as refused:
        await registry.take_unattended_update("finapi", "a", "1")
    assert refused.value.next_allowed_at.tzinfo is dt.UTC
    assert before < refused.value.next_allowed_at <= before + dt.timedelta(seconds=60)
    await registry.take_unattended_update("finapi", "a", "2")
