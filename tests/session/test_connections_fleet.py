"""Exactly-once claims across a fleet: many registries on one store, crashes injected at every
step between "decided" and "emitted", seeded; each notice claimed exactly once, none missed.

Each run: ``PROCESSES`` registries (each its own ``SQLiteStore`` client of one file, so their
statements interleave through real threads), ``CONNECTIONS`` consents walking past their 14-,
7- and 1-day leads to their end, a fifth of them broken and repaired on the way; every
registry crashes at a seeded random point (after claiming, after writing, after delivering,
or inside the app's callback) with probability ``CRASH``, and a crashed one is replaced by a
fresh one, as a restarted process. Expected: the notices a fault-free single registry names
for the same schedule, each claimed exactly once and delivered at least once (twice only
where a crash fell after delivery and before finishing).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import pytest

from aiofinaccess import SQLiteStore
from aiofinaccess.connections import ConnectionRegistry, ConnectionState, Observation
from aiofinaccess.session.connection_events import ConnectionEvent
from tests.support.fakes import FakeClock

DAY = 86_400.0
PROCESSES = 6
CONNECTIONS = 60
CRASH = 0.08
SEEDS = range(6)
STEPS = range(36)  # days from the start; each step runs until one sweep completes
#: The notices one fault-free registry names for the schedule.
REFERENCE: Counter[str] = Counter()
CLAIM_FOR = 0.02  # seconds on the store's (real) clock before an unfinished notice is taken


class Crash(Exception):
    """A process dying at an injection point."""


class Counting(SQLiteStore):
    """A store client that counts the claims it won (the fleet's claims are the sum)."""

    won: Counter[str]

    async def claim_notice(self, notice: str, data: bytes, *, claim_for: float) -> bool:
        won = await super().claim_notice(notice, data, claim_for=claim_for)
        if won:
            self.won[notice] += 1
        return won


def schedule(n: int, start: float) -> tuple[float, int | None]:
    """Connection ``n``'s end, and the step (a day) at which it breaks, repaired 3 days on."""
    end = start + 30 * DAY + (n % 5) * DAY + (n % 3) * 3_600
    return end, (16 + n % 7) if n % 5 == 0 else None


def observation(n: int, step: int, start: float) -> Observation | None:
    end, breaks = schedule(n, start)
    if breaks is None or step not in (breaks, breaks + 3):
        return None
    blocked = ConnectionState.ACTION_REQUIRED if step == breaks else None
    return Observation(expires_at=end, blocked=blocked)


async def fleet(
    seed: int | None, path: Path, clock: FakeClock
) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Run the schedule; ``seed=None``: one registry, no faults. Returns the claims won and
    the deliveries per notice id, and the crashes injected per point."""
    rng = random.Random(seed)
    claims: Counter[str] = Counter()
    delivered: Counter[str] = Counter()
    crashes: Counter[str] = Counter()
    stores: list[Counting] = []
    start = clock.wall()

    calm = asyncio.Event()

    def fault(point: str) -> None:
        if seed is not None and not calm.is_set() and rng.random() < CRASH:
            crashes[point] += 1
            raise Crash(point)

    async def spawn() -> ConnectionRegistry:
        store = Counting(path)
        store.won = claims
        stores.append(store)
        registry = ConnectionRegistry(store, clock, claim_for=CLAIM_FOR, _fault=fault)

        def deliver(event: ConnectionEvent) -> None:
            fault("callback")  # the app's callback raising: the event comes again
            delivered[event.event_id] += 1

        registry.subscribe(deliver)
        return registry

    count = 1 if seed is None else PROCESSES
    fleet_ = [await spawn() for _ in range(count)]

    async def survive(index: int, step: object) -> bool:
        try:
            await step  # type: ignore[misc]
        except Crash:
            fleet_[index] = await spawn()  # the process restarts
            return False
        return True

    for n in range(CONNECTIONS):  # first sight: someone records each connection
        while not await survive(
            0,
            fleet_[0].observe(
                "finapi", f"u{n}", "1", Observation(expires_at=schedule(n, start)[0])
            ),
        ):
            pass
    for day in STEPS:
        clock.advance(DAY)
        for n in range(CONNECTIONS):
            seen = observation(n, day, start)
            if seen is not None:
                index = rng.randrange(count)
                while not await survive(index, fleet_[index].observe("finapi", f"u{n}", "1", seen)):
                    pass
        swept = False
        while not swept:
            results = await asyncio.gather(
                *(survive(i, registry.sweep()) for i, registry in enumerate(fleet_)),
                *(survive(i, registry.redeliver()) for i, registry in enumerate(fleet_)),
            )
            swept = any(results[:count])
    # The fleet calms down (no more faults); once every claim has run out, one survivor
    # delivers whatever the dead or the failed callbacks left.
    calm.set()
    await asyncio.sleep(CLAIM_FOR * 2)
    while await fleet_[0].redeliver(limit=1000):
        pass
    for store in stores:
        await store.aclose()
    return claims, delivered, crashes


@pytest.mark.parametrize("seed", SEEDS)
async def test_each_notice_is_claimed_once_and_delivered(tmp_path: Path, seed: int) -> None:
    """Seeded crashes between decided and emitted: claims exactly 1 per notice, none missed."""
    if not REFERENCE:  # the fault-free run, once per module
        REFERENCE.update((await fleet(None, tmp_path / "serial.db", FakeClock()))[0])
    expected = REFERENCE
    claims, delivered, crashes = await fleet(seed, tmp_path / "fleet.db", FakeClock())
    assert set(crashes) == {"claimed", "written", "delivered", "callback"}  # each window hit
    kinds = Counter(notice.split("|")[1] for notice in expected)
    assert kinds == {
        "ConnectionExpiring": 3 * CONNECTIONS,
        "ReconnectRequired": CONNECTIONS + CONNECTIONS // 5,
        "ConnectionRepaired": CONNECTIONS // 5,
    }
    assert set(claims) == set(expected)
    assert set(claims.values()) == {1}
    assert set(delivered) == set(expected)
    assert min(delivered.values()) >= 1
