"""The refresh lease of a :class:`~aiofinaccess.stores.postgres.PostgresStore`, judged on the
contenders' monotonic clocks, never on any wall clock (the database's included): an NTP step
on the database host frees no live lease.

A lease is a row ``(key, owner:beat:ttl_ms)``, as the Redis lease's value (see
:mod:`._redis_lease`, whose rules these are): an insert takes a free lease; a waiter notes the
value it sees and when (on its own monotonic clock, after the reply), and takes the lease over
only once that same value has stood ``ttl_ms``; each extension writes a new beat, so a live
holder's lease is never taken. The holder counts from before it asked. Releases run shielded;
a failed acquire releases by owner before it raises (the insert may have committed although
its reply was lost). A crashed holder's row stays until the next holder takes it over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from ..core.errors import LeaseBusyError, StoreError, UsageError
from ..core.tokens import TokenKey
from ._lease_watch import Releases, Sightings
from ._pg_rows import changed, text
from ._pg_schema import Statements
from .protocol import HeldLease

__all__ = ["Leases"]

logger = logging.getLogger("aiofinaccess")

#: The store's guarded call: (what, key, method name, statement, *arguments) -> the result.
Call = Callable[..., Awaitable[Any]]


class Leases:
    """The leases of one store, through its guarded ``call``.

    Args:
        poll: Seconds between attempts to take a held lease (plus up to as much jitter).
        closed: Whether the store is closed (a release is then skipped).
        clock: The monotonic clock leases are judged on.
    """

    def __init__(
        self,
        sql: Statements,
        call: Call,
        *,
        poll: float,
        closed: Callable[[], bool],
        clock: Callable[[], float],
    ) -> None:
        self._sql = sql
        self._call = call
        self._poll = poll
        self._closed = closed
        self._clock = clock
        self._releases = Releases("PostgreSQL")
        self._seen = Sightings(clock)

    @asynccontextmanager
    async def hold(self, key: TokenKey, *, ttl: float) -> AsyncIterator[HeldLease]:
        """Hold ``key`` for ``ttl`` seconds unless extended; wait at most ``ttl`` for it.

        Raises:
            UsageError: ``ttl`` is not a positive number of seconds.
            LeaseBusyError: The lease stayed taken for ``ttl`` seconds.
            StoreError: The database failed.
        """
        if not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
            raise UsageError("a lease ttl must be a positive number of seconds")
        name, owner = str(key), secrets.token_hex(16)
        value = f"{owner}:{secrets.token_hex(8)}:{math.ceil(ttl * 1000)}"
        deadline = self._clock() + ttl
        try:
            while True:
                asked = self._clock()
                rows = await self._call(
                    "lease", key, "fetch", self._sql.take_lease, name, value, self._seen.stale(name)
                )
                if rows and rows[0][0] is True:
                    break
                if rows:
                    self._seen.saw(name, text(rows[0][1], "lease holder"))
                if self._clock() >= deadline:
                    raise LeaseBusyError(
                        f"timed out waiting for the lease on token set {key.hashed}"
                    )
                await asyncio.sleep(self._poll * (1 + random.random()))  # noqa: S311
        except BaseException:  # the insert may have committed although its reply never came
            await self._release_shielded(key, owner)
            raise
        self._seen.forget(name)
        try:
            yield HeldLease(asked + ttl, functools.partial(self._extend, key, owner), self._clock)
        finally:
            await self._release_shielded(key, owner)

    async def drain(self) -> None:
        """Wait for releases already on the wire: a next holder is waiting for them."""
        await self._releases.drain()

    async def abandon(self) -> None:
        """Stop the releases still waiting for the database."""
        await self._releases.abandon()

    async def _extend(self, key: TokenKey, owner: str, asked: float, ttl: float) -> bool:
        del asked  # a waiter times the new beat from after it sees it: later than this
        if not (math.isfinite(ttl) and ttl > 0):
            raise UsageError("a lease ttl must be a positive number of seconds")
        beat, ttl_ms = secrets.token_hex(8), math.ceil(ttl * 1000)
        status = await self._call(
            "extend lease", key, "execute", self._sql.extend_lease, str(key), owner, beat, ttl_ms
        )
        return changed(status) == 1

    async def _release_shielded(self, key: TokenKey, owner: str) -> None:
        if self._closed():  # the pool is closing or closed
            return

        async def release() -> None:
            try:
                await self._call(
                    "release lease", key, "execute", self._sql.release_lease, str(key), owner
                )
            except StoreError:  # raising would hide how the body ended
                logger.warning(
                    "releasing a PostgreSQL lease failed; a waiter takes it over at its ttl"
                )

        await self._releases.shielded(release())
