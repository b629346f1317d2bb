"""The refresh lease of a :class:`~aiofinaccess.stores.redis.RedisStore`: ``SET NX PX`` with a
random owner token, extended and released by compare-and-extend and compare-and-delete scripts.

``NX`` makes the lease exclusive, ``PX`` (on Redis's own clock) frees it when its holder dies,
and the owner token lets the extension and the release touch only our own lease, never the next
holder's after ours expired. A ``SET`` whose reply is lost may still have run, so any failure
to acquire releases by owner before it raises; a release runs shielded, so a cancelled holder
still lets go, and the store's ``aclose`` waits for releases already on the wire (a release
asked for after the store closed is skipped; one still waiting when ``aclose`` is cancelled,
e.g. by the manager's close bound, is abandoned: that lease expires at its ttl).

Must never import: redis (it drives the store's client, given to it), ``oauth``, ``session``,
``api``, ``integrations``, ``cli`` or ``sandbox``.
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
from typing import Any

from ..core.errors import LeaseBusyError, UsageError
from ..core.stopping import cancel_and_wait
from ..core.tokens import TokenKey
from . import HeldLease
from ._redis_duty import Call
from ._redis_layout import Layout
from ._redis_scripts import EXTEND, RELEASE

__all__ = ["Leases"]

logger = logging.getLogger("aiofinaccess")


class Leases:
    """The leases of one store, on its client, through its guarded ``call``.

    Args:
        poll: Seconds between attempts to take a held lease (plus up to as much jitter).
        closed: Whether the store is closed (a release is then skipped: the lease expires).
        errors: The exceptions a failed release may raise (redis-py's and the socket's).
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
    ) -> None:
        self._client = client
        self._layout = layout
        self._call = call
        self._poll = poll
        self._closed = closed
        self._errors = errors
        self._release = client.register_script(RELEASE)
        self._extend = client.register_script(EXTEND)
        self._releases: set[asyncio.Task[None]] = set()

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
        deadline, px = time.monotonic() + ttl, math.ceil(ttl * 1000)
        try:
            while True:
                asked = time.monotonic()
                if await self._call("lease", key, self._client.set(name, owner, nx=True, px=px)):
                    break
                if time.monotonic() >= deadline:
                    raise LeaseBusyError(
                        f"timed out waiting for the lease on token set {key.hashed}"
                    )
                await asyncio.sleep(self._poll * (1 + random.random()))  # noqa: S311
        except BaseException:  # the SET may have run although its reply never came
            await self._release_shielded(name, owner)
            raise
        try:
            yield HeldLease(asked + ttl, functools.partial(self._extend_lease, key, name, owner))
        finally:
            await self._release_shielded(name, owner)

    async def drain(self) -> None:
        """Wait for releases already on the wire: a next holder is waiting for them."""
        while self._releases:
            await asyncio.wait(set(self._releases))

    async def abandon(self) -> None:
        """Stop the releases still waiting for Redis (a silent server); they expire at their ttl."""
        if self._releases:
            logger.warning("%d Redis lease releases abandoned at close", len(self._releases))
            await asyncio.gather(*(cancel_and_wait(task) for task in list(self._releases)))

    async def _extend_lease(
        self, key: TokenKey, name: str, owner: str, asked: float, ttl: float
    ) -> bool:
        del asked  # the lease runs on Redis's clock; the holder counts from before asking
        script = self._extend(keys=[name], args=[owner, math.ceil(ttl * 1000)])
        return bool(await self._call("extend lease", key, script))

    async def _release_shielded(self, name: str, owner: str) -> None:
        if self._closed():  # the client is closing or closed: the lease expires at its ttl
            return

        async def release() -> None:
            try:
                await self._release(keys=[name], args=[owner])
            except self._errors:  # it expires anyway; raising would hide how the body ended
                logger.warning("releasing a Redis lease failed; it expires at its ttl")

        task = asyncio.ensure_future(release())
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)
        await asyncio.shield(task)
