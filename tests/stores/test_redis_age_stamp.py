"""A writer's age of a set is read where the write leaves, not before the store's first wait
(issue 22, seed 137 of the grown simulation): a wait between the two made a set look younger
than it was to every reader, which then handed out an access token that had expired."""

from __future__ import annotations

import uuid

import pytest

from aiofinaccess import TokenKey, TokenSet
from aiofinaccess.core.tokens import Anchor
from aiofinaccess.stores.redis import RedisStore
from tests.support.fakes import StallingClock
from tests.support.redis_server import running_redis

KEY = TokenKey("everifin", "alice")
STALL = 3.0


@pytest.mark.asyncio
async def test_a_put_that_waits_first_stamps_the_age_at_the_write() -> None:
    clock = StallingClock()
    async with running_redis() as url:
        prefix = f"age-{uuid.uuid4().hex[:8]}:"
        writer = RedisStore(url, prefix=prefix, clock=clock)
        reader = RedisStore(url, prefix=prefix)
        checked = writer._check_settings

        async def stalled() -> None:  # the first call checks the store's settings: a wait
            await checked()
            clock.gone += STALL  # the writer's time moves on; Redis's TIME does not here

        writer._check_settings = stalled  # type: ignore[method-assign]
        now = Anchor(clock.wall(), clock.monotonic())
        fresh = TokenSet("AT", issued_at=now.wall, expires_at=now.wall + 10, anchor=now)
        try:
            await writer.put(KEY, fresh, expected_version=None)
            found = await reader.get(KEY)
        finally:
            await writer.aclose()
            await reader.aclose()
    assert found is not None
    assert found.age is not None
    # The set was STALL seconds old when the write left: readers must not see it younger.
    assert found.age >= STALL - 0.05, found.age
