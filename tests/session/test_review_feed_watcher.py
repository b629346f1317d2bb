"""Review of the change-feed watcher (session/lifetime.py): a stray ``CancelledError`` out of a
store's change feed (as redis-py's ``wait_for`` can raise on 3.11 though nobody cancelled the
task), or any other failure of the feed, ended the watcher quietly: from then on the process
never adopted another process's writes until its own sets went stale."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest

from aiofinaccess import Schedule, SessionManager, TokenKey
from aiofinaccess.core.tokens import TokenSet
from aiofinaccess.stores.memory import MemoryStore
from tests.support.tokens import EVERIFIN, EVERIFIN_CLIENT


class FailingFeedStore(MemoryStore):
    """A memory store whose change feed fails once with ``failure``, then works."""

    def __init__(self, failure: BaseException) -> None:
        super().__init__()
        self.feed: asyncio.Queue[tuple[TokenKey, int | None]] = asyncio.Queue()
        self.failure: BaseException | None = failure
        self.followed = 0

    async def changes(self) -> AsyncIterator[tuple[TokenKey, int | None]]:
        self.followed += 1
        while True:
            change = await self.feed.get()
            if self.failure is not None:
                failure, self.failure = self.failure, None
                raise failure
            yield change


def token_set(access: str, refresh: str) -> TokenSet:
    now = time.time()
    return TokenSet(access, issued_at=now, expires_at=now + 300.0, refresh_token=refresh)


@pytest.mark.parametrize(
    "failure",
    [asyncio.CancelledError(), ConnectionError("feed lost")],
    ids=["stray-cancellation", "error"],
)
async def test_a_failing_change_feed_is_logged_and_followed_again(
    failure: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    store = FailingFeedStore(failure)
    async with SessionManager(store=store, schedule=Schedule(enabled=False)) as manager:
        manager.register(EVERIFIN, EVERIFIN_CLIENT)
        key = manager.key("everifin", "alice")
        await manager.store_token_set("everifin", "alice", token_set("at-1", "rt-1"))
        current = await store.get(key)
        assert current is not None
        with caplog.at_level(logging.WARNING, logger="aiofinaccess"):
            store.feed.put_nowait((key, current.version))  # the feed fails on this one
            # Another process renews: v2 lands in the store and is announced.
            v2 = await MemoryStore.put(
                store, key, token_set("at-2", "rt-2"), expected_version=current.version
            )
            store.feed.put_nowait((key, v2))
            for _ in range(500):  # up to 5 s: the watcher's pause before following again
                if await manager.access_token("everifin", "alice") == "at-2":
                    break
                await asyncio.sleep(0.01)
        assert await manager.access_token("everifin", "alice") == "at-2", store.followed
        assert store.followed == 2
        assert any("change feed" in record.getMessage() for record in caplog.records)
