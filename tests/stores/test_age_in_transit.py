"""A set's age as a reader sees it counts the write's time in transit.

A writer reads its age of a set as the write leaves; the store stamps it with its own clock
when the write runs. Whatever passes between the two (a busy store, a lock, a pool that makes
the write wait) must not make the set look younger to readers: under load on two cores that
was about 100 ms, and a reader with a 50 ms expiry margin handed out an expired access token
(tests/session/test_multiprocess.py on Python 3.12).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
import redis.asyncio as redis

from aiofinaccess import TokenKey, TokenSet
from aiofinaccess.core.tokens import Anchor
from aiofinaccess.stores import Versioned
from aiofinaccess.stores.postgres import PostgresStore
from aiofinaccess.stores.redis import RedisStore
from tests.support.fakes import StallingClock
from tests.support.postgres_server import Server, running_postgres
from tests.support.redis_server import running_redis

KEY = TokenKey("everifin", "alice")
#: How long the store holds the write back: well inside the stores' one-second tolerance for
#: clocks that disagree, well beyond any expiry margin a test uses.
HELD = 0.4


def fresh() -> TokenSet:
    now = Anchor(time.time(), time.monotonic())
    return TokenSet("AT", issued_at=now.wall, expires_at=now.wall + 10, anchor=now)


def held_back_counted(found: Versioned | None, token_set: TokenSet, before: float) -> Versioned:
    """``found`` is no younger than the set was when its reader asked (``before``), which is
    at least ``HELD`` old; returned for more checks."""
    assert found is not None
    assert found.age is not None
    assert token_set.anchor is not None
    true_age = before - token_set.anchor.monotonic
    assert true_age >= HELD
    assert found.age >= true_age - 0.02, (found.age, true_age)
    return found


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_postgres() as server:
        yield server


async def test_redis_counts_a_write_held_back_by_the_server() -> None:
    async with running_redis() as url:
        prefix = f"transit-{uuid.uuid4().hex[:8]}:"
        writer, reader = RedisStore(url, prefix=prefix), RedisStore(url, prefix=prefix)
        admin = redis.from_url(url)
        token_set = fresh()
        try:
            await writer.get(KEY)  # connected and checked: the put's only wait is the server's
            await admin.execute_command("CLIENT", "PAUSE", int(HELD * 1000), "ALL")
            await writer.put(KEY, token_set, expected_version=None)
            before = time.monotonic()
            found = await reader.get(KEY)
        finally:
            await admin.aclose()
            await writer.aclose()
            await reader.aclose()
    transit_kept_apart(held_back_counted(found, token_set, before), token_set, before)


def transit_kept_apart(found: Versioned, token_set: TokenSet, before: float) -> None:
    """The hold is kept apart as transit (it may as well have been the writer's clock behind
    the store's): at its youngest the set is never older than it was."""
    assert token_set.anchor is not None
    assert found.age is not None
    assert found.transit > 0
    assert found.age - found.transit <= before - token_set.anchor.monotonic + 0.02


async def test_postgres_counts_a_write_held_back_by_a_lock(server: Server) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    writer = await PostgresStore(server.url, schema=schema).open()
    reader = await PostgresStore(server.url, schema=schema).open()
    locker = await asyncpg.connect(server.url, ssl=False)
    token_set = fresh()
    try:
        transaction = locker.transaction()
        await transaction.start()
        await locker.execute(f'LOCK TABLE "{schema}".token_sets IN ACCESS EXCLUSIVE MODE')
        put = asyncio.create_task(writer.put(KEY, token_set, expected_version=None))
        await asyncio.sleep(HELD)
        await transaction.rollback()
        await put
        before = time.monotonic()
        found = await reader.get(KEY)
        many = await reader.get_many([KEY])
    finally:
        await locker.close()
        await writer.aclose()
        await reader.aclose()
    transit_kept_apart(held_back_counted(found, token_set, before), token_set, before)
    transit_kept_apart(held_back_counted(many.get(KEY), token_set, before), token_set, before)


async def test_postgres_reads_the_writers_age_after_the_pool_gave_a_connection(
    server: Server,
) -> None:
    """A wait for the pool longer than the clocks' tolerance is no skew: it is counted."""
    clock, stall = StallingClock(), 3.0
    schema = f"t_{uuid.uuid4().hex[:12]}"
    writer = await PostgresStore(server.url, schema=schema, clock=clock).open()
    reader = await PostgresStore(server.url, schema=schema).open()
    ready = writer._connections.ready

    async def stalled():  # type: ignore[no-untyped-def]
        pool = await ready()
        clock.gone += stall  # the writer's time moves on; the database's does not here
        return pool

    writer._connections.ready = stalled  # type: ignore[method-assign]
    now = Anchor(clock.wall(), clock.monotonic())
    token_set = TokenSet("AT", issued_at=now.wall, expires_at=now.wall + 10, anchor=now)
    try:
        await writer.put(KEY, token_set, expected_version=None)
        found = await reader.get(KEY)
    finally:
        await writer.aclose()
        await reader.aclose()
    assert found is not None
    assert found.age is not None
    assert found.age >= stall - 0.05, found.age
