"""``Replication`` on a single Redis server with a replica: a write counts as stored only once
the replica has it, its retry goes through over its own unconfirmed write, and a failover
(``REPLICAOF NO ONE`` on the lagging replica) takes back only what was never acknowledged."""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from aiofinaccess import StoreError, TokenKey
from aiofinaccess.cli.store import locate
from aiofinaccess.errors import ConfigurationError, StoreConflictError
from aiofinaccess.stores import Replication
from aiofinaccess.stores._redis_urls import wait_options
from aiofinaccess.stores.redis import RedisStore
from tests.stores.contract import ALICE, sample
from tests.support.failover import (
    Drill,
    Provider,
    cli,
    replica_caught_up,
    replicated_redis,
    stopped,
)
from tests.support.polling import until

SETTLE = 60.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pair() -> AsyncIterator[tuple[int, int]]:
    """A primary and its replica: their ports."""
    async with replicated_redis(SETTLE) as ports:
        yield ports


async def _lead(pair: tuple[int, int]) -> tuple[int, int]:
    """The ports as the roles are now: (primary, replica)."""
    first, second = pair
    return pair if (await cli(first, "ROLE")).startswith("master") else (second, first)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"replicas": 0}, "replicas"),
        ({"replicas": True}, "replicas"),
        ({"replicas": 1.5}, "replicas"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
        ({"timeout": math.nan}, "timeout"),
        ({"timeout": "1"}, "timeout"),
        ({"fsync": 1}, "fsync"),
    ],
)
def test_replication_checks_itself(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Replication(**arguments)  # type: ignore[arg-type]


def test_replication_asks_for_wait_or_waitaof() -> None:
    assert Replication(replicas=2, timeout=0.25).command() == ("WAIT", 2, 250)
    assert Replication(fsync=True).command() == ("WAITAOF", 1, 1, 1000)
    assert Replication(replicas=2).confirmed(2)
    assert not Replication(replicas=2).confirmed(1)
    assert Replication(fsync=True).confirmed([1, 1])
    assert not Replication(fsync=True).confirmed([0, 1])


def test_the_url_asks_for_replication_and_redis_py_never_sees_it() -> None:
    url = "redis+cluster://:pw@h:7000?wait_replicas=2&ssl_x=1&wait_timeout=0.5&wait_fsync=yes"
    assert wait_options(url) == (
        "redis+cluster://:pw@h:7000?ssl_x=1",
        Replication(replicas=2, timeout=0.5, fsync=True),
    )
    assert wait_options("redis://h:1/0?wait_replicas=1") == ("redis://h:1/0", Replication())
    assert wait_options("redis://h:1/0?db=2") == ("redis://h:1/0?db=2", None)
    for bad in ("wait_replicas=1&wait_replicas=2", "wait_timeout=1", "wait_replicas=x",
                "wait_replicas=1&wait_timeout=inf", "wait_replicas=1&wait_fsync=maybe",
                "wait_replicas=0"):  # fmt: skip
        with pytest.raises(ConfigurationError, match=r"wait_|Replication"):
            wait_options(f"redis://h:1/0?{bad}")


async def test_a_write_counts_once_the_replica_has_it_and_its_retry_goes_through(
    pair: tuple[int, int],
) -> None:
    primary, replica = await _lead(pair)
    url = f"redis://127.0.0.1:{primary}/0?wait_replicas=1&wait_timeout=0.5"
    store = RedisStore(url, prefix=f"r-{uuid.uuid4().hex[:8]}:")
    try:
        base = await store.put(ALICE, sample("AT-0", "RT-0"), expected_version=None)
        rotated = sample("AT-1", "RT-1")
        async with stopped(cli, replica):
            with pytest.raises(StoreError, match="fewer than 1 replicas confirmed"):
                await store.put(ALICE, rotated, expected_version=base)
        # Written on the primary but not counted: its retry goes through over it (and waits
        # for the replica again); another set at that base still conflicts.
        version = await store.put(ALICE, rotated, expected_version=base)
        with pytest.raises(StoreConflictError):
            await store.put(ALICE, sample("AT-2", "RT-2"), expected_version=base)
        stored = await store.get(ALICE)
        assert stored is not None
        assert (stored.token_set, stored.version) == (rotated, version)
    finally:
        await store.aclose()


async def test_a_write_waiting_for_an_append_only_file_the_server_lacks_never_counts(
    pair: tuple[int, int],
) -> None:
    primary, _ = await _lead(pair)
    replication = Replication(timeout=0.2, fsync=True)  # the servers run without appendonly
    store = RedisStore(f"redis://127.0.0.1:{primary}/0", replication=replication)
    try:
        with pytest.raises(StoreError, match="not counted as stored"):
            await store.put(TokenKey("everifin", uuid.uuid4().hex), sample(), expected_version=None)
    finally:
        await store.aclose()


@pytest.mark.parametrize("replication", [Replication(timeout=0.5), None])
async def test_a_failover_takes_back_only_what_was_never_acknowledged(
    pair: tuple[int, int], replication: Replication | None
) -> None:
    """The replica is promoted while it lags: with ``Replication`` no key comes back with a
    spent refresh token; without it (the drill can fail) every rotated key does."""
    primary, replica = await _lead(pair)
    prefix = f"f-{uuid.uuid4().hex[:8]}:"
    store = RedisStore(f"redis://127.0.0.1:{primary}/0", prefix=prefix, replication=replication)
    run = Drill(store, Provider(), [TokenKey("everifin", f"user-{n}") for n in range(10)])
    try:
        await run.start(SETTLE)
        await until(lambda: replica_caught_up(cli, primary), SETTLE)
        async with contextlib.AsyncExitStack() as paused:
            async with stopped(cli, replica):
                await cli(primary, "CLIENT", "KILL", "TYPE", "replica")
                await run.rotate(3)
                await paused.enter_async_context(stopped(cli, primary))
            # The replica runs again; its primary, stopped, cannot feed it what it missed.
            await cli(replica, "REPLICAOF", "NO", "ONE")
        await cli(primary, "REPLICAOF", "127.0.0.1", str(replica))
        await until(lambda: replica_caught_up(cli, replica), SETTLE)
    finally:
        await store.aclose()
    run.store = RedisStore(f"redis://127.0.0.1:{replica}/0", prefix=prefix, replication=replication)
    try:
        await run.write_pending(SETTLE)
        lost = await run.spent_in_store()
        assert lost == (0 if replication is not None else len(run.keys))
        assert run.acknowledged == (len(run.keys) if replication is not None else 3 * len(run.keys))
    finally:
        await run.store.aclose()


async def test_the_store_url_the_cli_and_worker_take_asks_for_replication(
    pair: tuple[int, int],
) -> None:
    """``--store redis://...?wait_replicas=2``: the one replica there is is not enough."""
    primary, _ = await _lead(pair)
    url = f"redis://127.0.0.1:{primary}/0?wait_replicas=2&wait_timeout=0.1"
    store = locate(url, {}, from_flag=False, password_file=None).open(None)
    assert isinstance(store, RedisStore)
    try:
        with pytest.raises(StoreError, match=r"fewer than 2 replicas confirmed it within 0\.1 s"):
            await store.put(TokenKey("everifin", uuid.uuid4().hex), sample(), expected_version=None)
    finally:
        await store.aclose()
