"""Adopting and restoring stored sets: a change-feed read never moves a set backwards, adopting
leaves backoff, unknown and forgotten users leave no entry, a restore emits no events and reads
in batches, and a SQLite lease survives a wall-clock step."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

from aiofinaccess import Everifin, Schedule, SessionManager, SQLiteStore, StoreError, TokenKey
from aiofinaccess.core.lifecycle import TokenState
from aiofinaccess.core.tokens import TokenSet
from aiofinaccess.session.events import Refreshed
from aiofinaccess.stores import Versioned
from aiofinaccess.stores.memory import MemoryStore
from tests.support.tokens import EVERIFIN, EVERIFIN_CLIENT

TOKEN_URL = str(EVERIFIN.token_url)


def answer(access: str, refresh: str, *, status: int = 200, expires_in: int = 300) -> Any:
    if status != 200:
        return {"status": status, "payload": {"error": "temporarily_unavailable"}}
    return {
        "status": 200,
        "payload": {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": expires_in,
            "token_type": "Bearer",
        },
    }


def token_set(access: str, refresh: str, *, lifetime: float = 300.0) -> TokenSet:
    now = time.time()
    return TokenSet(access, issued_at=now, expires_at=now + lifetime, refresh_token=refresh)


class FeedStore(MemoryStore):
    """A memory store with a change feed the test drives, and a read it can hold back."""

    def __init__(self) -> None:
        super().__init__()
        self.feed: asyncio.Queue[tuple[TokenKey, int | None]] = asyncio.Queue()
        self.hold_next_get = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.gets = 0

    async def get(self, key: TokenKey) -> Versioned | None:
        self.gets += 1
        snapshot = await super().get(key)
        if self.hold_next_get:
            self.hold_next_get = False
            self.held.set()
            await self.release.wait()
        return snapshot

    async def changes(self) -> AsyncIterator[tuple[TokenKey, int | None]]:
        while True:
            yield await self.feed.get()


def held_in_memory(manager: SessionManager) -> int:
    match = re.search(r"token_sets=(\d+)", repr(manager))
    assert match is not None
    return int(match.group(1))


async def test_a_change_feed_read_never_moves_a_set_backwards(mocked: aioresponses) -> None:
    """The watcher read the store, and before it adopted that snapshot the manager renewed and
    published a newer set; the watcher then adopted the older one, whose refresh token was
    already spent."""
    store = FeedStore()
    async with SessionManager(store=store, schedule=Schedule(enabled=False)) as manager:
        manager.register(EVERIFIN, EVERIFIN_CLIENT)
        key = manager.key("everifin", "alice")
        await manager.store_token_set("everifin", "alice", token_set("at-1", "rt-1"))
        # Another process renews: v2 lands in the store and is announced.
        current = await store.get(key)
        assert current is not None
        v2 = await MemoryStore.put(
            store, key, token_set("at-2", "rt-2"), expected_version=current.version
        )
        store.hold_next_get = True
        store.feed.put_nowait((key, v2))
        await store.held.wait()  # the watcher holds a snapshot of v2
        mocked.post(TOKEN_URL, **answer("at-3", "rt-3"))
        renewed = await manager.renew_after_rejection("everifin", "alice", "at-1")
        assert renewed == "at-2"  # adopted from the store, no request
        renewed = await manager.renew_after_rejection("everifin", "alice", "at-2")
        assert renewed == "at-3"  # v2's refresh token is now spent
        store.release.set()
        await asyncio.sleep(0.01)
        assert await manager.access_token("everifin", "alice") == "at-3"


async def test_adopting_a_set_leaves_backoff(mocked: aioresponses) -> None:
    """A set in BACKOFF that the change feed replaced stayed in BACKOFF."""
    store = FeedStore()
    async with SessionManager(store=store, schedule=Schedule(enabled=False)) as manager:
        manager.register(EVERIFIN, EVERIFIN_CLIENT)
        key = manager.key("everifin", "alice")
        await manager.store_token_set("everifin", "alice", token_set("at-1", "rt-1"))
        mocked.post(TOKEN_URL, **answer("", "", status=400), repeat=True)
        with pytest.raises(Exception):  # noqa: B017, PT011  (any failure puts it in backoff)
            await manager.refresh("everifin", "alice")
        assert manager.state("everifin", "alice") is TokenState.BACKOFF
        current = await store.get(key)
        assert current is not None
        v2 = await MemoryStore.put(
            store, key, token_set("at-2", "rt-2"), expected_version=current.version
        )
        store.feed.put_nowait((key, v2))
        for _ in range(100):
            await asyncio.sleep(0)
        assert manager.state("everifin", "alice") is TokenState.FRESH


async def test_entries_of_forgotten_and_unknown_users_are_pruned() -> None:
    """``_entries`` grew with every forgotten user and every probe of an unknown subject."""
    async with SessionManager(schedule=Schedule(enabled=False)) as manager:
        manager.register(EVERIFIN, EVERIFIN_CLIENT)
        baseline = held_in_memory(manager)
        for n in range(50):
            with pytest.raises(Exception):  # noqa: B017, PT011  (ReauthorizationRequired)
                await manager.access_token("everifin", f"nobody-{n}")
        for n in range(50):
            await manager.store_token_set("everifin", f"user-{n}", token_set(f"a{n}", f"r{n}"))
            await manager.forget("everifin", f"user-{n}")
        await manager.wait_idle()
        assert held_in_memory(manager) == baseline


async def test_restore_emits_no_refreshed_events(tmp_path: Path) -> None:
    """Refuted or proven: restoring stored sets at start must not count as renewals."""
    path = tmp_path / "tokens.db"
    async with SQLiteStore(path) as store:
        for n in range(5):
            await store.put(
                TokenKey("everifin", f"u{n}"), token_set(f"a{n}", f"r{n}"), expected_version=None
            )
    events: list[object] = []
    manager = SessionManager(store=SQLiteStore(path), schedule=Schedule(enabled=False))
    manager.register(EVERIFIN, EVERIFIN_CLIENT)
    manager.subscribe(events.append)
    async with manager:
        assert await manager.restore() == 5  # (SQLite keeps the refresh duty: none at start)
        assert manager.state("everifin", "u1") is TokenState.FRESH
    assert [e for e in events if isinstance(e, Refreshed)] == []
    assert manager.stats.token_requests == 0


async def test_a_sqlite_lease_survives_a_wall_clock_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SQLite lease compared ``time.time()``: an NTP step forward freed a live lease."""
    path = tmp_path / "tokens.db"
    key = TokenKey("everifin", "alice")
    async with (
        SQLiteStore(path) as holder,
        SQLiteStore(path) as other,
        holder.lease(key, ttl=30.0),
    ):
        real_time = time.time
        monkeypatch.setattr(time, "time", lambda: real_time() + 3600.0)
        with pytest.raises(StoreError, match="timed out"):
            async with other.lease(key, ttl=0.3):
                pass


async def test_start_does_not_read_sets_one_at_a_time(tmp_path: Path) -> None:
    """``start()`` restored N sets with N separate reads."""
    path = tmp_path / "tokens.db"
    async with SQLiteStore(path) as store:
        for n in range(200):
            await store.put(
                TokenKey("everifin", f"u{n}"), token_set(f"a{n}", f"r{n}"), expected_version=None
            )

    class CountingStore(SQLiteStore):
        reads = 0

        async def get(self, key: TokenKey) -> Versioned | None:
            CountingStore.reads += 1
            return await super().get(key)

    async with SessionManager(
        store=CountingStore(path), schedule=Schedule(enabled=False)
    ) as manager:
        manager.register(Everifin.stage(), EVERIFIN_CLIENT)
        await manager.wait_idle()
        assert CountingStore.reads <= 1  # SQLite keeps the refresh duty: start() probes only
        assert await manager.restore() == 200  # and restore() reads in batches
        assert manager.state("everifin", "u199") is TokenState.FRESH
    assert CountingStore.reads < 10
