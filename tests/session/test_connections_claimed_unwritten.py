"""A notice claimed on a decision whose record was not written (its process died, or another
process wrote first and the connection reads otherwise now) is delivered all the same; the
record must come to say what the app was told, so the next change is announced too: a
ReconnectRequired the app got is followed by its ConnectionRepaired, never left open."""

from __future__ import annotations

import asyncio

import pytest

from aiofinaccess.connections import (
    ConnectionEvent,
    ConnectionRegistry,
    ConnectionState,
    Observation,
)
from aiofinaccess.stores.memory import MemoryStore
from tests.support.fakes import FakeClock

KEY = ("finapi", "alice", "7")
BROKEN = Observation(blocked=ConnectionState.ACTION_REQUIRED, detail="XS2A")
LATER = 1_900_000_000.0  # a consent end: a write that announces nothing


class Crash(Exception):
    """A process dying at an injection point."""


def kinds(events: list[ConnectionEvent]) -> list[tuple[str, int]]:
    return [(type(event).__name__, getattr(event, "episode", 0)) for event in events]


async def test_a_reconnect_redelivered_for_a_process_that_died_before_writing_is_closed() -> None:
    clock, store, events = FakeClock(), MemoryStore(), []

    def crash(point: str) -> None:
        if point == "claimed":
            raise Crash(point)

    dying = ConnectionRegistry(store, clock, claim_for=0.01, _fault=crash)
    survivor = ConnectionRegistry(store, clock, claim_for=0.01)
    survivor.subscribe(events.append)
    await survivor.observe(*KEY, Observation())
    with pytest.raises(Crash):
        await dying.observe(*KEY, BROKEN)  # claimed ReconnectRequired 1, wrote nothing
    await asyncio.sleep(0.05)  # past claim_for on the store's (real) clock
    await survivor.redeliver()  # the app is told: the user must reconnect
    await survivor.observe(*KEY, Observation())  # the next reading: the user put it right
    assert kinds(events) == [("ReconnectRequired", 1), ("ConnectionRepaired", 1)]
    row = await survivor.get(*KEY)
    assert row is not None
    assert (row.state, row.episode) == (ConnectionState.ACTIVE, 1)
    await survivor.observe(*KEY, BROKEN)  # and a real break later is announced
    assert kinds(events)[-1] == ("ReconnectRequired", 2)


class WriterBetween:
    """The shared store as one process sees it: right after its first claim of a notice,
    another process writes the record (so this one's compare-and-set fails)."""

    def __init__(self, store: MemoryStore, between: ConnectionRegistry) -> None:
        self._store, self._between, self._done = store, between, False

    async def get_connection(self, name: str) -> tuple[bytes, int] | None:
        return await self._store.get_connection(name)

    async def put_connection(self, name: str, data: bytes, *, expected_version: int | None) -> int:
        return await self._store.put_connection(name, data, expected_version=expected_version)

    def list_connections(self):  # type: ignore[no-untyped-def]
        return self._store.list_connections()

    async def claim_notice(self, notice: str, data: bytes, *, claim_for: float) -> bool:
        won = await self._store.claim_notice(notice, data, claim_for=claim_for)
        if won and not self._done:
            self._done = True
            await self._between.observe(*KEY, Observation(expires_at=LATER))
        return won

    async def overdue_notices(self, *, limit: int, claim_for: float) -> list[tuple[str, bytes]]:
        return await self._store.overdue_notices(limit=limit, claim_for=claim_for)

    async def finish_notice(self, notice: str) -> None:
        await self._store.finish_notice(notice)

    async def prune_notices(self, *, older_than: float) -> int:
        return await self._store.prune_notices(older_than=older_than)


async def test_a_reconnect_claimed_before_losing_the_write_is_closed_by_the_fresh_reading() -> None:
    clock, store, events = FakeClock(), MemoryStore(), []
    other = ConnectionRegistry(store, clock)
    first = ConnectionRegistry(WriterBetween(store, other), clock)
    for registry in (first, other):
        registry.subscribe(events.append)
    await other.observe(*KEY, Observation())
    readings = iter([BROKEN, Observation(expires_at=LATER)])  # then the bank is fine again

    async def read() -> Observation:
        return next(readings)

    await first.observe(*KEY, read)  # claims ReconnectRequired 1, loses the write, reads again
    await other.sweep()
    assert kinds(events) == [("ReconnectRequired", 1), ("ConnectionRepaired", 1)]
    row = await other.get(*KEY)
    assert row is not None
    assert (row.state, row.episode) == (ConnectionState.ACTIVE, 1)
    await other.observe(*KEY, BROKEN)
    assert kinds(events)[-1] == ("ReconnectRequired", 2)


async def test_a_redelivered_reconnect_comes_before_the_repair_it_implies() -> None:
    """The claimant died unwritten and another process has since recorded newer news (a new
    consent end): the app gets the reconnect, then its repair, in that order."""
    clock, store, events = FakeClock(), MemoryStore(), []

    def crash(point: str) -> None:
        if point == "claimed":
            raise Crash(point)

    dying = ConnectionRegistry(store, clock, claim_for=0.01, _fault=crash)
    survivor = ConnectionRegistry(store, clock, claim_for=0.01)
    survivor.subscribe(events.append)
    await survivor.observe(*KEY, Observation())
    with pytest.raises(Crash):
        await dying.observe(*KEY, BROKEN)
    clock.advance(1)
    await survivor.observe(*KEY, Observation(expires_at=LATER))  # written after the decision
    await asyncio.sleep(0.05)
    await survivor.redeliver()
    await survivor.sweep()
    assert kinds(events) == [("ReconnectRequired", 1), ("ConnectionRepaired", 1)]
