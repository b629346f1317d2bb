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

import attrs

from ..core.clock import Clock
from ..core.errors import ConfigurationError
from ..core.lifecycle import RefreshPolicy, RetryPolicy
from ..oauth.client import OAuthClient
from ..stores import TokenStore
from .bearer import Bearer
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
    """Build a manager's parts from its options and the few callbacks into the manager."""
    registry = Registry()
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
    )
    background: list[Background] = [] if scheduler is None else [scheduler]
    lifetime = Lifetime(
        store=store,
        registry=registry,
        driver=driver,
        hub=hub,
        owned=owned,
        background=background,
        restore_at_start=True,
        restore_limit=None,
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
    )
