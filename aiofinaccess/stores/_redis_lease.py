"""The refresh lease of a :class:`~aiofinaccess.stores.redis.RedisStore`, judged on the
contenders' monotonic clocks, never on the Redis host's wall clock.

Redis expires a key (``PX``) on its host's wall clock, so an NTP *step* there would free every
lease at once. Here the lease key holds ``owner:beat:ttl_ms`` with only a one-day ``PX`` to
collect garbage. ``SET NX`` takes a free lease; a waiter notes a taken lease's value and when it
saw it (on its own monotonic clock, after the reply), and takes it over by compare-and-set only
once the same value has stood ``ttl_ms``. Each extension writes a new beat, so a live holder's
lease is never taken, and a dead holder's is taken ``ttl`` after a waiter first saw it. The
holder counts its lease from before it asked, so it never overstates what it holds.

Assumes the processes' clocks run at the same *rate* (offsets do not matter) and the Redis
host's clock never steps forward by more than a day while a lease is held. A bare owner token
with its own ``PX`` (an older writer's lease) is never taken over: it expires by its ``PX``.
A failed acquire releases by owner before it raises (a lost ``SET`` reply may have run), and
releases run shielded; one still waiting when ``aclose`` is cancelled is abandoned, and that
lease is taken over ``ttl`` after a waiter sees it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

from ..core.errors import LeaseBusyError, UsageError
from ..core.tokens import TokenKey
from ._lease_watch import Releases, Sightings
from ._redis_duty import Call
from ._redis_layout import Layout, text
from .protocol import HeldLease

__all__ = ["Leases"]

logger = logging.getLogger("aiofinaccess")

#: Milliseconds a lease key lives without a write: garbage collection only (see above).
GARBAGE_PX: Final = 24 * 3600 * 1000

# KEYS: lease. ARGV: our value, PX, the value we saw stand its ttl ('' = none). Takes the lease
# if it is free or still holds that stale value; else answers the value it holds.
TAKE: Final = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return current
"""
# ARGV: owner, new beat, ttl ms, PX. Only while the value names us; keeps the larger ttl, so an
# extension never shortens what a waiter must see stand.
EXTEND: Final = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local owner, ttl = string.match(current, '^([^:]+):[^:]+:(%d+)$')
if owner ~= ARGV[1] then return 0 end
local keep = math.max(tonumber(ttl), tonumber(ARGV[3]))
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2] .. ':' .. keep, 'PX', ARGV[4])
return 1
"""
# ARGV: owner.
RELEASE: Final = """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, #ARGV[1] + 1) == ARGV[1] .. ':' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leases:
    """The leases of one store, on its client, through its guarded ``call``.

    Args:
        poll: Seconds between attempts to take a held lease (plus up to as much jitter).
        closed: Whether the store is closed (a release is then skipped).
        errors: The exceptions a failed release may raise (redis-py's and the socket's).
        clock: The monotonic clock leases are judged on.
    """

    def __init__(
        self,
        client: Any,
        layout: Layout,
        call: Call,
        *,
        poll: float,
        closed: Callable[[], bool],
        errors: tuple[type[Exception], ...],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._layout = layout
        self._call = call
        self._poll = poll
        self._closed = closed
        self._errors = errors
        self._clock = clock
        self._take = client.register_script(TAKE)
        self._release = client.register_script(RELEASE)
        self._extend = client.register_script(EXTEND)
        self._releases = Releases("Redis")
        self._seen = Sightings(clock)

    @asynccontextmanager
    async def hold(self, key: TokenKey, *, ttl: float) -> AsyncIterator[HeldLease]:
        """Hold ``key`` for ``ttl`` seconds unless extended; wait at most ``ttl`` for it.

        Raises:
            UsageError: ``ttl`` is not a positive number of seconds.
            LeaseBusyError: The lease stayed taken for ``ttl`` seconds.
            StoreError: Redis failed.
        """
        if not (math.isfinite(ttl) and ttl > 0):
            raise UsageError("a lease ttl must be a positive number of seconds")
        name, owner = self._layout.lease(key), secrets.token_hex(16)
        ttl_ms = math.ceil(ttl * 1000)
        value, px = f"{owner}:{secrets.token_hex(8)}:{ttl_ms}", max(GARBAGE_PX, 2 * ttl_ms)
        deadline = self._clock() + ttl
        try:
            while True:
                asked = self._clock()
                taking = self._client.set(name, value, nx=True, px=px)
                if await self._call("lease", key, taking):
                    break
                asked = self._clock()
                stale = self._seen.stale(name)
                taking = self._take(keys=[name], args=[value, px, stale])
                if (held := await self._call("lease", key, taking)) == 1:
                    break
                self._seen.saw(name, text(held))
                if self._clock() >= deadline:
                    raise LeaseBusyError(
                        f"timed out waiting for the lease on token set {key.hashed}"
                    )
                await asyncio.sleep(self._poll * (1 + random.random()))  # noqa: S311
        except BaseException:  # the SET may have run although its reply never came
            await self._release_shielded(name, owner)
            raise
        self._seen.forget(name)
        try:
            yield HeldLease(
                asked + ttl, functools.partial(self._extend_lease, key, name, owner), self._clock
            )
        finally:
            await self._release_shielded(name, owner)

    async def drain(self) -> None:
        """Wait for releases already on the wire: a next holder is waiting for them."""
        await self._releases.drain()

    async def abandon(self) -> None:
        """Stop the releases still waiting for Redis (a silent server)."""
        await self._releases.abandon()

    async def _extend_lease(
        self, key: TokenKey, name: str, owner: str, asked: float, ttl: float
    ) -> bool:
        del asked  # a waiter times the new beat from after it sees it: later than this
        ttl_ms = math.ceil(ttl * 1000)
        args = [owner, secrets.token_hex(8), ttl_ms, max(GARBAGE_PX, 2 * ttl_ms)]
        script = self._extend(keys=[name], args=args)
        return bool(await self._call("extend lease", key, script))

    async def _release_shielded(self, name: str, owner: str) -> None:
        if self._closed():  # the client is closing or closed
            return

        async def release() -> None:
            try:
                await self._release(keys=[name], args=[owner])
            except self._errors:  # raising would hide how the body ended
                logger.warning("releasing a Redis lease failed; a waiter takes it over at its ttl")

        await self._releases.shielded(release())
