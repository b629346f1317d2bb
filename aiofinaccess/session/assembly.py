"""How a session manager is put together: its validated options and the parts built from them.

:class:`Options` checks every constructor option once (one-line
:class:`~aiofinaccess.core.errors.ConfigurationError` messages); :func:`assemble` builds the
registry, renewal driver, planner and scheduler, lifetime, bearer path and grants, wired to
each other. The manager keeps only the public face.

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from typing import cast

import attrs

from ..core.clock import Clock
from ..core.errors import ConfigurationError
from ..core.lifecycle import RefreshPolicy, RetryPolicy
from ..oauth.client import OAuthClient
from ..stores import RefreshDuty, TokenStore
from ..stores.memory import MemoryStore
from .bearer import Bearer
from .duty import DutyLoop, worker_id
from .events import EventHub, ManagerStats
from .grants import Grants, Tombstones
from .lifetime import Background, Lifetime, OwnedTasks
from .planning import Planner
from .registry import Registry
from .renewal import RenewalDriver, TokenEndpoint
from .scheduler import RefreshScheduler

__all__ = ["Options", "Parts", "assemble"]


def _seconds(name: str, value: float) -> None:
    if not value > 0 or value == float("inf"):
        raise ConfigurationError(f"{name} must be a positive number of seconds")


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@attrs.frozen(kw_only=True)
class Options:
    """A manager's options (see :class:`SessionManager` for each), validated on creation."""

    policy: RefreshPolicy
    retry: RetryPolicy
    scheduler: bool
    keep_alive: bool
    idle_after: float | None
    jitter: float
    max_concurrent_refreshes: int
    token_timeout: float
    lease_ttl: float
    close_timeout: float
    pending_write_timeout: float
    store_timeout: float
    duty: bool | None = None
    working_set: int | None = None
    duty_batch: int = 100
    claim_ttl: float | None = None
    duty_poll: float = 1.0
    duty_gather: float = 0.1

    @property
    def claim_for(self) -> float:
        """Seconds a claim lasts: ``claim_ttl``, or one lease wait and one exchange with margin."""
        if self.claim_ttl is not None:
            return self.claim_ttl
        return self.token_timeout + 2 * self.lease_ttl

    def __attrs_post_init__(self) -> None:
        _seconds("token_timeout", self.token_timeout)
        _seconds("lease_ttl", self.lease_ttl)
        _seconds("store_timeout", self.store_timeout)
        if not self.close_timeout >= 0 or not self.pending_write_timeout >= 0:
            raise ConfigurationError("close_timeout and pending_write_timeout must be >= 0")
        if not 0 <= self.jitter < 1:
            raise ConfigurationError("jitter must be in [0, 1)")
        if self.max_concurrent_refreshes < 1:
            raise ConfigurationError("max_concurrent_refreshes must be >= 1")
        if self.idle_after is not None and self.idle_after <= 0:
            raise ConfigurationError("idle_after must be positive or None")
        if self.duty not in (None, True, False):
            raise ConfigurationError("duty must be True, False or None (decided by the store)")
        if self.working_set is not None and not _count(self.working_set):
            raise ConfigurationError("working_set must be a positive number of token sets or None")
        if not _count(self.duty_batch):
            raise ConfigurationError("duty_batch must be a positive number of token sets")
        _seconds("duty_poll", self.duty_poll)
        _seconds("duty_gather", self.duty_gather)
        if self.claim_ttl is not None:
            _seconds("claim_ttl", self.claim_ttl)
            if self.claim_ttl < self.token_timeout + self.lease_ttl:
                # A renewal that died after sending fences its set that long: a shorter claim
                # would hand the set to a worker that can only wait for the lease.
                raise ConfigurationError("claim_ttl must be at least token_timeout + lease_ttl")


@attrs.define(kw_only=True)
class Parts:
    """What a manager is composed of."""

    registry: Registry
    stats: ManagerStats
    hub: EventHub
    owned: OwnedTasks
    revoked: Tombstones
    planner: Planner
    scheduler: RefreshScheduler | None
    driver: RenewalDriver
    lifetime: Lifetime
    bearer: Bearer
    grants: Grants
    duty: DutyLoop | None


def assemble(
    options: Options,
    *,
    store: TokenStore,
    clock: Clock,
    endpoint: Callable[[str], TokenEndpoint],
    oauth: Callable[[str], OAuthClient],
    access_token: Callable[[str], Awaitable[str]],
    close_session: Callable[[], Awaitable[None]],
) -> Parts:
    """Build a manager's parts from its options and the few callbacks into the manager.

    Raises:
        ConfigurationError: ``duty=True`` with a store that does not keep the refresh duty.
    """
    if options.duty is True and not isinstance(store, RefreshDuty):
        raise ConfigurationError(
            "duty=True needs a store that keeps the refresh duty (Memory, SQLite or Redis store)"
        )
    # A MemoryStore serves one process: unless asked, its per-process plan (which knows which
    # sets are idle) beats a duty with nobody to share it with.
    fleet = isinstance(store, RefreshDuty) and (
        options.duty is not None or not isinstance(store, MemoryStore)
    )
    registry = Registry(options.working_set)
    stats = ManagerStats()
    hub = EventHub(stats)
    owned = OwnedTasks()
    revoked: Tombstones = collections.OrderedDict()
    planner = Planner(
        registry=registry,
        clock=clock,
        scheduler=None,
        policy=options.policy,
        keep_alive=options.keep_alive,
        idle_after=options.idle_after,
        jitter=options.jitter,
        stats=stats,
        closed=lambda: owned.closed,
        fleet=fleet,
    )
    scheduler = (
        RefreshScheduler(clock, planner.fire, max_in_flight=options.max_concurrent_refreshes)
        if options.scheduler
        else None
    )
    planner.scheduler = scheduler
    driver = planner.driver = RenewalDriver(
        registry=registry,
        store=store,
        clock=clock,
        endpoint=endpoint,
        spawn=owned.spawn,
        schedule=planner.schedule,
        stats=stats,
        hub=hub,
        policy=options.policy,
        retry=options.retry,
        token_timeout=options.token_timeout,
        lease_ttl=options.lease_ttl,
        store_timeout=options.store_timeout,
        max_concurrent_refreshes=options.max_concurrent_refreshes,
        due_at_for=planner.next_due if fleet else None,
    )
    registry.on_evict = lambda count: setattr(
        stats, "working_set_evictions", stats.working_set_evictions + count
    )
    background: list[Background] = [] if scheduler is None else [scheduler]
    duty = None
    if fleet and options.scheduler and options.duty is not False:
        duty = DutyLoop(
            store=cast(RefreshDuty, store),
            registry=registry,
            driver=driver,
            clock=clock,
            owned=owned,
            stats=stats,
            due_at=planner.due_at,
            keep_due=planner.keep_due,
            draw=driver.draw,
            owner=worker_id(),
            batch=options.duty_batch,
            claim_for=options.claim_for,
            gather=options.duty_gather,
            poll=options.duty_poll,
            concurrency=options.max_concurrent_refreshes,
        )
        background.append(duty)
        planner.on_due = duty.due_written
    lifetime = Lifetime(
        store=store,
        registry=registry,
        driver=driver,
        hub=hub,
        owned=owned,
        background=background,
        restore_at_start=not fleet,
        restore_limit=options.working_set,
        close_timeout=options.close_timeout,
        pending_write_timeout=options.pending_write_timeout,
        close_session=close_session,
    )
    return Parts(
        registry=registry,
        stats=stats,
        hub=hub,
        owned=owned,
        revoked=revoked,
        planner=planner,
        scheduler=scheduler,
        driver=driver,
        lifetime=lifetime,
        bearer=Bearer(registry=registry, driver=driver, clock=clock, revoked=revoked),
        grants=Grants(
            registry=registry,
            store=store,
            driver=driver,
            stats=stats,
            oauth=oauth,
            access_token=access_token,
            spawn=owned.spawn,
            revoked=revoked,
        ),
        duty=duty,
    )
