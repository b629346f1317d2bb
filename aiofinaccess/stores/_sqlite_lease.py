"""The refresh lease of a :class:`~aiofinaccess.stores.sqlite.SQLiteStore`: a row of the
``leases`` table, taken, extended and released by one statement each
(:mod:`._sqlite_schema` says why a row excludes other processes and dies with its holder).

Releases run shielded, so a cancelled holder still lets go; the store's ``aclose`` waits for
releases already queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

from ..core.errors import LeaseBusyError, StoreError
from ..core.tokens import TokenKey
from . import _sqlite_schema as sql
from .protocol import HeldLease

__all__ = ["Execute", "Leases"]

#: The store's statement runner: the number of changed rows and the result rows.
Execute = Callable[[str, Sequence[Any]], Coroutine[Any, Any, tuple[int, list[Any]]]]

_jitter: Final = random.SystemRandom()


class Leases:
    """The leases of one store, through its ``execute``; ``poll`` seconds between attempts."""

    def __init__(self, execute: Execute, *, poll: float) -> None:
        self._execute = execute
        self._poll = poll
        self._releases: set[asyncio.Task[tuple[int, list[Any]]]] = set()

    @asynccontextmanager
    async def hold(self, key: TokenKey, *, ttl: float) -> AsyncIterator[HeldLease]:
        """Hold ``key`` exclusively, across tasks and processes, for ``ttl`` seconds unless
        extended; wait at most ``ttl`` seconds for it.

        Raises:
            LeaseBusyError: Not acquired within ``ttl`` seconds.
            StoreError: The store failed.
        """
        owner = secrets.token_hex(16)
        deadline = time.monotonic() + ttl
        try:
            # Inside the try: if we are cancelled while our insert is in flight, the release
            # below still deletes it (it is queued after the insert on the connection thread).
            while True:
                now = time.monotonic()
                changed, _ = await self._execute(
                    sql.ACQUIRE, (str(key), owner, now + ttl, now, now + sql.LONGEST_LEASE)
                )
                if changed:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LeaseBusyError(
                        f"timed out waiting for the lease on token set {key.hashed}"
                    )
                await asyncio.sleep(min(remaining, self._poll * _jitter.uniform(0.5, 1.5)))
            # Counted on the clock it was taken on (``now`` above).
            yield HeldLease(
                now + ttl, functools.partial(self._extend, str(key), owner), time.monotonic
            )
        except BaseException:
            with contextlib.suppress(StoreError):  # the first error is the one to report
                await self._release(key, owner)
            raise
        await self._release(key, owner)

    async def drain(self) -> None:
        """Wait for releases already queued (their errors are the holders' to see)."""
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)

    async def _extend(self, name: str, owner: str, asked: float, ttl: float) -> bool:
        changed, _ = await self._execute(sql.EXTEND, (asked + ttl, name, owner))
        return bool(changed)

    async def _release(self, key: TokenKey, owner: str) -> None:
        """Delete our lease row, shielded: a cancelled holder must still let go of the lease."""
        task = asyncio.create_task(self._execute(sql.RELEASE, (str(key), owner)))
        self._releases.add(task)
        task.add_done_callback(self._release_done)
        await asyncio.shield(task)

    def _release_done(self, task: asyncio.Task[tuple[int, list[Any]]]) -> None:
        self._releases.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here, so that a release nobody awaits is not logged
