"""No acknowledged rotation lost to a Redis failover, with ``Replication``: on the six-node
cluster, rotations while a primary's replica lags, then that replica takes over
(``CLUSTER FAILOVER TAKEOVER``: a graceful ``CLUSTER FAILOVER`` waits for the replica and loses
nothing), and the refresh tokens the store then gives back that the provider had spent."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from aiofinaccess import TokenKey
from aiofinaccess.stores import Replication
from aiofinaccess.stores.redis import RedisStore
from tests.stores.contract import StoreContract
from tests.support.failover import Drill, Provider, on_primary, replica_caught_up, stopped
from tests.support.polling import until
from tests.support.redis_cluster import Cluster, running_cluster

#: Rotations per key while the replica lags (without the option each is acknowledged).
ROUNDS = 3
#: Generous: a loaded CI machine may take seconds to settle a cluster.
SETTLE = 60.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster() -> AsyncIterator[Cluster]:
    async with running_cluster() as cluster:
        yield cluster


@pytest.fixture
async def store(cluster: Cluster) -> AsyncIterator[RedisStore]:
    replication = Replication(replicas=1, timeout=5.0)
    store = RedisStore(cluster.url, prefix=f"c-{uuid.uuid4().hex[:8]}:", replication=replication)
    yield store
    await store.aclose()


class TestReplicatedClusterStore(StoreContract):
    """The store contract with every put waiting for a replica."""


async def drill(cluster: Cluster, replication: Replication | None) -> Drill:
    """Rotate keys of one primary while its replica lags, promote the replica, let the old
    primary rejoin as its replica, write what is pending; the drill as it ends."""
    store = RedisStore(cluster.url, prefix=f"fo-{uuid.uuid4().hex[:8]}:", replication=replication)
    keys = [TokenKey("everifin", f"user-{n}") for n in range(40)]
    await store.get(keys[0])  # the slot map

    def owner(key: TokenKey) -> int:
        return int(store._client.get_node_from_key(store._layout.record(key)).port)

    primary, keys = max(on_primary(keys, owner).items(), key=lambda item: len(item[1]))
    replica = int((await cluster.command(primary, "ROLE")).split()[3])
    run = Drill(store, Provider(), keys)
    await run.start(SETTLE)
    await until(lambda: replica_caught_up(cluster.command, primary), SETTLE)
    async with contextlib.AsyncExitStack() as paused:
        async with stopped(cluster.command, replica):
            await cluster.command(primary, "CLIENT", "KILL", "TYPE", "replica")
            await run.rotate(ROUNDS)
            await paused.enter_async_context(stopped(cluster.command, primary))
        # The replica runs again; its primary, stopped, cannot feed it what it missed.
        assert "OK" in await cluster.command(replica, "CLUSTER", "FAILOVER", "TAKEOVER")
        await until(lambda: _is_primary(cluster, replica), SETTLE)
    await cluster.wait_ok(timeout=SETTLE)
    await run.write_pending(SETTLE)
    return run


async def _is_primary(cluster: Cluster, port: int) -> bool:
    return (await cluster.command(port, "ROLE")).startswith("master")


async def test_no_acknowledged_rotation_is_lost_to_a_failover(cluster: Cluster) -> None:
    """With ``Replication`` whatever the store acknowledged is what it gives back after the
    failover: never a refresh token the provider already spent. The rotations the lagging
    replica missed were not acknowledged; they stayed pending and were written once it led."""
    run = await drill(cluster, Replication(replicas=1, timeout=0.5))
    try:
        assert run.acknowledged == len(run.keys)
        assert run.provider.reused == 0
        assert await run.spent_in_store() == 0
    finally:
        await run.store.aclose()


async def test_without_replication_the_failover_takes_back_acknowledged_rotations(
    cluster: Cluster,
) -> None:
    """The drill can fail: a store that counts a write once the primary has it acknowledged
    every rotation, and the takeover gave every key of that primary back its spent token."""
    run = await drill(cluster, None)
    try:
        assert run.acknowledged == ROUNDS * len(run.keys)
        assert await run.spent_in_store() == len(run.keys)
    finally:
        await run.store.aclose()
