"""The renewal path: single-flight, cancellation-safe, persist-then-publish.

Theory of operation
-------------------
This module holds the engine under :class:`~aiofinaccess.manager.SessionManager`: the
registry of entries (one per token set, keyed by ``(provider, subject)``) and the *one* path
every renewal takes, whoever asks for it (a caller, a 401, the scheduler):

1. *Single-flight.* An entry has at most one renewal task; everyone awaits that task through
   :func:`asyncio.shield`, so all get the same result or error and a cancelled caller cannot
   abort a request that was sent. Tasks are owned here and drained on close.
2. *Re-read before renewing.* The task reads the store; a usable set another process (or an
   earlier task) stored is adopted without a request. Otherwise it takes the store's lease for
   the key, reads again, and only then renews. Waiters re-read; they never refresh from a stale
   copy.
3. *Renew with the grant that fits* (:func:`~aiofinaccess.lifecycle.choose_renewal`), under a
   per-token-endpoint concurrency cap, with retries (tenacity: full-jitter exponential backoff,
   ``Retry-After`` honoured). A connect error is retried freely; an ambiguous failure of a
   rotating refresh (sent, no answer) only once, after re-reading the store.
4. *Persist, then publish.* The new set is written with compare-and-swap on the version read in
   step 2; only then does the entry change, do waiters get it and is the next renewal
   scheduled. A failed write publishes nothing (:class:`~aiofinaccess.errors.StoreError`).
5. *Poison on a dead grant.* ``invalid_grant`` deletes the stored set (at the version it read)
   and moves the entry to ``REAUTH_REQUIRED``: later calls fail at once, without a request,
   here and in every process sharing the store.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any, TypeVar

import aiohttp
import attrs
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential

from .clock import Clock
from .errors import (
    AiofinaccessError,
    ApiError,
    ReauthorizationRequired,
    StoreConflictError,
    StoreError,
    TransportError,
    UsageError,
)
from .events import EventHub, ManagerStats, ReauthRequired, Refreshed, RefreshFailed, Rotated
from .lifecycle import (
    Action,
    Deadlines,
    Event,
    RefreshPolicy,
    Renewal,
    RetryPolicy,
    Status,
    choose_renewal,
    decide,
    plan,
    scheduled_at,
    transition,
)
from .oauth import OAuthClient
from .providers import Provider
from .scheduler import RefreshScheduler
from .stores import TokenStore, Versioned
from .tokens import Anchor, ClientCredentials, Secret, TokenKey, TokenSet

__all__ = ["PasswordLookup", "RenewalEngine"]

logger = logging.getLogger("aiofinaccess")

#: Given a user id, return that user's password (from the app's own vault), or ``None``.
PasswordLookup = Callable[[str], Awaitable["str | Secret | None"]]

_T = TypeVar("_T")
_NEG_INF = float("-inf")
_AMBIGUOUS_STATUSES = frozenset({500, 502, 504})


@attrs.define(slots=True)
class _Registration:
    provider: Provider
    client: ClientCredentials
    password_lookup: PasswordLookup | None


@attrs.define(slots=True, eq=False)
class _Entry:
    key: TokenKey
    status: Status = Status.ACTIVE
    token_set: TokenSet | None = None
    version: int | None = None
    deadlines: Deadlines | None = None
    # The revealed access token and its stale deadline, copied out for the fast path.
    token: str | None = attrs.field(default=None, repr=False)
    stale_at: float = _NEG_INF
    last_used: float = _NEG_INF
    generation: int = 0
    failures: int = 0
    renewal: asyncio.Task[TokenSet] | None = attrs.field(default=None, repr=False)
    reauth: ReauthorizationRequired | None = None
    # After a failed renewal, background renewals wait until then (blocking ones do not).
    retry_at: float = _NEG_INF


def _retryable(error: BaseException | None) -> bool:
    """Whether a later renewal may succeed where this one failed."""
    if isinstance(error, ApiError | TransportError):
        return error.retryable
    return not isinstance(error, UsageError)


class RenewalEngine:
    """Registry and renewal path shared by :class:`~aiofinaccess.manager.SessionManager`."""

    _store: TokenStore
    _clock: Clock
    _policy: RefreshPolicy
    _retry: RetryPolicy
    _token_timeout: float
    _lease_ttl: float
    _keep_alive: bool
    _idle_after: float | None
    _jitter: float
    _closed: bool
    _session: aiohttp.ClientSession | None

    def _init_engine(self, *, max_concurrent_refreshes: int, scheduler: bool) -> None:
        self._registrations: dict[str, _Registration] = {}
        self._oauth_clients: dict[str, OAuthClient] = {}
        # Keyed by (provider name, subject) rather than TokenKey: the fresh path then builds
        # no object per call.
        self._entries: dict[tuple[str, str | None], _Entry] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._endpoint_slots: dict[str, asyncio.Semaphore] = {}
        self._max_concurrent_refreshes = max_concurrent_refreshes
        self._random = random.Random()  # noqa: S311  (jitter, not secrets)
        self.stats = ManagerStats()
        self._hub = EventHub(self.stats)
        self._scheduler = (
            RefreshScheduler(
                self._clock, self._fire_scheduled, max_in_flight=max_concurrent_refreshes
            )
            if scheduler
            else None
        )

    # -- registry ------------------------------------------------------------------------------

    def _registration(self, name: str) -> _Registration:
        try:
            return self._registrations[name]
        except KeyError:
            raise UsageError(
                f"provider {name!r} is not registered; call register() first"
            ) from None

    def _entry(self, key: TokenKey) -> _Entry:
        entry = self._entries.get((key.provider, key.subject))
        if entry is None:
            self._registration(key.provider)
            entry = self._entries[key.provider, key.subject] = _Entry(key)
        return entry

    def _poisoned(self, entry: _Entry) -> ReauthorizationRequired:
        if entry.status is Status.REVOKED:
            return ReauthorizationRequired(entry.key.hashed, "revoked")
        previous = entry.reauth
        return ReauthorizationRequired(
            entry.key.hashed,
            previous.reason if previous else "reauth_required",
            previous.cause if previous else None,
        )

    def oauth(self, provider: Provider | str) -> OAuthClient:
        """The :class:`OAuthClient` the manager uses for ``provider``."""
        name = provider if isinstance(provider, str) else provider.name
        client = self._oauth_clients.get(name)
        if client is None:
            registration = self._registration(name)
            client = OAuthClient(
                registration.provider,
                registration.client,
                self.http_session(),
                clock=self._clock,
                timeout=self._token_timeout,
            )
            self._oauth_clients[name] = client
        return client

    def http_session(self) -> aiohttp.ClientSession:
        """The aiohttp session the manager sends on (created on first use if not given)."""
        if self._closed:
            raise UsageError("the session manager is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    # -- owned tasks ---------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        if self._closed:
            coro.close()
            raise UsageError("the session manager is closed")
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _await_owned(task: asyncio.Task[_T]) -> _T:
        # shield: a caller's cancellation must not cancel a request that may have been sent.
        return await asyncio.shield(task)

    def _start_renewal(
        self, entry: _Entry, *, rejected: str | None = None, reason: str = "on_demand"
    ) -> asyncio.Task[TokenSet]:
        if entry.renewal is not None:
            return entry.renewal
        entry.status = transition(entry.status, Event.REFRESH_STARTED)
        task = self._spawn(self._renew(entry, rejected, reason))
        entry.renewal = task
        task.add_done_callback(functools.partial(self._renewal_done, entry))
        return task

    def _renewal_done(self, entry: _Entry, task: asyncio.Task[TokenSet]) -> None:
        if entry.renewal is task:
            entry.renewal = None
        error = None if task.cancelled() else task.exception()
        if entry.status is not Status.REFRESHING:
            return  # tokens were stored or revoked meanwhile: this outcome is moot
        key = entry.key
        if isinstance(error, ReauthorizationRequired):
            entry.status = transition(entry.status, Event.GRANT_DEAD)
            entry.reauth = error
            entry.token = None
            entry.stale_at = _NEG_INF
            entry.generation += 1
            self.stats.reauth_required += 1
            logger.warning("token set %s needs re-authorization: %s", key.hashed, error.reason)
            self._hub.emit(ReauthRequired(key.hashed, key.provider, error.reason))
        elif task.cancelled() or error is not None:
            entry.status = transition(entry.status, Event.REFRESH_FAILED)
            entry.failures += 1
            self.stats.refresh_failures += 1
            retry_after = error.retry_after if isinstance(error, ApiError) else None
            retry_in = self._retry.backoff(entry.failures, self._random.random(), retry_after)
            now = self._clock.monotonic()
            entry.retry_at = now + retry_in
            retryable = _retryable(error)
            scheduled = self._schedule(entry, now=now, at=entry.retry_at) if retryable else False
            logger.warning(
                "renewing token set %s failed (%s); %s",
                key.hashed,
                "cancelled" if error is None else f"{type(error).__name__}: {error}",
                f"retry in {retry_in:.1f} s" if scheduled else "no retry scheduled",
            )
            self._hub.emit(
                RefreshFailed(
                    key.hashed,
                    key.provider,
                    "CancelledError" if error is None else type(error).__name__,
                    bool(retryable),
                    entry.failures,
                    retry_in if scheduled else None,
                )
            )

    # -- scheduling ----------------------------------------------------------------------------

    def _schedule(self, entry: _Entry, *, now: float, at: float | None = None) -> bool:
        if self._scheduler is None or entry.deadlines is None:
            return False
        idle = self._idle_after is not None and now - entry.last_used > self._idle_after
        due = scheduled_at(
            entry.deadlines,
            now=now,
            jitter=self._random.random() * self._jitter,
            keep_alive=self._keep_alive,
            idle=idle,
        )
        if due is None:
            return False
        if at is not None:
            due = max(at, now)
        self._scheduler.schedule((entry.key.provider, entry.key.subject), due, entry.generation)
        return True

    def _fire_scheduled(self, key: Hashable, generation: int) -> asyncio.Task[Any] | None:
        entry = self._entries.get(key)  # type: ignore[call-overload]
        if entry is None or entry.generation != generation or self._closed:
            return None
        if entry.status not in (Status.ACTIVE, Status.BACKOFF):
            return None
        now = self._clock.monotonic()
        idle = self._idle_after is not None and now - entry.last_used > self._idle_after
        keep_alive_due = entry.deadlines is not None and now >= entry.deadlines.refresh_token_due_at
        if idle and not (self._keep_alive and keep_alive_due):
            return None  # left to on-demand renewal
        self.stats.scheduled_renewals += 1
        return self._start_renewal(entry, reason="scheduled")

    # -- the renewal ---------------------------------------------------------------------------

    def _usable(self, stored: Versioned | None, entry: _Entry, rejected: str | None) -> bool:
        """Whether a stored set can be adopted instead of renewing."""
        if stored is None:
            return False
        if entry.version is not None and stored.version == entry.version:
            return False
        if rejected is not None and stored.token_set.access_token.reveal() == rejected:
            return False
        now = self._clock.monotonic()
        return (
            decide(plan(stored.token_set, self._policy, now=now), now)
            is not Action.REFRESH_THEN_USE
        )

    async def _renew(self, entry: _Entry, rejected: str | None, reason: str) -> TokenSet:
        key = entry.key
        stored = await self._load(key)
        if self._usable(stored, entry, rejected):
            assert stored is not None  # noqa: S101  (narrowing: _usable checked it)
            return self._adopt(entry, stored)
        async with self._store.lease(key, ttl=self._lease_ttl):
            stored = await self._load(key)
            if self._usable(stored, entry, rejected):
                assert stored is not None  # noqa: S101
                return self._adopt(entry, stored)
            return await self._renew_under_lease(entry, stored, reason)

    async def _renew_under_lease(
        self, entry: _Entry, stored: Versioned | None, reason: str
    ) -> TokenSet:
        key = entry.key
        registration = self._registration(key.provider)
        previous = stored.token_set if stored is not None else None
        now = self._clock.monotonic()
        deadlines = None if previous is None else plan(previous, self._policy, now=now)
        renewal = choose_renewal(
            previous,
            deadlines,
            now=now,
            is_client=key.is_client,
            can_use_password=registration.password_lookup is not None,
        )
        if renewal is Renewal.REAUTHORIZE:
            raise ReauthorizationRequired(
                key.hashed, "no_token_set" if previous is None else "refresh_token_unavailable"
            )
        if stored is not None and entry.deadlines is not None and entry.version == stored.version:
            # A reissued token (finAPI client tokens) cannot be renewed before it expires.
            wait = entry.deadlines.renew_not_before - self._clock.monotonic()
            if wait > 0:
                await self._clock.sleep(wait)
        self.stats.renewals += 1
        logger.debug("renewing token set %s with %s (%s)", key.hashed, renewal.value, reason)
        try:
            fresh = await self._redeem_with_retries(
                renewal,
                key=key,
                registration=registration,
                previous=previous,
                stored=stored,
                entry=entry,
            )
        except ReauthorizationRequired as exc:
            await self._forget_dead(key, stored)
            raise ReauthorizationRequired(key.hashed, exc.reason, exc.cause) from exc
        if isinstance(fresh, Versioned):
            return self._adopt(entry, fresh)
        reissued = previous is not None and fresh.access_token == previous.access_token
        try:
            version = await self._persist(key, fresh, None if stored is None else stored.version)
        except StoreConflictError:
            # Someone stored a set for this key while we renewed (the app, or a process whose
            # lease lapsed). Theirs is what the store holds: adopt it if it is usable.
            latest = await self._load(key)
            if latest is None or not self._usable(latest, entry, None):
                raise
            logger.warning(
                "token set %s changed while renewing; adopting the stored one", key.hashed
            )
            return self._adopt(entry, latest)
        rotated = previous is not None and fresh.refresh_token not in (None, previous.refresh_token)
        self._publish(entry, fresh, version, reissued=reissued)
        self._hub.emit(Refreshed(key.hashed, key.provider, renewal.value, reason, version))
        if rotated:
            self.stats.rotations += 1
            self._hub.emit(Rotated(key.hashed, key.provider, version))
        logger.debug("token set %s renewed, version %d", key.hashed, version)
        return fresh

    def _retry_wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, ApiError) and error.retry_after is not None:
            return min(error.retry_after, self._retry.max_retry_after)
        backoff = wait_random_exponential(multiplier=self._retry.initial, max=self._retry.max_wait)
        return float(backoff(state))

    async def _redeem_with_retries(
        self,
        renewal: Renewal,
        *,
        key: TokenKey,
        registration: _Registration,
        previous: TokenSet | None,
        stored: Versioned | None,
        entry: _Entry,
    ) -> TokenSet | Versioned:
        rotating = renewal is Renewal.REFRESH_TOKEN and registration.provider.rotates_refresh_tokens
        ambiguous_failures = 0

        def retryable(error: BaseException) -> bool:
            nonlocal ambiguous_failures
            if isinstance(error, TransportError):
                if not error.request_sent:
                    return error.retryable
            elif isinstance(error, ApiError):
                if error.status in (429, 503):
                    return (
                        error.retry_after is None
                        or error.retry_after <= self._retry.max_retry_after
                    )
                if error.status not in _AMBIGUOUS_STATUSES:
                    return False
            else:
                return False
            # Sent, and no usable answer: the server may have rotated the token already.
            ambiguous_failures += 1
            return not rotating or ambiguous_failures == 1

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.attempts),
            wait=self._retry_wait,
            retry=retry_if_exception(retryable),
            sleep=self._clock.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.stats.retries += 1
                    if rotating and ambiguous_failures:
                        latest = await self._load(key)
                        if latest is not None and self._usable(latest, entry, None):
                            return latest
                self.stats.token_requests += 1
                return await self._redeem(renewal, key, registration, previous)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _redeem(
        self,
        renewal: Renewal,
        key: TokenKey,
        registration: _Registration,
        previous: TokenSet | None,
    ) -> TokenSet:
        oauth = self.oauth(key.provider)
        async with self._slots_for(registration.provider):
            if renewal is Renewal.CLIENT_CREDENTIALS:
                return await oauth.client_credentials()
            if renewal is Renewal.REFRESH_TOKEN and previous and previous.refresh_token is not None:
                try:
                    return (await oauth.refresh(previous.refresh_token)).merged_after_refresh(
                        previous
                    )
                except ReauthorizationRequired:
                    if registration.password_lookup is None:
                        raise
                    # finAPI user tokens: a dead refresh token is not the end while the app
                    # can supply the password again.
                    self.stats.token_requests += 1
            return await self._password_grant(key, registration)

    def _slots_for(self, provider: Provider) -> asyncio.Semaphore:
        endpoint = str(provider.token_url)
        slots = self._endpoint_slots.get(endpoint)
        if slots is None:
            slots = self._endpoint_slots[endpoint] = asyncio.Semaphore(
                self._max_concurrent_refreshes
            )
        return slots

    async def _password_grant(self, key: TokenKey, registration: _Registration) -> TokenSet:
        if key.subject is None or registration.password_lookup is None:
            raise ReauthorizationRequired(key.hashed, "no_password")
        password = await registration.password_lookup(key.subject)
        if password is None:
            raise ReauthorizationRequired(key.hashed, "no_password")
        oauth = self.oauth(key.provider)
        try:
            return await oauth.password(key.subject, Secret(password))
        except ApiError as exc:
            reason = oauth.dead_grant_reason(exc)
            if reason is not None:
                raise ReauthorizationRequired(key.hashed, reason, exc) from exc
            raise

    async def _forget_dead(self, key: TokenKey, stored: Versioned | None) -> None:
        """Delete a dead grant's set, at the version we read, so no process tries it again."""
        if stored is None:
            return
        try:
            await self._store_call(self._store.delete(key, expected_version=stored.version))
        except StoreError:
            logger.warning("could not delete the dead token set %s", key.hashed)

    def _adopt(self, entry: _Entry, stored: Versioned) -> TokenSet:
        self.stats.adopted_from_store += 1
        self._publish(entry, stored.token_set, stored.version)
        key = entry.key
        self._hub.emit(Refreshed(key.hashed, key.provider, "adopted", "store", stored.version))
        return entry.token_set or stored.token_set

    def _publish(
        self, entry: _Entry, token_set: TokenSet, version: int, *, reissued: bool = False
    ) -> None:
        now = self._clock.monotonic()
        if token_set.anchor is None:
            # Restored from a store: place it on this process's monotonic clock.
            token_set = token_set.with_anchor(Anchor(self._clock.wall(), now))
        deadlines = plan(token_set, self._policy, now=now, reissued=reissued)
        entry.token_set = token_set
        entry.version = version
        entry.deadlines = deadlines
        entry.token = token_set.access_token.reveal()
        entry.stale_at = deadlines.stale_at
        entry.failures = 0
        entry.retry_at = _NEG_INF
        entry.generation += 1
        if entry.last_used == _NEG_INF:
            entry.last_used = now
        if entry.status is Status.REFRESHING:
            entry.status = transition(entry.status, Event.REFRESH_SUCCEEDED)
        self._schedule(entry, now=now)

    async def _persist(self, key: TokenKey, fresh: TokenSet, expected: int | None) -> int:
        """Write a just-redeemed set, retrying a failing store briefly: until it is stored, a
        rotated refresh token exists only in this process's memory."""
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return await self._store_call(
                    self._store.put(key, fresh, expected_version=expected)
                )
            except StoreConflictError:
                raise
            except StoreError:
                if attempt == self._retry.attempts:
                    raise
                logger.warning("storing token set %s failed; retrying", key.hashed)
                await self._clock.sleep(self._retry.initial * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _load(self, key: TokenKey) -> Versioned | None:
        return await self._store_call(self._store.get(key))

    async def _store_call(self, call: Awaitable[_T]) -> _T:
        try:
            return await call
        except StoreError:
            self.stats.store_failures += 1
            raise
        except AiofinaccessError:
            raise
        except Exception as exc:
            self.stats.store_failures += 1
            raise StoreError(f"token store failed: {type(exc).__name__}") from exc
