"""A renewal job's bookkeeping: its working state, and how its outcome ends in failure.

:class:`Job` is what one renewal job carries between its steps (the entry holds only what other
tasks may read). :class:`Outcomes` settles a failed job: the callers' outcome gets the error,
the entry moves to ``REAUTH_REQUIRED`` or ``BACKOFF``, the counters and events say so, and a
retryable failure is rescheduled after the backoff between renewals.

Must never import: aiohttp, ``oauth``, ``api``, ``integrations``, ``cli`` or ``sandbox``; it
does no I/O of its own (from ``stores`` it needs only the lease type).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from ..core._record import slots_repr
from ..core.clock import Clock
from ..core.errors import (
    AiofinaccessError,
    ApiError,
    ReauthorizationRequired,
    StoreError,
    TransportError,
    UsageError,
)
from ..core.lifecycle import Event, Renewal, RetryPolicy, Status, transition
from ..core.renewal_step import Stored
from ..core.stopping import cancel_asked as cancelled
from ..core.tokens import TokenSet
from ..stores.protocol import Lease
from .hub import EventHub, ManagerStats
from .registry import Entry

if TYPE_CHECKING:
    from .access import StoreAccess
    from .planning import Planner

__all__ = [
    "Job",
    "Outcomes",
    "bounded",
    "cancelled",
    "retrieve",
    "retryable",
]

logger = logging.getLogger("aiofinaccess")

_T = TypeVar("_T")


class Job:
    """One job's working state (the entry holds only what other tasks may read)."""

    __slots__ = (  # noqa: RUF023  (shown in this order)
        "rejected",
        "forced",
        "reason",
        "stored",
        "lease",
        "lease_exit",
        "heartbeat",
        "pending",
        "base_version",
        "reissued",
        "grant",
        "refresh_failed",
        "dead_grant",
        "dead_cause",
        "attempts",
        "ambiguous",
        "write_failures",
        "write_error",
        "written",
        "fence_tries",
        "lapses",
        "late_answers",
        "lease_deadline",
    )

    rejected: str | None
    forced: bool
    reason: str
    stored: Stored | None
    lease: Lease | None
    lease_exit: contextlib.AsyncExitStack | None
    heartbeat: asyncio.Task[None] | None
    pending: TokenSet | None
    base_version: int | None
    reissued: bool
    grant: Renewal | None
    refresh_failed: bool
    dead_grant: str | None
    dead_cause: ApiError | None
    attempts: int
    ambiguous: int
    write_failures: int
    write_error: StoreError | None
    written: bool
    fence_tries: int
    lapses: int
    late_answers: int
    lease_deadline: float

    def __init__(
        self,
        *,
        rejected: str | None = None,
        forced: bool = False,
        reason: str = "on_demand",
        stored: Stored | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.rejected = rejected
        self.forced = forced
        self.reason = reason
        self.stored = stored
        self.lease = lease
        self.lease_exit = None
        self.heartbeat = None
        self.pending = None
        self.base_version = None
        self.reissued = False
        self.grant = None
        self.refresh_failed = False
        self.dead_grant = None
        self.dead_cause = None
        self.attempts = 0
        self.ambiguous = 0
        self.write_failures = 0
        self.write_error = None
        self.written = False
        self.fence_tries = 0
        self.lapses = 0
        self.late_answers = 0
        self.lease_deadline = math.inf

    def __repr__(self) -> str:
        return slots_repr(self)


async def bounded(call: Awaitable[_T], *, timeout: float, stats: ManagerStats) -> _T:
    """Await a store call within ``timeout``; anything but a typed error becomes
    :class:`StoreError` (counted in ``stats.store_failures``)."""
    try:
        async with asyncio.timeout(timeout):
            return await call
    except StoreError:
        stats.store_failures += 1
        raise
    except AiofinaccessError:
        raise
    except TimeoutError as exc:
        stats.store_failures += 1
        raise StoreError(f"the token store did not answer in {timeout} s") from exc
    except asyncio.CancelledError as exc:
        if cancelled():
            raise
        stats.store_failures += 1  # raised by the store itself: nobody cancelled us
        raise StoreError("a token store call was cancelled, though its caller was not") from exc
    except Exception as exc:
        stats.store_failures += 1
        raise StoreError(f"token store failed: {type(exc).__name__}") from exc


def retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen."""
    # Nobody may be awaiting an outcome: never let it log "exception was never retrieved".
    if not future.cancelled():
        future.exception()


def retryable(error: BaseException | None) -> bool:
    """Whether a later renewal may succeed where this one failed."""
    if isinstance(error, ApiError | TransportError):
        return error.retryable
    return not isinstance(error, UsageError)


class Outcomes:
    """Ends a job's outcome in failure and moves its entry on.

    Args:
        clock: Time, for the moment of the next try.
        planner: Plans a retryable failure's next renewal.
        stats, hub: Counters and events.
        retry: The backoff between failed renewals.
        access: The jitter draw.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        planner: Planner,
        stats: ManagerStats,
        hub: EventHub,
        retry: RetryPolicy,
        access: StoreAccess,
    ) -> None:
        self._clock = clock
        self._planner = planner
        self.stats = stats
        self._hub = hub
        self._retry = retry
        self._access = access

    def fail(self, entry: Entry, outcome: asyncio.Future[TokenSet], error: BaseException) -> None:
        """Give ``outcome`` the error; a renewing entry then needs re-authorization or backs off."""
        outcome.set_exception(error)
        if entry.status is not Status.REFRESHING:
            return  # tokens were stored or revoked meanwhile: this outcome is moot
        key = entry.key
        if isinstance(error, ReauthorizationRequired):
            entry.status = transition(entry.status, Event.GRANT_DEAD)
            entry.reauth = error
            entry.clear()
            if entry.reauth_repeated:  # reported already for this stored set
                entry.reauth_repeated = False
                return
            self.stats.reauth_required += 1
            logger.warning("token set %s needs re-authorization: %s", key.hashed, error.reason)
            from .events import GrantLost  # noqa: PLC0415  (not on a first token's path)

            self._hub.emit(GrantLost(key.hashed, key.provider, error.reason, subject=key.subject))
            return
        entry.status = transition(entry.status, Event.REFRESH_FAILED)
        entry.failures += 1
        self.stats.refresh_failures += 1
        retry_after = error.retry_after if isinstance(error, ApiError) else None
        retry_in = self._retry.backoff(entry.failures, self._access.draw(), retry_after)
        entry.retry_at = self._clock.monotonic() + retry_in
        may_succeed = retryable(error)
        if may_succeed:
            self._planner.schedule(entry, entry.retry_at)
        logger.warning(
            "renewing token set %s failed (%s: %s); %s",
            key.hashed,
            type(error).__name__,
            error,
            f"retry in {retry_in:.1f} s" if may_succeed else "no retry scheduled",
        )
        from .events import RefreshFailed  # noqa: PLC0415  (not on a first token's path)

        self._hub.emit(
            RefreshFailed(
                key.hashed,
                key.provider,
                type(error).__name__,
                bool(may_succeed),
                entry.failures,
                retry_in if may_succeed else None,
                subject=key.subject,
            )
        )
