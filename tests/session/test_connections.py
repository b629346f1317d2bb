"""The connection registry: records in the store, events with ids, listing from any process."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from aiofinaccess import SQLiteStore
from aiofinaccess.connections import (
    ConnectionEvent,
    ConnectionExpiring,
    ConnectionRegistry,
    ConnectionRepaired,
    ConnectionState,
    Observation,
    ReconnectRequired,
)
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.stores.memory import MemoryStore
from tests.support.fakes import FakeClock

DAY = 86_400.0


class Crash(Exception):
    """A process dying at an injection point."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_a_consent_walks_through_its_leads_to_a_reconnect_and_a_repair(
    clock: FakeClock,
) -> None:
    """Each event once, in order, with its lead; the listing follows."""
    registry = ConnectionRegistry(MemoryStore(), clock)
    seen: list[ConnectionEvent] = []
    registry.subscribe(seen.append)
    end = clock.wall() + 20 * DAY
    info = await registry.observe("finapi", "alice", "42", Observation(expires_at=end))
    assert (info.state, info.next_deadline) == (
        ConnectionState.ACTIVE,
        dt.datetime.fromtimestamp(end - 14 * DAY, dt.UTC),
    )
    for _ in range(21):
        clock.advance(DAY)
        await registry.sweep()
    assert [type(e) for e in seen] == [ConnectionExpiring] * 3 + [ReconnectRequired]
    assert [e.lead for e in seen if isinstance(e, ConnectionExpiring)] == [
        dt.timedelta(days=14),
        dt.timedelta(days=7),
        dt.timedelta(days=1),
    ]
    (broken,) = await registry.list(needs_action=True)
    assert (broken.subject, broken.state, broken.episode) == ("alice", ConnectionState.EXPIRED, 1)
    await registry.observe("finapi", "alice", "42", Observation(expires_at=end + 180 * DAY))
    assert isinstance(seen[-1], ConnectionRepaired)
    assert seen[-1].episode == 1
    assert await registry.list(needs_action=True) == []
    assert len({e.event_id for e in seen}) == len(seen) == 5


async def test_another_process_lists_what_one_recorded(tmp_path: Path, clock: FakeClock) -> None:
    """Two registries on one SQLite file: one records, the other lists and filters."""
    path = tmp_path / "tokens.db"
    async with SQLiteStore(path) as one, SQLiteStore(path) as other:
        writer, reader = ConnectionRegistry(one, clock), ConnectionRegistry(other, clock)
        await writer.observe("finapi", "alice", "1", Observation())
        blocked = Observation(blocked=ConnectionState.ACTION_REQUIRED, detail="XS2A")
        await writer.observe("finapi", "bob", "2", blocked)
        await writer.observe("everifin", "carol", "", Observation(expires_at=clock.wall() + DAY))
        assert [(r.provider, r.subject) for r in await reader.list()] == [
            ("everifin", "carol"),
            ("finapi", "alice"),
            ("finapi", "bob"),
        ]
        (row,) = await reader.list(needs_action=True)
        assert (row.subject, row.state, row.detail) == (
            "bob",
            ConnectionState.ACTION_REQUIRED,
            "XS2A",
        )
        assert [r.subject for r in await reader.list(provider="everifin")] == ["carol"]
        assert (await reader.get("everifin", "carol")).state is ConnectionState.EXPIRING  # type: ignore[union-attr]
        assert await reader.get("finapi", "nobody", "9") is None


async def test_a_failing_callback_gets_the_event_again_with_its_id(clock: FakeClock) -> None:
    """At-least-once: a callback that raises is redelivered the same event id."""
    registry = ConnectionRegistry(MemoryStore(), clock, claim_for=0.01)
    calls: list[str] = []

    async def flaky(event: ConnectionEvent) -> None:
        calls.append(event.event_id)
        if len(calls) == 1:
            raise RuntimeError("mail server down")

    registry.subscribe(flaky)
    await registry.observe("finapi", "a", "1", Observation(blocked=ConnectionState.REVOKED))
    assert await registry.redeliver() == 0  # not overdue yet
    await _overdue()
    assert await registry.redeliver() == 1
    assert calls == ["finapi/a/1|ReconnectRequired|1"] * 2
    await _overdue()
    assert await registry.redeliver() == 0


@pytest.mark.parametrize("point", ["claimed", "written", "delivered"])
async def test_a_crash_between_decided_and_emitted_is_redelivered(
    clock: FakeClock, point: str
) -> None:
    """A process dying after the claim, after the write, or after delivering before it
    finished: another process delivers the notice; nobody claims it a second time."""
    store = MemoryStore()
    delivered: list[str] = []

    def crash(at: str) -> None:
        if at == point:
            raise Crash(at)

    dying = ConnectionRegistry(store, clock, claim_for=0.01, _fault=crash)
    dying.subscribe(lambda event: delivered.append(event.event_id))
    with pytest.raises(Crash):
        await dying.observe("finapi", "a", "1", Observation(blocked=ConnectionState.EXPIRED))
    survivor = ConnectionRegistry(store, clock, claim_for=0.01)
    survivor.subscribe(lambda event: delivered.append(event.event_id))
    await survivor.observe("finapi", "a", "1", Observation(blocked=ConnectionState.EXPIRED))
    await _overdue()
    await survivor.redeliver()
    expected = 2 if point == "delivered" else 1  # delivered, then died before finishing
    assert delivered == ["finapi/a/1|ReconnectRequired|1"] * expected
    (row,) = await survivor.list(needs_action=True)
    assert row.episode == 1


async def test_watch_sweeps_and_redelivers_on_the_clock(clock: FakeClock) -> None:
    """``watch(every=...)`` walks a consent past its leads as time passes, until cancelled."""
    registry = ConnectionRegistry(MemoryStore(), clock)
    seen: list[ConnectionEvent] = []
    registry.subscribe(seen.append)
    await registry.observe("finapi", "a", "1", Observation(expires_at=clock.wall() + 20 * DAY))
    watcher = asyncio.create_task(registry.watch(every=DAY))
    for _ in range(1000):
        if len(seen) == 4:
            break
        await asyncio.sleep(0)
    watcher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watcher
    assert [type(event).__name__ for event in seen] == ["ConnectionExpiring"] * 3 + [
        "ReconnectRequired"
    ]


def test_a_store_without_connection_records_is_refused(clock: FakeClock) -> None:
    """A third-party store that keeps none is a configuration error naming it."""
    with pytest.raises(ConfigurationError, match="object keeps no connection records"):
        ConnectionRegistry(object(), clock)


async def _overdue() -> None:
    await asyncio.sleep(0.05)  # past claim_for on the store's (real) clock
