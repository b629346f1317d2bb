"""When a token set is renewed in the background by this process.

:class:`Planner` turns an entry's deadlines into an item of the scheduler's queue (with jitter,
keep-alive and the idle rule); :class:`Trigger` decides, when the item comes due, whether a
renewal should start. On a store that keeps the refresh duty, a set with a refresh token is
renewed by its due time in the store instead (:meth:`StoreAccess.due_at
<aiofinaccess.session.access.StoreAccess.due_at>`): this process then plans only sets without
one (client tokens).

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from ..core.clock import Clock
from ..core.lifecycle import Deadlines, RefreshPolicy, Status, scheduled_at
from ..core.settings import Schedule
from ..core.tokens import TokenKey
from .hub import ManagerStats
from .registry import Entry, Registry

if TYPE_CHECKING:
    from .access import StoreAccess
    from .lifetime import OwnedTasks
    from .renewal import RenewalDriver
    from .scheduler import DueQueue

__all__ = ["Planner", "Trigger"]


class Planner:
    """Plans the background renewals of the entries this process holds.

    Args:
        clock: Monotonic time.
        queue: The scheduler's queue (``None``: no background renewals).
        policy: The refresh policy (its ``min_interval``).
        schedule: Keep-alive, idle and jitter.
        access: The jitter draw.
        fleet: The store keeps each set's due time (the refresh duty).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        queue: DueQueue | None,
        policy: RefreshPolicy,
        schedule: Schedule,
        access: StoreAccess,
        fleet: bool = False,
    ) -> None:
        self._clock = clock
        self._queue = queue
        self._policy = policy
        self._schedule = schedule
        self._access = access
        self._fleet = fleet

    def schedule(self, entry: Entry, at: float | None, deadlines: Deadlines | None = None) -> None:
        """Plan the entry's next background renewal (at monotonic ``at``, or per deadlines:
        ``deadlines``, those of the set it holds, when the caller has them at hand)."""
        if self._queue is None:
            return
        if deadlines is None:
            deadlines = entry.deadlines
            if deadlines is None:
                return
        if self._fleet and entry.token_set is not None and entry.token_set.has_refresh_token:
            return  # its due time is in the store: the refresh duty renews it
        settings = self._schedule
        now = self._clock.monotonic()
        idle = settings.idle_after is not None and now - entry.last_used > settings.idle_after
        due = scheduled_at(
            deadlines,
            now=now,
            jitter=self._access.draw() * settings.jitter,
            keep_alive=settings.keep_alive,
            idle=idle,
        )
        if due is None:
            return
        if at is not None:
            due = max(at, now)
        if deadlines.stale_at <= entry.renewed_at:
            # A renewal that brought a set already stale must not be followed by another at
            # once, or the scheduler would renew it in a loop.
            due = max(due, entry.renewed_at + self._policy.min_interval)
        self._queue.schedule(entry.key, due, entry.generation)


class Trigger:
    """Starts the renewal a due item of the queue asks for, if it is still wanted.

    Args:
        registry, driver, clock, stats, owned: The manager's parts.
        queue: The scheduler's queue (a reissued set is planned again there).
        schedule: Keep-alive and idle.
    """

    def __init__(
        self,
        *,
        registry: Registry,
        driver: RenewalDriver,
        clock: Clock,
        queue: DueQueue,
        schedule: Schedule,
        stats: ManagerStats,
        owned: OwnedTasks,
    ) -> None:
        self._registry = registry
        self._driver = driver
        self._clock = clock
        self._queue = queue
        self._schedule = schedule
        self._stats = stats
        self._owned = owned

    def fire(self, key: Hashable, generation: int) -> asyncio.Future[Any] | None:
        """The scheduler's callback: the outcome of the renewal started, or ``None``."""
        assert isinstance(key, TokenKey)  # noqa: S101  (the planner schedules entries' keys)
        entry = self._registry.find(key.provider, key.subject)
        if entry is None or entry.generation != generation or self._owned.closed:
            return None
        if entry.job is not None:
            entry.rearm = True  # a renewal is finishing: plan again when it has
            return None
        if entry.status not in (Status.ACTIVE, Status.BACKOFF):
            return None
        settings = self._schedule
        now = self._clock.monotonic()
        idle = settings.idle_after is not None and now - entry.last_used > settings.idle_after
        deadlines = entry.deadlines
        keep_alive_due = deadlines is not None and now >= deadlines.refresh_token_due_at
        if idle and not (settings.keep_alive and keep_alive_due):
            return None  # left to on-demand renewal
        if deadlines is not None and now < deadlines.renew_not_before:
            # A reissued token (finAPI's client token) is not renewed before it expires: a
            # renewal started now would only sleep till then, and a caller renewing after a
            # 401 would join it and sleep too (seed 2677). Planned again for then instead.
            self._queue.schedule(key, deadlines.renew_not_before, generation)
            return None
        self._stats.scheduled_renewals += 1
        outcome = self._driver.start(entry, reason="scheduled")
        self._rest_after(entry, now)
        return outcome

    def _rest_after(self, entry: Entry, fired: float) -> None:
        """Once its renewal ends, a set nobody used since ``fired`` goes back to rest."""
        job = entry.job
        if job is not None:
            job.add_done_callback(lambda _job: self._rest(entry, fired))

    def _rest(self, entry: Entry, fired: float) -> None:
        if entry.last_used < fired:
            self._registry.rest(entry)
