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


async def test_commands_have_no_socket_timeout_unless_the_url_sets_one() -> None:
    """redis-py 8's default socket timeout (5 s) runs every command through
    ``asyncio.wait_for`` (a task per command on 3.11); a session manager bounds each store call
    itself. A URL that sets one keeps it."""
    plain = RedisStore("redis://127.0.0.1:1/0")
    timed = RedisStore("redis://127.0.0.1:1/0?socket_timeout=2.5")
    pools = [store._client.connection_pool for store in (plain, timed)]
    try:
        assert [pool.connection_kwargs["socket_timeout"] for pool in pools] == [None, 2.5]
    finally:
        for store in (plain, timed):
            await store.aclose()
