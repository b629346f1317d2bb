"""The refresh duty of a :class:`~aiofinaccess.stores.redis.RedisStore`: claims, reschedules and
counts over the due sorted sets, one per provider and shard.

A claim reads only the due sets of the providers its claimant serves, and one script decides
what is due on the server's clock (``TIME``), takes what the claimant can renew and drops what
nothing can (see :data:`._redis_scripts.CLAIM`). On a single node one script merges every
shard (the most overdue sets anywhere, in order). In a cluster, where no script may span slots,
a claim reads each (provider, shard) set's most overdue entry and due count in one pipelined
round trip, splits ``limit`` over them (:func:`._redis_layout.allocate`), then runs one script
per chosen set, at most :data:`FANOUT` at once. That split is a plan on the claimant's clock;
each script decides on its node's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol, TypeVar

from ..core.clock import Clock
from ..core.tokens import TokenKey
from ._redis_layout import Layout, allocate, score, text
from ._redis_scripts import CLAIM, DUE_TOLERANCE, RESCHEDULE
from .protocol import Claimed, check_claim, check_due, check_scope, in_scope

__all__ = ["FANOUT", "Call", "DueSets"]

logger = logging.getLogger("aiofinaccess")
_T = TypeVar("_T")

#: Concurrent per-shard claim scripts per store (redis-py allows 100 connections per node).
FANOUT = 16
#: Entries one claim script looks at beyond its limit (the ones it skips or drops): bounds the
#: script's time when a backlog of unrenewable entries is met.
LOOK_PAST = 1000
#: Entries of a due set read for a claimant's next due time (past other clients' sets).
_HEADS = 8


class Call(Protocol):
    """The store's guarded await: Redis and socket errors become ``StoreError``."""

    def __call__(
        self,
        what: str,
        key: TokenKey | None,
        command: Awaitable[_T] | Callable[[], Awaitable[_T]],
        /,
    ) -> Awaitable[_T]:
        """Await ``command`` (or what it makes, once the store is ready), reporting ``what``
        (and ``key``) if it fails."""
        ...


class DueSets:
    """The due sorted sets of one store, on its client, through its guarded ``call``; a
    reschedule measures its distance from ``TIME`` on ``clock`` (the store's)."""

    def __init__(self, client: Any, layout: Layout, call: Call, clock: Clock) -> None:
        self._client = client
        self._layout = layout
        self._call = call
        self._clock = clock
        self._reschedule = client.register_script(RESCHEDULE)
        self._claim = client.register_script(CLAIM)
        self._fanout = asyncio.Semaphore(FANOUT)
        #: The single-node claim's KEYS and its ARGV past the head, for the last scope claimed
        #: (a worker claims for the same scope each time), as bytes: redis-py sends them as
        #: they are.
        self._merged: tuple[tuple[tuple[str, TokenKey], ...], list[bytes], list[bytes]] = (
            (),
            [],
            [],
        )

    def _sets(self, scope: dict[str, TokenKey]) -> list[tuple[str, TokenKey, int]]:
        """(due set, our client key, shard) for every shard of every provider in scope."""
        return [
            (self._layout.due(shard, provider), own, shard)
            for provider, own in scope.items()
            for shard in range(self._layout.shards)
        ]

    def _args(self, own: TokenKey, shard: int, run: int = 1) -> list[str]:
        """The claim script's ARGV for a run of ``run`` due sets of ``own``'s provider that
        share ``shard``'s base."""
        return [str(run), f"{self._layout.base(shard)}ts:", own.provider, str(own)]

    async def claim(
        self, *, limit: int, claim_for: float, clients: Collection[TokenKey]
    ) -> Claimed:
        """Take up to ``limit`` sets in ``clients``' scope due on the server's clock; each falls
        due again ``claim_for`` seconds later.

        Raises:
            UsageError: A bad ``limit``, ``claim_for`` or ``clients``.
            StoreError: Redis failed (claims made before the failure fall due at their
                deadline).
        """
        check_claim(limit, claim_for)
        scope = check_scope(clients) or {}
        if not scope:
            return Claimed()
        head = [repr(float(claim_for))]
        if not self._layout.cluster:
            keys, tail = self._merged_claim(scope)
            args = [str(limit), *head, str(limit + LOOK_PAST), *tail]
            script = self._claim(keys=keys, args=args)
            replies = [await self._call("claim", None, script)]
        else:
            sets = self._sets(scope)
            plan = allocate(await self._due_heads(sets), limit)
            calls = [  # a cluster pipeline cannot carry scripts: one call per due set
                self._fanned(
                    [name], [str(count), *head, str(count + LOOK_PAST), *self._args(own, shard)]
                )
                for (name, own, shard), count in plan.items()
            ]
            replies = await self._call("claim", None, asyncio.gather(*calls))
        claimed = Claimed()
        for members, dropped in replies:
            claimed.dropped += int(dropped)
            for member in members:
                try:
                    key = TokenKey.parse(text(member))
                except ValueError:  # pragma: no cover  (the script takes parsable members only)
                    claimed.dropped += 1
                    continue
                claimed.append(key)
        return claimed

    def _merged_claim(self, scope: dict[str, TokenKey]) -> tuple[list[bytes], list[bytes]]:
        """The single-node claim script's KEYS and the due sets' part of its ARGV."""
        named = tuple(scope.items())
        if self._merged[0] != named:
            sets = self._sets(scope)
            keys = [name.encode() for name, _, _ in sets]
            # One node, one base: a provider's shards are one run (see CLAIM's ARGV).
            shards = self._layout.shards
            tail = [arg.encode() for own in scope.values() for arg in self._args(own, 0, shards)]
            self._merged = (named, keys, tail)
        return self._merged[1], self._merged[2]

    async def _fanned(self, keys: list[str], args: list[str]) -> Any:
        """Run the claim script with at most :data:`FANOUT` such calls in flight per store:
        redis-py refuses (rather than queues) a command beyond a node's connection limit."""
        async with self._fanout:
            return await self._claim(keys=keys, args=args)

    async def _due_heads(
        self, sets: list[tuple[str, TokenKey, int]]
    ) -> dict[tuple[str, TokenKey, int], tuple[float, int]]:
        """Due set -> (its most overdue due time, how many are due), for sets with due
        entries, on this machine's clock (a plan only: each script decides on its node's)."""
        now = score(time.time())
        pipe = self._client.pipeline(transaction=False)
        for name, _, _ in sets:
            pipe.zrangebyscore(name, "-inf", now, start=0, num=1, withscores=True)
            pipe.zcount(name, "-inf", now)
        replies = await self._call("claim", None, pipe.execute())
        heads = {}
        for n, entry in enumerate(sets):
            head, count = replies[2 * n], replies[2 * n + 1]
            if head and count:
                heads[entry] = (float(head[0][1]), int(count))
        return heads

    async def reschedule(
        self, key: TokenKey, due_at: float | None, expected_version: int | None = None
    ) -> None:
        """Set (or clear) ``key``'s due time; nothing for an absent key or, with
        ``expected_version``, one at another version. A due time from a clock further than
        :data:`DUE_TOLERANCE` off the node's ``TIME`` moves by the distance, as a put's does."""
        due = check_due(due_at)
        shard = self._layout.shard(key)
        names = [self._layout.record(key), self._layout.due(shard, key.provider)]
        args = [
            "" if due is None else score(due),
            str(key),
            "" if expected_version is None else str(expected_version),
        ]

        def command() -> Awaitable[object]:
            # The wall clock as the call leaves (after any wait for the store), as put's.
            sent = [score(self._clock.wall()), score(DUE_TOLERANCE)]
            script: Awaitable[object] = self._reschedule(keys=names, args=[*args, *sent])
            return script

        await self._call("reschedule", key, command)

    async def _all_sets(self) -> list[str]:
        """Every provider's due sets (the providers every shard's index names)."""
        pipe = self._client.pipeline(transaction=False)
        bases = self._layout.bases()
        for base in bases:
            pipe.smembers(self._layout.providers(base))
        replies = await self._call("list providers", None, pipe.execute())
        providers = sorted({text(name) for reply in replies for name in reply})
        return [
            self._layout.due(shard, provider)
            for provider in providers
            for shard in range(self._layout.shards)
        ]

    async def next_due(self, clients: Collection[TokenKey] | None = None) -> float | None:
        """The earliest due time (claims included) in ``clients``' scope (everything:
        ``None``), or ``None``: one pipelined round trip (two for everything)."""
        scope = check_scope(clients)
        names = (
            await self._all_sets() if scope is None else [name for name, _, _ in self._sets(scope)]
        )
        if not names:
            return None
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.zrange(name, 0, _HEADS - 1, withscores=True)
        replies = await self._call("next due", None, pipe.execute())
        if scope is None:
            return min((float(reply[0][1]) for reply in replies if reply), default=None)
        return _earliest(replies, scope)

    async def due_count(self, *, now: float) -> int:
        """How many sets are due at ``now``: a ``ZCOUNT`` per due set, pipelined."""
        names = await self._all_sets()
        if not names:
            return 0
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.zcount(name, "-inf", score(now))
        return sum(int(count) for count in await self._call("due count", None, pipe.execute()))


def _renewable(member: str, scope: dict[str, TokenKey]) -> bool:
    """Whether a due member is one a claimant in ``scope`` would take (or drop: malformed)."""
    try:
        return in_scope(TokenKey.parse(member), scope)
    except ValueError:
        return True  # the next claim drops it: it counts as work


def _earliest(replies: list[Any], scope: dict[str, TokenKey]) -> float | None:
    """The earliest due time among the heads read, past other clients' sets (if every head
    read was another client's, the last one read: an early wake at worst)."""
    earliest = None
    for reply in replies:
        at = None
        for member, score_ in reply:
            if _renewable(text(member), scope):
                at = float(score_)
                break
        else:
            if len(reply) == _HEADS:  # more may follow: wake at the last one read
                at = float(reply[-1][1])
        if at is not None and (earliest is None or at < earliest):
            earliest = at
    return earliest
