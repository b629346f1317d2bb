"""Keeping a redeemed set until the store has it: the Persist step and its pending write; and
the Reinstate step, which writes a held set back over an older one of its session.

A redeemed set is the most valuable object in the process: it holds the only live refresh
token. It is written with compare-and-swap on the version it was redeemed from; until that
write succeeds no other renewal of the key starts, the lease is kept, and the write is
retried with backoff (never slower than the heartbeat) for as long as the set's refresh
token lives. Callers are never handed a token the store has not accepted: after
``RetryPolicy.attempts`` failed writes they get the
:class:`~aiofinaccess.core.errors.StoreError` while the job keeps trying; once stored, the
set is published with its events. A set the store can no longer take is abandoned
(:class:`~aiofinaccess.session.events.WriteAbandoned`).

Must never import: aiohttp, ``oauth``, ``api``, ``integrations``, ``cli`` or ``sandbox``; it
never sends a token request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..core.clock import Clock
from ..core.errors import StoreConflictError, StoreError
from ..core.lifecycle import RefreshPolicy, RetryPolicy, plan
from ..core.renewal_step import Stored, WriteFailed, superseded, worth_writing_until
from ..core.settings import Timeouts
from ..core.tokens import TokenSet
from .hub import EventHub, ManagerStats
from .jobs import Job, Outcomes
from .registry import Entry

if TYPE_CHECKING:
    from .access import StoreAccess
    from .publish import Publisher

__all__ = ["PendingWrites"]

logger = logging.getLogger("aiofinaccess")


class PendingWrites:
    """Writes a job's redeemed set, keeps it while the store fails, and publishes it.

    Args:
        access: The store: writes (with their due time), reads, bounded calls, jitter.
        publisher: Publishes a stored set.
        outcomes: Ends a job's outcome in failure.
        clock: Time and sleep.
        stats, hub: Counters and events.
        policy, retry: When sets go stale (and die); attempts and backoff.
        timeouts: The heartbeat (a write retry waits at most that long).
    """

    def __init__(
        self,
        *,
        access: StoreAccess,
        publisher: Publisher,
        outcomes: Outcomes,
        clock: Clock,
        stats: ManagerStats,
        hub: EventHub,
        policy: RefreshPolicy,
        retry: RetryPolicy,
        timeouts: Timeouts,
    ) -> None:
        self._access = access
        self._publisher = publisher
        self._outcomes = outcomes
        self._clock = clock
        self.stats = stats
        self._hub = hub
        self._policy = policy
        self._retry = retry
        self._heartbeat = timeouts.heartbeat

    async def persist(self, entry: Entry, run: Job) -> None:
        """The Persist step: write the redeemed set; once stored, publish it (``run.written``).
        A failed write is noted in ``run.write_error`` for the next step."""
        fresh = run.pending
        assert fresh is not None  # noqa: S101
        key = entry.key
        try:
            version = await self._access.call(
                self._access.write(key, fresh, expected_version=run.base_version)
            )
        except StoreConflictError:
            # Someone stored a set for this key meanwhile (a new login, or our own write
            # whose answer was lost): what the store holds wins; decide again from it.
            # Unless it is an older set of our session (the store was rolled back): the
            # redeemed set still holds the only live refresh token, so it goes over that.
            logger.warning("token set %s changed while renewing; reading it again", key.hashed)
            stored = await self._access.read(key)
            if stored is not None and superseded(stored.token_set, fresh):
                run.base_version = stored.version
                return
            run.pending = None
            entry.in_window = False
            run.stored = stored
            return
        except StoreError as exc:
            run.write_failures += 1
            run.write_error = exc
            return
        previous = None if run.stored is None else run.stored.token_set
        rotated = previous is not None and fresh.refresh_token not in (None, previous.refresh_token)
        run.pending = None
        entry.in_window = False
        entry.renewed_at = now = self._clock.monotonic()
        late_by = None if entry.token_set is None else now - entry.stale_at
        self._publisher.publish(entry, fresh, version, reissued=run.reissued)
        assert run.grant is not None  # noqa: S101
        from .events import Refreshed, Rotated  # noqa: PLC0415  (not on a first token's path)

        self._hub.emit(
            Refreshed(
                key.hashed,
                key.provider,
                run.grant.value,
                run.reason,
                version,
                subject=key.subject,
                late_by=late_by,
            )
        )
        if rotated:
            self.stats.rotations += 1
            self._hub.emit(Rotated(key.hashed, key.provider, version, subject=key.subject))
        logger.debug("token set %s renewed, version %d", key.hashed, version)
        deadlines = entry.deadlines
        assert entry.token_set is not None and deadlines is not None  # noqa: PT018, S101
        run.stored = Stored(entry.token_set, version, deadlines)
        run.written = True

    def pending_until(self, token_set: TokenSet) -> float:
        """When a redeemed set stops being worth writing (monotonic)."""
        return worth_writing_until(token_set, plan(token_set, self._policy))

    async def failed(
        self, entry: Entry, outcome: asyncio.Future[TokenSet], run: Job, step: WriteFailed
    ) -> None:
        """The WriteFailed step: fail the callers if told to; abandon the set and raise the
        store's error if it is no longer worth writing; else back off before the next write."""
        error, run.write_error = run.write_error, None
        assert error is not None and run.pending is not None  # noqa: PT018, S101
        if step.fail_callers:
            self._outcomes.fail(entry, outcome, error)
        if step.give_up:
            self.abandon(entry, run.pending)
            raise error
        logger.warning("storing token set %s failed; retrying", entry.key.hashed)
        wait = self._retry.backoff(run.write_failures, self._access.draw())
        # Never slower than the heartbeat: the lease protecting this set is only as good as
        # the store's availability, so write as soon as it is back.
        await self._clock.sleep(min(max(wait, self._retry.initial), self._heartbeat))

    async def reinstate(self, entry: Entry, run: Job) -> None:
        """The Reinstate step: write the held set back over the older one of its session the
        store holds (it was rolled back), at the stored version; a conflict means someone
        wrote since: decide again from what the store holds now."""
        held, stored, key = entry.token_set, run.stored, entry.key
        assert held is not None and stored is not None  # noqa: PT018, S101  (Reinstate needs both)
        try:
            version = await self._access.write_back(key, held, stored.version)
        except StoreConflictError:
            run.stored = await self._access.read(key)
            return
        entry.version = version
        run.stored = Stored(held, version, plan(held, self._policy))

    def abandon(self, entry: Entry, unwritten: TokenSet) -> None:
        """Give up on an unwritten set: an ERROR and a ``WriteAbandoned`` event when its
        refresh token was spent to get it."""
        key = entry.key
        if unwritten.refresh_token is None:
            # Nothing was spent to get it (a client token): the next renewal gets another.
            logger.debug("token set %s was renewed but not stored; it is dropped", key.hashed)
            return
        logger.error(
            "token set %s was renewed but could not be stored; its session may be lost",
            key.hashed,
        )
        from .events import WriteAbandoned  # noqa: PLC0415  (not on a first token's path)

        self._hub.emit(WriteAbandoned(key.hashed, key.provider, subject=key.subject))
