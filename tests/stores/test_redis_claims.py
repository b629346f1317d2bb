"""Redis claims, member by member: what the claim script takes, skips and drops (issue 22,
findings 6 and 7), on a single node and in the cluster layout (one script per due set)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from aiofinaccess import TokenKey
from aiofinaccess.stores.redis import RedisStore
from tests.stores.contract import ALICE, claim, sample
from tests.support.redis_server import running_redis

MINE = TokenKey("everifin", client="app#1")
THEIRS = TokenKey("everifin", client="other#2")


@pytest.fixture(params=[False, True], ids=["single", "cluster-layout"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisStore]:
    async with running_redis() as url:
        opened = RedisStore(url, prefix="claims:", cluster=request.param, shards=4)
        opened.url_for_tests = url  # type: ignore[attr-defined]
        yield opened
        await opened.aclose()


async def test_the_script_takes_skips_and_drops(store: RedisStore) -> None:
    for key in (ALICE, MINE, THEIRS):
        await store.put(key, sample(), expected_version=None, due_at=10.0)
    raw = aioredis.Redis.from_url(store.url_for_tests)  # type: ignore[attr-defined]
    layout = store._layout
    junk = ["everifin:junk", "everifin:user:", "everifin:clientX", "finapi:user:misfiled"]
    ghost = TokenKey("everifin", "ghost")  # a due time whose set is gone
    try:
        for member in [*junk, str(ghost)]:
            await raw.zadd(layout.due(layout.shard(member), "everifin"), {member: 1.0})
    finally:
        await raw.aclose()
    claimed = await store.claim_due(limit=10, claim_for=60.0, owner="w", clients=[MINE])
    assert sorted(claimed, key=str) == sorted([ALICE, MINE], key=str)
    assert claimed.dropped == len(junk) + 1
    # Dropped for good; another client's set is still due, for its own worker.
    assert await store.next_due(clients=[MINE]) is not None  # the two claims' deadlines
    assert await claim(store, clients=(MINE,)) == []
    again = await store.claim_due(limit=10, claim_for=60.0, owner="w", clients=[THEIRS])
    assert again == [THEIRS]
    assert again.dropped == 0


async def test_a_single_node_claim_names_each_provider_once() -> None:
    """On one node a provider's shards share one run of the claim's ARGV (its length, record
    prefix, provider and client key): 4 arguments, not 3 per due set, which redis-py encoded one
    by one on every claim (a tenth of a duty worker's CPU with 64 shards)."""
    finapi_client = TokenKey("finapi", client="app#1")
    async with running_redis() as url:
        store = RedisStore(url, prefix="runs:", shards=8)
        try:
            users = [TokenKey("everifin", f"u{n}") for n in range(6)]
            users += [TokenKey("finapi", f"f{n}") for n in range(6)]
            for key in users:
                await store.put(key, sample(), expected_version=None, due_at=10.0)
            sent: list[list[object]] = []
            script = store._duty._claim

            async def spied(*, keys: list[object], args: list[object]) -> object:
                sent.append(list(args))
                return await script(keys=keys, args=args)

            store._duty._claim = spied  # type: ignore[assignment]
            claimed = await store.claim_due(
                limit=20, claim_for=60.0, owner="w", clients=[MINE, finapi_client]
            )
        finally:
            await store.aclose()
    assert sorted(claimed, key=str) == sorted(users, key=str)
    assert [len(args) for args in sent] == [3 + 4 * 2]
