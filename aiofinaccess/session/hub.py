"""Where events go and what is counted: the fan-out to subscribers and the manager's counters.

Apart from :mod:`aiofinaccess.session.events` so that a first token needs no event record: an
adoption builds its event only while :attr:`EventHub.listening`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import ManagerEvent

__all__ = ["EventHub", "ManagerStats"]

logger = logging.getLogger("aiofinaccess")


class ManagerStats:
    """Counters an app can export (they only grow). :meth:`as_dict` suits a metrics exporter.

    Each starts at zero (a class default until first counted); equal when every count is.
    """

    token_requests: int = 0
    renewals: int = 0
    scheduled_renewals: int = 0
    rotations: int = 0
    adopted_from_store: int = 0
    #: Newer sets written back over an older one of their session (a store rolled back).
    reinstated: int = 0
    refresh_failures: int = 0
    retries: int = 0
    reauth_required: int = 0
    store_failures: int = 0
    events_dropped: int = 0
    #: The refresh duty: sets claimed from the store, and those found renewed elsewhere.
    duty_claimed: int = 0
    duty_renewed_elsewhere: int = 0
    #: Due entries a claim took off the duty because nothing can renew them (a malformed key,
    #: or a due time whose set is gone).
    duty_dropped: int = 0
    #: Claimed user sets issued to another client (another app sharing the store under the same
    #: provider name): given back unrenewed, for that client's worker.
    duty_other_client: int = 0
    #: Claimed sets left alone because nobody used them for ``Schedule.idle_after`` (each
    #: once per idle spell; with keep-alive, once per refresh token).
    duty_idle: int = 0
    #: Last uses written to the store for the refresh duty to read.
    use_stamps: int = 0
    #: Entries dropped to keep the bounded working set.
    working_set_evictions: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return {name: getattr(self, name) for name in _COUNTERS}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ManagerStats):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    # Mutable: unhashable.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.as_dict().items())
        return f"ManagerStats({shown})"


_COUNTERS = tuple(ManagerStats.__annotations__)


class EventHub:
    """Fans events out to callbacks and bounded async iterators; never raises into the manager."""

    def __init__(self, stats: ManagerStats) -> None:
        self._stats = stats
        self._callbacks: list[Callable[[ManagerEvent], object]] = []
        self._queues: set[asyncio.Queue[ManagerEvent | None]] = set()
        # The manager's own watchers: they hear what is built, but make nobody "listening".
        self._watchers: list[Callable[[ManagerEvent], object]] = []

    @property
    def listening(self) -> bool:
        """Whether an event would reach anyone; when not, an emitter need not build it."""
        return bool(self._callbacks or self._queues)

    def subscribe(self, callback: Callable[[ManagerEvent], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that unsubscribes."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    def watch(self, callback: Callable[[ManagerEvent], None]) -> None:
        """Call ``callback(event)`` for every event emitted, without making the hub
        :attr:`listening` (the manager's own bookkeeping: an event only a listener needs is
        still not built for it)."""
        self._watchers.append(callback)

    async def iterate(self, maxsize: int) -> AsyncIterator[ManagerEvent]:
        """Yield events until :meth:`close`; when ``maxsize`` are waiting, the oldest is dropped."""
        queue: asyncio.Queue[ManagerEvent | None] = asyncio.Queue(maxsize)
        self._queues.add(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._queues.discard(queue)

    def emit(self, event: ManagerEvent) -> None:
        """Deliver ``event`` to every subscriber."""
        if not (self.listening or self._watchers):
            return
        for callback in [*self._watchers, *self._callbacks]:
            try:
                result = callback(event)
            except Exception:
                logger.warning("event callback %r failed", callback, exc_info=True)
                continue
            if inspect.isawaitable(result):
                # subscribe() refuses coroutine functions; this one hid behind a plain call.
                getattr(result, "close", lambda: None)()
                logger.error(
                    "event callback %r returned an awaitable, which never runs: subscribe a "
                    "plain function, or iterate manager.events()",
                    callback,
                )
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
                self._stats.events_dropped += 1
            queue.put_nowait(event)

    def close(self) -> None:
        """End every iterator."""
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)
