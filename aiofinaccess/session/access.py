"""The store as every part of the session uses it: anchored reads, writes that carry their due
time, calls bounded in time, and the one seedable source of jitter.

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from ..core.clock import SKEW_WARNINGS, Clock, anchor_stored, clock_offset
from ..core.lifecycle import RefreshPolicy, plan, scheduled_at
from ..core.renewal_step import Stored
from ..core.settings import Schedule
from ..core.tokens import Anchor, TokenKey, TokenSet
from ..stores.protocol import RefreshDuty, TokenStore, Versioned
from .hub import ManagerStats
from .jobs import bounded
from .registry import Registry

__all__ = ["DueWakeup", "StoreAccess"]

logger = logging.getLogger("aiofinaccess")
_T = TypeVar("_T")
#: Plans a set on the wall clock: its wall-clock instants map to themselves.
_WALL = Anchor(0.0, 0.0)


class DueWakeup:
    """Wakes the refresh duty's sleep when this process writes a set due before it would wake."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self._at = math.inf

    def arm(self) -> None:
        """From now on a due time written may wake the sleep (the duty started)."""
        self._event = asyncio.Event()

    def clear(self) -> None:
        """Only due times written from now on wake the next sleep."""
        assert self._event is not None  # noqa: S101  (armed by the duty's start)
        self._event.clear()

    def written(self, due: float | None) -> None:
        """A set due at ``due`` (wall clock) was written."""
        if due is not None and due < self._at and self._event is not None:
            self._event.set()

    async def sleep(self, clock: Clock, seconds: float) -> None:
        """Sleep on ``clock``, but wake at once when an earlier due time is written."""
        assert self._event is not None  # noqa: S101  (armed by the duty's start)
        self._at = clock.wall() + seconds
        sleeper = asyncio.ensure_future(clock.sleep(seconds))
        waker = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._at = math.inf  # awake: any due time written counts
            for waiting in (sleeper, waker):
                waiting.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)


class StoreAccess:
    """Reads, writes and bounded calls to the manager's store.

    Args:
        store: Where token sets persist.
        registry: Refuses a stored set issued to another client.
        clock: Anchors what is read.
        policy: Plans what is read, and due times.
        timeout: Seconds one store call may take.
        stats: Counts failed store calls.
        duty: On a store that keeps the refresh duty, the schedule its due times follow
            (``None``: the store keeps none).
    """

    def __init__(
        self,
        *,
        store: TokenStore,
        registry: Registry,
        clock: Clock,
        policy: RefreshPolicy,
        timeout: float,
        stats: ManagerStats,
        duty: Schedule | None = None,
    ) -> None:
        self.store = store
        self.stats = stats
        self._registry = registry
        self._clock = clock
        self._policy = policy
        self._timeout = timeout
        self._duty = duty
        #: Told every due time written (wakes the refresh duty's sleep).
        self.wakeup = DueWakeup()
        #: The source of every jitter draw of the manager (seeded in simulations).
        self.random = random.Random()  # noqa: S311  (jitter, not secrets)

    def draw(self) -> float:
        """A uniform draw from ``[0, 1)`` for jitter."""
        return self.random.random()

    async def call(self, call: Awaitable[_T]) -> _T:
        """Await a store call within the store timeout; anything but a typed error becomes
        :class:`~aiofinaccess.core.errors.StoreError`."""
        return await bounded(call, timeout=self._timeout, stats=self.stats)

    async def read(self, key: TokenKey) -> Stored | None:
        """Read ``key`` and anchor it: a stored set's age counts from its wall clock instants,
        read against this process's clocks now.

        Raises:
            ClientMismatchError: The stored set was issued to another client.
        """
        asked = self._clock.monotonic()
        found = await self.call(self.store.get(key))
        if found is None:
            return None
        error = self._registry.mismatch(key, found.token_set)
        if error is not None:
            raise error
        return self.anchored(found, asked)

    async def read_many(self, keys: list[TokenKey]) -> list[tuple[TokenKey, Versioned, float]]:
        """Read ``keys`` (in one ``get_many`` where the store has it): each set found, with the
        monotonic reading taken before its store call, to anchor it by (:meth:`anchored`)."""
        get_many: Callable[[list[TokenKey]], Awaitable[dict[TokenKey, Versioned]]] | None = getattr(
            self.store, "get_many", None
        )
        if get_many is not None:
            asked = self._clock.monotonic()
            found = await self.call(get_many(keys))
            return [(key, versioned, asked) for key, versioned in found.items()]
        many = []
        for key in keys:
            asked = self._clock.monotonic()
            versioned = await self.call(self.store.get(key))
            if versioned is not None:
                many.append((key, versioned, asked))
        return many

    def anchored(self, found: Versioned, asked: float) -> Stored:
        """Anchor a stored set by the age the store measured, counted from ``asked`` (the
        monotonic reading before the store was asked: an answer read late must not make the
        set look younger), and plan it."""
        wall, monotonic, issued = self._clock.wall(), self._clock.monotonic(), found.token_set
        offset = clock_offset(issued.issued_at, found.age, wall)
        SKEW_WARNINGS.check(offset, self._policy.expiry_margin, monotonic)
        anchor = anchor_stored(
            issued.issued_at, found.age, wall=wall, monotonic=monotonic, asked=asked
        )
        token_set = issued.with_anchor(anchor)
        # How much younger the set may be than anchored: the time the answer took (a pause, a
        # slow store) and the write's transit, which may as well be its writer's clock behind.
        slack = max(0.0, monotonic - asked) + found.transit
        return Stored(token_set, found.version, plan(token_set, self._policy), slack=slack)

    def write(
        self, key: TokenKey, token_set: TokenSet, *, expected_version: int | None
    ) -> Awaitable[int]:
        """The store's compare-and-swap ``put``, with the set's next due time where the store
        keeps the refresh duty (written in the same atomic step as the set)."""
        if self._duty is None:
            return self.store.put(key, token_set, expected_version=expected_version)
        duty = cast(RefreshDuty, self.store)
        due_at = self.due_for(token_set)
        return duty.put(key, token_set, expected_version=expected_version, due_at=due_at)

    async def write_back(self, key: TokenKey, held: TokenSet, version: int) -> int:
        """Write ``held`` over the older set of its session the store holds at ``version`` (the
        store was rolled back); the new version.

        Raises:
            StoreConflictError: Someone wrote since.
            StoreError: The store failed.
        """
        logger.warning(
            "the store holds an older set of token set %s (rolled back?); writing ours back",
            key.hashed,
        )
        written = await self.call(self.write(key, held, expected_version=version))
        self.stats.reinstated += 1
        return written

    def due_at(self, token_set: TokenSet, draw: float | None = None) -> float | None:
        """When the refresh duty renews ``token_set``: wall-clock epoch seconds, or ``None``.

        Sets without a refresh token are not the duty's: they are client tokens, renewed by
        the process that uses them. Every set with one is due before its access token goes
        stale (jitter spreads a cohort; idleness does not apply, since no process knows
        whether another uses it) and, with keep-alive, before its refresh token runs out.

        Args:
            token_set: The set.
            draw: The jitter draw in ``[0, 1]`` (``None``: a random one); ``1.0`` gives the
                earliest time the set may be due.
        """
        if token_set.refresh_token is None or self._duty is None:
            return None
        share = self.draw() if draw is None else draw
        return scheduled_at(
            plan(token_set.with_anchor(_WALL), self._policy),
            now=-math.inf,
            jitter=share * self._duty.jitter,
            keep_alive=self._duty.keep_alive,
            idle=False,
        )

    def keep_due(self, token_set: TokenSet) -> float | None:
        """When ``token_set``'s refresh token must be renewed to stay alive (wall clock), or
        ``None``: the duty honours it whatever this process's keep-alive."""
        if token_set.refresh_token is None:
            return None
        due = plan(token_set.with_anchor(_WALL), self._policy).refresh_token_due_at
        return None if due == math.inf else due

    def due_for(self, token_set: TokenSet) -> float | None:
        """The due time a write stores with ``token_set``: :meth:`due_at`, except that a set
        already due when written (stale on arrival) is due ``min_interval`` later, not at once
        again and again."""
        due = self.due_at(token_set)
        now = self._clock.wall()
        if due is not None and due <= now:
            due = now + self._policy.min_interval
        self.wakeup.written(due)
        return due
