"""The renewal driver: carries out the steps the pure renewal step decides, and nothing else.

Theory of operation
-------------------
Every renewal, whoever asks for it (a caller, a 401, the scheduler), is one *job* per token
set (single flight). Callers await the job's *outcome*, a future shielded from their own
cancellation, so a caller that goes away cannot abort a request that was sent. The job loops:
read what it needs, ask :func:`~aiofinaccess.core.renewal_step.next_step`, carry the step out:

* **Adopt / Poison / WaitUntil** - publish a stored set; delete a dead one at the version
  that was redeemed (a conflict means someone stored a newer set: read it and decide again);
  sleep.
* **TakeLease / ExtendLease** - the fence. A refresh is sent only while this job holds the
  store's lease with at least the whole token exchange (``token_timeout``) plus a margin
  left; before each send the job checks and extends it by owner token, and a heartbeat
  extends it while the job waits (endpoint slots, backoff, a password lookup, a slow write).
  A lease that turns out lost is dropped, taken again, and the store read again.
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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar, cast

import attrs

from ..core.clock import Clock
from ..core.errors import (
    AiofinaccessError,
    ApiError,
    LeaseBusyError,
    ReauthorizationRequired,
    StoreConflictError,
    StoreError,
    TransportError,
    UsageError,
)
from ..core.lifecycle import (
    Action,
    Event,
    RefreshPolicy,
    Renewal,
    RetryPolicy,
    Status,
    decide,
    plan,
    transition,
)
from ..core.renewal_step import (
    Adopt,
    ExtendLease,
    Persist,
    Poison,
    Redeem,
    Situation,
    Stored,
    TakeLease,
    WaitUntil,
    next_step,
)
from ..core.tokens import Anchor, Secret, TokenKey, TokenSet
from ..stores import LOCAL_LEASE, Lease, RefreshDuty, TokenStore, Versioned
from .events import (
    EventHub,
    ManagerStats,
    ReauthRequired,
    Refreshed,
    RefreshFailed,
    Rotated,
    WriteAbandoned,
)
from .registry import Entry, Registration, Registry
from .retrying import Retrier, RetryDetails

__all__ = ["RenewalDriver", "TokenEndpoint"]

logger = logging.getLogger("aiofinaccess")

_T = TypeVar("_T")
_NEG_INF = float("-inf")
_AMBIGUOUS_STATUSES = frozenset({500, 502, 504})


class TokenEndpoint(Protocol):
    """What the driver needs of a provider's token endpoint (an :class:`OAuthClient`)."""

    async def client_credentials(self) -> TokenSet: ...

    async def password(self, username: str, password: Secret | str) -> TokenSet: ...

    async def refresh(self, refresh_token: Secret) -> TokenSet: ...

    def dead_grant_reason(self, error: ApiError) -> str | None: ...


@attrs.define(slots=True)
class _Job:
    """One job's working state (the entry holds only what other tasks may read)."""

    rejected: str | None = None
    forced: bool = False
    reason: str = "on_demand"
    stored: Stored | None = None
    lease: Lease | None = None
    lease_exit: contextlib.AsyncExitStack | None = None
    heartbeat: asyncio.Task[None] | None = None
    pending: TokenSet | None = None
    base_version: int | None = None
    reissued: bool = False
    grant: Renewal | None = None
    refresh_failed: bool = False
    dead_grant: str | None = None
    dead_cause: ApiError | None = None
    attempts: int = 0
    ambiguous: int = 0
    write_failures: int = 0
    fence_tries: int = 0
    late_answers: int = 0
    lease_deadline: float = math.inf


def _retrieve(future: asyncio.Future[Any]) -> None:
    # Nobody may be awaiting an outcome: never let it log "exception was never retrieved".
    if not future.cancelled():
        future.exception()


def _retryable(error: BaseException | None) -> bool:
    """Whether a later renewal may succeed where this one failed."""
    if isinstance(error, ApiError | TransportError):
        return error.retryable
    return not isinstance(error, UsageError)


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
        token_timeout: Seconds one token exchange may take.
        lease_ttl: Seconds a lease lasts without extension.
        store_timeout: Seconds one store call may take.
        max_concurrent_refreshes: Token requests in flight per token endpoint.
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
        token_timeout: float,
        lease_ttl: float,
        store_timeout: float,
        max_concurrent_refreshes: int,
        due_at_for: Callable[[TokenSet], float | None] | None = None,
    ) -> None:
        self._registry = registry
        self._store = store
        self._clock = clock
        self.endpoint = endpoint
        self._spawn = spawn
        self._schedule = schedule
        self.stats = stats
        self._hub = hub
        self.policy = policy
        self._retry = retry
        self._token_timeout = token_timeout
        self._lease_ttl = lease_ttl
        self._store_timeout = store_timeout
        # The fence: a send needs the whole exchange plus a quarter lease of margin; taking
        # it extends to the exchange plus a full lease, so the write after it is covered too.
        self._lease_needed = token_timeout + lease_ttl / 4
        self._fence_ttl = token_timeout + lease_ttl
        self._max_concurrent = max_concurrent_refreshes
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._random = random.Random()  # noqa: S311  (jitter, not secrets)
        self._due_at_for = due_at_for
        self._retrier = Retrier(
            backoff=retry.request_backoff,
            attempts=retry.attempts,
            sleep=clock.sleep,
            random=self.draw,
            on_retry=(self._count_retry,),
        )

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
        outcome.add_done_callback(_retrieve)
        status = transition(entry.status, Event.REFRESH_STARTED)
        run = _Job(rejected=rejected, forced=forced, reason=reason)
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
        ):
            # Nothing stored for this key: keep no trace, so a login stored later by any
            # process is found on the next call.
            self._registry.prune(entry)

    # -- reading and publishing ----------------------------------------------------------------

    async def read(self, key: TokenKey) -> Stored | None:
        """Read ``key`` from the store and anchor it: a stored set's age counts from its wall
        clock instants, read against this process's clocks now."""
        found = await self.store_call(self._store.get(key))
        return None if found is None else self.anchored(found)

    def anchored(self, found: Versioned) -> Stored:
        """Anchor a stored set at this moment and plan it."""
        token_set = found.token_set.with_anchor(Anchor(self._clock.wall(), self._clock.monotonic()))
        return Stored(token_set, found.version, plan(token_set, self.policy))

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

    async def _job(self, entry: Entry, outcome: asyncio.Future[TokenSet], run: _Job) -> None:
        run.lease_deadline = self._clock.monotonic() + self._token_timeout + 2 * self._lease_ttl
        try:
            run.stored = await self.read(entry.key)
            await self._drive(entry, outcome, run)
        except asyncio.CancelledError:
            logger.debug("renewal of token set %s cancelled", entry.key.hashed)
            if run.pending is not None:
                self._abandon(entry, run.pending)
            if not outcome.done():
                outcome.cancel()
            raise
        except BaseException as exc:
            logger.debug("renewal of token set %s ended: %r", entry.key.hashed, exc)
            if not outcome.done():
                self._fail(entry, outcome, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            await self._drop_lease(run)

    async def _drive(self, entry: Entry, outcome: asyncio.Future[TokenSet], run: _Job) -> None:
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
                    lease_needed=self._lease_needed,
                    pending=run.pending is not None,
                )
            )
            if isinstance(step, Adopt):
                assert run.stored is not None  # noqa: S101  (Adopt needs a stored set)
                self.adopt(entry, run.stored)
                outcome.set_result(run.stored.token_set)
                return
            if isinstance(step, Persist):
                if await self._persist(entry, outcome, run):
                    return
            elif isinstance(step, Poison):
                await self._poison(entry, run, step.reason)
            elif isinstance(step, WaitUntil):
                await self._clock.sleep(step.at - now)
            elif isinstance(step, TakeLease):
                await self._take_lease(key, run)
            elif isinstance(step, ExtendLease):
                run.fence_tries += 1
                if run.fence_tries > 3:  # each extension took most of a lease: give up
                    raise StoreError(f"the store is too slow to fence token set {key.hashed}")
                await self._extend_lease(run, self._fence_ttl)
            elif isinstance(step, Redeem):
                await self._redeem(entry, registration, run, step.grant)

    def draw(self) -> float:
        """A uniform draw from ``[0, 1)`` for jitter (seeded in simulations)."""
        return self._random.random()

    def _count_retry(self, details: RetryDetails) -> None:
        self.stats.retries += 1

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

    async def _poison(self, entry: Entry, run: _Job, reason: str) -> None:
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
        raise ReauthorizationRequired(
            key.hashed, reason, run.dead_cause, provider=key.provider, subject=key.subject
        )

    # -- the lease -------------------------------------------------------------------------------

    async def _take_lease(self, key: TokenKey, run: _Job) -> None:
        exit_stack = contextlib.AsyncExitStack()
        try:
            handle = await exit_stack.enter_async_context(
                self._store.lease(key, ttl=self._lease_ttl)
            )
        except LeaseBusyError:
            await exit_stack.aclose()
            if self._clock.monotonic() >= run.lease_deadline:
                raise
            run.stored = await self.read(key)  # its holder may have stored a set meanwhile
            return
        except BaseException:
            await exit_stack.aclose()
            raise
        run.lease_exit = exit_stack
        run.lease = handle if hasattr(handle, "extend") else LOCAL_LEASE
        if run.lease.remaining() != math.inf:
            run.heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(run.lease))
        run.stored = await self.read(key)

    async def _heartbeat(self, lease: Lease) -> None:
        """Keep the lease while the job waits (or writes); the fence before a send checks it
        anyway. A failed extension is tried again soon: the lease is what stops another
        process from replaying a refresh token whose successor is not stored yet."""
        pause = self._lease_ttl / 3
        while True:
            await self._clock.sleep(pause)
            try:
                if not await lease.extend(self._lease_ttl):
                    return
                pause = self._lease_ttl / 3
            except StoreError:
                logger.debug("extending a lease failed; trying again shortly")
                pause = self._lease_ttl / 10

    async def _extend_lease(self, run: _Job, ttl: float) -> None:
        assert run.lease is not None  # noqa: S101
        if not await self.store_call(run.lease.extend(ttl)):
            logger.warning("a store lease was lost before a refresh; taking it again")
            await self._drop_lease(run)

    async def _drop_lease(self, run: _Job) -> None:
        heartbeat, run.heartbeat = run.heartbeat, None
        if heartbeat is not None:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        lease_exit, run.lease_exit, run.lease = run.lease_exit, None, None
        if lease_exit is not None:
            try:
                await lease_exit.aclose()
            except StoreError:
                logger.warning("releasing a store lease failed; it runs out by itself")

    # -- redeeming -------------------------------------------------------------------------------

    def _slots_for(self, registration: Registration) -> asyncio.Semaphore:
        endpoint = str(registration.provider.token_url)
        slots = self._slots.get(endpoint)
        if slots is None:
            slots = self._slots[endpoint] = asyncio.Semaphore(self._max_concurrent)
        return slots

    async def _redeem(
        self, entry: Entry, registration: Registration, run: _Job, grant: Renewal
    ) -> None:
        key = entry.key
        password: Secret | None = None
        if grant is Renewal.PASSWORD:
            password = await self._password(key, registration)
            if password is None:
                run.dead_grant = "no_password"
                return
        assert run.lease is not None  # noqa: S101  (Redeem comes only with a lease)
        async with self._slots_for(registration):
            # The fence, again: waiting for a slot may have taken longer than the margin.
            if run.lease.remaining() < self._lease_needed:
                await self._extend_lease(run, self._fence_ttl)
                if run.lease is None or run.lease.remaining() < self._lease_needed:
                    return
            run.fence_tries = 0
            previous = None if run.stored is None else run.stored.token_set
            self.stats.renewals += run.attempts == 0
            self.stats.token_requests += 1
            logger.debug("renewing token set %s with %s (%s)", key.hashed, grant.value, run.reason)
            entry.in_window = True
            try:
                fresh = await self._send(key, grant, previous, password)
            except ReauthorizationRequired as exc:
                entry.in_window = False
                if grant is Renewal.REFRESH_TOKEN and registration.password_lookup is not None:
                    run.refresh_failed = True  # finAPI: a dead refresh token is not the end
                    return
                run.dead_grant, run.dead_cause = exc.reason, exc.cause
                return
            except (ApiError, TransportError) as exc:
                await self._after_failed_send(entry, registration, run, grant, exc)
                return
        run.pending = fresh
        run.grant = grant
        run.base_version = None if run.stored is None else run.stored.version
        run.reissued = previous is not None and fresh.access_token == previous.access_token

    async def _send(
        self, key: TokenKey, grant: Renewal, previous: TokenSet | None, password: Secret | None
    ) -> TokenSet:
        endpoint = self.endpoint(key.provider)
        if grant is Renewal.CLIENT_CREDENTIALS:
            return await endpoint.client_credentials()
        if grant is Renewal.REFRESH_TOKEN:
            assert previous is not None and previous.refresh_token is not None  # noqa: PT018, S101
            return (await endpoint.refresh(previous.refresh_token)).merged_after_refresh(previous)
        assert key.subject is not None and password is not None  # noqa: PT018, S101
        try:
            return await endpoint.password(key.subject, password)
        except ApiError as exc:
            reason = endpoint.dead_grant_reason(exc)
            if reason is not None:
                raise ReauthorizationRequired(
                    key.hashed, reason, exc, provider=key.provider, subject=key.subject
                ) from exc
            raise

    async def _password(self, key: TokenKey, registration: Registration) -> Secret | None:
        if key.subject is None or registration.password_lookup is None:
            return None
        password = await registration.password_lookup(key.subject)
        return None if password is None else Secret(password)

    async def _after_failed_send(
        self,
        entry: Entry,
        registration: Registration,
        run: _Job,
        grant: Renewal,
        error: ApiError | TransportError,
    ) -> None:
        """Retry a failed token request, or raise its error."""
        rotating = grant is Renewal.REFRESH_TOKEN and registration.provider.rotates_refresh_tokens
        retry = self._retry
        ambiguous = False
        if isinstance(error, TransportError):
            if not error.request_sent:
                entry.in_window = False
                allowed = error.retryable
            else:
                ambiguous = allowed = True
        elif error.status in (429, 503):
            entry.in_window = False
            allowed = error.retry_after is None or error.retry_after <= retry.max_retry_after
        elif error.status in _AMBIGUOUS_STATUSES:
            ambiguous = allowed = True
        else:
            entry.in_window = False
            allowed = False
        if ambiguous:
            # Sent, and no usable answer: the server may have rotated the token already.
            run.ambiguous += 1
            allowed = not rotating or run.ambiguous == 1
        run.attempts += 1
        if not allowed or run.attempts >= retry.attempts:
            raise error
        # The first request may still be on its way to the server: presenting the same
        # refresh token before it has surely arrived (or died) would race it.
        await self._retrier.pause(
            "token request",
            run.attempts,
            error,
            at_least=self._token_timeout if ambiguous and rotating else 0.0,
        )
        if ambiguous and rotating:
            run.stored = await self.read(entry.key)

    # -- persisting ------------------------------------------------------------------------------

    async def _persist(self, entry: Entry, outcome: asyncio.Future[TokenSet], run: _Job) -> bool:
        """Write the redeemed set; True once it is stored and published."""
        fresh = run.pending
        assert fresh is not None  # noqa: S101
        key = entry.key
        try:
            version = await self.store_call(
                self.write(key, fresh, expected_version=run.base_version)
            )
        except StoreConflictError:
            # Someone stored a set for this key meanwhile (a new login, or our own write
            # whose answer was lost): what the store holds wins; decide again from it.
            logger.warning("token set %s changed while renewing; reading it again", key.hashed)
            run.pending = None
            entry.in_window = False
            run.stored = await self.read(key)
            return False
        except StoreError as exc:
            run.write_failures += 1
            if run.write_failures >= self._retry.attempts and not outcome.done():
                self._fail(entry, outcome, exc)  # callers never get an unstored token
            if self._spent(fresh):
                self._abandon(entry, fresh)
                raise
            logger.warning("storing token set %s failed; retrying", key.hashed)
            wait = self._retry.backoff(run.write_failures, self._random.random())
            # Never slower than the heartbeat: the lease protecting this set is only as good
            # as the store's availability, so write as soon as it is back.
            await self._clock.sleep(min(max(wait, self._retry.initial), self._lease_ttl / 3))
            return False
        previous = None if run.stored is None else run.stored.token_set
        rotated = previous is not None and fresh.refresh_token not in (None, previous.refresh_token)
        run.pending = None
        entry.in_window = False
        entry.renewed_at = now = self._clock.monotonic()
        late_by = None if entry.deadlines is None else now - entry.deadlines.stale_at
        self.publish(entry, fresh, version, reissued=run.reissued)
        assert run.grant is not None  # noqa: S101
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
        if (
            entry.deadlines is not None
            and (fresh.lifetime or 0.0) > 0
            and decide(entry.deadlines, self._clock.monotonic()) is Action.REFRESH_THEN_USE
        ):
            # The answer came so late that the new token is already spent: never hand it
            # out. One more round (the lease is still ours); a second late answer fails. (A
            # token *issued* expired, `expires_in: 0` from a server other than finAPI, is
            # handed out as it is: there is nothing better to get.)
            run.late_answers += 1
            if run.late_answers > 1:
                raise TransportError(
                    "the provider answered after the new token's own expiry", request_sent=True
                )
            assert entry.token_set is not None  # noqa: S101
            run.stored = Stored(entry.token_set, version, entry.deadlines)
            return False
        if not outcome.done():
            outcome.set_result(entry.token_set or fresh)
        return True

    def _spent(self, token_set: TokenSet) -> bool:
        """Whether a redeemed set is no longer worth writing: its refresh token (or, without
        one, its access token) has died."""
        deadlines = plan(token_set, self.policy)
        end = (
            deadlines.refresh_token_dead_at
            if token_set.refresh_token is not None
            else deadlines.expires_at
        )
        return self._clock.monotonic() >= end

    def _abandon(self, entry: Entry, unwritten: TokenSet) -> None:
        key = entry.key
        if unwritten.refresh_token is None:
            # Nothing was spent to get it (a client token): the next renewal gets another.
            logger.debug("token set %s was renewed but not stored; it is dropped", key.hashed)
            return
        logger.error(
            "token set %s was renewed but could not be stored; its session may be lost",
            key.hashed,
        )
        self._hub.emit(WriteAbandoned(key.hashed, key.provider, subject=key.subject))

    # -- failures ----------------------------------------------------------------------------------

    def _fail(self, entry: Entry, outcome: asyncio.Future[TokenSet], error: BaseException) -> None:
        outcome.set_exception(error)
        if entry.status is not Status.REFRESHING:
            return  # tokens were stored or revoked meanwhile: this outcome is moot
        key = entry.key
        if isinstance(error, ReauthorizationRequired):
            entry.status = transition(entry.status, Event.GRANT_DEAD)
            entry.reauth = error
            entry.clear()
            self.stats.reauth_required += 1
            logger.warning("token set %s needs re-authorization: %s", key.hashed, error.reason)
            self._hub.emit(
                ReauthRequired(key.hashed, key.provider, error.reason, subject=key.subject)
            )
            return
        entry.status = transition(entry.status, Event.REFRESH_FAILED)
        entry.failures += 1
        self.stats.refresh_failures += 1
        retry_after = error.retry_after if isinstance(error, ApiError) else None
        retry_in = self._retry.backoff(entry.failures, self._random.random(), retry_after)
        entry.retry_at = self._clock.monotonic() + retry_in
        retryable = _retryable(error)
        if retryable:
            self._schedule(entry, entry.retry_at)
        logger.warning(
            "renewing token set %s failed (%s: %s); %s",
            key.hashed,
            type(error).__name__,
            error,
            f"retry in {retry_in:.1f} s" if retryable else "no retry scheduled",
        )
        self._hub.emit(
            RefreshFailed(
                key.hashed,
                key.provider,
                type(error).__name__,
                bool(retryable),
                entry.failures,
                retry_in if retryable else None,
                subject=key.subject,
            )
        )

    # -- store calls -----------------------------------------------------------------------------

    async def store_call(self, call: Awaitable[_T]) -> _T:
        """Await a store call within ``store_timeout``; anything but a typed error becomes
        :class:`StoreError`."""
        try:
            async with asyncio.timeout(self._store_timeout):
                return await call
        except StoreError:
            self.stats.store_failures += 1
            raise
        except AiofinaccessError:
            raise
        except TimeoutError as exc:
            self.stats.store_failures += 1
            raise StoreError(f"the token store did not answer in {self._store_timeout} s") from exc
        except Exception as exc:
            self.stats.store_failures += 1
            raise StoreError(f"token store failed: {type(exc).__name__}") from exc
