"""A stand-in for the simulated world, for tests that run the simulated store on a real loop
(no simulation around it): a wire, an IdP to tell, the store's clock, and its processes.

A message that raises fails the call waiting on it at once (:func:`.wire.undelivered`) and is
kept in :attr:`StandInWorld.errors`; :meth:`StandInWorld.check` raises the first, so a test
whose harness broke fails rather than hangs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from tests.simulation.wire import undelivered

__all__ = ["StandInProcess", "StandInWorld"]


class _Idp:
    def stored(self, refresh: str | None) -> None:
        del refresh


class _Features:
    """The world's features the simulated store reads: no replica, no idle sets."""

    replication = None
    idle_after = 0.0


class _Traffic:
    """No idle worlds here: nothing to judge when a due time is cleared."""

    def due_cleared(self, key: object) -> None:
        del key


class StandInWorld:
    """What the simulated store asks of its world: a wire, an IdP to tell, the store's clock,
    its features."""

    def __init__(self) -> None:
        self.idp = _Idp()
        self.features = _Features()
        self.traffic = _Traffic()
        self._messages: set[asyncio.Task[None]] = set()
        #: What messages raised (harness bugs), in order.
        self.errors: list[BaseException] = []

    def message(
        self, coro: Coroutine[Any, Any, None], reply: asyncio.Future[Any] | None = None
    ) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._messages.add(task)
        task.add_done_callback(lambda done: self._ended(done, reply))

    def _ended(self, task: asyncio.Task[None], reply: asyncio.Future[Any] | None) -> None:
        self._messages.discard(task)
        error = undelivered(task, reply)
        if error is not None:
            self.errors.append(error)

    def check(self) -> None:
        """Raise the first error a message raised, if any."""
        if self.errors:
            raise self.errors[0]

    def wall(self) -> float:
        return 1_800_000_000.0 + asyncio.get_running_loop().time()

    def read_by(self, process: object, token_sets: object) -> None:
        """No rollbacks here: nothing to judge."""

    def put_landed(self, key: object, token_set: object) -> None:
        """The simulation checks its invariants here; a stand-in has none to check."""

    def claimed(self, *args: object) -> None:
        """The simulation checks claims here; a stand-in has none to check."""


class StandInProcess:
    """A simulated process: alive, numbered, on ``clock`` (wall, monotonic, sleep, frozen)."""

    def __init__(self, number: int, clock: Any) -> None:
        self.number = number
        self.incarnation = number
        self.alive = True
        self.clock = clock

    def check_alive(self) -> None:
        assert self.alive
