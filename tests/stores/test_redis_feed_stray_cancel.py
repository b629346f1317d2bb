"""A stray CancelledError out of redis-py never ends the change-feed reader quietly.

On CPython 3.11 redis-py's ``wait_for`` can hand a task a ``CancelledError`` nobody asked for
(gh-86296). The reader must treat it as a failed feed and subscribe again; only a cancel the
reader's task was really given ends it (found by the review of the token core, issue 22).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiofinaccess.stores._redis_feed import ChangeReader
from aiofinaccess.stores._redis_layout import Layout


class _PubSub:
    def __init__(self, client: _Client) -> None:
        self._client = client

    async def subscribe(self, *channels: str) -> None:
        self._client.subscribes += 1
        if self._client.subscribes == 1:
            raise asyncio.CancelledError  # stray: nobody cancelled the reader
        self._client.channels = len(channels)

    async def get_message(self, timeout: float | None = None) -> dict[str, Any] | None:
        if self._client.channels:
            self._client.channels -= 1
            return {"type": "subscribe", "data": 1}
        await asyncio.sleep(3600)
        return None

    async def aclose(self) -> None:
        return None


class _Client:
    def __init__(self) -> None:
        self.subscribes = 0
        self.channels = 0

    def pubsub(self) -> _PubSub:
        return _PubSub(self)


async def test_a_stray_cancellation_resubscribes_the_feed() -> None:
    client = _Client()
    reader = ChangeReader(client, Layout("t:", 1, False), closed=lambda: False)
    reader.start()
    try:
        async with asyncio.timeout(5):
            await reader.subscribed.wait()
    finally:
        await reader.stop()
    assert client.subscribes == 2
