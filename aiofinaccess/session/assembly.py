"""How a session manager is put together: the parts built from its settings, in dependency
order, each given what it needs when it is built (nothing is wired afterwards).

Never imports ``api``, ``integrations``, ``cli``, ``sandbox`` or the manager module.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..core.clock import Clock
from ..core.errors import ConfigurationError
from ..core.lifecycle import RefreshPolicy, RetryPolicy
from ..core.settings import Duty, Limits, Schedule, Timeouts
from ..stores.memory import MemoryStore
from ..stores.protocol import RefreshDuty, TokenStore, UseStamps
from .access import StoreAccess
from .bearer import Bearer
from .duty import DutyLoop
from .feed import FeedWatch
from .grants import Grants, Tombstones
from .hub import EventHub, ManagerStats
from .idle import IdleGate, UseStamper
from .lifetime import Background, Lifetime, OwnedTasks
from .planning import Planner, Trigger
from .publish import Publisher
from .registry import Registry
from .renewal import RenewalDriver
from .scheduler import DueQueue, RefreshScheduler

if TYPE_CHECKING:
    from ..oauth.client import OAuthClient

__all__ = ["Parts", "Settings", "assemble"]


# Internal bundles, never compared or shown: plain classes (attrs would compile methods for
# them at import).
class Settings:
    """A manager's settings, each validated on creation (see :class:`SessionManager`)."""

    __slots__ = (
        "duty",
        "limits",
        "policy",
        "retry",
        "schedule",
        "timeouts",
    )

    def __init__(
        self,
        *,
        policy: RefreshPolicy,
        retry: RetryPolicy,
        timeouts: Timeouts,
        schedule: Schedule,
        duty: Duty,
        limits: Limits,
    ) -> None:
        self.policy = policy
        self.retry = retry
        self.timeouts = timeouts
        self.schedule = schedule
        self.duty = duty
        self.limits = limits


class Parts:
    """What a manager is composed of."""

    __slots__ = (
        "access",
        "bearer",
        "driver",
        "feed",
        "grants",
        "hub",
        "lifetime",
        "owned",
        "registry",
        "scheduler",
        "stats",
    )

    def __init__(
        self,
        *,
        registry: Registry,
        stats: ManagerStats,
        hub: EventHub,
        owned: OwnedTasks,
        access: StoreAccess,
        feed: FeedWatch,
        scheduler: RefreshScheduler | None,
        driver: RenewalDriver,
        lifetime: Lifetime,
        bearer: Bearer,
        grants: Grants,
    ) -> None:
        self.registry = registry
        self.stats = stats
        self.hub = hub
        self.owned = owned
        self.access = access
        self.feed = feed
        self.scheduler = scheduler
        self.driver = driver
        self.lifetime = lifetime
        self.bearer = bearer
        self.grants = grants


def assemble(
    settings: Settings,
    *,
    store: TokenStore,
    clock: Clock,
    oauth: Callable[[str], OAuthClient],
    access_token: Callable[[str], Awaitable[str]],
    close_session: Callable[[], Awaitable[None]],
) -> Parts:
    """Build a manager's parts from its settings and the few callbacks into the manager.

    Raises:
        ConfigurationError: ``Duty(enabled=True)`` with a store that does not keep the refresh
            duty, or a claim shorter than a renewal.
    """
    policy, timeouts, schedule = settings.policy, settings.timeouts, settings.schedule
    duty, limits = settings.duty, settings.limits
    claim_for = duty.claim_for(timeouts)
    if duty.enabled is True and not isinstance(store, RefreshDuty):
        raise ConfigurationError(
            "Duty(enabled=True) needs a store that keeps the refresh duty (Memory, SQLite, Redis)"
        )
    # A MemoryStore serves one process: unless asked, its per-process plan (which knows which
    # sets are idle) beats a duty with nobody to share it with.
    fleet = isinstance(store, RefreshDuty) and (
        duty.enabled is not None or not isinstance(store, MemoryStore)
    )
    stats = ManagerStats()
    hub = EventHub(stats)
    owned = OwnedTasks()
    revoked: Tombstones = collections.OrderedDict()
    feed = FeedWatch(store=store, owned=owned)
    # Idle sets cost nothing where the store keeps their last use: every process stamps its
    # uses, and the duty leaves the sets nobody used alone.
    stamps = fleet and schedule.idle_after is not None and isinstance(store, UseStamps)
    registry = Registry(
        limits.working_set, policy=policy, stats=stats, on_held=feed.follow, stamps=stamps
    )
    access = StoreAccess(
        store=store,
        registry=registry,
        clock=clock,
        policy=policy,
        timeout=timeouts.store,
        stats=stats,
        duty=schedule if fleet else None,
    )
    queue = DueQueue() if schedule.enabled else None
    planner = Planner(
        clock=clock, queue=queue, policy=policy, schedule=schedule, access=access, fleet=fleet
    )
    publisher = Publisher(clock=clock, policy=policy, planner=planner, stats=stats, hub=hub)
    driver = RenewalDriver(
        registry=registry,
        access=access,
        publisher=publisher,
        planner=planner,
        clock=clock,
        endpoint=oauth,
        owned=owned,
        stats=stats,
        hub=hub,
        policy=policy,
        retry=settings.retry,
        timeouts=timeouts,
        concurrency=limits.concurrent_refreshes,
    )
    background: list[Background] = []
    scheduler = None
    if queue is not None:
        trigger = Trigger(
            registry=registry,
            driver=driver,
            clock=clock,
            queue=queue,
            schedule=schedule,
            stats=stats,
            owned=owned,
        )
        scheduler = RefreshScheduler(
            clock, trigger.fire, max_in_flight=limits.concurrent_refreshes, queue=queue
        )
        background.append(scheduler)
    if stamps and schedule.idle_after is not None:
        background.append(
            UseStamper(
                access=access,
                registry=registry,
                clock=clock,
                idle_after=schedule.idle_after,
                stats=stats,
                last_within=timeouts.close or None,
            )
        )
    if fleet and schedule.enabled and duty.enabled is not False:
        background.append(
            DutyLoop(
                access=access,
                registry=registry,
                driver=driver,
                publisher=publisher,
                clock=clock,
                owned=owned,
                stats=stats,
                settings=duty,
                claim_for=claim_for,
                concurrency=limits.concurrent_refreshes,
                idle=(
                    IdleGate(access=access, clock=clock, schedule=schedule, stats=stats)
                    if stamps
                    else None
                ),
            )
        )
    lifetime = Lifetime(
        access=access,
        registry=registry,
        publisher=publisher,
        hub=hub,
        owned=owned,
        feed=feed,
        background=background,
        restore_at_start=not fleet,
        restore_limit=limits.working_set,
        timeouts=timeouts,
        close_session=close_session,
    )
    bearer = Bearer(
        registry=registry,
        driver=driver,
        access=access,
        publisher=publisher,
        clock=clock,
        revoked=revoked,
    )
    grants = Grants(
        registry=registry,
        access=access,
        publisher=publisher,
        stats=stats,
        owned=owned,
        oauth=oauth,
        access_token=access_token,
        revoked=revoked,
    )
    return Parts(
        registry=registry,
        stats=stats,
        hub=hub,
        owned=owned,
        access=access,
        feed=feed,
        scheduler=scheduler,
        driver=driver,
        lifetime=lifetime,
        bearer=bearer,
        grants=grants,
    )
