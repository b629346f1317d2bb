"""The renewal driver: carries out the steps the pure renewal step
(:func:`~aiofinaccess.core.renewal_step.next_step`) decides, and nothing else.

Every renewal, whoever asks for it (a caller, a 401, the scheduler, the duty), is one *job* per
token set (single flight); callers await its *outcome*, a future shielded from their own
cancellation, so a caller that goes away cannot abort a request that was sent. The fence is in
:mod:`~aiofinaccess.session.fence`, the Redeem step in :mod:`~aiofinaccess.session.redeem`, the
Persist and Reinstate steps in :mod:`~aiofinaccess.session.writes`.

Must never import: aiohttp (the token endpoint is a
:class:`~aiofinaccess.session.redeem.TokenEndpoint`), ``api``, ``integrations``, ``cli`` or
``sandbox``. The Redeem step's module loads with the first token request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..core.clock import Clock
from ..core.errors import (
    ReauthorizationRequired,
    StoreConflictError,
    StoreError,
    TransportError,
)
from ..core.lifecycle import Event, RefreshPolicy, RetryPolicy, Status, transition
from ..core.renewal_step import (
    Adopt,
    Deliver,
    ExtendLease,
    Late,
    Persist,
    Poison,
    Redeem,
    Reinstate,
    Situation,
    Step,
    Stored,
    TakeLease,
    WaitUntil,
    WriteFailed,
    next_step,
)
from ..core.settings import Timeouts
from ..core.tokens import TokenSet
from .fence import Fence
from .hub import EventHub, ManagerStats
from .jobs import Job, Outcomes, cancelled, retrieve
from .registry import Entry, Registration, Registry
from .writes import PendingWrites

if TYPE_CHECKING:
    from .access import StoreAccess
    from .lifetime import OwnedTasks
    from .planning import Planner
    from .publish import Publisher
    from .redeem import Redeemer, TokenEndpoint

__all__ = ["RenewalDriver"]

logger = logging.getLogger("aiofinaccess")

_NEG_INF = float("-inf")


class RenewalDriver:
    """Runs renewal jobs for the entries of a :class:`~aiofinaccess.session.registry.Registry`.

    Args:
        registry: Providers and entries.
        access: The store.
        publisher: Publishes what a job stored or adopted.
        planner: Plans an entry's next renewal (after a failure, or a finishing job).
        clock: Time and sleep.
        endpoint: Gives the token endpoint of a provider name.
        owned: Starts the jobs as tasks the manager owns (drained on close).
        stats, hub: Counters and events.
        policy, retry: When sets go stale; retries and backoff.
        timeouts: The token exchange, the lease and their margins.
        concurrency: Token requests in flight per token endpoint.
    """

    def __init__(
        self,
        *,
        registry: Registry,
        access: StoreAccess,
        publisher: Publisher,
        planner: Planner,
        clock: Clock,
        endpoint: Callable[[str], TokenEndpoint],
        owned: OwnedTasks,
        stats: ManagerStats,
        hub: EventHub,
        policy: RefreshPolicy,
        retry: RetryPolicy,
        timeouts: Timeouts,
        concurrency: int,
    ) -> None:
        self._registry = registry
        self._access = access
        self._publisher = publisher
        self._planner = planner
        self._clock = clock
        self._owned = owned
        self._retry = retry
        self._outcomes = Outcomes(
            clock=clock, planner=planner, stats=stats, hub=hub, retry=retry, access=access
        )
        self._endpoint = endpoint
        self._stats = stats
        self._timeouts = timeouts
        self._concurrency = concurrency
        self._fence = Fence(access=access, clock=clock, timeouts=timeouts)
        self._writes = PendingWrites(
            access=access,
            publisher=publisher,
            outcomes=self._outcomes,
            clock=clock,
            stats=stats,
            hub=hub,
            policy=policy,
            retry=retry,
            timeouts=timeouts,
        )

    @functools.cached_property
    def _redeemer(self) -> Redeemer:
        # Built for the first token request: a set adopted from the store needs none.
        from .redeem import Redeemer  # noqa: PLC0415

        return Redeemer(
            endpoint=self._endpoint,
            fence=self._fence,
            access=self._access,
            clock=self._clock,
            stats=self._stats,
            retry=self._retry,
            token_timeout=self._timeouts.token,
            max_concurrent=self._concurrency,
        )

    # -- starting and ending jobs --------------------------------------------------------------

    def start(
        self,
        entry: Entry,
        *,
        rejected: str | None = None,
        forced: bool = False,
        reason: str = "on_demand",
        read: Stored | None = None,
    ) -> asyncio.Future[TokenSet]:
        """The outcome of the entry's renewal job, starting one if none runs.

        ``read``: what the caller read from the store for the entry just now (the refresh
        duty does, for the set it claimed); a job started here decides from it instead of
        reading the store again before it takes the lease (it reads again under the lease).
        """
        outcome_now = entry.outcome
        if entry.job is not None and outcome_now is not None:
            finishing = outcome_now.done() and not outcome_now.cancelled()
            if not (finishing and outcome_now.exception() is None):
                return outcome_now  # running, or failed while its write is still retried
            # It succeeded and is only letting go of its lease: whoever asks again now (a
            # token it produced was just refused) needs a renewal of its own.
        outcome: asyncio.Future[TokenSet] = asyncio.get_running_loop().create_future()
        outcome.add_done_callback(retrieve)
        status = transition(entry.status, Event.REFRESH_STARTED)
        run = Job(rejected=rejected, forced=forced, reason=reason, stored=read)
        job = self._owned.spawn(self._job(entry, outcome, run))
        entry.status = status
        entry.outcome = outcome
        entry.job = job
        job.add_done_callback(lambda _task: self._job_done(entry, job))
        return outcome

    def _job_done(self, entry: Entry, job: asyncio.Task[None]) -> None:
        if entry.job is job:
            entry.job = None
            entry.in_window = False
        if entry.rearm:
            entry.rearm = False
            self._planner.schedule(entry, None)
        if (
            entry.token_set is None
            and entry.reauth is not None
            and entry.reauth.reason == ("no_token_set")
            and not entry.vanished
        ):
            # Nothing stored for a key this process never held (a probe of an unknown user):
            # keep no trace. A login stored later by any process is found on the next call
            # either way (a refused entry reads the store once per call).
            self._registry.prune(entry)

    # -- the job -------------------------------------------------------------------------------

    async def _job(self, entry: Entry, outcome: asyncio.Future[TokenSet], run: Job) -> None:
        try:
            if run.stored is None:
                run.stored = await self._access.read(entry.key)
            await self._drive(entry, outcome, run)
        except asyncio.CancelledError as exc:
            if not cancelled():
                # Nobody cancelled this job: a library raised CancelledError of its own (as
                # redis-py's wait_for can on 3.11). A failure, not an end: callers get it typed.
                logger.debug("renewal of token set %s met a stray cancellation", entry.key.hashed)
                if run.pending is not None:
                    self._writes.abandon(entry, run.pending)
                if not outcome.done():
                    error = StoreError("a call inside the renewal was cancelled; nobody asked")
                    error.__cause__ = exc
                    self._outcomes.fail(entry, outcome, error)
                return
            logger.debug("renewal of token set %s cancelled", entry.key.hashed)
            if run.pending is not None:
                self._writes.abandon(entry, run.pending)
            if not outcome.done():
                outcome.cancel()
            if entry.status is Status.REFRESHING and entry.job is asyncio.current_task():
                # Never leave the entry renewing with no job: the next call starts one.
                entry.status = transition(entry.status, Event.REFRESH_FAILED)
            raise
        except BaseException as exc:
            logger.debug("renewal of token set %s ended: %r", entry.key.hashed, exc)
            if not outcome.done():
                self._outcomes.fail(entry, outcome, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            await self._fence.drop(run)

    async def _drive(self, entry: Entry, outcome: asyncio.Future[TokenSet], run: Job) -> None:
        registration = self._registry.registration(entry.key.provider)
        while True:
            now = self._clock.monotonic()
            step = next_step(self._situation(entry, outcome, run, registration, now))
            if isinstance(step, Adopt):
                assert run.stored is not None  # noqa: S101  (Adopt needs a stored set)
                self._publisher.adopt(entry, run.stored)
                outcome.set_result(run.stored.token_set)
                return
            if isinstance(step, Deliver):
                assert run.stored is not None  # noqa: S101  (what was written)
                if not outcome.done():
                    outcome.set_result(run.stored.token_set)
                return
            await self._carry_out(step, entry, outcome, run, registration=registration, now=now)

    def _situation(
        self,
        entry: Entry,
        outcome: asyncio.Future[TokenSet],
        run: Job,
        registration: Registration,
        now: float,
    ) -> Situation:
        key = entry.key
        holds_version = run.stored is not None and run.stored.version == entry.version
        deadlines = entry.deadlines if holds_version else None
        write_failed = run.write_error is not None and run.pending is not None
        return Situation(
            now=now,
            stored=run.stored,
            known_version=entry.version,
            held=entry.token_set,
            rejected=run.rejected,
            forced=run.forced,
            background=run.reason == "scheduled",
            is_client=key.is_client,
            can_use_password=registration.password_lookup is not None,
            refresh_failed=run.refresh_failed,
            dead_grant=run.dead_grant,
            renew_not_before=_NEG_INF if deadlines is None else deadlines.renew_not_before,
            lease_left=None if run.lease is None else run.lease.remaining(),
            pending=run.pending is not None,
            write_failed=write_failed,
            write_failures=run.write_failures,
            write_attempts=self._retry.attempts,
            callers_waiting=not outcome.done(),
            pending_until=(
                self._writes.pending_until(run.pending)
                if write_failed and run.pending is not None
                else math.inf
            ),
            written=run.written,
            late_answers=run.late_answers,
        )

    async def _carry_out(
        self,
        step: Step,
        entry: Entry,
        outcome: asyncio.Future[TokenSet],
        run: Job,
        *,
        registration: Registration,
        now: float,
    ) -> None:
        if isinstance(step, Persist):
            await self._writes.persist(entry, run)
        elif isinstance(step, WriteFailed):
            await self._writes.failed(entry, outcome, run, step)
        elif isinstance(step, Late):
            if not step.again:
                raise TransportError(
                    "the provider answered after the new token's own expiry", request_sent=True
                )
            run.late_answers += 1  # one more round: the lease is still ours
            run.written = False
        elif isinstance(step, Reinstate):
            await self._writes.reinstate(entry, run)
        elif isinstance(step, Poison):
            await self._poison(entry, run, step.reason)
        elif isinstance(step, WaitUntil):
            await self._clock.sleep(step.at - now)
        elif isinstance(step, TakeLease):
            await self._fence.take(entry.key, run)
        elif isinstance(step, ExtendLease):
            await self._fence.extend(run)
        elif isinstance(step, Redeem):
            await self._redeemer.redeem(entry, registration, run, step.grant)

    async def _poison(self, entry: Entry, run: Job, reason: str) -> None:
        key = entry.key
        if run.dead_grant is not None and run.stored is not None:
            # Delete the dead set, but only the version we redeemed: anything newer is a new
            # login or another process's renewal, to be adopted rather than destroyed.
            try:
                await self._access.call(
                    self._access.store.delete(key, expected_version=run.stored.version)
                )
            except StoreConflictError:
                run.stored = await self._access.read(key)
                run.dead_grant = run.dead_cause = None
                run.refresh_failed = False
                return
            except StoreError:
                logger.warning("could not delete the dead token set %s", key.hashed)
            entry.dead_version = run.stored.version
        elif reason == "no_token_set":
            # The set this process held is gone (another process found its grant dead, or the
            # app forgot it there): one report here, then refused until a login is stored
            # (seed 2250: one report per call, while the new login was still on its way).
            entry.vanished = entry.token_set is not None
        elif reason == "refresh_token_unavailable" and run.stored is not None:
            # Its access token may still serve, so the set is adopted again and renewed again:
            # one report per stored version, not one per renewal (issue 22, finding 13).
            entry.reauth_repeated = entry.ran_out_version == run.stored.version
            entry.ran_out_version = run.stored.version
        raise ReauthorizationRequired(
            key.hashed, reason, run.dead_cause, provider=key.provider, subject=key.subject
        )
