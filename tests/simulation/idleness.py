"""Idle users (``features.idle_after``): the app's traffic per user, the simulated store's use
stamps (``stores.UseStamps``), and the invariants of idle sets.

Each user of an idle world is drawn (from a stream of its own) as active, idle for a while and
then back, or idle for good from some time on; the app makes no call for an idle user. A *use*
is an app call (or a login) for the user, on any process; the world records the last one.

* **I15** an idle set costs at most one renewal per stretch of idleness (session/idle.py: a
  stamp still on its way, a set never stamped), and one more for each process that booted or
  crashed meanwhile (its uses not yet stamped are lost) and each rollback (the stamps with it):
  a renewal accepted by the IdP counts as idle once the user has not been used for
  ``idle_after``, the stamps' lag (``stamp_every``) and the time a renewal decided before may
  take to reach the IdP (a lease, two token timeouts). Not in worlds that keep idle sessions
  alive (their refresh tokens run out, and keep-alive renews them: I16), nor without the duty
  (each process plans what it holds, and counts a set it restores at boot as used then);
  rotating sessions only (a finAPI refresh token is the same at every renewal);
* **I16** where the app keeps idle sessions alive (``keep_alive``, refresh tokens that run out),
  a set stays on the duty while its session lives: no due time of a set whose session is alive
  and whose stored refresh token is its current one is cleared (checked at every due-time
  write; at the end by I6). Elsewhere I6 excuses a set off the duty whose user was idle for
  ``idle_after`` since its write: the duty may have left it, and a crash may have lost the
  stamp that would have brought it back (its next renewal, on demand, does). Uses through a
  process with a bounded working set do not count there either: one that drops the entry
  before its next batch loses the use (open: the duty then leaves a set used just now, whose
  next request renews it on demand; seed 1124).

The refresh of a set whose session ended idle meanwhile is excused as before (idp.py).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from aiofinaccess.core.idleness import stamp_every
from aiofinaccess.core.tokens import TokenKey
from aiofinaccess.stores.protocol import check_uses
from tests.simulation.config import EPOCH
from tests.simulation.store import DutyStoreClient

if TYPE_CHECKING:
    from tests.simulation.app import Account
    from tests.simulation.idp import Session
    from tests.simulation.world import World


class StampingStoreClient(DutyStoreClient):
    """A duty store that keeps use stamps, as the real ones do (on the store's clock; a put
    leaves a stamp as it is, a delete removes it, a stamp makes an unscheduled set due now)."""

    async def mark_used(self, uses: Mapping[TokenKey, float]) -> None:
        checked = check_uses(uses)

        def effect() -> None:
            shared = self._shared
            now = shared.wall()
            for key, age in checked:
                if key not in shared.records:
                    continue
                shared.used[key] = max(shared.used.get(key, -math.inf), now - age)
                if key not in shared.due:
                    shared.due[key] = now
                    shared.due_written_at[key] = shared.now()

        await self._call(effect)

    async def idle_for(self, keys: Collection[TokenKey]) -> dict[TokenKey, float | None]:
        wanted = list(keys)

        def effect() -> dict[TokenKey, float | None]:
            shared = self._shared
            now = shared.wall()
            return {
                key: None if (at := shared.used.get(key)) is None else max(0.0, now - at)
                for key in wanted
                if key in shared.records
            }

        return await self._call(effect, fails_after=False)


class Traffic:
    """Who the app uses when, in an idle world, and the checks of I15 and I16."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.idle_after = world.features.idle_after
        #: Per account: the loop times between which the app does not use it (end: inf).
        self.away: dict[Account, tuple[float, float]] = {}
        self.last_use: dict[Account, float] = {}
        #: Per account: the loop time and process of every use.
        self.uses: dict[Account, list[tuple[float, int]]] = {}
        self.crashed: set[int] = set()
        #: Per account and its last use: the refresh tokens renewed while idle.
        self.renewed: dict[tuple[Account, float], set[str]] = {}
        self.boots: list[float] = []  # loop times of boots, crashes and rollbacks
        self.on = bool(self.idle_after)
        features = world.features
        self.kept_alive = world.config.keep_alive and bool(features.refresh_ttl)
        # Without the duty each process plans the sets it holds, and one that boots counts
        # each set it restores as used then: I15 is the duty's.
        self.duty = world.config.duty != "off"
        if not self.on:
            return
        rng = random.Random(f"{world.seed}:idle:users")
        duration = world.config.duration
        for account in world.accounts:
            kind = rng.choice(["active", "back", "gone", "gone"])
            if kind == "active":
                continue
            start = rng.uniform(0.05, 0.5) * duration
            end = math.inf
            if kind == "back":
                end = start + self.idle_after * rng.uniform(1.5, 4.0)
            self.away[account] = (start, end)

    def calls(self, account: Account) -> bool:
        """Whether the app calls for ``account`` now (it does not while the user is away)."""
        away = self.away.get(account)
        return away is None or not away[0] <= self.world.loop.time() < away[1]

    def use(self, account: Account, pid: int) -> None:
        """The app uses ``account`` now (a call or a login) through process ``pid``."""
        if self.on:
            now = self.world.loop.time()
            self.last_use[account] = now
            self.uses.setdefault(account, []).append((now, pid))

    def event(self, crashed: int | None = None) -> None:
        """A process booted (or ``crashed``), or the store rolled back: stamps may be lost."""
        self.boots.append(self.world.loop.time())
        if crashed is not None:
            self.crashed.add(crashed)

    def renewal(self, session: Session, presented: str) -> None:
        """The IdP accepted a refresh of ``session`` presenting ``presented`` (I15)."""
        if not self.on or self.kept_alive or not session.rotating or not self.duty:
            return
        world, account = self.world, session.account
        config = world.config
        last = self.last_use.get(account, 0.0)
        lag = stamp_every(self.idle_after) + config.lease_ttl + 2 * config.token_timeout + 2.0
        now = world.loop.time()
        if now - last <= self.idle_after + lag:
            return
        renewed = self.renewed.setdefault((account, last), set())
        renewed.add(presented)
        allowed = 1 + sum(1 for at in self.boots if at > last)
        if len(renewed) > allowed:
            world.violation(
                f"I15: {session.label} renewed {len(renewed)} times while idle since "
                f"t={last:.1f} ({allowed} allowed)"
            )

    def may_be_off_duty(self, key: TokenKey) -> bool:
        """Whether the duty may have left ``key``'s set (I6): its user was not used for
        ``idle_after`` at some time since its write, counting only the uses of processes that
        did not crash (a crash loses the uses not yet stamped)."""
        if not self.on or self.kept_alive or key.subject is None:
            return False
        stamp = self.world.store.stamps.get(key)
        written = -math.inf if stamp is None else stamp[1] - EPOCH  # loop time
        uses = self.uses.get((key.provider, key.subject), [])
        kept = sorted(at for at, pid in uses if self._stamps(pid))
        before = [at for at in kept if at <= written]
        points = [before[-1] if before else -math.inf]
        points += [at for at in kept if at > written] + [self.world.loop.time()]
        return any(b - a > self.idle_after for a, b in itertools.pairwise(points))

    def _stamps(self, pid: int) -> bool:
        """Whether the uses through ``pid`` reach the store: not if it crashed (its last
        uses), nor if its working set is bounded: an entry it drops before its next batch
        takes its use along (open, see the module)."""
        process = self.world.processes[pid - 1]
        return pid not in self.crashed and process.working_set is None

    def settle_wait(self) -> float:
        """How long the last stamps may take to land once faults stop."""
        return 2 * stamp_every(self.idle_after) if self.on else 0.0

    def due_cleared(self, key: TokenKey) -> None:
        """I16: a due time was cleared; not of a kept-alive set whose session lives."""
        if not self.on or not self.kept_alive:
            return
        from tests.simulation.invariants import stored_session  # noqa: PLC0415  (a cycle)

        world = self.world
        world.idp.expire_idle()
        session, refresh = stored_session(world, key)
        if session is not None and session.alive and session.current == refresh:
            world.violation(f"I16: the kept-alive set of {session.label} left the duty")
