"""Redeeming: the one token request of a renewal job's Redeem step, and its retries.

Inside the fence (:mod:`aiofinaccess.session.fence`) and under a per-endpoint cap
(``Limits.concurrent_refreshes``), the job sends one token request for the grant the renewal step
chose. A refused refresh token falls back to the password grant when the app supplies
passwords; a dead grant is noted for the Poison step. Connect errors and 429/503 are retried
with backoff (:class:`~aiofinaccess.session.retrying.Retrier`, which counts
``ManagerStats.retries``); an ambiguous failure of a rotating refresh (sent, no answer) only
once, after the token exchange's own timeout and a fresh read of the store. A send the last
check stopped (:mod:`aiofinaccess.core.fencing`) is not counted; the third in one job raises
:class:`~aiofinaccess.core.errors.PausedBeforeSendError`.

Must never import: aiohttp (the endpoint is a :class:`TokenEndpoint`), ``api``,
``integrations``, ``cli`` or ``sandbox``; it never writes the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import attrs

from ..core.clock import Clock
from ..core.errors import (
    ApiError,
    PausedBeforeSendError,
    ReauthorizationRequired,
    StoreError,
    TransportError,
)
from ..core.fencing import LeaseLapsed, fenced
from ..core.lifecycle import Renewal, RetryPolicy
from ..core.renewal_step import descended
from ..core.tokens import Secret, TokenKey, TokenSet
from .fence import Fence
from .hub import ManagerStats
from .jobs import Job
from .registry import Entry, Registration
from .retrying import Retrier, RetryDetails

if TYPE_CHECKING:
    from .access import StoreAccess

__all__ = ["Redeemer", "TokenEndpoint"]

logger = logging.getLogger("aiofinaccess")

_AMBIGUOUS_STATUSES = frozenset({500, 502, 504})
#: Sends the last check may stop in one job before its callers get an error (as the fence
#: gives up after three slow extensions).
_MAX_LAPSES = 3


class TokenEndpoint(Protocol):
    """What the driver needs of a provider's token endpoint (an :class:`OAuthClient`)."""

    async def client_credentials(self) -> TokenSet: ...

    async def password(self, username: str, password: Secret | str) -> TokenSet: ...

    async def refresh(self, refresh_token: Secret) -> TokenSet: ...

    def dead_grant_reason(self, error: ApiError) -> str | None: ...


class Redeemer:
    """Sends a renewal job's token requests and retries the failed ones.

    Args:
        endpoint: Gives the token endpoint of a provider name (replaceable: the attribute is
            read at each send).
        fence: The job's lease, checked again once a slot is free.
        access: The store's reads, and the jitter draw of the waits between tries.
        clock: Sleep, for the waits between tries.
        stats: Counters (renewals, token requests, retries).
        retry: Attempts and waits.
        token_timeout: Seconds one token exchange may take.
        max_concurrent: Token requests in flight per token endpoint.
    """

    def __init__(
        self,
        *,
        endpoint: Callable[[str], TokenEndpoint],
        fence: Fence,
        access: StoreAccess,
        clock: Clock,
        stats: ManagerStats,
        retry: RetryPolicy,
        token_timeout: float,
        max_concurrent: int,
    ) -> None:
        self.endpoint = endpoint
        self._fence = fence
        self._access = access
        self.stats = stats
        self._retry = retry
        self._retrier = Retrier(
            backoff=retry.request_backoff,
            attempts=retry.attempts,
            sleep=clock.sleep,
            random=access.draw,
            on_retry=(self._count_retry,),
        )
        self._token_timeout = token_timeout
        self._max_concurrent = max_concurrent
        self._slots: dict[str, asyncio.Semaphore] = {}

    def _count_retry(self, details: RetryDetails) -> None:
        self.stats.retries += 1

    def _slots_for(self, registration: Registration) -> asyncio.Semaphore:
        """The token endpoint's slots: at most ``max_concurrent`` requests in flight to it."""
        endpoint = str(registration.provider.token_url)
        slots = self._slots.get(endpoint)
        if slots is None:
            slots = self._slots[endpoint] = asyncio.Semaphore(self._max_concurrent)
        return slots

    async def redeem(
        self, entry: Entry, registration: Registration, run: Job, grant: Renewal
    ) -> None:
        """Send one token request for ``grant``, inside the fence; the answer becomes the
        job's pending set. A dead grant, a refused refresh token or a lost lease is noted in
        ``run`` for the next step; a failed send is retried here or raised."""
        key = entry.key
        password: Secret | None = None
        if grant is Renewal.PASSWORD:
            password = await self._password(key, registration)
            if password is None:
                run.dead_grant = "no_password"
                return
        assert run.lease is not None  # noqa: S101  (Redeem comes only with a lease)
        async with self._slots_for(registration):
            # The fence, once a slot is held: extending the lease for the send before would
            # let a crash while waiting for the slot block the key for an exchange more.
            if not await self._fence.ready_to_send(run):
                return
            previous = None if run.stored is None else run.stored.token_set
            first = run.attempts == 0
            self.stats.renewals += first
            self.stats.token_requests += 1
            logger.debug("renewing token set %s with %s (%s)", key.hashed, grant.value, run.reason)
            entry.in_window = True
            try:
                with fenced(self._fence.send_check(run)):
                    fresh = await self._send(key, grant, previous, password)
            except LeaseLapsed:
                # Paused since the fence for longer than its margin: nothing was sent. Treat
                # the lease as lost: another process may have held it and renewed meanwhile
                # (even if it is ours again now), so take it again and read the store again.
                # Not sent, so not counted either.
                entry.in_window = False
                self.stats.renewals -= first
                self.stats.token_requests -= 1
                run.lapses += 1
                logger.warning("token set %s: a pause outlasted the lease; not sent", key.hashed)
                await self._fence.drop(run)
                if run.lapses >= _MAX_LAPSES:
                    # Paused before every send: retaking the lease would loop for ever (each
                    # take restarts the wait). Fail the callers; the next renewal tries again.
                    raise PausedBeforeSendError(
                        f"token set {key.hashed}: the lease lapsed before each of "
                        f"{run.lapses} sends (this process pauses longer than its margin)"
                    ) from None
                # Its copy is from before the pause: the next step must not judge the grant
                # on it (its refresh token may have run out while the store holds a newer set).
                run.stored = await self._access.read(key)
                return
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
        # Issued to this process's client: the stamp says so to every process sharing the store.
        run.pending = attrs.evolve(
            descended(fresh, previous), client_id=registration.client.client_id
        )
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
        run: Job,
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
            try:
                run.stored = await self._access.read(entry.key)
            except StoreError:
                # Keep the copy: the lease is still ours (the fence extends it, through the
                # store, before the replay), so no other process renewed the set meanwhile;
                # failing here would let the spent token run out before the one replay.
                logger.warning("could not read token set %s before a replay", entry.key.hashed)
