"""Clock skew between processes sharing a store (issue 22, finding 15).

Each reader here has a wall clock that is wrong by a fixed offset; its monotonic clock is the
machine's. Stored sets are written by a writer with a correct clock, straight through the
store's ``put`` (as any writer does), then read by a ``SessionManager`` on the skewed clock: on
a real redis-server (``tests/support/redis_server.py``) and on the simulation's store.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from aioresponses import aioresponses

from aiofinaccess import ClientCredentials, Schedule, SessionManager, TokenKey, TokenSet
from aiofinaccess.core.clock import SKEW_WARNINGS
from aiofinaccess.core.tokens import Anchor
from aiofinaccess.stores import TokenStore
from aiofinaccess.stores.codec import JsonCodec
from aiofinaccess.stores.migrate import copy_sets
from aiofinaccess.stores.redis import RedisStore
from tests.simulation.stand_in import StandInProcess, StandInWorld
from tests.simulation.store import DutyStoreClient, SharedStore
from tests.support.redis_server import running_redis
from tests.support.tokens import EVERIFIN, token_body, token_requests, token_url

USER = "alice"
KEY = TokenKey(EVERIFIN.name, USER)
CLIENT = ClientCredentials("c", "s")


class SkewedClock:
    """The machine's clocks, with a wall clock ``skew`` seconds off (negative: behind)."""

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def wall(self) -> float:
        return time.time() + self.skew

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def frozen(self) -> None:
        """Never paused (the simulated store waits out a process's pauses here)."""


CORRECT = SkewedClock(0.0)


def issued(clock: SkewedClock, *, age: float, lifetime: float, access: str = "AT-OLD") -> TokenSet:
    """A set ``clock``'s process got ``age`` seconds ago, anchored as a token response is."""
    sent = Anchor(clock.wall() - age, clock.monotonic() - age)
    return TokenSet(
        access_token=access,
        refresh_token="RT-OLD",
        issued_at=sent.wall,
        expires_at=sent.wall + lifetime,
        anchor=sent,
    )


# -- the stores: a real redis-server, and the simulation's store on this (real) loop -----------

#: (writer's store, reader's store) for one key space; a reader's store knows its process clock.
Stores = Callable[[SkewedClock], Awaitable[tuple[TokenStore, TokenStore]]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def redis_url() -> AsyncIterator[str]:
    async with running_redis() as url:
        yield url


@pytest.fixture(params=["redis", "simulated"])
async def stores(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[Stores]:
    opened: list[RedisStore] = []
    prefix = f"skew-{uuid.uuid4().hex[:12]}:"
    shared, world = None, StandInWorld()
    if request.param == "simulated":
        shared = SharedStore(world, random.Random(7), faults=0.0)  # type: ignore[arg-type]

    async def make(reader_clock: SkewedClock) -> tuple[TokenStore, TokenStore]:
        if shared is not None:
            writer = DutyStoreClient(shared, StandInProcess(0, CORRECT))  # type: ignore[arg-type]
            reader = DutyStoreClient(shared, StandInProcess(1, reader_clock))  # type: ignore[arg-type]
            return writer, reader  # type: ignore[return-value]
        # A store measures ages at write on its process's clocks: a skewed machine's.
        pair = (
            RedisStore(redis_url, prefix=prefix, clock=CORRECT),
            RedisStore(redis_url, prefix=prefix, clock=reader_clock),
        )
        opened.extend(pair)
        return pair

    yield make
    for store in opened:
        await store.aclose()
    world.check()  # a message that raised failed its call; this names it once more


def _manager(store: TokenStore, clock: SkewedClock) -> SessionManager:
    manager = SessionManager(store=store, clock=clock, schedule=Schedule(enabled=False))
    manager.register(EVERIFIN, CLIENT)
    return manager


@pytest.mark.parametrize("restored", [False, True], ids=["read", "restored"])
async def test_a_reader_30_s_behind_never_hands_out_an_expired_token(
    stores: Stores, mocked: aioresponses, restored: bool
) -> None:
    """The set expired 10 s ago (issued 70 s ago, 60 s lifetime). A reader whose clock is 30 s
    behind used to anchor it on its own wall clock (40 s old: "20 s left") and hand it out,
    whether it read the set on demand or restored it at start (``get_many``)."""
    behind = SkewedClock(-30.0)
    writer, reader = await stores(behind)
    await writer.put(KEY, issued(CORRECT, age=70.0, lifetime=60.0), expected_version=None)
    mocked.post(token_url(EVERIFIN), payload=token_body("AT-NEW", "RT-NEW", expires_in=60))
    async with _manager(reader, behind) as manager:
        if restored:
            assert await manager.restore() == 1
        assert await manager.access_token(EVERIFIN, USER) == "AT-NEW"
    assert len(token_requests(mocked, token_url(EVERIFIN))) == 1


@pytest.mark.parametrize("skew", [-5.0, 5.0, -120.0])
async def test_readers_ahead_or_behind_plan_the_same_expiry(stores: Stores, skew: float) -> None:
    """A set 100 s into a 300 s life has ~200 s left for every reader, whatever its wall clock
    says. Bound: 2 s, far above the few milliseconds between the reads and their round trips,
    far below the skews."""
    off = SkewedClock(skew)
    writer, reader = await stores(off)
    _, correct_reader = await stores(CORRECT)
    await writer.put(KEY, issued(CORRECT, age=100.0, lifetime=300.0), expected_version=None)
    left: list[float] = []
    for store, clock in ((reader, off), (correct_reader, CORRECT)):
        async with _manager(store, clock) as manager:
            token_set = await manager.token_set(EVERIFIN, USER)
            expires = token_set.expires_at_monotonic()
            assert expires is not None
            left.append(expires - clock.monotonic())
    assert abs(left[0] - left[1]) < 2.0, left
    assert 190.0 < left[1] <= 200.0, left


async def test_writers_ahead_or_behind_store_the_same_due_time(redis_url: str) -> None:
    """Due times are written on the store's clock: two writers 5 s ahead and 5 s behind store
    one set's due time (200 s after issue) within 2 s of each other (see the bound above)."""
    prefix = f"skew-{uuid.uuid4().hex[:12]}:"
    scores: list[float] = []
    for skew, user in ((-5.0, "early"), (5.0, "late")):
        clock = SkewedClock(skew)
        store = RedisStore(redis_url, prefix=prefix, clock=clock)  # a machine off by `skew`
        try:
            token_set = issued(clock, age=10.0, lifetime=300.0)
            key = TokenKey(EVERIFIN.name, user)
            await store.put(key, token_set, expected_version=None, due_at=token_set.issued_at + 200)
            layout = store._layout  # the test reads the due set itself
            score = await store._client.zscore(
                layout.due(layout.shard(key), key.provider), str(key)
            )
            scores.append(float(score))
        finally:
            await store.aclose()
    assert abs(scores[0] - scores[1]) < 2.0, scores


async def test_a_set_issued_in_the_readers_future_is_warned_of_once(
    stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    """A reader 30 s behind reads a set issued just now: its issue time lies 30 s in the
    reader's future. One warning per process, however many reads."""
    SKEW_WARNINGS.reset()  # the process's state: earlier tests may have warned
    behind = SkewedClock(-30.0)
    caplog.set_level(logging.WARNING, logger="aiofinaccess")
    for user in ("u1", "u2", "u3"):  # a manager closes its store: one store per manager
        writer, reader = await stores(behind)
        key = TokenKey(EVERIFIN.name, user)
        await writer.put(key, issued(CORRECT, age=0.0, lifetime=300.0), expected_version=None)
        async with _manager(reader, behind) as manager:
            await manager.access_token(EVERIFIN, user)
    warnings = [r for r in caplog.records if "clock" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "30" in warnings[0].getMessage()


async def test_records_without_a_stamp_of_their_version_read_as_before(redis_url: str) -> None:
    """A record of an earlier version (version and data only) reads with no age, so the reader
    falls back to its wall clock; so does one an earlier version rewrote after a stamped write
    (its stamp names another version). A stamped one reads with its age: 10 s at the write,
    plus the few milliseconds since (bound: 2 s, as above)."""
    store = RedisStore(redis_url, prefix=f"skew-{uuid.uuid4().hex[:12]}:")
    try:
        token_set = issued(CORRECT, age=10.0, lifetime=300.0)
        data = JsonCodec().encode(token_set, kind="token_set", key=str(KEY))
        name = store._layout.record(KEY)  # the test writes as an earlier version did
        await store._client.hset(name, mapping={"version": "7", "data": data})
        old = await store.get(KEY)
        assert old is not None
        assert (old.version, old.age, old.token_set) == (7, None, token_set)
        await store.put(KEY, token_set, expected_version=7)
        stamped = await store.get(KEY)
        assert stamped is not None
        assert stamped.age is not None
        assert 10.0 <= stamped.age < 12.0
        await store._client.hset(name, mapping={"version": "8", "data": data})
        rewritten = await store.get(KEY)
        assert rewritten is not None
        assert (rewritten.version, rewritten.age) == (8, None)
    finally:
        await store.aclose()


async def test_a_copied_set_keeps_the_age_the_store_measured(redis_url: str) -> None:
    """A set written just now by a machine 60 s behind, copied by a correct one: the copy is
    as young as the set, not 60 s older (its issue time read against the copier's wall clock).
    Bound: 2 s, as above."""
    source = RedisStore(redis_url, prefix=f"skew-{uuid.uuid4().hex[:12]}:", clock=SkewedClock(-60))
    target = RedisStore(redis_url, prefix=f"skew-{uuid.uuid4().hex[:12]}:")
    try:
        fresh = issued(SkewedClock(-60), age=0.0, lifetime=300.0)
        await source.put(KEY, fresh, expected_version=None)
        assert await copy_sets(source, target) == 1
        copy = await target.get(KEY)
        assert copy is not None
        assert copy.age is not None
        assert copy.age < 2.0, copy.age
    finally:
        await source.aclose()
        await target.aclose()


@pytest.mark.parametrize("skew", [-30.0, 30.0], ids=["behind", "ahead"])
async def test_a_skewed_worker_reschedules_on_the_stores_clock(stores: Stores, skew: float) -> None:
    """A correct writer schedules the set 600 s ahead; a worker 30 s off reschedules it 600 s
    from its own now. The two due times must agree within 3 s (the 1 s tolerance plus a few
    round trips; far below the skew), as a put's do: a worker behind used to move it 30 s
    early on the store's clock, one ahead 30 s late."""
    off = SkewedClock(skew)
    writer, worker = await stores(off)
    token_set = issued(CORRECT, age=0.0, lifetime=900.0)
    version = await writer.put(  # type: ignore[call-arg]
        KEY, token_set, expected_version=None, due_at=CORRECT.wall() + 600.0
    )
    right = await writer.next_due()  # type: ignore[attr-defined]
    await worker.reschedule(KEY, off.wall() + 600.0, expected_version=version)  # type: ignore[attr-defined]
    moved = await worker.next_due()  # type: ignore[attr-defined]
    assert right is not None
    assert moved is not None
    assert abs(moved - right) < 3.0, f"off by {moved - right:+.1f} s (worker skew {skew:+} s)"
