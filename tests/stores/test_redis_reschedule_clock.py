"""A Redis reschedule's due time is on the store's clock, as a put's is (issue 22, finding 15):
a worker whose wall clock is 30 s off ``TIME`` reschedules a set where a correct worker would
have, within the tolerance. On one node, in the cluster layout on one node, and on a real
Redis Cluster (three primaries, one script per slot)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from aiofinaccess import TokenKey
from aiofinaccess.stores.redis import RedisStore
from tests.stores.contract import sample
from tests.support.redis_cluster import running_cluster
from tests.support.redis_server import running_redis

KEY = TokenKey("everifin", "alice")
LEAD = 600.0
#: Far below the 30 s skews, far above the tolerance (1 s) plus a few local round trips.
BOUND = 3.0


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


@pytest.fixture(params=["single", "cluster-layout", "cluster"])
async def url(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, bool]]:
    """(a store URL, whether to use the cluster layout)."""
    if request.param == "cluster":
        async with running_cluster(primaries=3, replicas=0) as cluster:
            yield cluster.url, True
        return
    async with running_redis() as single:
        yield single, request.param == "cluster-layout"


@pytest.mark.parametrize("skew", [-30.0, 30.0], ids=["behind", "ahead"])
async def test_a_reschedule_from_a_skewed_worker_lands_on_the_stores_clock(
    url: tuple[str, bool], skew: float
) -> None:
    """Each worker reschedules the set ``LEAD`` seconds from its own now: a worker 30 s
    behind used to schedule it 30 s early on the store's clock (one ahead: 30 s late, and an
    access token expires un-renewed). Both must land within ``BOUND`` of a correct worker's."""
    address, cluster = url
    prefix = f"resched-{uuid.uuid4().hex[:8]}:"
    clock = SkewedClock(skew)
    correct = RedisStore(address, prefix=prefix, cluster=cluster, shards=4)
    skewed = RedisStore(address, prefix=prefix, cluster=cluster, shards=4, clock=clock)
    try:
        version = await correct.put(KEY, sample(), expected_version=None, due_at=1.0)
        await correct.reschedule(KEY, time.time() + LEAD, expected_version=version)
        right = await correct.next_due()
        await skewed.reschedule(KEY, clock.wall() + LEAD, expected_version=version)
        moved = await skewed.next_due()
    finally:
        await correct.aclose()
        await skewed.aclose()
    assert right is not None
    assert moved is not None
    assert abs(moved - right) < BOUND, f"off by {moved - right:+.1f} s (worker skew {skew:+} s)"
