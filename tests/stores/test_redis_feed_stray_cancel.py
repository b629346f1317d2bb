"""A stray CancelledError out of redis-py never ends the change-feed reader quietly.

On CPython 3.11 redis-py's ``wait_for`` can hand a task a ``CancelledError`` nobody asked for
(gh-86296). The reader must treat it as a failed feed and subscribe again; only a cancel the
reader's task was really given ends it (found by the review of the token core, issue 22). On
Redis Cluster the stray one comes out of a node's reader task, through ``task.result()``.
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


# -- Redis Cluster: one reader task per node ------------------------------------------------


class _NodePubSub:
    def __init__(self, client: _Cluster, channels: list[str]) -> None:
        self._client = client
        self._pending = list(channels)

    async def get_message(self, timeout: float | None = None) -> dict[str, Any] | None:
        if self._pending:
            return {"type": "ssubscribe", "channel": self._pending.pop(), "data": 1}
        if self._client.subscribes == 1:
            raise asyncio.CancelledError  # stray: nobody cancelled the reader
        await asyncio.sleep(3600)
        return None


class _ClusterPubSub:
    def __init__(self, client: _Cluster) -> None:
        self._client = client
        self._channels: list[str] = []
        self.node_pubsub_mapping: dict[str, _NodePubSub] = {}

    async def ssubscribe(self, channel: str) -> None:
        self._channels.append(channel)
        self.node_pubsub_mapping = {"n1": _NodePubSub(self._client, self._channels)}

    async def aclose(self) -> None:
        return None


class _Nodes:
    async def initialize(self) -> None:
        return None


class _Cluster:
    def __init__(self) -> None:
        self.subscribes = 0
        self.again = asyncio.Event()  # a second subscription began
        self.nodes_manager = _Nodes()

    async def initialize(self) -> None:
        return None

    def pubsub(self) -> _ClusterPubSub:
        self.subscribes += 1
        if self.subscribes == 2:
            self.again.set()
        return _ClusterPubSub(self)


async def test_a_stray_cancellation_in_a_node_reader_resubscribes_the_cluster_feed() -> None:
    """A node's reader task ends with a CancelledError nobody asked for, after the subscription
    was confirmed: the cluster reader must subscribe again and keep running."""
    client = _Cluster()
    reader = ChangeReader(client, Layout("t:", 2, True), closed=lambda: False)
    reader.start()
    try:
        async with asyncio.timeout(5):
            await client.again.wait()
            await reader.subscribed.wait()
        assert reader._task is not None
        assert not reader._task.done()
    finally:
        await reader.stop()
    assert client.subscribes == 2
