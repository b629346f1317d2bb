"""Clock skew between the fleet's processes: a process whose clock is behind must not undo
what one whose clock is ahead decided from time alone (an end passed), so an expiry opens one
episode, never a false ``ConnectionRepaired`` and a second ``ReconnectRequired``."""

from __future__ import annotations

from aiofinaccess.connections import (
    ConnectionEvent,
    ConnectionRegistry,
    ConnectionState,
    Observation,
)
from aiofinaccess.stores.memory import MemoryStore
from tests.support.fakes import FakeClock

DAY = 86_400.0
SKEW = 2.0  # seconds: NTP-disciplined hosts differ by less, but never by nothing


def kinds(events: list[ConnectionEvent]) -> list[str]:
    return [type(event).__name__ for event in events]


async def test_a_process_behind_does_not_repair_an_end_one_ahead_saw_pass() -> None:
    store = MemoryStore()
    ahead, behind = FakeClock(), FakeClock()
    behind.advance(-SKEW)
    events: list[ConnectionEvent] = []
    registries = [ConnectionRegistry(store, clock) for clock in (ahead, behind)]
    for registry in registries:
        registry.subscribe(events.append)
    first, second = registries
    end = ahead.wall() + 1.0  # the consent ends between the two clocks' readings
    await second.observe("finapi", "alice", "7", Observation(expires_at=end))
    for clock in (ahead, behind):
        clock.advance(1.5)  # ahead: 0.5 s past the end; behind: 1.5 s before it
    await first.sweep()
    assert kinds(events)[-1:] == ["ReconnectRequired"]
    # The process behind sweeps, and reads the same consent again: nothing new happened.
    await second.sweep()
    await second.observe("finapi", "alice", "7", Observation(expires_at=end))
    await first.sweep()
    assert [k for k in kinds(events) if k != "ConnectionExpiring"] == ["ReconnectRequired"]
    row = await first.get("finapi", "alice", "7")
    assert row is not None
    assert (row.state, row.episode) == (ConnectionState.EXPIRED, 1)
