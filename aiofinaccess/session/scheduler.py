"""One background task per session manager that renews token sets before they go stale.

The scheduler does not know what a token is: it drains a :class:`DueQueue` of
``(due, key, generation)`` items, hands each due one to ``fire`` (at most ``max_in_flight``
renewals at once), and ignores an item whose generation moved on. Time and sleeping come
from the injected clock; a new earliest deadline wakes it early.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable, Hashable
from typing import Any

from ..core.clock import Clock
from .stopping import cancel_and_wait

__all__ = ["DueQueue", "RefreshScheduler"]

logger = logging.getLogger("aiofinaccess")

Fire = Callable[[Hashable, int], "asyncio.Future[Any] | None"]


class DueQueue:
    """Renewal deadlines, a heap of ``(due, sequence, key, generation)``; what the scheduler
    drains. A superseded item (its generation moved on) is skipped when it comes due."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, Hashable, int]] = []
        self._sequence = itertools.count()
        self.wake: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self.heap)

    def arm(self) -> asyncio.Event:
        """From now on an earlier deadline wakes the scheduler (it started)."""
        self.wake = asyncio.Event()
        return self.wake

    def schedule(self, key: Hashable, due: float, generation: int) -> None:
        """Renew ``key`` at monotonic time ``due`` unless its generation moves on first."""
        earliest = self.heap[0][0] if self.heap else None
        heapq.heappush(self.heap, (due, next(self._sequence), key, generation))
        if self.wake is not None and (earliest is None or due < earliest):
            self.wake.set()


class RefreshScheduler:
    """Drains a :class:`DueQueue` in one task.

    Args:
        clock: The manager's clock (monotonic time and sleep).
        fire: Called with ``(key, generation)`` when an item is due; returns the outcome of
            the renewal it started, or ``None`` if the item was stale or nothing needed doing.
        max_in_flight: Renewals started by the scheduler that may run at once.
        queue: The deadlines (a new one by default).
    """

    def __init__(
        self,
        clock: Clock,
        fire: Fire,
        *,
        max_in_flight: int = 16,
        queue: DueQueue | None = None,
    ) -> None:
        self._clock = clock
        self._fire = fire
        self.queue = queue if queue is not None else DueQueue()
        self._heap = self.queue.heap
        self._max_in_flight = max_in_flight
        self._wake: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task[None] | None = None
        #: Seconds by which fired items were late (actual minus planned), the last 4096.
        self.lateness: list[float] = []

    def __len__(self) -> int:
        return len(self._heap)

    def schedule(self, key: Hashable, due: float, generation: int) -> None:
        """Renew ``key`` at monotonic time ``due`` unless its generation moves on first."""
        self.queue.schedule(key, due, generation)

    def start(self) -> None:
        """Start the loop on the running event loop (idempotent)."""
        if self._task is None:
            self._wake = self.queue.arm()
            self._slots = asyncio.Semaphore(self._max_in_flight)
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="aiofinaccess-scheduler"
            )

    async def stop(self) -> None:
        """Stop the loop; renewals already started are the manager's to finish."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def _sleep(self, seconds: float) -> None:
        """Sleep on the clock, but wake at once when an earlier deadline arrives."""
        assert self._wake is not None  # noqa: S101  (set by start)
        self._wake.clear()
        sleeper = asyncio.ensure_future(self._clock.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in (sleeper, waker):
                waiting.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    async def _run(self) -> None:
        assert self._wake is not None and self._slots is not None  # noqa: PT018, S101
        while True:
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            due = self._heap[0][0]
            now = self._clock.monotonic()
            if due > now:
                await self._sleep(due - now)
                continue
            _due, _sequence, key, generation = heapq.heappop(self._heap)
            await self._slots.acquire()
            try:
                started = self._fire(key, generation)
            except Exception:
                logger.exception("scheduled renewal could not start")
                started = None
            if started is None:
                self._slots.release()
                continue
            self._record_lateness(self._clock.monotonic() - due)
            started.add_done_callback(lambda _task: self._release())

    def _release(self) -> None:
        if self._slots is not None:
            self._slots.release()

    def _record_lateness(self, seconds: float) -> None:
        if len(self.lateness) >= 4096:
            del self.lateness[:2048]
        self.lateness.append(seconds)
