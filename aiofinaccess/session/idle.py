"""Idle users cost nothing on a store that keeps the refresh duty: serving processes stamp the
sets they use (:class:`UseStamper`), and the duty leaves the sets nobody used for
``Schedule.idle_after`` alone (:class:`IdleGate`) until they are used again.

* **Stamps.** The fresh path only notes ``entry.last_used`` in memory, as it always did. Every
  :func:`~aiofinaccess.core.idleness.stamp_every` seconds (an eighth of ``idle_after``) the
  stamper writes the uses noted since, one batch, as ages (seconds since the use on this
  process's monotonic clock): the store keeps them on its own clock, so no wall clock enters.
  At most one stamp per set per interval; one more batch when the manager closes.
* **The duty.** Before renewing a batch it claimed, the duty reads the batch's stamps (one
  call). A set idle past ``idle_after`` (plus the stamps' lag) leaves the duty (its due time is
  cleared: no renewal, no claim), or, with ``Schedule.keep_alive``, waits for its refresh
  token's keep-alive deadline. A set never stamped is renewed and counted as used now. If the
  stamps cannot be read, the batch's claims run out (without keep-alive; with it, the batch
  is renewed): never a renewal on a guess.
* **Coming back.** An idle user's next request renews on demand (one token request and one
  store write, which puts the set back on the duty), and the stamp of that use brings a set
  still off the duty back at once.
* **Crashes.** A process that dies loses at most one interval of uses: the duty judges a set
  idle only past ``idle_after`` plus one interval, so at worst an idle set is renewed once
  more; a set judged idle stays stored and renews on its next use.

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from typing import TYPE_CHECKING, cast

from ..core.clock import Clock
from ..core.errors import AiofinaccessError, StoreError
from ..core.idleness import Use, idle_due, stamp_every, unstamped_uses, use_of
from ..core.settings import Schedule
from ..core.tokens import TokenKey
from ..stores.protocol import RefreshDuty, UseStamps
from .hub import ManagerStats
from .registry import Entry, Registry
from .stopping import cancel_and_wait

if TYPE_CHECKING:
    from .access import StoreAccess

__all__ = ["IdleGate", "UseStamper"]

logger = logging.getLogger("aiofinaccess")


class _Outcome(enum.Enum):
    """What became of an idle set the duty claimed."""

    RENEW = "renew"  # renew it all the same (keep-alive due, or the renewal must report)
    LEFT = "left"  # left alone until used (or until keep-alive)
    NONE = "none"  # gone, or the store failed: its claim runs out


class UseStamper:
    """Writes the last use of the sets this process serves to the store, in batches.

    Args:
        access: The shared store (it keeps use stamps).
        registry: The entries whose ``last_used`` the fresh path notes.
        clock: ``last_used``'s monotonic clock, and the interval's sleep.
        idle_after: ``Schedule.idle_after`` (the interval is an eighth of it).
        stats: Counts the stamps written.
        last_within: Seconds the last batch may take at stop (``None``: the store timeout).
    """

    def __init__(
        self,
        *,
        access: StoreAccess,
        registry: Registry,
        clock: Clock,
        idle_after: float,
        stats: ManagerStats,
        last_within: float | None = None,
    ) -> None:
        self._access = access
        self._store = cast(UseStamps, access.store)
        self._registry = registry
        self._last_within = last_within
        self._clock = clock
        self._stats = stats
        #: Seconds between two batches.
        self.every = stamp_every(idle_after)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start stamping on the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="aiofinaccess-use-stamps"
            )

    async def stop(self) -> None:
        """Stop, after one last batch (a failure is logged; a batch cut short is lost, which
        costs at most one renewal per set, see the module)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._last_within):
                    await self.flush()

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self.every)
            await self.flush()

    async def flush(self) -> None:
        """Write the uses noted since the last batch, as one call; kept for the next batch if
        the store fails."""
        now = self._clock.monotonic()
        entries = [entry for entry in self._registry.hot() if _stampable(entry)]
        uses = unstamped_uses(((entry, entry.last_used, entry.stamped) for entry in entries), now)
        if not uses:
            return
        written = {entry: entry.last_used for entry in uses}
        try:
            await self._access.call(
                self._store.mark_used({entry.key: age for entry, age in uses.items()})
            )
        except StoreError as exc:
            logger.warning("stamping %d last uses failed (%s); trying again later", len(uses), exc)
            return
        for entry, used in written.items():
            entry.stamped = max(entry.stamped, used)
            self._registry.rest(entry)  # a set unused since: packed until asked for again
        self._stats.use_stamps += len(written)


def _stampable(entry: Entry) -> bool:
    """A set the duty renews (it has a refresh token) and this process used since its stamp."""
    token_set = entry.token_set
    return (
        token_set is not None
        and token_set.refresh_token is not None
        and entry.last_used > entry.stamped
    )


class IdleGate:
    """Sorts a batch the duty claimed: sets to renew, and idle sets it leaves alone here.

    Args:
        access: The shared store (it keeps the duty and use stamps).
        clock: The wall clock of keep-alive deadlines.
        schedule: ``idle_after`` (not ``None``) and ``keep_alive``.
        stats: Counts the sets left idle.
    """

    def __init__(
        self, *, access: StoreAccess, clock: Clock, schedule: Schedule, stats: ManagerStats
    ) -> None:
        assert schedule.idle_after is not None  # noqa: S101  (built only with one)
        self._access = access
        self._store = cast(UseStamps, access.store)
        self._duty = cast(RefreshDuty, access.store)
        self._clock = clock
        self._idle_after = schedule.idle_after
        self._keep_alive = schedule.keep_alive
        self._stats = stats

    async def sift(self, keys: list[TokenKey]) -> list[TokenKey]:
        """The claimed ``keys`` to renew. Idle ones are rescheduled here. If the stamps cannot
        be read, none is renewed: their claims run out and the stamps are read again then (a
        set used meanwhile renews on demand). Renewing them blind would cost an idle set one
        renewal per failed read, not one per idle stretch. With keep-alive all are renewed (a
        session is worth more than a renewal, and its idle sets are renewed anyway)."""
        if not keys:
            return keys
        try:
            idle = await self._access.call(self._store.idle_for(keys))
        except StoreError as exc:
            if self._keep_alive:
                logger.warning("reading last uses failed (%s); renewing the claimed sets", exc)
                return keys
            logger.warning(
                "reading last uses failed (%s); the claimed sets' claims run out, read again then",
                exc,
            )
            return []
        renew: list[TokenKey] = []
        unstamped: dict[TokenKey, float] = {}
        idle_keys: list[TokenKey] = []
        for key in keys:
            # A key gone from the store is the renewal's to find gone.
            use = use_of(idle[key], self._idle_after) if key in idle else Use.USED
            if use is Use.IDLE:
                idle_keys.append(key)
            else:
                renew.append(key)
                if use is Use.UNSTAMPED:
                    unstamped[key] = 0.0
        if unstamped:
            with contextlib.suppress(StoreError):  # still unstamped: judged so at its next claim
                await self._access.call(self._store.mark_used(unstamped))
        leaving = await asyncio.gather(*(self._leave(key) for key in idle_keys))
        outcomes = dict(zip(idle_keys, leaving, strict=True))
        await self._recheck([key for key, done in outcomes.items() if done is _Outcome.LEFT])
        return renew + [key for key, done in outcomes.items() if done is _Outcome.RENEW]

    async def _recheck(self, left: list[TokenKey]) -> None:
        """A use stamped between reading the stamps and leaving the set found the set still
        claimed, so it did not bring it back: read again, and make those used due now."""
        if not left:
            return
        try:
            again = await self._access.call(self._store.idle_for(left))
            now = self._clock.wall()
            for key in left:
                if key in again and use_of(again[key], self._idle_after) is not Use.IDLE:
                    await self._access.call(self._duty.reschedule(key, now))
        except StoreError:
            logger.warning("reading last uses again failed; a set used just now renews on demand")

    async def _leave(self, key: TokenKey) -> _Outcome:
        """Leave an idle set alone until it is used (or, with keep-alive, until its refresh
        token must be renewed)."""
        due, version = None, None
        if self._keep_alive:
            try:
                stored = await self._access.read(key)
            except AiofinaccessError:
                return _Outcome.RENEW  # the renewal reports it (another client's, a failing store)
            if stored is None:
                return _Outcome.NONE  # deleted meanwhile, with its due time
            now = self._clock.wall()
            due = idle_due(self._access.keep_due(stored.token_set), keep_alive=True, now=now)
            if due is not None and due <= now:
                return _Outcome.RENEW
            version = stored.version
        # Without keep-alive, at any version: a set written since the claim (its user came
        # back) is put back on the duty by the stamp of that use (or by the recheck).
        try:
            await self._access.call(self._duty.reschedule(key, due, expected_version=version))
        except StoreError:
            logger.warning("leaving idle token set %s failed; its claim runs out", key.hashed)
            return _Outcome.NONE
        self._stats.duty_idle += 1
        return _Outcome.LEFT
