"""Claims run on the store's clock, and a claimant never postpones a set's own schedule
(issue 22, findings 15 and 18e)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from aiofinaccess import Duty, Schedule, Timeouts, TokenKey
from aiofinaccess.sandbox import Sandbox
from aiofinaccess.stores.memory import MemoryStore
from aiofinaccess.stores.redis import RedisStore
from tests.session.duty_support import ClaimsSQLite, CountedClaims, claims_made
from tests.session.test_duty import (
    LIFETIME,
    manager,
    sandbox_config,  # noqa: F401  (a fixture used by name)
    seed_users,
    seeded,
)
from tests.support.polling import until
from tests.support.redis_server import running_redis

ANN = TokenKey("everifin", "ann")


class BehindClock:
    """The system clocks, with the wall clock ``behind`` seconds late."""

    def __init__(self, behind: float) -> None:
        self._behind = behind

    def wall(self) -> float:
        return time.time() - self._behind

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class StuckReads:
    """Mix-in: a worker whose reads of ann's set never answer: its claim stays its only
    effect."""

    async def get(self, key: TokenKey):  # type: ignore[no-untyped-def]
        if key == ANN:
            await asyncio.Event().wait()
        return await super().get(key)  # type: ignore[misc]


class StuckSQLite(StuckReads, ClaimsSQLite):
    """A SQLite store whose reads of ann's set never answer."""


class ClaimsRedis(CountedClaims, RedisStore):
    """A Redis store counting claims."""


class StuckRedis(StuckReads, ClaimsRedis):
    """A Redis store whose reads of ann's set never answer."""


@pytest.fixture(params=["sqlite", "redis"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Callable[[], Any], Callable[[], Any]]]:
    """(a counting client, a stuck client) of one shared store."""
    if request.param == "sqlite":
        path = tmp_path / "shared.db"
        yield (lambda: ClaimsSQLite(path)), (lambda: StuckSQLite(path))
        return
    async with running_redis() as url:
        yield (
            lambda: ClaimsRedis(url, prefix="late:"),
            lambda: StuckRedis(url, prefix="late:"),
        )


async def test_a_claim_of_a_late_worker_lasts_its_full_term(
    sandbox: Sandbox, stores: tuple[Callable[[], Any], Callable[[], Any]]
) -> None:
    """A worker whose wall clock is 120 s late claims a set: a correct worker must not claim it
    again before the claim's term (claim_ttl on the store's clock) is over."""
    counting, stuck = stores
    store = counting()
    await seed_users(store, sandbox, ["ann"], age=LIFETIME + 100.0, via=counting())
    await store.reschedule(ANN, time.time() - 200.0)
    late = manager(
        stuck(),
        sandbox,
        clock=BehindClock(120.0),
        duty=Duty(poll=0.1),
        timeouts=Timeouts(store=1.0),
    )
    try:
        await late.start()
        await until(lambda: _true(late.stats.duty_claimed >= 1), 10.0)
        async with manager(store, sandbox, duty=Duty(enabled=True, poll=0.1, gather=0.05)) as right:
            await until(claims_made(store, 3), 10.0)
            assert right.stats.duty_claimed == 0
    finally:
        await late.aclose()


async def test_a_claimant_without_keep_alive_never_postpones_a_keep_alive_set(
    sandbox: Sandbox,
) -> None:
    """A keep-alive writer schedules ann before her refresh token runs out (long before her
    access token goes stale); a keep_alive=False claimant must renew her then, or at least not
    move her due time past the refresh token's end."""
    store = MemoryStore()
    now = time.time()
    fresh = seeded(sandbox, "ann", age=0.0)
    short = attrs.evolve(fresh, expires_at=now + 600.0, refresh_expires_at=now + 8.0)
    async with manager(
        store, sandbox, duty=Duty(enabled=False), schedule=Schedule(jitter=0.0, keep_alive=True)
    ) as writer:
        await writer.store_token_set("everifin", "ann", short)
    written = await store.get(ANN)
    due = await store.next_due()
    assert written is not None
    assert due is not None
    assert due < now + 8.0  # the keep-alive schedule
    async with manager(
        store,
        sandbox,
        duty=Duty(enabled=True, poll=0.2),
        schedule=Schedule(jitter=0.0, keep_alive=False),
    ) as claimant:

        async def handled() -> bool:
            stats = claimant.stats
            return stats.duty_renewed_elsewhere + stats.token_requests >= 1

        await until(handled, 15.0)
        await claimant.wait_idle()
    stored = await store.get(ANN)
    assert stored is not None
    renewed = stored.version != written.version
    due_now = await store.next_due()
    assert renewed or (due_now is not None and due_now <= now + 8.0), (
        f"due {due_now - now if due_now else None:.0f} s after the write, past the refresh"
        " token's end at 8 s"
    )


async def _true(value: bool) -> bool:
    return value
