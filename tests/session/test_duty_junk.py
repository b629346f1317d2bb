"""Due entries that cannot be renewed leave the duty at their first claim, logged once and
counted: members that do not parse, and due times whose set is gone (issue 22, finding 7)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from aiofinaccess import Duty, Timeouts, TokenKey
from aiofinaccess.sandbox import Sandbox
from aiofinaccess.stores import RefreshDuty
from aiofinaccess.stores.redis import RedisStore
from aiofinaccess.stores.sqlite import SQLiteStore
from tests.session.test_duty import (
    LIFETIME,
    all_renewed,
    manager,
    sandbox_config,  # noqa: F401  (a fixture used by name)
    seed_users,
)
from tests.support.polling import until
from tests.support.redis_server import running_redis

JUNK = 2_000
ORPHANS = 200
CLAIM_TTL = 1.0


def junk_rows(path: Path) -> None:
    """Rows whose key does not parse, due before anything else (written by hand or a bug)."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executemany(
            "INSERT INTO token_sets (key, provider, version, data, updated_at, due_at)"
            " VALUES (?, 'everifin', 1, x'00', 0, 0)",
            [(f"everifin:junk-{n}",) for n in range(JUNK)],
        )


def due_set(store: RedisStore, provider: str, shard: int) -> str:
    """The name of the due sorted set holding ``provider``'s sets of ``shard``."""
    layout: Any = store._layout
    try:
        return str(layout.due(shard, provider))
    except TypeError:  # one due set per shard for every provider
        return str(layout.due(shard))


async def junk_and_orphans(url: str, store: RedisStore) -> None:
    """Malformed members, and due times of sets whose record is gone."""
    client = redis.Redis.from_url(url)
    layout = store._layout
    for n in range(ORPHANS):
        key = TokenKey("everifin", f"ghost-{n}")
        await client.zadd(due_set(store, "everifin", layout.shard(key)), {str(key): 0.0})
    for n in range(JUNK):
        member = f"everifin:junk-{n}"
        await client.zadd(due_set(store, "everifin", layout.shard(member)), {member: 0.0})
    await client.aclose()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_unrenewable_due_entries_are_dropped_once(
    sandbox: Sandbox, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with _store(kind, tmp_path) as (opened, expected_drops):
        store = opened()
        try:
            await _run(
                sandbox=sandbox,
                tmp_path=tmp_path,
                kind=kind,
                caplog=caplog,
                opened=opened,
                store=store,
                expected_drops=expected_drops,
            )
        finally:
            await store.aclose()


async def _run(
    *,
    sandbox: Sandbox,
    tmp_path: Path,
    kind: str,
    caplog: pytest.LogCaptureFixture,
    opened: Any,
    store: Any,
    expected_drops: int,
) -> None:
    before = await seed_users(store, sandbox, ["ann"], age=LIFETIME - 2.0, via=opened())
    await junk_and_orphans_for(kind, tmp_path, opened)
    caplog.set_level(logging.WARNING, logger="aiofinaccess")
    async with manager(
        opened(),
        sandbox,
        duty=Duty(enabled=True, poll=0.1, gather=0.05, claim_ttl=CLAIM_TTL),
        timeouts=Timeouts(token=0.5, lease=0.5),
    ) as worker:
        await until(all_renewed(store, before), 30.0)
        # Past two claim deadlines: anything left on the duty is claimed again.
        await asyncio.sleep(2.5 * CLAIM_TTL)
        await worker.wait_idle()
        dropped = getattr(worker.stats, "duty_dropped", None)
    assert isinstance(store, RefreshDuty)
    assert await store.due_count(now=time.time() + 1e6) == 1  # only ann is left
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 3, f"{len(warnings)} warnings"
    assert dropped == expected_drops


async def junk_and_orphans_for(kind: str, tmp_path: Path, opened: Any) -> None:
    if kind == "sqlite":
        junk_rows(tmp_path / "shared.db")
    else:
        store = opened()
        await junk_and_orphans(store.url_for_tests, store)
        await store.aclose()


class _store:
    """Opens clients of one shared store: SQLite (junk rows) or Redis (junk and orphans)."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self._kind = kind
        self._path = tmp_path / "shared.db"
        self._redis: Any = None

    async def __aenter__(self) -> tuple[Any, int]:
        if self._kind == "sqlite":
            path = self._path
            return (lambda: SQLiteStore(path)), JUNK
        self._redis = running_redis()
        url = await self._redis.__aenter__()

        def opened() -> RedisStore:
            store = RedisStore(url, prefix="junk:")
            store.url_for_tests = url  # type: ignore[attr-defined]
            return store

        return opened, JUNK + ORPHANS

    async def __aexit__(self, *exc_info: object) -> None:
        if self._redis is not None:
            await self._redis.__aexit__(*exc_info)
