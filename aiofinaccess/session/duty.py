"""The refresh duty: renew the token sets a shared store says are due, one worker per set.

On a store that keeps the refresh duty (:class:`~aiofinaccess.stores.RefreshDuty`), every write
stores the set's next due time with it, and each process with the duty runs one
:class:`DutyLoop`: it claims batches of due sets it can renew (its own clients' only; the store
pushes each claimed due time to the claim deadline, so a worker that dies leaves its claims to
fall due again), renews each through the renewal driver (whose Persist step writes the next due
time), and between claims lets due sets gather for about ``Duty.gather`` seconds, at most
``Duty.poll``. A failed renewal is left to its claim deadline, which is its retry; a dead set
leaves the duty once. A claimant never postpones a set past its refresh token's keep-alive
deadline, whatever its own ``Schedule.keep_alive``.

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
import secrets
import socket
from typing import TYPE_CHECKING, cast

from ..core.clock import Clock
from ..core.errors import (
    AiofinaccessError,
    ClientMismatchError,
    ReauthorizationRequired,
    StoreError,
)
from ..core.lifecycle import retry_due
from ..core.renewal_step import Stored
from ..core.settings import Duty
from ..core.tokens import TokenKey
from ..stores.protocol import RefreshDuty
from .hub import ManagerStats
from .registry import Registry
from .stopping import cancel_and_wait

if TYPE_CHECKING:
    from .access import StoreAccess
    from .idle import IdleGate
    from .lifetime import OwnedTasks
    from .publish import Publisher
    from .renewal import RenewalDriver

__all__ = ["DutyLoop", "worker_id"]

logger = logging.getLogger("aiofinaccess")
#: Seconds between warnings about dropped due entries.
_WARN_EVERY = 60.0
#: Other clients' sets remembered (bounded) to log each once and back off its give-backs.
_OTHER_CLIENTS = 4096


def worker_id() -> str:
    """An owner name for claims: host, process id and a random suffix (informational)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class DutyLoop:
    """Claims due token sets from a :class:`~aiofinaccess.stores.RefreshDuty` store and renews
    each through the renewal driver.

    Args:
        access: The shared store (it keeps the duty), due times and the jitter draw.
        registry, driver, publisher, clock, owned, stats: The manager's parts.
        settings: Batch, poll and gather.
        claim_for: Seconds a claim lasts (must cover one renewal).
        concurrency: Renewals the duty runs at once.
        idle: Leaves the idle sets of a claimed batch alone (``None``: renews them all).
    """

    def __init__(
        self,
        *,
        access: StoreAccess,
        registry: Registry,
        driver: RenewalDriver,
        publisher: Publisher,
        clock: Clock,
        owned: OwnedTasks,
        stats: ManagerStats,
        settings: Duty,
        claim_for: float,
        concurrency: int,
        idle: IdleGate | None = None,
    ) -> None:
        self._idle = idle
        self._access = access
        self._store = cast(RefreshDuty, access.store)
        self._registry = registry
        self._driver = driver
        self._publisher = publisher
        self._clock = clock
        self._owned = owned
        self._wakeup = access.wakeup
        #: This worker's name in claims.
        self.owner = worker_id()
        self._batch = settings.batch
        self._claim_for = claim_for
        self._gather = settings.gather
        self._poll = settings.poll
        self._concurrency = concurrency
        self._running: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._stats = stats
        self._warned_at = -math.inf
        self._unreported = 0
        #: Other clients' sets this worker gave back, and how often.
        self._given_back: collections.OrderedDict[TokenKey, int] = collections.OrderedDict()

    def start(self) -> None:
        """Start claiming on the running loop (idempotent)."""
        if self._task is None:
            self._wakeup.arm()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="aiofinaccess-refresh-duty"
            )

    async def stop(self) -> None:
        """Stop claiming; renewals already started are the manager's to finish (drained)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def _run(self) -> None:
        stats = self._stats
        while True:
            free = self._concurrency - len(self._running)
            if free <= 0:
                await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)
                continue
            limit = min(self._batch, free)
            clients = self._registry.client_keys()
            if not clients:  # nothing registered yet: nothing this process could renew
                await self._sleep(self._poll)
                continue
            try:
                keys = await self._access.call(
                    self._store.claim_due(
                        limit=limit, claim_for=self._claim_for, owner=self.owner, clients=clients
                    )
                )
            except StoreError as exc:
                logger.warning("claiming due token sets failed (%s); trying again", exc)
                await self._clock.sleep(self._poll)
                continue
            dropped = getattr(keys, "dropped", 0)
            if dropped:
                self._dropped(dropped)
            stats.duty_claimed += len(keys)
            claim_ends = self._clock.wall() + self._claim_for
            for key in keys if self._idle is None else await self._idle.sift(keys):
                task = self._owned.spawn(self._renew(key, claim_ends))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            if len(keys) + dropped < limit:
                self._wakeup.clear()  # a due time written from now on wakes the sleep below
                await self._sleep(await self._pause(found=bool(keys), clients=clients))

    def _dropped(self, count: int) -> None:
        """Count due entries a claim dropped; warn at most once a :data:`_WARN_EVERY` seconds
        (a backlog of junk is dropped over many claims), with the number since the last."""
        self._stats.duty_dropped += count
        self._unreported += count
        now = self._clock.monotonic()
        if now >= self._warned_at + _WARN_EVERY:
            logger.warning(
                "dropped %d due entries that no worker can renew (malformed keys, or sets that "
                "are gone; stats.duty_dropped counts them all)",
                self._unreported,
            )
            self._warned_at, self._unreported = now, 0

    async def _pause(self, *, found: bool, clients: list[TokenKey]) -> float:
        """Seconds to let due sets gather before the next claim, at most ``poll``.

        After a claim that found sets, more are likely due soon: no need to ask the store.
        """
        gather = self._gather * (0.5 + self._access.draw())
        if found:
            return min(self._poll, gather)
        try:
            next_due = await self._access.call(self._store.next_due(clients=clients))
        except StoreError:
            return self._poll
        if next_due is None:
            return self._poll
        return min(self._poll, max(0.0, next_due - self._clock.wall()) + gather)

    async def _sleep(self, seconds: float) -> None:
        await self._wakeup.sleep(self._clock, seconds)

    async def _renew(self, key: TokenKey, claim_ends: float) -> None:
        if not self._registry.serves(key):
            # The store's claim filters by the clients we named; a store that does not would
            # hand out another client's set (renewed with our credentials) or another
            # provider's: left to its claim deadline, for the worker that can renew it.
            logger.warning(
                "a claimed token set %s is not one this process can renew; its claim runs out",
                key.hashed,
            )
            return
        # The app's entry, if any: one the duty makes (even after a forget pruned the app's
        # while the set was read) is dropped afterwards, since no caller holds it.
        held = self._registry.find(key.provider, key.subject)
        version: list[int] = []  # the version read, once read
        read: list[Stored] = []  # and the set, once known to be this client's
        try:
            await self._renew_claimed(key, version, read)
        except ClientMismatchError as exc:
            await self._give_back(key, exc, version[0] if version else None)
        except ReauthorizationRequired:
            # Dead: a dead grant's set was deleted by the driver (at its version), which
            # cleared its due time; a set whose refresh token ran out is kept (its access
            # token serves until it expires) but leaves the duty here, at the version read, so
            # a login stored since keeps its own due time. One claim, one event.
            if read:
                await self._reschedule(key, None, expected_version=read[0].version)
        except AiofinaccessError as exc:
            logger.warning(
                "renewing due token set %s failed (%s); due again when its claim runs out, or "
                "sooner if its refresh token runs out first",
                key.hashed,
                type(exc).__name__,
            )
            if read and (dead := read[0].token_set.refresh_expires_at_monotonic()) is not None:
                stored, now = read[0], self._clock.wall()  # its end, by its anchor, on our wall
                due = retry_due(now, claim_ends, now + dead - self._clock.monotonic())
                if due < claim_ends:
                    await self._reschedule(key, due, expected_version=stored.version)
        finally:
            entry = self._registry.find(key.provider, key.subject)
            # (Not the app's entry gone to rest and unpacked meanwhile.)
            if entry is not None and entry is not held and (held is None or entry.duty_made):
                if entry.job is not None:  # it is letting go of its lease
                    await asyncio.wait([entry.job])
                self._registry.drop(entry)  # the duty keeps no set it is not serving

    async def _renew_claimed(self, key: TokenKey, version: list[int], read: list[Stored]) -> None:
        asked = self._clock.monotonic()
        found = await self._access.call(self._access.store.get(key))
        if found is None:
            return  # deleted meanwhile: the delete cleared its due time
        version.append(found.version)
        mismatch = self._registry.mismatch(key, found.token_set)
        if mismatch is not None:
            raise mismatch  # another client's: given back at the version read
        stored = self._access.anchored(found, asked)
        read.append(stored)
        # Due by this process's policy, or by keep-alive (its refresh token's deadline): a
        # keep-alive writer scheduled it so, and a claimant without keep_alive must not
        # postpone it past the refresh token's end.
        access = self._access
        earliest = _first(access.due_at(stored.token_set, 1.0), access.keep_due(stored.token_set))
        if earliest is None or earliest > self._clock.wall():
            # Renewed by another process since it fell due: its due time comes from the set,
            # never later than its refresh token's deadline.
            self._stats.duty_renewed_elsewhere += 1
            due = _first(access.due_at(stored.token_set, None), access.keep_due(stored.token_set))
            await self._reschedule(key, due)
            return
        entry = self._registry.entry(key, for_duty=True)
        if entry.job is None and entry.version != stored.version and entry.token_set is None:
            # Only into an empty entry: a set this process holds is the driver's to compare
            # with the store (a rolled-back store's older set is written over, never adopted).
            self._publisher.publish(entry, stored.token_set, stored.version)
        self._stats.scheduled_renewals += 1
        await asyncio.shield(self._driver.start(entry, reason="scheduled", read=stored))

    async def _give_back(
        self, key: TokenKey, error: ClientMismatchError, version: int | None
    ) -> None:
        """Another client's user set (same provider name, same store): never renewed here.
        Its claim is given back, due at once the first time (that client's worker takes it
        without waiting out the claim), then later each time this worker claims it again (its
        client's workers may be down: no busy loop over sets nobody here can renew)."""
        self._stats.duty_other_client += 1
        times = self._given_back.pop(key, 0)
        self._given_back[key] = times + 1
        if len(self._given_back) > _OTHER_CLIENTS:
            self._given_back.popitem(last=False)
        if times == 0:
            logger.warning(
                "due token set %s was issued to client %r, not this worker's %r: given back for "
                "that client's workers (one store, two clients under one provider name?)",
                key.hashed,
                error.issued_to,
                error.client_id,
            )
        delay = 0.0 if times == 0 else min(self._poll * 2 ** (times - 1), self._claim_for)
        # At the version read: a set written since carries its own due time.
        await self._reschedule(key, self._clock.wall() + delay, expected_version=version)

    async def _reschedule(
        self, key: TokenKey, due_at: float | None, *, expected_version: int | None = None
    ) -> None:
        try:
            await self._access.call(
                self._store.reschedule(key, due_at, expected_version=expected_version)
            )
        except StoreError:
            logger.warning("rescheduling token set %s failed; its claim runs out", key.hashed)


def _first(*times: float | None) -> float | None:
    """The earliest of the given due times (``None``: never)."""
    return min((at for at in times if at is not None), default=None)
