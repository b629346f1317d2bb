"""PostgresStore against the store contract, across workers and processes, on a real
PostgreSQL (tests/support/postgres_server.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from aiofinaccess import StoreError, TokenKey
from aiofinaccess.errors import ConfigurationError
from aiofinaccess.stores import ChangeFeed, PendingAuthorizations, RefreshDuty, TokenStore
from aiofinaccess.stores.postgres import PostgresStore
from tests.stores.contract import (
    ALICE,
    ConnectionsContract,
    DutyContract,
    StoreContract,
    claim,
    sample,
)
from tests.stores.shared_contract import SharedContract
from tests.stores.unreadable import UnreadableContract
from tests.support.polling import until
from tests.support.postgres_server import Server, running_postgres

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def schema() -> str:
    """A fresh schema per test: tests share one cluster but never each other's rows."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def store(server: Server, schema: str) -> AsyncIterator[PostgresStore]:
    store = await PostgresStore(server.url, schema=schema).open()
    yield store
    await store.aclose()


@pytest.fixture
async def other(server: Server, schema: str) -> AsyncIterator[PostgresStore]:
    """A second worker: its own pool, the same schema."""
    store = PostgresStore(server.url, schema=schema)
    yield store
    await store.aclose()


async def sql(server: Server, statement: str, *args: object) -> object:
    conn = await asyncpg.connect(server.url, ssl=False)
    try:
        return await conn.execute(statement, *args)
    finally:
        await conn.close()


class TestPostgresStore(
    StoreContract, ConnectionsContract, DutyContract, UnreadableContract, SharedContract
):
    """The whole contract; each test gets a fresh schema."""

    async def corrupt(self, store: TokenStore, key: TokenKey) -> None:
        assert isinstance(store, PostgresStore)
        statement = f'UPDATE "{store._schema}".token_sets SET data = $1 WHERE key = $2'  # noqa: S608
        pool = await store._connections.ready()
        await pool.execute(statement, b"\x00garbage", str(key))


async def test_is_every_kind_of_store(store: PostgresStore) -> None:
    for protocol in (TokenStore, ChangeFeed, RefreshDuty, PendingAuthorizations):
        assert isinstance(store, protocol)


async def test_the_feed_listens_again_after_its_connection_is_killed(
    store: PostgresStore, server: Server
) -> None:
    feed = store.changes()
    await store.wait_subscribed()
    await sql(
        server,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN%'",
    )
    async with asyncio.timeout(5):
        while store._feed.subscribed.is_set():  # noqa: ASYNC110  (no event for its clearing)
            await asyncio.sleep(0.01)
    await store.wait_subscribed()
    version = await store.put(ALICE, sample(), expected_version=None)
    async with asyncio.timeout(2):
        assert await anext(feed) == (ALICE, version)


async def test_a_closed_store_refuses_calls(store: PostgresStore) -> None:
    await store.aclose()
    with pytest.raises(StoreError, match="closed"):
        await store.get(ALICE)


async def test_ages_are_on_the_databases_clock(store: PostgresStore) -> None:
    """A set read back carries its age as the database measured it, whatever our wall clock."""
    await store.put(ALICE, sample(), expected_version=None)
    await asyncio.sleep(0.2)
    stored = await store.get(ALICE)
    assert stored is not None
    assert stored.age is not None
    assert stored.age >= 0.2


async def test_the_schema_is_created_once_by_racing_workers(server: Server, schema: str) -> None:
    stores = [PostgresStore(server.url, schema=schema) for _ in range(5)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        await stores[0].put(ALICE, sample(), expected_version=None)
        assert await stores[4].get(ALICE) is not None
    finally:
        await asyncio.gather(*(store.aclose() for store in stores))


async def test_a_schema_newer_than_this_version_is_refused(server: Server, schema: str) -> None:
    async with PostgresStore(server.url, schema=schema):
        pass
    await sql(server, f'UPDATE "{schema}".schema_version SET version = 99')  # noqa: S608
    with pytest.raises(StoreError, match="version 99, newer than"):
        await PostgresStore(server.url, schema=schema).open()


async def test_a_malformed_stored_value_is_a_store_error(
    store: PostgresStore, server: Server, schema: str
) -> None:
    """A column altered by hand reads as a StoreError, never a TypeError."""
    await store.put(ALICE, sample(), expected_version=None)
    await sql(server, f'ALTER TABLE "{schema}".token_sets ALTER COLUMN version TYPE text')
    with pytest.raises(StoreError, match="malformed version"):
        await store.get(ALICE)


async def test_a_unix_socket_url_works(server: Server, schema: str) -> None:
    async with PostgresStore(server.socket_url, schema=schema) as store:
        await store.put(ALICE, sample(), expected_version=None)
        assert await store.get(ALICE) is not None


async def test_a_server_that_is_down_is_a_store_error(schema: str) -> None:
    from tests.support.redis_server import free_port  # noqa: PLC0415

    url = f"postgresql://user:pw-Zq8-never-printed@127.0.0.1:{free_port()}/db"
    store = PostgresStore(url, schema=schema, connect_timeout=2)
    with pytest.raises(StoreError) as caught:
        await store.get(ALICE)
    assert "pw-Zq8" not in str(caught.value)
    assert "pw-Zq8" not in repr(store)
    await store.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost/0",
        "postgresql://db.example/app?sslmode=require",
        "postgresql://db.example/app?sslmode=prefer",
        "postgresql://db.example/app?sslmode=verify-ca",
        "postgresql://127.0.0.1/app?sslmode=allow",
        "postgresql://db.example/app?sslmode=verify-full&sslmode=disable",
        "postgresql://db.example/app?sslmode=disable&sslrootcert=/etc/ca.pem",
        "postgresql://db.example/app?sslcrl=/etc/crl.pem",
        "postgresql://db.example/app?sslrootcert=/nonexistent/ca.pem",
        "postgresql://db.example:port/app",
    ],
)
def test_a_bad_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        PostgresStore(url)
    assert "db.example" not in str(caught.value)


@pytest.mark.parametrize("schema", ["", "Upper", "a-b", "x" * 41, 'a"; DROP TABLE x; --'])
def test_a_bad_schema_is_a_configuration_error(schema: str) -> None:
    with pytest.raises(ConfigurationError, match="schema"):
        PostgresStore("postgresql://127.0.0.1/app", schema=schema)


def test_repr_shows_where_but_never_who() -> None:
    store = PostgresStore("postgresql://app:s3cret@db.example:6543/tokens?sslrootcert=system")
    assert (
        repr(store) == "PostgresStore(postgresql://db.example:6543/tokens, schema='aiofinaccess')"
    )


HOLDER = """
import asyncio, sys
from aiofinaccess import TokenKey
from aiofinaccess.stores.postgres import PostgresStore

async def main(url, schema):
    store = PostgresStore(url, schema=schema)
    async with store.lease(TokenKey("everifin", "alice"), ttl=1.0):
        print("held", flush=True)
        await asyncio.sleep(60)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_lease_of_a_killed_holder_is_taken_over_after_its_ttl(
    store: PostgresStore, server: Server, schema: str
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, server.url, schema, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert holder.stdout is not None
    try:
        async with asyncio.timeout(20):
            assert await holder.stdout.readline() == b"held\n"
        held_at = time.monotonic()
        with pytest.raises(StoreError, match="timed out waiting for the lease"):
            async with store.lease(ALICE, ttl=0.2):
                pass  # pragma: no cover
    finally:
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
    async with store.lease(ALICE, ttl=5):
        waited = time.monotonic() - held_at
    assert 0.8 < waited < 3.0


async def test_claims_and_due_times_are_on_the_databases_clock(store: PostgresStore) -> None:
    """A writer whose clock is an hour ahead writes "due in 60 s" as 60 s on the database's
    clock, not an hour later."""

    class Ahead:
        def monotonic(self) -> float:
            return time.monotonic()

        def wall(self) -> float:
            return time.time() + 3600.0

    store._clock = Ahead()  # type: ignore[assignment]
    await store.put(ALICE, sample(), expected_version=None, due_at=time.time() + 3600.0 - 1.0)
    assert await claim(store) == [ALICE]


async def test_the_pool_recovers_when_the_server_drops_its_connections(
    store: PostgresStore, server: Server
) -> None:
    """A restart or failover closes every connection: calls after it work again (the pool
    reconnects), and none hangs."""
    await store.put(ALICE, sample(), expected_version=None)
    await sql(
        server,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
    )
    await asyncio.sleep(0.2)
    async with asyncio.timeout(10):
        stored = await store.get(ALICE)
    assert stored is not None


def test_a_url_without_a_host_is_judged_by_the_host_asyncpg_will_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``postgresql:///app`` connects wherever PGHOST says: a remote PGHOST gets verify-full,
    not the plain text of a local socket."""
    monkeypatch.setenv("PGHOST", "db.example")
    assert PostgresStore("postgresql:///tokens")._target.verified
    monkeypatch.setenv("PGHOST", "/run/postgresql")
    assert not PostgresStore("postgresql:///tokens")._target.verified
    monkeypatch.delenv("PGHOST")
    assert not PostgresStore("postgresql:///tokens")._target.verified


async def test_a_close_while_the_pool_opens_leaves_no_connection_behind(
    server: Server, schema: str
) -> None:
    """aclose() during the first call's connect: the pool that call was opening is closed too,
    not left holding connections for the life of the process."""
    store = PostgresStore(server.url, schema=schema, min_connections=3)
    first = asyncio.create_task(store.get(ALICE))
    await asyncio.sleep(0)  # the call is opening the pool
    await store.aclose()
    with pytest.raises(StoreError, match="closed"):
        await first
    conn = await asyncpg.connect(server.url, ssl=False)

    async def none_left() -> bool:  # earlier tests' closed connections may still be exiting
        left = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'aiofinaccess'"
        )
        return bool(left == 0)

    try:
        await until(none_left, 5)
    finally:
        await conn.close()


async def test_the_feed_listens_again_promptly_after_every_drop(
    store: PostgresStore, server: Server
) -> None:
    """Each drop after a LISTEN that stood starts the pause afresh: the seventh drop in a row
    is not followed by the 5-s pause of seven failures in a row."""
    await store.wait_subscribed()
    for _ in range(7):
        await sql(
            server,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN%'",
        )
        async with asyncio.timeout(5):
            while store._feed.subscribed.is_set():  # noqa: ASYNC110  (no event for clearing)
                await asyncio.sleep(0.01)
        await store.wait_subscribed(timeout=1.0)


async def test_a_paused_holder_finds_its_lease_taken_over_and_cannot_extend_it(
    store: PostgresStore, other: PostgresStore
) -> None:
    """A holder that stops beating (a GC pause, SIGSTOP) past its ttl loses the lease to a
    waiter, and its fence (extend before a send) answers False: it must not send."""
    async with (
        store.lease(ALICE, ttl=0.5) as held,
        asyncio.timeout(5),
        other.lease(ALICE, ttl=3.0) as taken,
    ):
        assert await held.extend(5.0) is False
        assert held.remaining() == 0.0
        assert await taken.extend(3.0) is True


@pytest.mark.parametrize(
    "setting",
    [
        {"lease_poll": 0},
        {"lease_poll": float("nan")},
        {"min_connections": 5, "max_connections": 2},
        {"max_connections": 0},
        {"min_connections": -1},
        {"connect_timeout": 0},
    ],
)
def test_a_bad_setting_is_a_configuration_error(setting: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        PostgresStore("postgresql://127.0.0.1/app", **setting)  # type: ignore[arg-type]


async def test_a_user_without_ddl_rights_uses_a_schema_made_for_it(
    server: Server, schema: str
) -> None:
    """The deployment guide's least privilege: CREATE the first time (a DBA's migration), then
    only USAGE and SELECT/INSERT/UPDATE/DELETE for the app's own login."""
    async with PostgresStore(server.url, schema=schema):
        pass
    role = f"app_{schema}"
    for statement in (
        f"CREATE ROLE {role} LOGIN",
        f"REVOKE CREATE ON DATABASE postgres FROM PUBLIC, {role}",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f'GRANT USAGE ON SCHEMA "{schema}" TO {role}',
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {role}',
    ):
        await sql(server, statement)
    url = server.url.replace("aiofinaccess@", f"{role}@")
    async with PostgresStore(url, schema=schema) as store:
        await store.put(ALICE, sample(), expected_version=None, due_at=1.0)
        assert await claim(store) == [ALICE]
        async with store.lease(ALICE, ttl=5):
            pass


async def test_a_call_costs_one_round_trip_no_reset_on_release(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's connections keep no session state (no LISTEN, SET or session lock: the
    feed has its own connection), so handing one back sends no reset statement."""
    resets: list[str] = []
    real = asyncpg.Connection.execute

    async def execute(self: asyncpg.Connection, query: str, *args: object, **kw: object) -> str:
        if "RESET ALL" in query:
            resets.append(query)
        return await real(self, query, *args, **kw)

    monkeypatch.setattr(asyncpg.Connection, "execute", execute)
    await store.put(ALICE, sample(), expected_version=None)
    for _ in range(5):
        assert (await store.get(ALICE)) is not None
    assert resets == []
