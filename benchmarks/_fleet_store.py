"""fleet.py's store, Redis or PostgreSQL, opened and measured the same way for both.

A *namespace* names one fleet's sets: a key prefix (``NAME:``) in Redis, a schema in
PostgreSQL. Memory per set is what the namespace's sets add on the server: Redis's
``used_memory`` before and after seeding, PostgreSQL's ``pg_total_relation_size`` of the
schema's tables (indexes and TOAST included). The server's CPU is its processes': Redis's one,
PostgreSQL's postmaster with every backend it runs and has run.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiofinaccess.stores.postgres import PostgresStore
    from aiofinaccess.stores.redis import RedisStore

SHARDS = 64
#: Connections per PostgreSQL store: one per renewal the duty runs at once (Limits'
#: concurrent_refreshes, 16), so that no renewal waits for a connection behind the others.
POOL = 16


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def describe(url: str) -> str:
    if is_postgres(url):
        return f"PostgresStore (pool of {POOL}), PostgreSQL on 127.0.0.1 (fsync off)"
    return f"RedisStore ({SHARDS} due shards), redis-server on 127.0.0.1"


def open_store(url: str, namespace: str) -> RedisStore | PostgresStore:
    """The fleet's store for ``namespace`` (imports only the store it opens: start-up counts)."""
    if is_postgres(url):
        from aiofinaccess.stores.postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore(url, schema=namespace, max_connections=POOL)
    from aiofinaccess.stores.redis import RedisStore  # noqa: PLC0415

    return RedisStore(url, prefix=f"{namespace}:", shards=SHARDS)


async def used_bytes(url: str, namespace: str) -> int:
    """What the server holds: Redis's ``used_memory``; the schema's tables in PostgreSQL."""
    if not is_postgres(url):
        return await _redis_info(url, "memory", "used_memory")
    sql = (
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'"
    )
    return int(await _pg_value(url, sql, namespace))


async def server_pid(url: str) -> int:
    """Redis's process, or PostgreSQL's postmaster (the parent of its checkpointer)."""
    if not is_postgres(url):
        return await _redis_info(url, "server", "process_id")
    sql = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'"
    return int(_fields(int(await _pg_value(url, sql)))[1])


def server_cpu(pid: int) -> float:
    """CPU seconds of ``pid``, its children that have exited, and those that still run."""
    ticks = sum(map(int, _fields(pid)[11:15]))  # utime, stime, cutime, cstime (reaped)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = _fields(int(entry.name))
                if int(fields[1]) == pid:
                    ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _fields(pid: int) -> list[str]:
    # After the command's closing parenthesis: state, ppid, ... (proc(5), from field 3).
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


async def _pg_value(url: str, sql: str, *args: object) -> Any:
    import asyncpg  # noqa: PLC0415

    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(sql, *args)
    finally:
        await connection.close()


async def _redis_info(url: str, section: str, name: str) -> int:
    """One integer of ``INFO section`` (``used_memory``, ``process_id``)."""
    import redis.asyncio as aioredis  # noqa: PLC0415

    client = aioredis.from_url(url)
    try:
        info = await client.info(section)
        return int(info[name])
    finally:
        await client.aclose()
