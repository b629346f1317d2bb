"""Following a shared store's change feed: adopt what other processes wrote, without waiting
for this process's copy to go stale.

:class:`FeedWatch` starts the watcher once the process holds a set for its callers (a worker
that only renews for the refresh duty holds none between renewals, so it never reads the feed:
every renewal is published to every subscriber, and that work would grow with the fleet);
:class:`Changes` decides what one change means for this process.

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..core.errors import ClientMismatchError, StoreConflictError, StoreError
from ..core.lifecycle import Status
from ..core.renewal_step import Stored, superseded
from ..core.tokens import TokenKey
from ..stores.protocol import ChangeFeed, TokenStore
from .jobs import cancelled
from .registry import Entry, Registry
from .stopping import cancel_and_wait

if TYPE_CHECKING:
    from .access import StoreAccess
    from .lifetime import OwnedTasks
    from .publish import Publisher

__all__ = ["Changes", "FeedWatch"]

logger = logging.getLogger("aiofinaccess")
#: Seconds the watcher waits before following a failed change feed again (doubling per
#: failure in a row, up to the maximum).
_FEED_PAUSE = 0.1
_FEED_PAUSE_MAX = 5.0

#: Handles one change: a key and the version written (``None``: deleted or unknown).
Changed = Callable[[TokenKey, "int | None"], Awaitable[None]]


def _settled(entry: Entry) -> bool:
    """No renewal running and the set in a state where adopting a newer copy is right."""
    return entry.job is None and entry.status in (Status.ACTIVE, Status.BACKOFF)


class FeedWatch:
    """Watches a store's change feed, once started and once :meth:`follow` is called.

    Args:
        store: The store (watched only if it is a :class:`~aiofinaccess.stores.ChangeFeed`).
        owned: The manager's tasks (nothing starts once they are closed).
    """

    def __init__(self, *, store: TokenStore, owned: OwnedTasks) -> None:
        # Asked once: isinstance() against a runtime-checkable protocol looks up each of its
        # members, too slow for every new entry (restoring 100,000 sets took 3.8 s longer).
        self._feed = store if isinstance(store, ChangeFeed) else None
        self._owned = owned
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: Changed | None = None
        self.watcher: asyncio.Task[None] | None = None

    def start(self, changed: Changed) -> None:
        """From now on :meth:`follow` starts the watcher, which hands changes to ``changed``."""
        self._loop = asyncio.get_running_loop()
        self._changed = changed

    def follow(self) -> None:
        """Watch the feed from now on (idempotent; once started). The registry calls it when an
        entry is made for the process's callers."""
        if (
            self.watcher is None
            and self._feed is not None
            and self._loop is not None
            and not self._owned.closed
        ):
            self.watcher = self._loop.create_task(
                self._watch(self._feed), name="aiofinaccess-store-watcher"
            )

    async def stop(self) -> None:
        """Stop watching."""
        if self.watcher is not None:
            await cancel_and_wait(self.watcher)

    async def _watch(self, feed: ChangeFeed) -> None:
        """Hand every change on; a feed that fails (or hands us a cancellation nobody asked
        for, as redis-py's ``wait_for`` can on 3.11) is logged and followed again after a
        pause, until the store ends it."""
        assert self._changed is not None  # noqa: S101  (set by start)
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


class Changes:
    """Adopts what another process wrote for a set this process holds.

    Args:
        registry, access, publisher: The manager's parts.
    """

    def __init__(self, *, registry: Registry, access: StoreAccess, publisher: Publisher) -> None:
        self._registry = registry
        self._access = access
        self._publisher = publisher

    async def changed(self, key: TokenKey, version: int | None) -> None:
        """Adopt the set another process wrote under ``key``, if this process holds an older
        one and is not renewing it."""
        entry = self._registry.find(key.provider, key.subject)
        if entry is None or entry.key != key or entry.version == version:
            return
        if not _settled(entry):
            return
        generation = entry.generation
        try:
            stored = await self._access.read(key)
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
            self._publisher.adopt(entry, stored)

    async def _write_back(self, entry: Entry, stored: Stored) -> None:
        """The store holds an older set of the session this process holds (it was rolled
        back): write ours back now, not at our next renewal, or a process that does not hold
        the newer set would renew from the older one and present a spent refresh token, which
        ends the session. Compare-and-set on the stored version; a failed write is left to the
        next renewal's read, which writes it back too."""
        held, key = entry.token_set, entry.key
        assert held is not None  # noqa: S101  (superseded needs a held set)
        try:
            version = await self._access.write_back(key, held, stored.version)
        except StoreConflictError:
            return  # written since: the feed announces it
        except StoreError:
            logger.warning("could not write token set %s back after a change", key.hashed)
            return
        if entry.token_set is held:
            entry.version = version
