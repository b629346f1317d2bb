"""When a token set is renewed in the background: the per-process plan, or the store's.

:class:`Planner` turns an entry's deadlines into a scheduler item (with jitter, keep-alive and
the idle rule) and decides, when the item comes due, whether a renewal should start. The
scheduler itself (:mod:`aiofinaccess.session.scheduler`) knows nothing of tokens.

On a store that keeps the refresh duty (``fleet``), a set with a refresh token is planned by
its due time in the store instead (:meth:`Planner.due_at`, on the wall clock, shared by every
process): the per-process scheduler then only plans sets without one (client tokens).

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable
from typing import Any

from ..core.clock import Clock
from ..core.lifecycle import RefreshPolicy, Status, plan, scheduled_at
from ..core.settings import Schedule
from ..core.tokens import Anchor, TokenSet
from .events import ManagerStats
from .registry import Entry, Registry
from .renewal import RenewalDriver
from .scheduler import RefreshScheduler

__all__ = ["Planner"]

#: Plans a set on the wall clock: its wall-clock instants map to themselves.
_WALL = Anchor(0.0, 0.0)


class Planner:
    """Schedules background renewals of the entries this process holds.

    Args:
        registry: The entries.
        clock: Monotonic time.
        scheduler: The scheduler (``None``: no background renewals).
        policy: The refresh policy (its ``min_interval``).
        schedule: Keep-alive, idle and jitter.
        stats: Counters.
        closed: Whether the manager is closed (no renewal starts then).
        fleet: The store keeps each set's due time (the refresh duty).
    """

    def __init__(
        self,
        *,
        registry: Registry,
        clock: Clock,
        scheduler: RefreshScheduler | None,
        policy: RefreshPolicy,
        schedule: Schedule,
        stats: ManagerStats,
        closed: Callable[[], bool],
        fleet: bool = False,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self.scheduler = scheduler
        self._policy = policy
        self._keep_alive = schedule.keep_alive
        self._idle_after = schedule.idle_after
        self._jitter = schedule.jitter
        self._stats = stats
        self._closed = closed
        self.fleet = fleet
        #: Told every due time this process writes (wakes this process's duty early).
        self.on_due: Callable[[float | None], None] = lambda _due: None
        #: Set once the driver exists (it is built with :meth:`schedule` as a callback).
        self.driver: RenewalDriver | None = None

    def schedule(self, entry: Entry, at: float | None) -> None:
        """Plan the entry's next background renewal (at monotonic ``at``, or per deadlines)."""
        if self.scheduler is None or entry.deadlines is None or self.driver is None:
            return
        if self.fleet and entry.token_set is not None and entry.token_set.has_refresh_token:
            return  # its due time is in the store: the refresh duty renews it
        now = self._clock.monotonic()
        idle = self._idle_after is not None and now - entry.last_used > self._idle_after
        due = scheduled_at(
            entry.deadlines,
            now=now,
            jitter=self.driver.draw() * self._jitter,
            keep_alive=self._keep_alive,
            idle=idle,
        )
        if due is None:
            return
        if at is not None:
            due = max(at, now)
        if entry.deadlines.stale_at <= entry.renewed_at:
            # A renewal that brought a set already stale must not be followed by another at
            # once, or the scheduler would renew it in a loop.
            due = max(due, entry.renewed_at + self._policy.min_interval)
        self.scheduler.schedule((entry.key.provider, entry.key.subject), due, entry.generation)

    def fire(self, key: Hashable, generation: int) -> asyncio.Future[Any] | None:
        """The scheduler's callback: start the renewal an item asked for, if still wanted."""
        entry = self._registry.entries.get(key)  # type: ignore[call-overload]
        if entry is None or entry.generation != generation or self._closed():
            return None
        if entry.job is not None:
            entry.rearm = True  # a renewal is finishing: plan again when it has
            return None
        if entry.status not in (Status.ACTIVE, Status.BACKOFF) or self.driver is None:
            return None
        now = self._clock.monotonic()
        idle = self._idle_after is not None and now - entry.last_used > self._idle_after
        keep_alive_due = entry.deadlines is not None and now >= entry.deadlines.refresh_token_due_at
        if idle and not (self._keep_alive and keep_alive_due):
            return None  # left to on-demand renewal
        if entry.deadlines is not None and now < entry.deadlines.renew_not_before:
            # A reissued token (finAPI's client token) is not renewed before it expires: a
            # renewal started now (a retry after a failure, an item planned before the reissue)
            # would only sleep till then, and a caller renewing after a 401 would join it and
            # sleep too (seed 2677: 24.6 s). Planned again for then instead.
            if self.scheduler is not None:
                self.scheduler.schedule(key, entry.deadlines.renew_not_before, generation)
            return None
        self._stats.scheduled_renewals += 1
        return self.driver.start(entry, reason="scheduled")

    def due_at(self, token_set: TokenSet, draw: float | None = None) -> float | None:
        """When the refresh duty renews ``token_set``: wall-clock epoch seconds, or ``None``.

        Sets without a refresh token are not the duty's (``None``): they are client tokens,
        renewed by the process that uses them. Every set with one is due before its access
        token goes stale (``jitter`` spreads a cohort; ``idle_after`` does not apply, since no
        process knows whether another uses it) and, with ``keep_alive``, before its refresh
        token runs out.

        Args:
            token_set: The set.
            draw: The jitter draw in ``[0, 1]`` (``None``: a random one); ``1.0`` gives the
                earliest time the set may be due.
        """
        if token_set.refresh_token is None or self.driver is None:
            return None
        share = self.driver.draw() if draw is None else draw
        return scheduled_at(
            plan(token_set.with_anchor(_WALL), self._policy),
            now=-math.inf,
            jitter=share * self._jitter,
            keep_alive=self._keep_alive,
            idle=False,
        )

    def keep_due(self, token_set: TokenSet) -> float | None:
        """When ``token_set``'s refresh token must be renewed to stay alive (wall clock), or
        ``None``: a keep-alive writer's due time, which the duty honours whatever this
        process's ``keep_alive`` (a claimant never postpones a set past it)."""
        if token_set.refresh_token is None:
            return None
        due = plan(token_set.with_anchor(_WALL), self._policy).refresh_token_due_at
        return None if due == math.inf else due

    def next_due(self, token_set: TokenSet) -> float | None:
        """The due time a write stores with ``token_set``: :meth:`due_at`, except that a set
        already due when written (stale on arrival) is due ``min_interval`` later, not at once
        again and again."""
        due = self.due_at(token_set)
        now = self._clock.wall()
        if due is not None and due <= now:
            due = now + self._policy.min_interval
        self.on_due(due)
        return due
