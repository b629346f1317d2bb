"""A busy process waits for a Redis connection instead of failing.

redis-py's asyncio pool raises ``MaxConnectionsError`` at once when its connections are all
in use; a web process with more store calls in flight than that (the fleet benchmark's load
process lost 9,368 of 10,000 requests so) saw ``StoreError`` for a momentary crowd.
``RedisStore(url)`` now builds a blocking pool: a call waits for a free connection.
"""

from __future__ import annotations

import asyncio

from aiofinaccess import RedisStore, TokenKey, TokenSet
from tests.support.redis_server import running_redis


async def test_more_calls_in_flight_than_connections_all_succeed() -> None:
    async with running_redis() as url:
        store = RedisStore(url)
        try:
            key = TokenKey("p", "u")
            await store.put(key, TokenSet(access_token="a"), expected_version=None)
            answers = await asyncio.gather(
                *(store.get(key) for _ in range(500)), return_exceptions=True
            )
            failures = [a for a in answers if isinstance(a, BaseException)]
            assert failures == []
            assert all(a is not None for a in answers)
        finally:
            await store.aclose()
