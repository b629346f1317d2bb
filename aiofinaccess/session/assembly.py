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
from ..core.settings import Duty, Limits, Schedule, Timeouts
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
from .renewal import RenewalDriver
from .scheduler import RefreshScheduler

__all__ = ["Parts", "Settings", "assemble"]


@attrs.frozen(kw_only=True)
class Settings:
    """A manager's settings, each validated on creation (see :class:`SessionManager`)."""

    policy: RefreshPolicy
    retry: RetryPolicy
    timeouts: Timeouts
    schedule: Schedule
    duty: Duty
    limits: Limits


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
        ConfigurationError: ``duty=True`` with a store that does not keep the refresh duty.
    """
    policy, timeouts, schedule = settings.policy, settings.timeouts, settings.schedule
    duty_settings, limits = settings.duty, settings.limits
    claim_for = duty_settings.claim_for(timeouts)
    if duty_settings.enabled is True and not isinstance(store, RefreshDuty):
        raise ConfigurationError(
            "Duty(enabled=True) needs a store that keeps the refresh duty (Memory, SQLite, Redis)"
        )
    # A MemoryStore serves one process: unless asked, its per-process plan (which knows which
    # sets are idle) beats a duty with nobody to share it with.
    fleet = isinstance(store, RefreshDuty) and (
        duty_settings.enabled is not None or not isinstance(store, MemoryStore)
    )
    registry = Registry(limits.working_set)
    stats = ManagerStats()
    hub = EventHub(stats)
    owned = OwnedTasks()
    revoked: Tombstones = collections.OrderedDict()
    planner = Planner(
        registry=registry,
        clock=clock,
        scheduler=None,
        policy=policy,
        schedule=schedule,
        stats=stats,
        closed=lambda: owned.closed,
        fleet=fleet,
    )
    scheduler = (
        RefreshScheduler(clock, planner.fire, max_in_flight=limits.concurrent_refreshes)
        if schedule.enabled
        else None
    )
    planner.scheduler = scheduler
    driver = planner.driver = RenewalDriver(
        registry=registry,
        store=store,
        clock=clock,
        endpoint=oauth,
        spawn=owned.spawn,
        schedule=planner.schedule,
        stats=stats,
        hub=hub,
        policy=policy,
        retry=settings.retry,
        timeouts=timeouts,
        concurrency=limits.concurrent_refreshes,
        due_at_for=planner.next_due if fleet else None,
    )
    registry.on_evict = lambda count: setattr(
        stats, "working_set_evictions", stats.working_set_evictions + count
    )
    background: list[Background] = [] if scheduler is None else [scheduler]
    duty = None
    if fleet and schedule.enabled and duty_settings.enabled is not False:
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
            settings=duty_settings,
            claim_for=claim_for,
            concurrency=limits.concurrent_refreshes,
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
        restore_limit=limits.working_set,
        timeouts=timeouts,
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
