"""``aclose()`` returns even when a background task loses a cancellation.

On CPython 3.11, ``asyncio.wait_for`` drops a cancel that arrives as the awaited call
finishes (gh-86296), and redis-py sends every command through it: the change-feed watcher of a
``RedisStore`` then went on waiting, and ``aclose()``, which awaited the watcher once after one
``cancel()``, hung for good (seen in 2 of 4 quick fleet runs). The stores here lose the first
cancel on purpose, the way that race does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from aiofinaccess import SessionManager, TokenKey, TokenSet
from aiofinaccess.stores.memory import MemoryStore
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
