"""The change feed of :class:`~aiofinaccess.stores.postgres.PostgresStore`: one ``LISTEN``
connection per store (outside the pool) that relays every ``NOTIFY`` to the live iterators.

A write notifies in its own statement, so a change is announced only once committed. The
reader pings its connection every :data:`PING_EVERY` seconds, so a silently dead link is found
too, and after any failure it connects and listens again (with a growing pause). The feed is
best effort, as Redis's: changes sent while no ``LISTEN`` stands are not replayed, and
compare-and-swap keeps every write correct regardless.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ..core.stopping import cancel_and_wait, cancel_asked
from ..core.tokens import TokenKey
from ._redis_feed import Changes

__all__ = ["Listener"]

logger = logging.getLogger("aiofinaccess")
#: Seconds between pings of an idle ``LISTEN`` connection (and how long one may take).
PING_EVERY: Final = 30.0


class Listener:
    """Listens (lazily, once) and relays every change to the live iterators.

    Args:
        connect: Opens a new connection (the store's URL and TLS settings).
        channel: The store's notification channel.
        closed: Whether the store closed (a closed store hands out ended iterators).
    """

    def __init__(
        self, connect: Callable[[], Awaitable[Any]], channel: str, closed: Callable[[], bool]
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._closed = closed
        self._feeds: weakref.WeakSet[Changes] = weakref.WeakSet()
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def iterator(self) -> Changes:
        feed = Changes()
        if self._closed():
            feed.offer(None)
        else:
            self._feeds.add(feed)
            self.start()
        return feed

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop listening and end every iterator."""
        if self._task is not None:
            await cancel_and_wait(self._task)
        for feed in list(self._feeds):
            feed.offer(None)

    async def _run(self) -> None:
        """Relay changes; listen again after any failure until cancelled."""
        backoff = 0.1
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError as exc:
                if cancel_asked():
                    raise
                self._failed(exc, backoff)
            except Exception as exc:  # a dead feed would go unnoticed: log it and listen again
                self._failed(exc, backoff)
            else:  # the connection ended under us
                self._failed(ConnectionError("connection lost"), backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _failed(self, exc: BaseException, backoff: float) -> None:
        self.subscribed.clear()
        logger.warning(
            "PostgreSQL change feed failed (%s); listening again in %.1f s",
            type(exc).__name__,
            backoff,
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )

    async def _listen(self) -> None:
        """One connection's life: listen, ping while idle, return once it is lost."""
        conn = await self._connect()
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(self._channel, self._notified)
            self.subscribed.set()
            while not lost.is_set():
                try:
                    async with asyncio.timeout(PING_EVERY):
                        await lost.wait()
                except TimeoutError:
                    await conn.fetchval("SELECT 1", timeout=PING_EVERY)
        finally:
            conn.terminate()  # no goodbye: the link may be dead, and this cannot block

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        name, _, version = payload.rpartition("\n")
        try:
            change = (TokenKey.parse(name), int(version) if version else None)
        except ValueError:
            logger.debug("ignoring a malformed change notification")
            return
        for feed in list(self._feeds):
            feed.offer(change)
