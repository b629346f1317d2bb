"""A simulated worker process: its clocks, its SessionManager on simulated parts, its tasks."""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from aiofinaccess import (
    ClientCredentials,
    Duty,
    Limits,
    Provider,
    RefreshPolicy,
    RetryPolicy,
    Schedule,
    SessionManager,
    Timeouts,
)
from aiofinaccess.core.tokens import TokenSet
from aiofinaccess.session.events import GrantLost, WriteAbandoned
from tests.simulation.client import SimOAuthClient
from tests.simulation.config import EPOCH

if TYPE_CHECKING:
    from tests.simulation.world import World

CURRENT: contextvars.ContextVar[Process | None] = contextvars.ContextVar("process", default=None)


def event_account(event: WriteAbandoned) -> tuple[str, str | None]:
    return (event.provider, event.subject)


class Crashed(BaseException):
    """Raised by every simulated I/O call of a process that has crashed."""


class SimClock:
    """A process's clocks: its own monotonic origin and a wrong wall clock (a constant skew,
    and steps an NTP daemon may make), and the freezes of a paused process."""

    def __init__(self, loop: asyncio.AbstractEventLoop, origin: float, skew: float) -> None:
        self._loop = loop
        self._origin = origin
        self._skew = skew
        self.frozen_until = 0.0  # loop time: every sleep, store call and send waits till then
        self.freezes: list[tuple[float, float]] = []

    def freeze(self, until: float) -> None:
        """Pause the process until loop time ``until``."""
        self.freezes.append((self._loop.time(), until))
        self.frozen_until = max(self.frozen_until, until)

    def paused_for(self, since: float) -> float:
        """Seconds this process was frozen since loop time ``since``."""
        return self.paused_between(since, None)

    def paused_between(self, since: float, until: float | None) -> float:
        """Seconds this process was frozen between two loop times (``None``: now)."""
        now = self._loop.time() if until is None else until
        return sum(max(0.0, min(end, now) - max(start, since)) for start, end in self.freezes)

    def wall(self) -> float:
        return EPOCH + self._loop.time() + self._skew

    def monotonic(self) -> float:
        return self._origin + self._loop.time()

    def step(self, seconds: float) -> None:
        """The wall clock jumps (an NTP step); the monotonic one does not."""
        self._skew += seconds

    @property
    def skew(self) -> float:
        return self._skew

    async def frozen(self) -> None:
        """Wait out a freeze of the whole process (a GC pause, a stopped VM)."""
        # A freeze may grow while it lasts: sleep until none is left.
        while (left := self.frozen_until - self._loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(left)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.frozen()


class Process:
    """One incarnation of a simulated worker process."""

    def __init__(self, world: World, number: int, pid: int) -> None:
        self.world = world
        self.number = number
        self.pid = pid
        self.incarnation = pid
        self.alive = True
        self.closing = False  # a graceful restart is closing it: the app asks it nothing more
        self.tasks: list[asyncio.Task[Any]] = []
        self.reauth_events: dict[tuple[str, str | None], int] = {}
        self._pauses = random.Random(f"{world.seed}:pause-sends:{pid}")
        rng = world.rng
        self.clock = SimClock(
            world.loop, rng.uniform(0, 1e6), rng.uniform(-1, 1) * world.config.skew
        )
        if world.features.clock_skew:  # more skew, from a stream of its own
            skew = random.Random(f"{world.seed}:skew:{pid}").uniform(-1, 1)
            self.clock.step(skew * world.features.clock_skew)
        config = world.config
        schedule = Schedule(keep_alive=config.keep_alive)
        if world.features.idle_after:  # the default's hour never passes in a world
            schedule = Schedule(keep_alive=config.keep_alive, idle_after=world.features.idle_after)
        fleet: dict[str, Any] = {}
        if config.duty != "off":
            claims = config.duty == "all" or number == 0 or rng.random() < 0.5
            fleet = {
                "duty": Duty(
                    enabled=claims,
                    poll=config.duty_poll,
                    batch=config.duty_batch,
                    gather=config.duty_gather,
                ),
                "working_set": None if claims else config.working_set,
            }
        self.duty = bool(fleet and fleet["duty"].enabled)
        self.working_set: int | None = fleet.get("working_set")
        self.manager = SessionManager(
            store=world.store.client(self, duty=config.duty != "off"),  # type: ignore[arg-type]
            clock=self.clock,
            policy=RefreshPolicy(),
            retry=RetryPolicy(
                initial=0.05,
                max_wait=0.5,
                max_retry_after=3.0,
                backoff_initial=0.5,
                backoff_max=10.0,
            ),
            schedule=schedule,
            limits=Limits(
                concurrent_refreshes=config.max_concurrent, working_set=fleet.get("working_set")
            ),
            timeouts=Timeouts(
                token=config.token_timeout,
                lease=config.lease_ttl,
                close=3.0,
                pending_write=30.0,
                store=5.0,
            ),
            duty=fleet.get("duty"),
        )
        self.manager._access.random.seed(rng.getrandbits(64))
        #: What this process registers: provider, its client, the app's password lookup.
        self.registrations: list[tuple[Provider, ClientCredentials, Any]] = world.registrations(
            self
        )
        clients = {
            provider.name: SimOAuthClient(
                world, self, provider, client, None, clock=self.clock, timeout=config.token_timeout
            )
            for provider, client, _ in self.registrations
        }
        self.clients = clients
        self.manager._oauth_clients.update(clients)  # type: ignore[arg-type]
        self.manager.subscribe(self._event)
        world.mutate(self)

    @property
    def providers(self) -> list[str]:
        return [provider.name for provider, _, _ in self.registrations]

    def pause_at_send(self) -> None:
        """In worlds with ``pause_sends``, freeze now and then just before a request leaves."""
        share = self.world.features.pause_sends
        if share and not self.world.settling and self._pauses.random() < share:
            config = self.world.config
            pause = config.token_timeout + config.lease_ttl * self._pauses.uniform(0.5, 1.5)
            self.clock.freeze(self.world.loop.time() + pause)

    def register(self) -> None:
        for provider, client, lookup in self.registrations:
            self.manager.register(provider, client, password_lookup=lookup)

    def _event(self, event: object) -> None:
        if isinstance(event, WriteAbandoned) and self.alive:  # a crash abandons by design
            self.world.idp.expire_idle()
            idled = any(  # a set whose refresh token ran out is not worth writing
                s.idle_ended for s in self.world.idp.sessions if s.account == event_account(event)
            )
            if not idled:
                self.world.violation(f"I3: process {self.pid} abandoned a write of a renewed set")
        if isinstance(event, GrantLost):
            key = (event.provider, event.subject)
            self.reauth_events[key] = self.reauth_events.get(key, 0) + 1

    def holds(self) -> list[TokenSet]:
        """The token sets this process holds in memory (a crashed one holds none)."""
        if not self.alive:
            return []
        registry = self.manager._registry
        return [e.token_set for e in registry if e.token_set is not None]

    def check_alive(self) -> None:
        if not self.alive:
            raise Crashed

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A task of this process (it dies with it)."""
        token = CURRENT.set(self)
        try:
            task = self.world.loop.create_task(coro)
        finally:
            CURRENT.reset(token)
        return task

    def crash(self) -> None:
        self.alive = False
        self.world.idp.excuse_crash(self.pid)
        self.world.traffic.event(crashed=self.pid)
        for task in self.tasks:
            task.cancel()
