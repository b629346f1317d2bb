"""A session manager's life around its requests: owned tasks, start, restore, watch, drain, close.

* :class:`OwnedTasks` - every task the manager starts (renewals, first acquisitions, async
  callbacks) is owned, so closing waits for it; after close nothing new may start.
* :class:`Lifetime` - :meth:`~Lifetime.start` restores the registered providers' stored sets
  in batches (none at all on a store that keeps the refresh duty: there, the store knows
  what is due and sets load on demand), starts the background renewals and, once the process
  holds a set for its callers, a watcher of a shared store's change feed (a worker that only
  renews for the refresh duty holds none between renewals, so it never reads the feed: every
  renewal is published to every subscriber, and that work would grow with the fleet);
  :meth:`~Lifetime.aclose` stops them, waits for renewals in
  flight (longer for those whose token request was sent: their result must be stored), and
  closes store and session.

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from ..core.errors import ClientMismatchError, StoreConflictError, StoreError, UsageError
from ..core.lifecycle import Status
from ..core.renewal_step import Stored, superseded
from ..core.settings import Timeouts
from ..core.tokens import TokenKey
from ..stores import ChangeFeed, TokenStore, Versioned
from .events import EventHub
from .jobs import cancelled
from .registry import Entry, Registry
from .renewal import RenewalDriver
from .stopping import cancel_and_wait

__all__ = ["Background", "Lifetime", "OwnedTasks"]

logger = logging.getLogger("aiofinaccess")
_T = TypeVar("_T")
#: Keys restored per store read.
_RESTORE_BATCH = 500
#: Read at start when no set is restored: proves the store answers.
_PROBE = TokenKey("aiofinaccess-start-probe")
#: Seconds the watcher waits before following a failed change feed again (doubling per
#: failure in a row, up to the maximum).
_FEED_PAUSE = 0.1
_FEED_PAUSE_MAX = 5.0


def _settled(entry: Entry) -> bool:
    """No renewal running and the set in a state where adopting a newer copy is right."""
    return entry.job is None and entry.status in (Status.ACTIVE, Status.BACKOFF)


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


def _nothing() -> None:
    pass


class Lifetime:
    """Start-up, restores, the change-feed watcher and the orderly close of one manager.

    Args:
        store, registry, driver, hub, owned: The manager's parts.
        background: Started by :meth:`start`, stopped first by :meth:`aclose`.
        restore_at_start: Read every stored set at start (``False`` on refresh-duty stores).
        restore_limit: Restore at most this many sets (the bounded working set), or ``None``.
        timeouts: How long closing waits (``close``, ``pending_write``).
        close_session: Closes the HTTP session if the manager created it.
    """

    def __init__(
        self,
        *,
        store: TokenStore,
        registry: Registry,
        driver: RenewalDriver,
        hub: EventHub,
        owned: OwnedTasks,
        background: list[Background],
        restore_at_start: bool,
        restore_limit: int | None,
        timeouts: Timeouts,
        close_session: Callable[[], Awaitable[None]],
    ) -> None:
        self._store = store
        self._registry = registry
        self._driver = driver
        self._hub = hub
        self._owned = owned
        self._background = background
        self._restore_at_start = restore_at_start
        self._restore_limit = restore_limit
        self._timeouts = timeouts
        self._close_session = close_session
        self.started = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.restores: set[asyncio.Task[int]] = set()
        self._restore_errors: list[StoreError] = []
        # Asked once: isinstance() against a runtime-checkable protocol looks up each of its
        # members, too slow for every new entry (restoring 100,000 sets took 3.8 s longer).
        self._feed = store if isinstance(store, ChangeFeed) else None
        if self._feed is not None:
            registry.on_held = self.follow_changes

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
        self._loop = asyncio.get_running_loop()
        for part in self._background:
            part.start()
        if len(self._registry):
            self.follow_changes()
        try:
            if not self._restore_at_start or not self._registry.names():
                await self._driver.store_call(self._store.get(_PROBE))
            else:
                await self.restore(self._registry.names())
        except StoreError as exc:
            error = self.unreadable(exc)
            self._restore_errors.append(error)  # ready() reports it too
            raise error from exc

    def follow_changes(self) -> None:
        """Watch a shared store's change feed from now on (idempotent; once started)."""
        if (
            self.watcher is None
            and self._feed is not None
            and self._loop is not None
            and not self._owned.closed
        ):
            self.watcher = self._loop.create_task(
                self._watch_changes(self._feed), name="aiofinaccess-store-watcher"
            )
            self._registry.on_held = _nothing  # watching now: later entries need no call

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
        get_many: Callable[[list[TokenKey]], Awaitable[dict[TokenKey, Versioned]]] | None = getattr(
            self._store, "get_many", None
        )
        if get_many is not None:
            found = await self._driver.store_call(get_many(keys))
        else:
            found = {}
            for key in keys:
                versioned = await self._driver.store_call(self._store.get(key))
                if versioned is not None:
                    found[key] = versioned
        restored = 0
        for key, versioned in found.items():
            if self._registry.mismatch(key, versioned.token_set) is not None:
                continue  # another client's (same provider name): not ours to serve
            entry = self._registry.entry(key)
            if entry.job is not None or entry.version == versioned.version:
                continue
            stored = self._driver.anchored(versioned)
            self._driver.publish(entry, stored.token_set, stored.version)
            restored += 1
        return restored

    async def _watch_changes(self, feed: ChangeFeed) -> None:
        """Adopt sets other processes wrote, without waiting for ours to go stale; a feed that
        fails (or hands us a cancellation nobody asked for, as redis-py's ``wait_for`` can on
        3.11) is logged and followed again after a pause, until the store ends it."""
        pause = _FEED_PAUSE
        while True:
            try:
                async for key, version in feed.changes():
                    pause = _FEED_PAUSE  # it works again
                    await self._changed(key, version)
                return  # the store closed
            except asyncio.CancelledError:
                if cancelled():
                    raise
                why = "a cancellation nobody asked for"
            except Exception as exc:
                why = type(exc).__name__
            logger.warning(
                "the store's change feed failed (%s); following it again in %.1f s", why, pause
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, _FEED_PAUSE_MAX)

    async def _changed(self, key: TokenKey, version: int | None) -> None:
        """Adopt the set another process wrote under ``key``, if this process holds an older
        one and is not renewing it."""
        entry = self._registry.find(key.provider, key.subject)
        if entry is None or entry.key != key or entry.version == version:
            return
        if not _settled(entry):
            return
        generation = entry.generation
        try:
            stored = await self._driver.read(key)
        except StoreError:
            logger.warning("could not read token set %s after a change", key.hashed)
            return
        except ClientMismatchError:
            return  # another client's set now: never adopted (its next renewal here says so)
        # Anything published while we read is at least as new as what we read.
        if not _settled(entry) or entry.generation != generation:
            return
        if stored is None:
            entry.clear()  # deleted elsewhere (revoked, or its grant died)
        elif superseded(stored.token_set, entry.token_set):
            await self._write_back(entry, stored)
        elif stored.version != entry.version:
            self._driver.adopt(entry, stored)

    async def _write_back(self, entry: Entry, stored: Stored) -> None:
        """The store holds an older set of the session this process holds (it was rolled
        back): write ours back now, not at our next renewal. Meanwhile a process that does not
        hold the newer set (never did, or its working set dropped it) would renew from the
        older one and present a spent refresh token, which ends the session (issue 22,
        finding 14). Compare-and-set on the stored version; a failed write is left to the
        next renewal's read, which writes it back too."""
        held, key = entry.token_set, entry.key
        assert held is not None  # noqa: S101  (superseded needs a held set)
        logger.warning(
            "the store holds an older set of token set %s (rolled back?); writing ours back",
            key.hashed,
        )
        try:
            version = await self._driver.store_call(
                self._driver.write(key, held, expected_version=stored.version)
            )
        except StoreConflictError:
            return  # written since: the feed announces it
        except StoreError:
            logger.warning("could not write token set %s back after a change", key.hashed)
            return
        self._driver.stats.reinstated += 1
        if entry.token_set is held:
            entry.version = version

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
        if self.watcher is not None:
            await cancel_and_wait(self.watcher)
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
        sent = {entry.job for entry in self._registry if entry.in_window and entry.job in late}
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
