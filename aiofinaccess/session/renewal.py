"""The renewal driver: carries out the steps the pure renewal step decides, and nothing else.

Theory of operation
-------------------
Every renewal, whoever asks for it (a caller, a 401, the scheduler), is one *job* per token
set (single flight). Callers await the job's *outcome*, a future shielded from their own
cancellation, so a caller that goes away cannot abort a request that was sent. The job loops:
read what it needs, ask :func:`~aiofinaccess.core.renewal_step.next_step`, carry the step out:

* **Adopt / Reinstate / Poison / WaitUntil** - publish a stored set; write the held set back
  over an older one of its session (a store rolled back); delete a dead one at the version
  that was redeemed (a conflict means someone stored a newer set: read it and decide again);
  sleep.
* **TakeLease / ExtendLease** - the fence. A refresh is sent only while this job holds the
  store's lease with at least the whole token exchange (``token_timeout``) plus a margin
  left; once an endpoint slot is held the job checks and extends it by owner token, a last
  check where the request leaves (:mod:`~aiofinaccess.core.fencing`) stops a send a pause
  made late, and a heartbeat extends it while the job waits (endpoint slots, backoff, a
  password lookup, a slow write). A lease that turns out lost (or lapsed) is dropped, taken
  again, and the store read again; the third send the last check stops in one job fails
  its callers (:class:`~aiofinaccess.core.errors.PausedBeforeSendError`).
* **Redeem** - one token request, under a per-endpoint cap. Connect errors and 429/503 are
  retried with backoff; an ambiguous failure of a rotating refresh (sent, no answer) only
  once. A refused refresh token falls back to the password grant when the app supplies
  passwords.
* **Persist** - a redeemed set is the most valuable object in the process: it holds the
  only live refresh token. It is written with compare-and-swap on the version it was
  redeemed from; until that write succeeds no other renewal of the key starts, the lease is
  kept, and the write is retried with backoff for as long as the set's refresh token lives.
  Callers are never handed a token the store has not accepted: after ``RetryPolicy.attempts``
  failed writes they get :class:`~aiofinaccess.core.errors.StoreError` while the job keeps
  trying in the background; once stored, the set is published.

All I/O (store, token endpoint, clock) sits behind the objects the driver is given.

Where each part lives: this module holds the driver itself (starting and ending jobs, reading
and publishing, the step loop, the Poison step, store calls); the fence in
:mod:`~aiofinaccess.session.fence`, the Redeem step in :mod:`~aiofinaccess.session.redeem`,
the Persist and Reinstate steps in :mod:`~aiofinaccess.session.writes`, a job's state, failed
outcomes and bounded store calls in :mod:`~aiofinaccess.session.jobs`.

Must never import: aiohttp (the token endpoint is a
:class:`~aiofinaccess.session.redeem.TokenEndpoint`), ``api``, ``integrations``, ``cli`` or
``sandbox``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast

from ..core.clock import SKEW_WARNINGS, Clock, anchor_stored, clock_offset
from ..core.errors import ReauthorizationRequired, StoreConflictError, StoreError
from ..core.lifecycle import Event, RefreshPolicy, RetryPolicy, Status, plan, transition
from ..core.renewal_step import (
    Adopt,
    ExtendLease,
    Persist,
    Poison,
    Redeem,
    Reinstate,
    Situation,
    Stored,
    TakeLease,
    WaitUntil,
    next_step,
)
from ..core.settings import Timeouts
from ..core.tokens import Anchor, TokenKey, TokenSet
from ..stores import RefreshDuty, TokenStore, Versioned
from .events import EventHub, ManagerStats, Refreshed
from .fence import Fence
from .jobs import Job, Outcomes, bounded, cancelled, retrieve
from .redeem import Redeemer, TokenEndpoint
from .registry import Entry, Registry
from .writes import PendingWrites

__all__ = ["RenewalDriver", "TokenEndpoint"]

logger = logging.getLogger("aiofinaccess")

_T = TypeVar("_T")
_NEG_INF = float("-inf")


class RenewalDriver:
    """Runs renewal jobs for the entries of a :class:`~aiofinaccess.session.registry.Registry`.

    Args:
        registry: Providers and entries.
        store: Where token sets persist.
        clock: Time and sleep.
        endpoint: Gives the token endpoint of a provider name.
        spawn: Starts a task the manager owns (drained on close).
        schedule: Asks the scheduler to renew an entry (at a monotonic time, or per its
            deadlines when ``None``).
        stats, hub: Counters and events.
        policy, retry: When sets go stale; retries and backoff.
        timeouts: The token exchange, lease and store call.
        concurrency: Token requests in flight per token endpoint.
        due_at_for: On a store that keeps the refresh duty: the due time every write stores
            with a set (see :meth:`write`); ``None`` for other stores.
    """

    def __init__(
        self,
        *,
        registry: Registry,
        store: TokenStore,
        clock: Clock,
        endpoint: Callable[[str], TokenEndpoint],
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        schedule: Callable[[Entry, float | None], None],
        stats: ManagerStats,
        hub: EventHub,
        policy: RefreshPolicy,
        retry: RetryPolicy,
        timeouts: Timeouts,
        concurrency: int,
        due_at_for: Callable[[TokenSet], float | None] | None = None,
    ) -> None:
        self._registry = registry
        self._store = store
        self._clock = clock
        self._spawn = spawn
        self._schedule = schedule
        self.stats = stats
        self._hub = hub
        self.policy = policy
        self._store_timeout = timeouts.store
        self._random = random.Random()  # noqa: S311  (jitter, not secrets)
        self._due_at_for = due_at_for
        # The parts, each drawing its jitter from the one seedable source above.
        self._outcomes = Outcomes(
            clock=clock, schedule=schedule, stats=stats, hub=hub, retry=retry, draw=self.draw
        )
        self._fence = Fence(
            store=store,
            clock=clock,
            read=self.read,
            store_call=self.store_call,
            timeouts=timeouts,
        )
        self._redeemer = Redeemer(
            endpoint=endpoint,
            fence=self._fence,
            read=self.read,
            clock=clock,
            draw=self.draw,
            stats=stats,
            retry=retry,
            token_timeout=timeouts.token,
            max_concurrent=concurrency,
        )
        self._writes = PendingWrites(
            write=self.write,
            store_call=self.store_call,
            read=self.read,
            publish=self.publish,
            fail=self._outcomes.fail,
            clock=clock,
            draw=self.draw,
            stats=stats,
            hub=hub,
            policy=policy,
            retry=retry,
            timeouts=timeouts,
        )

    @property
    def endpoint(self) -> Callable[[str], TokenEndpoint]:
        """Gives the token endpoint of a provider name."""
        return self._redeemer.endpoint

    @endpoint.setter
    def endpoint(self, endpoint: Callable[[str], TokenEndpoint]) -> None:
        self._redeemer.endpoint = endpoint

    # -- starting and ending jobs --------------------------------------------------------------

    def start(
        self,
        entry: Entry,
        *,
        rejected: str | None = None,
        forced: bool = False,
        reason: str = "on_demand",
    ) -> asyncio.Future[TokenSet]:
        """The outcome of the entry's renewal job, starting one if none runs."""
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
        run = Job(rejected=rejected, forced=forced, reason=reason)
        job = self._spawn(self._job(entry, outcome, run))
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
            self._schedule(entry, None)
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

    # -- reading and publishing ----------------------------------------------------------------

    async def read(self, key: TokenKey) -> Stored | None:
        """Read ``key`` from the store and anchor it: a stored set's age counts from its wall
        clock instants, read against this process's clocks now.

        Raises:
            ClientMismatchError: The stored set was issued to another client: never used,
                adopted or renewed here (nothing is sent for it).
        """
        asked = self._clock.monotonic()
        found = await self.store_call(self._store.get(key))
        if found is None:
            return None
        error = self._registry.mismatch(key, found.token_set)
        if error is not None:
            raise error
        return self.anchored(found, asked)

    def anchored(self, found: Versioned, asked: float | None = None) -> Stored:
        """Anchor a stored set by the age the store measured (from ``asked``, the monotonic
        reading before the store was asked), else at this moment, and plan it."""
        wall, monotonic, issued = self._clock.wall(), self._clock.monotonic(), found.token_set
        offset = clock_offset(issued.issued_at, found.age, wall)
        SKEW_WARNINGS.check(offset, self.policy.expiry_margin, monotonic)
        anchor = anchor_stored(
            issued.issued_at, found.age, wall=wall, monotonic=monotonic, asked=asked or monotonic
        )
        token_set = issued.with_anchor(anchor)
        slack = 0.0 if asked is None else max(0.0, monotonic - asked)  # a pause, a slow store
        return Stored(token_set, found.version, plan(token_set, self.policy), slack=slack)

    def publish(
        self, entry: Entry, token_set: TokenSet, version: int, *, reissued: bool = False
    ) -> None:
        """Make ``token_set`` the entry's current set and schedule its renewal."""
        if token_set.anchor is None:  # set by the app itself: it was issued as stated
            token_set = token_set.with_anchor(Anchor(self._clock.wall(), self._clock.monotonic()))
        now = self._clock.monotonic()
        deadlines = plan(token_set, self.policy, reissued=reissued)
        entry.token_set = token_set
        entry.version = version
        entry.deadlines = deadlines
        entry.token = token_set.access_token.reveal()
        entry.stale_at = deadlines.stale_at
        entry.usable_until = deadlines.must_refresh_at
        entry.failures = 0
        entry.retry_at = _NEG_INF
        entry.reauth = None
        entry.generation += 1
        if entry.last_used == _NEG_INF:
            entry.last_used = now
        event = (
            Event.REFRESH_SUCCEEDED if entry.status is Status.REFRESHING else Event.TOKENS_STORED
        )
        entry.status = transition(entry.status, event)
        self._schedule(entry, None)

    def write(
        self, key: TokenKey, token_set: TokenSet, *, expected_version: int | None
    ) -> Awaitable[int]:
        """The store's compare-and-swap ``put``, with the set's next due time where the store
        keeps the refresh duty (it is written in the same atomic step as the set)."""
        if self._due_at_for is None:
            return self._store.put(key, token_set, expected_version=expected_version)
        duty = cast(RefreshDuty, self._store)
        due_at = self._due_at_for(token_set)
        return duty.put(key, token_set, expected_version=expected_version, due_at=due_at)

    # -- the job -------------------------------------------------------------------------------

    async def _job(self, entry: Entry, outcome: asyncio.Future[TokenSet], run: Job) -> None:
        try:
            run.stored = await self.read(entry.key)
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
        key = entry.key
        registration = self._registry.registration(key.provider)
        while True:
            now = self._clock.monotonic()
            holds_version = run.stored is not None and run.stored.version == entry.version
            step = next_step(
                Situation(
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
                    renew_not_before=(
                        entry.deadlines.renew_not_before
                        if holds_version and entry.deadlines is not None
                        else _NEG_INF
                    ),
                    lease_left=None if run.lease is None else run.lease.remaining(),
                    pending=run.pending is not None,
                )
            )
            if isinstance(step, Adopt):
                assert run.stored is not None  # noqa: S101  (Adopt needs a stored set)
                self.adopt(entry, run.stored)
                outcome.set_result(run.stored.token_set)
                return
            if isinstance(step, Persist):
                if await self._writes.persist(entry, outcome, run):
                    return
            elif isinstance(step, Reinstate):
                await self._writes.reinstate(entry, run)
            elif isinstance(step, Poison):
                await self._poison(entry, run, step.reason)
            elif isinstance(step, WaitUntil):
                await self._clock.sleep(step.at - now)
            elif isinstance(step, TakeLease):
                await self._fence.take(key, run)
            elif isinstance(step, ExtendLease):
                await self._fence.extend(run)
            elif isinstance(step, Redeem):
                await self._redeemer.redeem(entry, registration, run, step.grant)

    def draw(self) -> float:
        """A uniform draw from ``[0, 1)`` for jitter (seeded in simulations)."""
        return self._random.random()

    def adopt(self, entry: Entry, stored: Stored) -> None:
        """Publish a set another process stored, with its event and counter."""
        self.stats.adopted_from_store += 1
        self.publish(entry, stored.token_set, stored.version)
        key = entry.key
        self._hub.emit(
            Refreshed(
                key.hashed, key.provider, "adopted", "store", stored.version, subject=key.subject
            )
        )

    async def _poison(self, entry: Entry, run: Job, reason: str) -> None:
        key = entry.key
        if run.dead_grant is not None and run.stored is not None:
            # Delete the dead set, but only the version we redeemed: anything newer is a new
            # login or another process's renewal, to be adopted rather than destroyed.
            try:
                await self.store_call(self._store.delete(key, expected_version=run.stored.version))
            except StoreConflictError:
                run.stored = await self.read(key)
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

    # -- store calls -----------------------------------------------------------------------------

    async def store_call(self, call: Awaitable[_T]) -> _T:
        """Await a store call within ``store_timeout``; anything but a typed error becomes
        :class:`StoreError`."""
        return await bounded(call, timeout=self._store_timeout, stats=self.stats)
