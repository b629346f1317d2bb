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
from collections.abc import Callable
from typing import Any

from ..core.stopping import cancel_and_wait, cancel_asked
from ._feed import Relay
from ._redis_layout import Layout, text

__all__ = ["ChangeReader"]

logger = logging.getLogger("aiofinaccess")


class _Resubscribe(Exception):
    """A cluster node ended a subscription we never cancelled: its slot moved."""


class ChangeReader(Relay):
    """Subscribes (lazily, once) and relays every change to the live iterators.

    Args:
        client: The store's ``Redis`` or ``RedisCluster`` client.
        layout: Names the channels; ``layout.cluster`` picks sharded pub/sub.
        closed: Tells whether the store closed (a closed store hands out ended iterators).
    """

    def __init__(self, client: Any, layout: Layout, closed: Callable[[], bool]) -> None:
        super().__init__(closed, "Redis")
        self._client = client
        self._layout = layout

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
