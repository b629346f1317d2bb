"""What goes wrong in a world: crashes and graceful restarts, store outages, store rollbacks,
the app forgetting, revoking and logging out users mid-run, junk on the duty, process pauses
and clock steps, finAPI sessions that end. Each feature added after the first draws from a
random stream of its own (see config.py)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import TYPE_CHECKING, Any

from aiofinaccess import ReauthorizationRequired, StoreError, TransportError
from aiofinaccess.core.errors import ApiError
from aiofinaccess.core.tokens import TokenKey
from tests.simulation.process import Crashed, Process

if TYPE_CHECKING:
    from tests.simulation.world import World

APP_TASKS = ("callers", "call", "client_call")


def start(world: World) -> tuple[list[asyncio.Task[Any]], list[asyncio.Task[Any]]]:
    """Start the chaos: the tasks that end by themselves, and those to cancel at the end."""
    features = world.features
    # The crashes' task first: it and the client-token revocations draw from the world's
    # stream, in the order they start.
    ending = [world.background(crashes(world))]  # it ends its last crash, then stops
    background = [world.background(revoke_client_tokens(world))]
    if features.pauses:
        background.append(world.background(pauses(world)))
    if features.clock_steps:
        background.append(world.background(clock_steps(world)))
    if features.finapi_users:
        background.append(world.background(finapi_sessions(world)))
    if features.rollbacks:
        ending.append(world.background(rollbacks(world)))
    if features.grant_chaos:
        ending.append(world.background(grant_chaos(world)))
    if features.junk:
        ending.append(world.background(junk(world)))
    return ending, background


def plan_outages(world: World) -> None:
    """Outages shorter than half a lease, apart by two leases (the model's promise to the SDK:
    see world.py's docstring)."""
    config, rng = world.config, world.rng
    begin = 0.0
    for _ in range(config.outages):
        begin += rng.uniform(2 * config.lease_ttl, config.duration / max(1, config.outages))
        world.store.outages.append((begin, begin + rng.uniform(0.1, 0.5 * config.lease_ttl)))
        begin = world.store.outages[-1][1]


async def aclose(world: World, process: Process) -> None:
    """Close a manager, checking I13: ``aclose()`` returns within its bound (less its pauses)."""
    started = world.loop.time()
    await process.manager.aclose()
    took = world.loop.time() - started - process.clock.paused_for(started)
    if took > world.aclose_bound:
        world.violation(f"I13: aclose of pid {process.pid} took {took:.1f} s")


async def crashes(world: World) -> None:
    """Crashes and graceful restarts at random times."""
    config, rng = world.config, world.rng
    rate = (config.crashes_per_minute + config.restarts_per_minute) / 60.0
    while rate > 0:
        pause = rng.expovariate(rate)
        if world.loop.time() + pause >= config.duration:
            return
        await asyncio.sleep(pause)
        candidates = world.live()
        if not candidates:
            continue
        victim = rng.choice(candidates)
        if rng.random() < config.crashes_per_minute / (
            config.crashes_per_minute + config.restarts_per_minute
        ):
            world.log(f"pid {victim.pid} crashes")
            victim.crash()
        else:
            world.log(f"pid {victim.pid} restarts gracefully")
            victim.closing = True
            for task in victim.tasks:
                if task is not asyncio.current_task() and is_app_task(task):
                    task.cancel()
            await aclose(world, victim)
            victim.alive = False
        await asyncio.sleep(rng.uniform(0.1, 3.0))
        process = await world.boot(victim.number)
        process.spawn(world.callers(process))


async def revoke_client_tokens(world: World) -> None:
    while True:
        await asyncio.sleep(world.rng.expovariate(1 / 20.0))
        world.idp.revoke_client_token()


async def rollbacks(world: World) -> None:
    """The store loses the acknowledged writes of the last seconds (a failover to a replica
    that fell behind, a restored backup), ``features.rollbacks`` times."""
    rng = random.Random(f"{world.seed}:rollback:run")
    for _ in range(world.features.rollbacks):
        await asyncio.sleep(rng.uniform(2.0, world.config.duration / 2))
        snapshot = world.store.snapshot()
        await asyncio.sleep(rng.uniform(0.5, 12.0))
        world.log("the store rolls back")
        world.store.restore(snapshot)
        world.rolled_back()


async def grant_chaos(world: World) -> None:
    """The app forgets, revokes or logs out a user at random times (and logs them in again on
    their next call)."""
    rng = random.Random(f"{world.seed}:grants:run")
    rate = world.features.grant_chaos / 60.0
    while True:
        pause = rng.expovariate(rate)
        if world.loop.time() + pause >= world.config.duration:
            return
        await asyncio.sleep(pause)
        account = rng.choice(world.accounts)
        serving = [p for p in world.live() if account in world.served(p) and not p.closing]
        if not serving:
            continue
        process = rng.choice(serving)
        provider, user = account
        actions = ["forget"] + (["revoke", "logout"] if provider in ("idp", "idp-b") else [])
        action = rng.choice(actions)
        world.log(f"pid {process.pid} {action}s {provider}/{user}")
        world.forgets[account] = world.forgets.get(account, 0) + 1
        ending = [  # the sessions the app means: a login racing the forget is a new one
            s
            for s in world.idp.sessions
            if s.account == account
            and s.client == world.client_of(account)
            and s.excused != "its login was not stored yet"
        ]
        for session in ending:
            session.excused = session.excused or f"the app chose to {action} it"
        world.vault.pop(user, None)  # a finAPI user the app forgets leaves its vault
        task = process.spawn(getattr(process.manager, action)(provider, user))
        await asyncio.wait([task])  # the process may crash meanwhile (the task is cancelled)
        if task.cancelled():
            continue
        with contextlib.suppress(
            StoreError, TransportError, ApiError, ReauthorizationRequired, Crashed
        ):
            task.result()
            world.forgotten_done(ending)


async def junk(world: World) -> None:
    """Due entries the duty must clear: orphans (a registered provider's key whose record is
    gone, as a crash between a Redis record's delete and its due entry's would leave)."""
    rng = random.Random(f"{world.seed}:junk:run")
    for number in range(rng.randint(1, 3)):
        provider = rng.choice(world.features.providers)
        world.store.due[TokenKey(provider, f"gone-{number}")] = world.wall() - rng.uniform(0, 5)
        await asyncio.sleep(rng.uniform(0.0, world.config.duration / 2))


async def pauses(world: World) -> None:
    """Processes freeze (a GC pause, a stopped VM): every store call, sleep and send waits."""
    rng = random.Random(f"{world.seed}:pauses:run")
    features = world.features
    if not features.pauses:
        return
    while True:
        pause = rng.expovariate(features.pauses / 60.0)
        if world.loop.time() + pause >= world.config.duration:
            return
        await asyncio.sleep(pause)
        live = world.live()
        if live:
            victim = rng.choice(live)
            until = world.loop.time() + rng.uniform(0.05, features.pause_max)
            victim.clock.freeze(until)
            world.log(f"pid {victim.pid} freezes until {until:.3f}")


async def clock_steps(world: World) -> None:
    """A process's wall clock steps (NTP) by up to a second either way."""
    rng = random.Random(f"{world.seed}:steps:run")
    if not world.features.clock_steps:
        return
    while True:
        pause = rng.expovariate(world.features.clock_steps / 60.0)
        if world.loop.time() + pause >= world.config.duration:
            return
        await asyncio.sleep(pause)
        live = world.live()
        if live:
            rng.choice(live).clock.step(rng.uniform(-1.0, 1.0))


async def finapi_sessions(world: World) -> None:
    """finAPI ends a user's refresh token now and then (its access tokens stay valid): the
    SDK must fall back to the password grant."""
    rng = random.Random(f"{world.seed}:finapi:run")
    idp = world.idp
    while True:
        await asyncio.sleep(rng.expovariate(1 / 15.0))
        live = [s for s in idp.sessions if s.provider == "fin" and s.current in idp.by_refresh]
        if live:
            del idp.by_refresh[rng.choice(live).current]


def is_app_task(task: asyncio.Task[Any]) -> bool:
    """Whether ``task`` runs one of the app's coroutines (``APP_TASKS``); a task of another
    awaitable (an async generator's ``aclose()``, which the loop runs when one is collected)
    has no ``__name__`` and is none."""
    return getattr(task.get_coro(), "__name__", None) in APP_TASKS
