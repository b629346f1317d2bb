"""Tests for aiofinaccess.session.scheduler and scheduled renewal through the manager."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Hashable
from typing import Any

import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from aiofinaccess import (
    ClientCredentials,
    Limits,
    RefreshPolicy,
    Schedule,
    SessionManager,
    TokenKey,
    TokenSet,
)
from aiofinaccess.session.scheduler import RefreshScheduler
from aiofinaccess.stores.memory import MemoryStore
from tests.support.fakes import FakeClock, eventually, settled_when_idle
from tests.support.tokens import EVERIFIN, token_url

SETS = int(os.environ.get("SCHEDULER_TEST_SETS", "10000"))


class TestRefreshScheduler:
    async def test_fires_in_deadline_order_and_skips_superseded_items(self) -> None:
        """Items fire by due time; the fire callback decides what is stale."""
        clock = FakeClock()
        fired: list[tuple[Hashable, int]] = []

        def fire(key: Hashable, generation: int) -> asyncio.Task[Any] | None:
            fired.append((key, generation))
            return None

        scheduler = RefreshScheduler(clock, fire)
        now = clock.monotonic()
        scheduler.schedule("c", now + 30, 1)
        scheduler.schedule("a", now + 10, 1)
        scheduler.schedule("b", now + 20, 7)
        scheduler.start()
        await eventually(lambda: len(fired) == 3)
        await scheduler.stop()
        assert fired == [("a", 1), ("b", 7), ("c", 1)]
        assert len(scheduler) == 0

    async def test_an_earlier_deadline_wakes_it(self) -> None:
        """Scheduling something sooner than the current sleep is honoured."""
        clock = FakeClock()
        fired: list[Hashable] = []
        scheduler = RefreshScheduler(clock, lambda key, _gen: fired.append(key) and None)
        scheduler.start()
        await asyncio.sleep(0)
        scheduler.schedule("late", clock.monotonic() + 1000, 0)
        scheduler.schedule("soon", clock.monotonic() + 1, 0)
        await eventually(lambda: bool(fired))
        await scheduler.stop()
        assert fired[0] == "soon"

    async def test_at_most_max_in_flight_run_at_once(self) -> None:
        """The scheduler waits for a free slot before firing more."""
        clock = FakeClock()
        running = 0
        peak = 0
        done = 0

        async def work() -> None:
            nonlocal running, peak, done
            running += 1
            peak = max(peak, running)
            for _ in range(5):
                await asyncio.sleep(0)
            running -= 1
            done += 1

        scheduler = RefreshScheduler(
            clock, lambda _key, _gen: asyncio.ensure_future(work()), max_in_flight=3
        )
        for n in range(20):
            scheduler.schedule(n, clock.monotonic(), 0)
        scheduler.start()
        await eventually(lambda: done == 20)
        await scheduler.stop()
        assert peak == 3

    async def test_a_failing_fire_does_not_stop_the_loop(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """One broken item is logged; the rest still fire."""
        clock = FakeClock()
        fired: list[Hashable] = []

        def fire(key: Hashable, _gen: int) -> asyncio.Task[Any] | None:
            if key == "bad":
                raise RuntimeError("boom")
            fired.append(key)
            return None

        scheduler = RefreshScheduler(clock, fire)
        scheduler.schedule("bad", clock.monotonic() + 1, 0)
        scheduler.schedule("good", clock.monotonic() + 2, 0)
        scheduler.start()
        await eventually(lambda: bool(fired))
        await scheduler.stop()
        assert fired == ["good"]
        assert "could not start" in caplog.text


async def test_10000_token_sets_each_renewed_before_expiry_and_never_twice(
    mocked: aioresponses,
) -> None:
    """One scheduler, 10,000 sets of 300 s issued over 300 s, 700 s of fake time."""
    clock = FakeClock()
    rng = random.Random(7)
    store = MemoryStore()
    expiry_of: dict[str, float] = {}  # refresh token -> wall expiry of its access token
    redeemed: set[str] = set()
    late: list[float] = []
    counter = 0

    async def token_endpoint(url: URL, **kwargs: Any) -> CallbackResult:
        nonlocal counter
        form = dict(kwargs["data"])
        presented = form["refresh_token"]
        assert presented not in redeemed, "a refresh token was redeemed twice"
        redeemed.add(presented)
        if clock.wall() >= expiry_of[presented]:
            late.append(clock.wall() - expiry_of[presented])
        counter += 1
        new_refresh = f"RT-{counter}"
        expiry_of[new_refresh] = clock.wall() + 300
        return CallbackResult(
            payload={
                "access_token": f"AT-{counter}",
                "refresh_token": new_refresh,
                "expires_in": 300,
            }
        )

    mocked.post(token_url(EVERIFIN), callback=token_endpoint, repeat=True)
    start = clock.wall()
    for n in range(SETS):
        issued = start - rng.uniform(0, 300)
        refresh = f"RT-initial-{n}"
        expiry_of[refresh] = issued + 300
        token_set = TokenSet(
            access_token=f"AT-initial-{n}",
            refresh_token=refresh,
            issued_at=issued,
            expires_at=issued + 300,
        )
        await store.put(TokenKey(EVERIFIN.name, f"user-{n}"), token_set, expected_version=None)

    manager = SessionManager(
        store=store,
        clock=clock,
        schedule=Schedule(idle_after=None),
        policy=RefreshPolicy(),
        limits=Limits(concurrent_refreshes=64),
    )
    clock.settle = settled_when_idle(lambda: manager._tasks)
    manager.register(EVERIFIN, ClientCredentials("c", "s"))
    async with manager:
        end = clock.monotonic() + 700
        await eventually(lambda: clock.monotonic() >= end, rounds=50_000_000)
        await manager.wait_idle()
        stats = manager.stats.as_dict()
    assert late == []
    # Every set was renewed at least twice in 700 s of 300 s tokens, all before expiry.
    initial = {f"RT-initial-{n}" for n in range(SETS)}
    assert initial <= redeemed
    assert stats["renewals"] == len(redeemed) >= 2 * SETS
    assert stats["refresh_failures"] == 0
    assert stats["scheduled_renewals"] == stats["renewals"]
