"""The change feed of :class:`~aiofinaccess.stores.redis.RedisStore`: one reader per store that
relays published changes to every live iterator.

On a single node the store publishes to one channel (``PUBLISH``, Redis >= 2); on Redis
Cluster each shard publishes to its own sharded channel (``SPUBLISH``, Redis >= 7), which
lives in the shard's slot, so a change travels only to the node that owns it and its
subscribers. The cluster reader subscribes to every shard channel, one connection per node
that owns some, and reads them all at once. When a slot moves (a failover, a resharding) its
node ends our subscription with an unasked ``sunsubscribe``: the reader then refreshes the
cluster's map and subscribes again from scratch. The feed is best effort either way - changes
published while no subscription stands are not replayed; compare-and-swap keeps every write
correct regardless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

from ..core.stopping import cancel_and_wait, cancel_asked
from ..core.tokens import TokenKey
from ._redis_layout import Layout, text

__all__ = ["ChangeReader", "Changes"]

logger = logging.getLogger("aiofinaccess")
_Change = tuple[TokenKey, int | None]
#: Changes an unread iterator keeps; older ones are dropped (the feed is best effort).
FEED_LIMIT = 1024


class Changes:
    """One iterator of the change feed: a queue the store's reader fills; ``None`` ends it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[_Change | None] = asyncio.Queue()

    def offer(self, change: _Change | None) -> None:
        """Queue ``change``, dropping the oldest when the reader fell too far behind."""
        if change is not None and self.queue.qsize() >= FEED_LIMIT:
            self.queue.get_nowait()
        self.queue.put_nowait(change)

    def __aiter__(self) -> Changes:
        return self

    async def __anext__(self) -> _Change:
        change = await self.queue.get()
        if change is None:
            self.queue.put_nowait(None)  # stay ended
            raise StopAsyncIteration
        return change


class _Resubscribe(Exception):
    """A cluster node ended a subscription we never cancelled: its slot moved."""


class ChangeReader:
    """Subscribes (lazily, once) and relays every change to the live iterators.

    Args:
        client: The store's ``Redis`` or ``RedisCluster`` client.
        layout: Names the channels; ``layout.cluster`` picks sharded pub/sub.
        closed: Tells whether the store closed (a closed store hands out ended iterators).
    """

    def __init__(self, client: Any, layout: Layout, closed: Callable[[], bool]) -> None:
        self._client = client
        self._layout = layout
        self._closed = closed
        self._feeds: weakref.WeakSet[Changes] = weakref.WeakSet()
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def iterator(self) -> Changes:
        feed = Changes()
        if self._closed():
            feed.offer(None)
        else:
            self._feeds.add(feed)
            self.start()
        return feed

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop reading and end every iterator.

        A cancel that lands as a redis-py call finishes is lost on 3.11 (see
        :mod:`~aiofinaccess.core.stopping`), and the reader would go on reading with no timeout:
        it is cancelled again until it has ended.
        """
        if self._task is not None:
            await cancel_and_wait(self._task)
        for feed in list(self._feeds):
            feed.offer(None)

    async def _run(self) -> None:
        """Relay changes; resubscribe after any failure until cancelled."""
        backoff = 0.1
        again = False
        # Sharded channels on a RedisCluster client need a subscription per node; anything else
        # (one server, or an old single-slot layout on a cluster) is one subscription.
        on_cluster = self._layout.cluster and hasattr(self._client, "nodes_manager")
        while True:
            try:
                await (self._read_cluster(again) if on_cluster else self._read_node())
            except _Resubscribe:
                self.subscribed.clear()
                logger.info("a Redis Cluster slot moved; resubscribing the change feed")
                backoff = 0.1
            except asyncio.CancelledError as exc:
                if cancel_asked():
                    raise
                self._failed(exc, backoff)  # a stray one out of redis-py: the feed failed
            except Exception as exc:  # a dead feed would go unnoticed: log it and resubscribe
                self._failed(exc, backoff)
            again = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _failed(self, exc: BaseException, backoff: float) -> None:
        self.subscribed.clear()
        logger.warning(
            "Redis change feed failed (%s); resubscribing in %.1f s",
            type(exc).__name__,
            backoff,
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )

    async def _read_node(self) -> None:
        # One server: the cluster layout (sharded channels) works on it too, through SSUBSCRIBE.
        sharded = self._layout.cluster
        if hasattr(self._client, "nodes_manager"):  # a cluster with the old one-slot layout:
            await self._client.initialize()  # PUBLISH reaches every node, so listen to one
            pubsub = self._client.pubsub(node=self._client.get_default_node())
        else:
            pubsub = self._client.pubsub()
        try:
            channels = self._layout.channels()
            if sharded:
                await pubsub.ssubscribe(*channels)
            else:
                await pubsub.subscribe(*channels)
            confirmed = 0
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                kind = text(message["type"])
                if kind in ("subscribe", "ssubscribe"):
                    confirmed += 1
                    if confirmed == len(channels):
                        self.subscribed.set()
                elif kind in ("message", "smessage"):
                    self._relay(text(message["data"]))
        finally:
            await pubsub.aclose()

    async def _read_cluster(self, again: bool) -> None:
        if again:  # refresh the slot map: after a failover the old one names a demoted primary
            await self._client.nodes_manager.initialize()
        else:  # idempotent, and shared with the client's first command (two would race)
            await self._client.initialize()
        pubsub = self._client.pubsub()
        readers: list[asyncio.Task[None]] = []
        try:
            channels = self._layout.channels()
            for channel in channels:  # one SSUBSCRIBE per channel: they lie in distinct slots
                await pubsub.ssubscribe(channel)
            confirmed: set[str] = set()
            wanted = set(channels)

            async def read(node_pubsub: Any) -> None:
                while True:
                    message = await node_pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    kind = text(message["type"])
                    if kind == "ssubscribe":
                        confirmed.add(text(message["channel"]))
                        if confirmed >= wanted:
                            self.subscribed.set()
                    elif kind == "smessage":
                        self._relay(text(message["data"]))
                    elif kind == "sunsubscribe":
                        raise _Resubscribe

            readers = [
                asyncio.create_task(read(node_pubsub))
                for node_pubsub in list(pubsub.node_pubsub_mapping.values())
            ]
            done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                # Raises what ended it; a node reader's stray CancelledError too, which _run
                # takes for a failed feed (its own task was not asked to cancel).
                task.result()
        finally:
            await asyncio.gather(*(cancel_and_wait(task) for task in readers))
            with contextlib.suppress(Exception):  # the node may be gone; closing is best effort
                await pubsub.aclose()

    def _relay(self, data: str) -> None:
        text, _, version = data.rpartition("\n")
        try:
            change = (TokenKey.parse(text), int(version) if version else None)
        except ValueError:
            logger.debug("ignoring a malformed change message")
            return
        for feed in list(self._feeds):
            feed.offer(change)
