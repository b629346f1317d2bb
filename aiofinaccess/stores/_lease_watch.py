"""What the Redis and PostgreSQL leases share: a lease *value* ``owner:beat:ttl_ms`` that a
waiter may take over only once it has seen that same value stand ``ttl_ms`` on its own
monotonic clock (:class:`Sightings`), and releases that run shielded and that ``aclose``
waits for or abandons (:class:`Releases`). See :mod:`._redis_lease` for why.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any, Final

from ..core.stopping import cancel_and_wait

__all__ = ["Releases", "Sightings", "standing"]

logger = logging.getLogger("aiofinaccess")

#: Leases whose current value a store remembers seeing (the oldest are forgotten first).
_SEEN_LIMIT: Final = 10_000


def standing(value: str) -> float:
    """Seconds a lease value must stand unchanged before a waiter may take it over
    (``inf`` for a value of an older version, which expires by its own ``PX``)."""
    owner, _, rest = value.partition(":")
    _, _, ttl_ms = rest.partition(":")
    return int(ttl_ms) / 1000 if owner and ttl_ms.isdigit() else math.inf


class Sightings:
    """The value each lease was last seen holding, and since when (shared by a store's
    waits), on ``clock``."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._seen: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def stale(self, name: str) -> str:
        """The value seen on ``name`` if it has stood its ttl since, else ``''``."""
        seen = self._seen.get(name)
        if seen is not None and self._clock() - seen[1] >= standing(seen[0]):
            return seen[0]
        return ""

    def saw(self, name: str, value: str) -> None:
        """Note ``value`` on ``name``, timed from now (after the reply) if it is new."""
        seen = self._seen.get(name)
        if seen is None or seen[0] != value:
            self._seen[name] = (value, self._clock())
            self._seen.move_to_end(name)
            while len(self._seen) > _SEEN_LIMIT:
                self._seen.popitem(last=False)

    def forget(self, name: str) -> None:
        """We hold ``name`` now: what was seen on it no longer matters."""
        self._seen.pop(name, None)


class Releases:
    """A store's lease releases in flight. ``what`` names the store in the log."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._tasks: set[asyncio.Task[None]] = set()

    async def shielded(self, release: Coroutine[Any, Any, None]) -> None:
        """Run ``release`` to its end even if the caller is cancelled meanwhile."""
        task = asyncio.ensure_future(release)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait for releases already on the wire: a next holder is waiting for them."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def abandon(self) -> None:
        """Stop the releases still waiting for a silent server."""
        if self._tasks:
            logger.warning("%d %s lease releases abandoned at close", len(self._tasks), self._what)
            await asyncio.gather(*(cancel_and_wait(task) for task in list(self._tasks)))
