"""The refresh duty of a :class:`~aiofinaccess.stores.redis.RedisStore`: claims, reschedules and
counts over the due sorted sets, one per shard.

On a single node one script merges all shards (the most overdue sets anywhere, in order). In a
cluster, where no script may span slots, a claim reads each shard's most overdue entry and due
count in one pipelined round trip, splits ``limit`` over the shards
(:func:`._redis_layout.allocate`), then runs one script per chosen shard, at most
:data:`FANOUT` at once.

Must never import: redis (it drives the store's client, given to it), ``oauth``, ``session``,
``api``, ``integrations``, ``cli`` or ``sandbox``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

from ..core.tokens import TokenKey
from . import check_claim, check_due
from ._redis_layout import Layout, allocate, score, text
from ._redis_scripts import CLAIM, CLAIM_MERGED, RESCHEDULE

__all__ = ["FANOUT", "Call", "DueSets"]

logger = logging.getLogger("aiofinaccess")
_T = TypeVar("_T")

#: Concurrent per-shard claim scripts per store (redis-py allows 100 connections per node).
FANOUT = 16


class Call(Protocol):
    """The store's guarded await: Redis and socket errors become ``StoreError``."""

    def __call__(self, what: str, key: TokenKey | None, command: Awaitable[_T], /) -> Awaitable[_T]:
        """Await ``command``, reporting ``what`` (and ``key``) if it fails."""
        ...


class DueSets:
    """The due sorted sets of one store, on its client, through its guarded ``call``."""

    def __init__(self, client: Any, layout: Layout, call: Call) -> None:
        self._client = client
        self._layout = layout
        self._call = call
        self._reschedule = client.register_script(RESCHEDULE)
        self._claim = client.register_script(CLAIM)
        self._claim_merged = client.register_script(CLAIM_MERGED)
        self._due_sets = [layout.due(shard) for shard in range(layout.shards)]
        self._fanout = asyncio.Semaphore(FANOUT)

    async def claim(self, *, now: float, limit: int, claim_for: float) -> list[TokenKey]:
        """Take up to ``limit`` sets due at ``now``; each falls due again at ``now + claim_for``.

        Raises:
            UsageError: A bad ``limit`` or ``claim_for``.
            StoreError: Redis failed (claims made before the failure fall due at their
                deadline).
        """
        check_claim(limit, claim_for)
        start, deadline = score(now), score(now + claim_for)
        if not self._layout.cluster:
            script = self._claim_merged(keys=self._due_sets, args=[start, limit, deadline])
            replies = [await self._call("claim", None, script)]
        else:
            plan = allocate(await self._due_heads(now), limit)
            calls = [  # a cluster pipeline cannot carry scripts: one call per shard
                self._fanned(self._claim, [self._layout.due(shard)], [start, count, deadline])
                for shard, count in plan.items()
            ]
            replies = await self._call("claim", None, asyncio.gather(*calls))
        claimed = []
        for reply in replies:
            for member in reply:
                try:
                    claimed.append(TokenKey.parse(text(member)))
                except ValueError:
                    logger.warning("the Redis store holds a malformed token key; skipping it")
        return claimed

    async def _fanned(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` with at most :data:`FANOUT` such calls in flight per store: redis-py
        refuses (rather than queues) a command beyond a node's connection limit."""
        async with self._fanout:
            return await script(keys=keys, args=args)

    async def _due_heads(self, now: float) -> dict[int, tuple[float, int]]:
        """shard -> (its most overdue due time, how many are due) for shards with due sets."""
        pipe = self._client.pipeline(transaction=False)
        for shard in range(self._layout.shards):
            due = self._layout.due(shard)
            pipe.zrangebyscore(due, "-inf", score(now), start=0, num=1, withscores=True)
            pipe.zcount(due, "-inf", score(now))
        replies = await self._call("claim", None, pipe.execute())
        heads = {}
        for shard in range(self._layout.shards):
            head, count = replies[2 * shard], replies[2 * shard + 1]
            if head and count:
                heads[shard] = (float(head[0][1]), int(count))
        return heads

    async def reschedule(self, key: TokenKey, due_at: float | None) -> None:
        """Set (or clear) ``key``'s due time; nothing for an absent key."""
        due = check_due(due_at)
        names = [self._layout.record(key), self._layout.due(self._layout.shard(key))]
        args = ["" if due is None else score(due), str(key)]
        await self._call("reschedule", key, self._reschedule(keys=names, args=args))

    async def next_due(self) -> float | None:
        """The earliest due time (claims included), or ``None``: one pipelined round trip."""
        pipe = self._client.pipeline(transaction=False)
        for due in self._due_sets:
            pipe.zrange(due, 0, 0, withscores=True)
        replies = await self._call("next due", None, pipe.execute())
        heads = [float(reply[0][1]) for reply in replies if reply]
        return min(heads, default=None)

    async def due_count(self, *, now: float) -> int:
        """How many sets are due at ``now``: a ``ZCOUNT`` per shard, pipelined."""
        pipe = self._client.pipeline(transaction=False)
        for due in self._due_sets:
            pipe.zcount(due, "-inf", score(now))
        return sum(int(count) for count in await self._call("due count", None, pipe.execute()))
