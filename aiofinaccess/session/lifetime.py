"""A session manager's life around its requests: owned tasks, start, restore, drain, close.

* :class:`OwnedTasks` - every task the manager starts (renewals, first acquisitions, async
  callbacks) is owned, so closing waits for it; after close nothing new may start.
* :class:`Lifetime` - :meth:`~Lifetime.start` restores the registered providers' stored sets
  in batches (none on a store that keeps the refresh duty: sets load on demand), starts the
  background renewals and the change feed; :meth:`~Lifetime.aclose` stops them, waits for
  renewals in flight (longer for those whose token request was sent: their result must be
  stored), and closes store and session.

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..core.errors import StoreError, UsageError
from ..core.settings import Timeouts
from ..core.tokens import TokenKey
from .feed import Changes
from .hub import EventHub
from .registry import Registry
from .stopping import cancel_and_wait

if TYPE_CHECKING:
    from .access import StoreAccess
    from .feed import FeedWatch
    from .publish import Publisher

__all__ = ["Background", "Lifetime", "OwnedTasks"]

logger = logging.getLogger("aiofinaccess")
_T = TypeVar("_T")
#: Keys restored per store read.
_RESTORE_BATCH = 500
#: Read at start when no set is restored: proves the store answers.
_PROBE = TokenKey("aiofinaccess-start-probe")


class Background(Protocol):
    """What runs in the background between start and close (a scheduler, the refresh duty)."""

    def start(self) -> None:
        """Start on the running loop."""

    async def stop(self) -> None:
        """Stop; renewals already started are the manager's to finish."""


class OwnedTasks:
    """Tasks the manager owns: closing waits for them, and none starts after close."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    def spawn(self, coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        """Run ``coro`` in a task the manager owns.

        Raises:
            UsageError: The manager is closed.
        """
        if self.closed:
            coro.close()
            raise UsageError("the session manager is closed")
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        # Its caller may have gone away (cancelled): the error was theirs to see, and is
        # logged here instead of surfacing as "Task exception was never retrieved".
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.debug("an owned task ended with %s", type(error).__name__)

    async def wait_idle(self) -> None:
        """Wait until no owned task runs."""
        while self.tasks:
            await asyncio.wait(set(self.tasks))


class Lifetime:
    """Start-up, restores and the orderly close of one manager.

    Args:
        access, registry, publisher, hub, owned: The manager's parts.
        feed: The store's change feed: what it announces is adopted (:class:`Changes`).
        background: Started by :meth:`start`, stopped first by :meth:`aclose`.
        restore_at_start: Read every stored set at start (``False`` on refresh-duty stores).
        restore_limit: Restore at most this many sets (the bounded working set), or ``None``.
        timeouts: How long closing waits (``close``, ``pending_write``).
        close_session: Closes the HTTP session if the manager created it.
    """

    def __init__(
        self,
        *,
        access: StoreAccess,
        registry: Registry,
        publisher: Publisher,
        hub: EventHub,
        owned: OwnedTasks,
        feed: FeedWatch,
        background: list[Background],
        restore_at_start: bool,
        restore_limit: int | None,
        timeouts: Timeouts,
        close_session: Callable[[], Awaitable[None]],
    ) -> None:
        self._access = access
        self._store = access.store
        self._registry = registry
        self._publisher = publisher
        self._hub = hub
        self._owned = owned
        self._feed = feed
        self._changes = Changes(registry=registry, access=access, publisher=publisher)
        self._background = background
        self._restore_at_start = restore_at_start
        self._restore_limit = restore_limit
        self._timeouts = timeouts
        self._close_session = close_session
        self.started = False
        self.restores: set[asyncio.Task[int]] = set()
        self._restore_errors: list[StoreError] = []

    # -- start and restores --------------------------------------------------------------------

    def registered(self, name: str) -> None:
        """A provider was registered: restore its sets in the background if already started."""
        if self.started and not self._owned.closed and self._restore_at_start:
            task = self._owned.spawn(self.restore([name]))
            self.restores.add(task)
            task.add_done_callback(self._restore_done)

    def _restore_done(self, task: asyncio.Task[int]) -> None:
        self.restores.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, StoreError):
            logger.error("restoring stored token sets failed: %s", error)
        elif error is not None:
            logger.error("restoring stored token sets failed", exc_info=error)
        if isinstance(error, Exception):
            self._restore_errors.append(self.unreadable(error))

    async def ready(self) -> None:
        """See :meth:`SessionManager.ready`."""
        if not self.started or self._owned.closed:
            closed = self._owned.closed
            state = "closed" if closed else "not started (use 'async with' or start())"
            raise UsageError(f"the session manager is {state}")
        while self.restores:
            await asyncio.wait(set(self.restores))
        if self._restore_errors:
            raise self._restore_errors[0]

    async def start(self) -> None:
        """See :meth:`SessionManager.start`."""
        if self._owned.closed:
            raise UsageError("the session manager is closed")
        if self.started:
            return
        self.started = True
        self._feed.start(self._changes.changed)
        for part in self._background:
            part.start()
        if len(self._registry):
            self._feed.follow()
        try:
            if not self._restore_at_start or not self._registry.names():
                await self._access.call(self._store.get(_PROBE))
            else:
                await self.restore(self._registry.names())
        except StoreError as exc:
            error = self.unreadable(exc)
            self._restore_errors.append(error)  # ready() reports it too
            raise error from exc

    def unreadable(self, error: Exception) -> StoreError:
        """A :class:`StoreError` naming the store (its repr never holds a password)."""
        why = (
            error
            if isinstance(error, StoreError)
            else f"token store failed: {type(error).__name__}"
        )
        return StoreError(f"token store {self._store!r} cannot be read: {why}")

    async def restore(self, names: list[str]) -> int:
        """See :meth:`SessionManager.restore`."""
        restored = 0
        limit = self._restore_limit
        for name in names:
            own_client = self._registry.registration(name).client_key
            batch: list[TokenKey] = []
            async for key in self._store.keys(name):
                if key.is_client and key != own_client:
                    continue
                if limit is not None and restored + len(batch) >= limit:
                    break
                batch.append(key)
                if len(batch) >= _RESTORE_BATCH:
                    restored += await self._restore_batch(batch)
                    batch = []
            if batch:
                restored += await self._restore_batch(batch)
        return restored

    async def _restore_batch(self, keys: list[TokenKey]) -> int:
        restored = 0
        for key, versioned, asked in await self._access.read_many(keys):
            if self._registry.mismatch(key, versioned.token_set) is not None:
                continue  # another client's (same provider name): not ours to serve
            entry = self._registry.entry(key)
            if entry.job is not None or entry.version == versioned.version:
                continue
            stored = self._access.anchored(versioned, asked)
            # Renewal planned at its youngest: a booting fleet does not renew every restored
            # set earlier by how long its read took (each renewal spent early is one more
            # race for a refresh token); its token is handed out at its oldest all the same.
            self._publisher.publish(entry, stored.token_set, stored.version, slack=stored.slack)
            self._registry.rest(entry)  # unused till asked for
            restored += 1
        return restored

    # -- close -----------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """See :meth:`SessionManager.aclose`."""
        if self._owned.closed:
            return
        self._owned.closed = True
        loop = asyncio.get_running_loop()
        # The bound: Timeouts.close_budget (0 in close or pending_write: no limit). The store's
        # close gets what is left, so a silent store (a lease release sent to a Redis that no
        # longer answers) cannot stretch it; a lease whose release is cut short is taken over
        # by a waiter at its ttl.
        budget = self._timeouts.close_budget
        deadline = None if budget is None else loop.time() + budget
        for part in self._background:
            await part.stop()
        await self._feed.stop()
        await self._drain()
        self._hub.close()
        limit = asyncio.timeout_at(deadline)
        try:
            async with limit:
                await self._store.aclose()
        except TimeoutError:
            if not limit.expired():
                logger.warning("closing the token store failed", exc_info=True)
            else:
                logger.warning("closing the token store outlasted aclose's bound; it was cut short")
        except Exception:
            logger.warning("closing the token store failed", exc_info=True)
        await self._close_session()

    async def _drain(self) -> None:
        pending = set(self._owned.tasks)
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=self._timeouts.close or None)
        if not late:
            return
        sent = {
            entry.job for entry in self._registry.hot() if entry.in_window and entry.job in late
        }
        for task in late - sent:
            task.cancel()
        if sent:
            logger.warning("aclose waits for %d renewals whose token request was sent", len(sent))
            _done, unfinished = await asyncio.wait(
                sent, timeout=self._timeouts.pending_write or None
            )
            for task in unfinished:
                task.cancel()  # each logs its key's hash at ERROR and emits WriteAbandoned
        # A cancel can be lost (see stopping): cancel again until each has ended.
        await asyncio.gather(*(cancel_and_wait(task) for task in late))
        logger.warning("aclose cancelled renewals still running")
