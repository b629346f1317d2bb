"""The fence: the store lease a renewal job holds while it may send a refresh.

A refresh is sent only while the job holds the store's lease for the key with at least
:attr:`Timeouts.lease_needed` left (the whole exchange and a quarter lease); taking or extending
it for a send asks for :attr:`Timeouts.send_lease` (the exchange and a full lease), so the write
after the send is covered too. While the job waits (endpoint slots, backoff, a password
lookup, a slow write) a heartbeat extends the lease. A lease that turns out lost is dropped;
the job takes it again and reads the store again. The lease and its heartbeat live in the
job's :class:`~aiofinaccess.session.jobs.Job`.

Must never import: aiohttp, ``oauth``, ``api``, ``integrations``, ``cli`` or ``sandbox``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..core.clock import Clock
from ..core.errors import LeaseBusyError, StoreError
from ..core.fencing import LeaseLapsed
from ..core.settings import Timeouts
from ..core.tokens import TokenKey
from ..stores.protocol import LOCAL_LEASE, Lease
from .jobs import Job

if TYPE_CHECKING:
    from .access import StoreAccess

__all__ = ["Fence"]

logger = logging.getLogger("aiofinaccess")


class Fence:
    """Takes, extends, keeps (heartbeat) and drops a job's store lease.

    Args:
        access: The store: its leases, reads and bounded calls.
        clock: Time and sleep.
        timeouts: The token exchange and the lease, with the margins derived from them.
    """

    def __init__(
        self,
        *,
        access: StoreAccess,
        clock: Clock,
        timeouts: Timeouts,
    ) -> None:
        self._access = access
        self._clock = clock
        self._timeouts = timeouts
        self.lease_needed = timeouts.lease_needed

    async def take(self, key: TokenKey, run: Job) -> None:
        """Take the key's lease (start its heartbeat) and read the store again; if another
        holder has it, read the store (it may have stored a set) unless the job's deadline
        for the lease has passed. No attempt waits past that deadline."""
        exit_stack = contextlib.AsyncExitStack()
        now = self._clock.monotonic()
        if run.lease_deadline == math.inf:  # a wait for the lease starts
            run.lease_deadline = now + self._timeouts.patience
        try:
            # The store waits up to a whole lease for a busy one: never past the deadline.
            # (Every store lets go of a lease whose acquisition was cancelled.)
            async with asyncio.timeout(max(0.0, run.lease_deadline - now)) as bound:
                handle = await exit_stack.enter_async_context(
                    self._access.store.lease(key, ttl=self._timeouts.lease)
                )
        except (LeaseBusyError, TimeoutError) as exc:
            await exit_stack.aclose()
            if isinstance(exc, TimeoutError) and not bound.expired():
                raise
            if self._clock.monotonic() >= run.lease_deadline:
                if isinstance(exc, LeaseBusyError):
                    raise
                raise LeaseBusyError(
                    f"gave up waiting for the lease on token set {key.hashed}"
                ) from None
            run.stored = await self._access.read(key)  # its holder may have stored a set meanwhile
            return
        except BaseException:
            await exit_stack.aclose()
            raise
        run.lease_exit = exit_stack
        run.lease_deadline = math.inf
        run.lease = handle if hasattr(handle, "extend") else LOCAL_LEASE
        if run.lease.remaining() != math.inf:
            run.heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(run.lease))
        run.stored = await self._access.read(key)

    async def _heartbeat(self, lease: Lease) -> None:
        """Keep the lease while the job waits (or writes); the fence before a send checks it
        anyway. A failed extension is tried again soon: the lease is what stops another
        process from replaying a refresh token whose successor is not stored yet."""
        timeouts = self._timeouts
        pause = timeouts.heartbeat
        while True:
            await self._clock.sleep(pause)
            try:
                if not await lease.extend(timeouts.lease):
                    return
                pause = timeouts.heartbeat
            except StoreError:
                logger.debug("extending a lease failed; trying again shortly")
                pause = timeouts.heartbeat_retry

    async def ready_to_send(self, run: Job) -> bool:
        """The fence before a send: the lease has :attr:`Timeouts.lease_needed` left, extended
        to :attr:`Timeouts.send_lease` if it had not; False if it is lost (dropped) or the
        store was too slow.

        Raises:
            StoreError: Three extensions in a row each took most of a lease.
        """
        assert run.lease is not None  # noqa: S101
        if run.lease.remaining() >= self.lease_needed:
            run.fence_tries = 0
            return True
        run.fence_tries += 1
        if run.fence_tries > 3:  # each extension took most of a lease: give up
            raise StoreError("the store is too slow to fence a refresh")
        await self.extend(run)
        return run.lease is not None and run.lease.remaining() >= self.lease_needed

    def send_check(self, run: Job) -> Callable[[], None]:
        """The last check before the request leaves (:mod:`~aiofinaccess.core.fencing`): a
        pause since :meth:`ready_to_send` that ate more than half the margin stops the send."""
        lease = run.lease
        assert lease is not None  # noqa: S101
        needed = self._timeouts.send_needed  # the exchange, and the write after it

        def check() -> None:
            if lease.remaining() < needed:
                raise LeaseLapsed("a pause outlasted the lease's margin before the send")

        return check

    async def extend(self, run: Job) -> None:
        """Extend the held lease for a send (:attr:`Timeouts.send_lease`); drop it if lost."""
        assert run.lease is not None  # noqa: S101
        if not await self._access.call(run.lease.extend(self._timeouts.send_lease)):
            logger.warning("a store lease was lost before a refresh; taking it again")
            await self.drop(run)

    async def drop(self, run: Job) -> None:
        """Stop the heartbeat and release the lease, if the job holds one."""
        heartbeat, run.heartbeat = run.heartbeat, None
        if heartbeat is not None:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        lease_exit, run.lease_exit, run.lease = run.lease_exit, None, None
        if lease_exit is not None:
            try:
                await lease_exit.aclose()
            except StoreError:
                logger.warning("releasing a store lease failed; it runs out by itself")
