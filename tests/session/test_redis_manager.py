"""The manager over Redis: the fresh path is local, and a rotation elsewhere arrives by pub/sub."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as redis

from aiofinaccess import ClientCredentials, Everifin, Schedule, SessionManager, TokenKey, TokenSet
from aiofinaccess.stores.redis import RedisStore
from tests.support.redis_server import running_redis

PROVIDER = Everifin.at("http://127.0.0.1:1/auth", "http://127.0.0.1:1")  # never contacted


def fresh(access: str, refresh: str) -> TokenSet:
    now = time.time()
    return TokenSet(access_token=access, refresh_token=refresh, issued_at=now, expires_at=now + 300)


async def command_calls(client: redis.Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(entry["calls"]) for name, entry in stats.items() if name != "cmdstat_info")


async def test_fresh_tokens_cost_no_redis_round_trip() -> None:
    """1,000 access_token calls on a fresh set send no command to Redis."""
    async with (
        running_redis() as url,
        redis.from_url(url) as probe,
        SessionManager(
            store=RedisStore(url, prefix="fresh:"), schedule=Schedule(enabled=False)
        ) as manager,
    ):
        manager.register(PROVIDER, ClientCredentials("c", "s"))
        await manager.store_token_set("everifin", "alice", fresh("AT-1", "RT-1"))
        assert await manager.access_token("everifin", "alice") == "AT-1"
        before = await command_calls(probe)
        for _ in range(1000):
            await manager.access_token("everifin", "alice")
        after = await command_calls(probe)
    assert after - before == 0


async def test_a_rotation_by_another_worker_is_adopted_by_pub_sub() -> None:
    """Worker B stores a rotated set; worker A serves it without asking Redis on the fresh path."""
    async with running_redis() as url:
        store_a = RedisStore(url, prefix="feed:")
        store_b = RedisStore(url, prefix="feed:")
        async with (
            SessionManager(store=store_a, schedule=Schedule(enabled=False)) as worker_a,
            SessionManager(store=store_b, schedule=Schedule(enabled=False)) as worker_b,
        ):
            for worker in (worker_a, worker_b):
                worker.register(PROVIDER, ClientCredentials("c", "s"))
            await worker_a.store_token_set("everifin", "alice", fresh("AT-1", "RT-1"))
            await store_a.wait_subscribed()
            assert await worker_a.access_token("everifin", "alice") == "AT-1"
            await worker_b.store_token_set("everifin", "alice", fresh("AT-2", "RT-2"))
            for _ in range(200):
                if await worker_a.access_token("everifin", "alice") == "AT-2":
                    break
                await asyncio.sleep(0.01)
            assert await worker_a.access_token("everifin", "alice") == "AT-2"
            assert worker_a.stats.adopted_from_store >= 1
            stored = await store_a.get(TokenKey("everifin", "alice"))
            assert stored is not None
            assert stored.token_set.refresh_token is not None
            assert stored.token_set.refresh_token.reveal() == "RT-2"
