"""``aclose()`` returns even when a background task loses a cancellation.

On CPython 3.11, ``asyncio.wait_for`` drops a cancel that arrives as the awaited call
finishes (gh-86296), and redis-py sends every command through it: the change-feed watcher of a
``RedisStore`` then went on waiting, and ``aclose()``, which awaited the watcher once after one
``cancel()``, hung for good (seen in 2 of 4 quick fleet runs). The stores here lose the first
cancel on purpose, the way that race does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio.client import PubSub

from aiofinaccess import SessionManager, Timeouts, TokenKey, TokenSet
from aiofinaccess.stores.memory import MemoryStore
from aiofinaccess.stores.redis import RedisStore
from tests.support.redis_server import running_redis
from tests.support.tokens import EVERIFIN, EVERIFIN_CLIENT


class _LosesOneCancel:
    """Waits forever; the first cancellation it receives is lost, the next ones are not."""

    def __init__(self) -> None:
        self.lost = 0

    async def wait(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if self.lost:
                    raise
                self.lost += 1


class FeedLosingACancel(MemoryStore):
    """A store with a change feed whose read loses one cancellation."""

    def __init__(self) -> None:
        super().__init__()
        self.feed = _LosesOneCancel()

    async def changes(self) -> AsyncIterator[tuple[TokenKey, int | None]]:
        await self.feed.wait()
        yield TokenKey("never", "reached"), None


async def test_aclose_returns_when_the_change_feed_loses_a_cancel() -> None:
    store = FeedLosingACancel()
    manager = SessionManager(store=store)
    manager.register(EVERIFIN, EVERIFIN_CLIENT)
    await manager.start()
    now = time.time()
    held = TokenSet("AT-0", issued_at=now, expires_at=now + 3600, refresh_token="RT-0")
    await manager.store_token_set(EVERIFIN.name, "user", held)  # a set held: it watches
    await asyncio.sleep(0.01)  # the watcher is reading the feed
    async with asyncio.timeout(10):
        await manager.aclose()
    assert store.feed.lost == 1  # the first cancel was lost, and aclose did not hang on it


async def test_aclose_returns_when_the_redis_feed_reader_loses_a_cancel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store's own change-feed reader loses the cancel that lands while it subscribes (as
    redis-py's wait_for does on 3.11), then reads with no timeout: aclose() still returns
    (it hung for good while ChangeReader.stop() cancelled once and waited without limit;
    issue 22, finding 12)."""
    entered = asyncio.Event()
    lost = 0
    subscribe = PubSub.subscribe

    async def losing_subscribe(self: PubSub, *channels: Any) -> Any:
        nonlocal lost
        entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            lost += 1  # the call finished as the cancel came: wait_for returns its result
        return await subscribe(self, *channels)

    monkeypatch.setattr(PubSub, "subscribe", losing_subscribe)
    async with running_redis() as url:
        manager = SessionManager(store=RedisStore(url), timeouts=Timeouts(close=1, pending_write=1))
        manager.register(EVERIFIN, EVERIFIN_CLIENT)
        await manager.start()
        now = time.time()
        held = TokenSet("AT-0", issued_at=now, expires_at=now + 3600, refresh_token="RT-0")
        await manager.store_token_set(EVERIFIN.name, "user", held)  # it starts watching
        async with asyncio.timeout(10):
            await entered.wait()  # the reader is subscribing
        closed = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):  # an orderly close takes milliseconds here
                await manager.aclose()
                closed = True
    assert (lost, closed) == (1, True)


async def test_aclose_of_a_redis_manager_that_just_began_watching_returns() -> None:
    """A manager that closes right after it first holds a set (its change-feed reader still
    connecting or subscribing) closes: 10 of 10 times within a generous 10 s each (hung in 9
    of 10 runs while ChangeReader.stop() cancelled once and waited without limit; issue 22,
    finding 12)."""
    closed = 0
    async with running_redis() as url:
        for run in range(10):
            store = RedisStore(url, prefix=f"close-{run}:")
            manager = SessionManager(store=store, timeouts=Timeouts(close=1, pending_write=1))
            manager.register(EVERIFIN, EVERIFIN_CLIENT)
            await manager.start()
            now = time.time()
            held = TokenSet("AT-0", issued_at=now, expires_at=now + 3600, refresh_token="RT-0")
            await manager.store_token_set(EVERIFIN.name, "user", held)  # it starts watching
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):  # an orderly close takes milliseconds here
                    await manager.aclose()
                    closed += 1
    assert closed == 10
