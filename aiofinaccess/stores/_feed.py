"""What the Redis and PostgreSQL change feeds share: the iterators one reader task fills
(:class:`Changes`), and that reader's life (:class:`Relay`: started lazily, once, stopped for
certain, every failure logged). Each store's module reads its own server.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable

from ..core.stopping import cancel_and_wait
from ..core.tokens import TokenKey

__all__ = ["FEED_LIMIT", "Changes", "Relay"]

logger = logging.getLogger("aiofinaccess")
_Change = tuple[TokenKey, int | None]
#: Changes an unread iterator keeps; older ones are dropped (the feed is best effort).
FEED_LIMIT = 1024


class Changes:
    """One iterator of the change feed: a queue the store's reader fills; ``None`` ends it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[_Change | None] = asyncio.Queue()

    def offer(self, change: _Change | None) -> None:
        """Queue ``change``, dropping the oldest when the reader fell too far behind."""
        if change is not None and self.queue.qsize() >= FEED_LIMIT:
            self.queue.get_nowait()
        self.queue.put_nowait(change)

    def __aiter__(self) -> Changes:
        return self

    async def __anext__(self) -> _Change:
        change = await self.queue.get()
        if change is None:
            self.queue.put_nowait(None)  # stay ended
            raise StopAsyncIteration
        return change


class Relay:
    """One reader task per store that hands each change to every live iterator.

    Subclasses implement :meth:`_run` (read until cancelled, set :attr:`subscribed` while
    subscribed, call :meth:`_relay` per message and :meth:`_failed` per failure).

    Args:
        closed: Tells whether the store closed (a closed store hands out ended iterators).
        server: Names the server in the log (``"Redis"``).
    """

    def __init__(self, closed: Callable[[], bool], server: str) -> None:
        self._closed = closed
        self._server = server
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
        """Stop reading and end every iterator.

        A cancel that lands as a client call finishes is lost on 3.11 (see
        :mod:`~aiofinaccess.core.stopping`), and the reader would go on reading with no timeout:
        it is cancelled again until it has ended.
        """
        if self._task is not None:
            await cancel_and_wait(self._task)
        for feed in list(self._feeds):
            feed.offer(None)

    async def _run(self) -> None:
        raise NotImplementedError

    def _failed(self, exc: BaseException, backoff: float) -> None:
        self.subscribed.clear()
        logger.warning(
            "%s change feed failed (%s); subscribing again in %.1f s",
            self._server,
            type(exc).__name__,
            backoff,
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )

    def _relay(self, data: str) -> None:
        """Hand ``key\\nversion`` (no version: deleted) to every iterator."""
        text, _, version = data.rpartition("\n")
        try:
            change = (TokenKey.parse(text), int(version) if version else None)
        except ValueError:
            logger.debug("ignoring a malformed change message")
            return
        for feed in list(self._feeds):
            feed.offer(change)
