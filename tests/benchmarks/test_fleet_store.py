"""fleet.py's store on PostgreSQL: a namespace is a schema, its sets' memory is its tables' size,
and the server's CPU counts its backends (benchmarks/_fleet_store.py)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import _fleet_plan as plan_
import _fleet_store as store_

from aiofinaccess.core.tokens import TokenKey
from aiofinaccess.stores.postgres import PostgresStore
from aiofinaccess.stores.redis import RedisStore
from tests.support.postgres_server import running_postgres

PLAN = plan_.Plan(sets=200, ttl=100, lead=20.0, first_due=1000.0, nonce="n")


def test_a_namespace_is_a_redis_prefix_or_a_postgres_schema() -> None:
    redis = store_.open_store("redis://127.0.0.1:1/0", "fleet_idle")
    postgres = store_.open_store("postgresql://u@127.0.0.1:1/db", "fleet_idle")
    assert isinstance(redis, RedisStore)
    assert redis._layout.prefix == "fleet_idle:"
    assert isinstance(postgres, PostgresStore)
    assert postgres._schema == "fleet_idle"


def test_postgres_memory_per_set_is_the_schemas_tables_and_the_cpu_counts_backends() -> None:
    async def scenario(url: str) -> tuple[int, int, int, float, int]:
        empty = await store_.used_bytes(url, "fleet")
        store = store_.open_store(url, "fleet")
        other = store_.open_store(url, "other")
        pid = await store_.server_pid(url)
        cpu_before = store_.server_cpu(pid)
        try:
            await other.open()
            migrated = await store_.used_bytes(url, "fleet")
            for index in range(PLAN.sets):
                key = TokenKey("everifin", plan_.subject(index))
                await store.put(key, PLAN.token_set(index), expected_version=None, due_at=1.0)
        finally:
            await store.aclose()
            await other.aclose()
        return empty, migrated, await store_.used_bytes(url, "fleet"), cpu_before, pid

    with running_postgres() as server:
        empty, migrated, seeded, cpu_before, pid = asyncio.run(scenario(server.url))
        cpu_after = store_.server_cpu(pid)
    assert empty == migrated == 0  # another schema's tables are not the fleet's
    assert seeded > PLAN.sets * 300  # a row, its TOAST-free data and three index entries
    assert cpu_after > cpu_before  # 200 writes ran in backends, not in the postmaster
